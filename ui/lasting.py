"""What a new session checks while :func:`ui.state.restore` fills it: the models a link names against this server's
catalog, and the user's jobs still queued or running."""

from __future__ import annotations

import logging
from typing import Any

from core.config.errors import StudioError

logger = logging.getLogger(__name__)

MODEL_FIELDS = ("student", "reflection", "compare_models")


def catalog_names() -> set[str] | None:
    from ui import cache

    try:
        return set(cache.catalog().names())
    except StudioError as exc:  # the Models page says what is wrong with the catalog
        logger.warning("model catalog unreadable while restoring a session: %s", exc)
        return None


def known_models(linked: dict[str, Any]) -> list[str]:
    """Drop models a link names that this server's catalog lacks; returns their names."""
    if not any(field in linked for field in MODEL_FIELDS) or (names := catalog_names()) is None:
        return []
    missing: list[str] = []
    for field in ("student", "reflection"):
        if field in linked and linked[field] not in names:
            missing.append(linked.pop(field))
    if "compare_models" in linked:
        missing += [n for n in linked["compare_models"] if n not in names]
        linked["compare_models"] = [n for n in linked["compare_models"] if n in names]
    return list(dict.fromkeys(missing))


def active_jobs(user: str) -> dict[str, str]:
    """Job kind -> id of the newest queued or running job of that kind started by ``user``."""
    from ui import cache

    try:
        jobs = cache.job_manager().list()
    except (StudioError, OSError) as exc:  # the pages show what is wrong with the job table
        logger.warning("jobs unreadable while restoring a session: %s", exc)
        return {}
    found: dict[str, tuple[float, str]] = {}
    for job in jobs:
        if job.started_by == user and job.state in ("queued", "running") and not job.config.get("sweep"):
            kind = "optimize" if job.kind == "repeat" else job.kind  # a repeat is shown where an optimization is
            if kind not in found or job.created > found[kind][0]:
                found[kind] = (job.created, job.id)
    return {kind: job_id for kind, (_, job_id) in found.items()}
