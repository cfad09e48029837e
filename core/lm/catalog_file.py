"""The model catalog's file: read it, and write it under a lock through a temp file of its own.

Two processes (a CLI and the dashboard, two dashboard sessions) may save the catalog at once. Each save re-reads
the file under an exclusive :class:`filelock.FileLock` and replays its own changes on what it reads, then replaces
the file through a uniquely named temp file, so no save interleaves with another or drops a model another added.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock

from core.config.errors import ModelError

LOCK_TIMEOUT_S = 30.0


@functools.lru_cache(maxsize=None)
def catalog_lock(path: Path) -> FileLock:
    """The lock of the catalog at ``path`` (one object per path: re-entrant within a thread)."""
    return FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S)


def read_models(path: Path) -> list[dict[str, Any]]:
    """The user's saved models (as dicts); [] when there is no file yet."""
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ModelError(f"The model catalog {path} is unreadable: {exc}", "Fix or delete the file.") from exc
    return list(saved.get("models", []))


def write_models(path: Path, models: list[dict[str, Any]]) -> None:
    """Replace the file with ``models`` at once (call with :func:`catalog_lock` held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"models": models}, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
