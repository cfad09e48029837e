"""What one person works on in one browser: a small profile in the data dir, and its shareable part as a URL.

A profile is ``<data dir>/profiles/<key>.json``, ``key`` a hash of (user, browser id), so no e-mail address
appears in a file name. It holds plain data only (model names, the task and sample dicts, job and run ids, the
last upload): the keys of :data:`FIELDS`, each checked on the way in and out, string values scrubbed of secrets.
Reading never fails (a missing or corrupt file is an empty profile); writing merges under a file lock and
replaces the file atomically, so a reader never sees half a file and the last writer wins.

:func:`to_query` / :func:`from_query` turn the shareable fields into short, readable URL parameters and back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout

from core.config.errors import StudioError
from core.config.secrets import SECRET_NAME, scrub_data
from core.presets.optimize_form import clean_form, form_from_query, form_params, form_to_query, parse_value
from core.tasks import SOURCES, SampleSpec, TaskRef

logger = logging.getLogger(__name__)

PROFILE_DIR = "profiles"
LOCK_TIMEOUT_S = 5.0
MAX_BYTES = 256_000  # a profile is a few hundred bytes; anything this large is not one of ours
MAX_ITEMS = 50  # names or ids in one list

Kind = Literal["text", "texts", "data"]  # str | None, list[str], dict | None

# The one table of what a profile holds: field -> kind of value.
FIELDS: dict[str, Kind] = {
    "student": "text",
    "reflection": "text",
    "compare_models": "texts",
    "task_ref": "data",  # TaskRef.to_dict()
    "sample": "data",  # SampleSpec.to_dict()
    "upload": "data",  # {"file_id", "filename", "path"} of the last stored upload
    "baseline_job": "text",
    "optimize_job": "text",
    "compare_runs": "texts",  # run ids in view on Compare
    "prompts_run": "text",  # the optimization in view on Prompts
    "optimization_run": "text",  # the optimization in view on Optimization, Compare and Prompts
    "optimize_form": "data",  # the Optimize page's form (core.presets.optimize_form.FORM)
}

# URL parameter of each shareable field (task_ref and sample have one parameter per dataclass field).
QUERY: dict[str, str] = {
    "student": "student",
    "reflection": "reflection",
    "compare_models": "compare",  # repeated: ?compare=a&compare=b (a model name may hold a comma)
    "optimize_job": "opt_job",
    "baseline_job": "base_job",
    "compare_runs": "runs",  # comma-joined run ids
    "prompts_run": "prompts",
    "optimization_run": "run",
}
TASK_QUERY = {"kind": "task", "source": "src", "test_source": "test_src", "text_column": "text",
              "label_column": "label", "name": "task_name", "merge_similar_labels": "merge",
              "drop_missing_labels": "drop_missing"}
SAMPLE_QUERY = {"train_per_label": "train", "val_per_label": "val", "test_per_label": "test", "seed": "seed"}
ID = re.compile(r"^[A-Za-z0-9._-]{1,80}$")  # job ids (20261101-120000-abc123) and MLflow run ids
MAX_NAME = 200


def _task_names() -> dict[str, str]:
    """Field -> parameter of every TaskRef field (a new field is its own name in the URL)."""
    return {f: TASK_QUERY.get(f, f) for f in TaskRef().to_dict()}


def _sample_names() -> dict[str, str]:
    return {f: SAMPLE_QUERY.get(f, f) for f in SampleSpec().to_dict()}


def query_names() -> frozenset[str]:
    """Every URL parameter this module reads or writes (the others in a URL are left alone)."""
    return frozenset({*QUERY.values(), *_task_names().values(), *_sample_names().values(), *form_params()})


def profile_key(user: str, browser: str | None = None) -> str:
    """The file name stem of a (user, browser) profile: a hash, so no e-mail appears on disk."""
    return hashlib.sha256(f"{user}\n{browser or ''}".encode()).hexdigest()[:40]


def _task_ref(value: dict[str, Any]) -> dict[str, Any]:
    if "kind" not in value:
        raise ValueError("a task without its kind")
    ref = TaskRef.from_dict(value)
    if ref.kind not in SOURCES:
        raise ValueError(f"no task source {ref.kind!r} (known: {', '.join(SOURCES)})")
    _check_metric_function(ref)
    return ref.to_dict()


def _check_metric_function(ref: TaskRef) -> None:
    """A link or a saved state never brings in code: a metric function it names must lie under the operator's
    folder (GEPA_STUDIO_METRICS_DIR), as the Task page's own list does (ValueError: the task is left out)."""
    from core.config.settings import load_settings
    from core.program.preview import check_function_metric

    try:
        metric = str((json.loads(ref.fields) if ref.fields else {}).get("metric") or "")
    except (ValueError, AttributeError):
        raise ValueError("its fields are not a JSON object") from None
    try:
        check_function_metric(metric, load_settings().metrics_dir)
    except StudioError as exc:
        raise ValueError(exc.message) from None


def _sample(value: dict[str, Any]) -> dict[str, Any]:
    if missing := sorted(set(SAMPLE_QUERY) - set(value)):
        raise ValueError(f"sample sizes without {', '.join(missing)}")
    try:
        return SampleSpec.from_dict(value).to_dict()
    except (StudioError, TypeError) as exc:
        raise ValueError(str(exc)) from None


# Fields whose dict must make a valid dataclass (what the pages build from it).
SHAPES = {"task_ref": _task_ref, "sample": _sample, "optimize_form": clean_form}


def _plain(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def clean(field: str, value: Any) -> Any:
    """``value`` checked for ``field`` and scrubbed of secrets; raises ValueError if it does not fit."""
    kind = FIELDS.get(field)
    if kind is None:
        raise ValueError(f"unknown profile field {field!r}")
    if value is None and kind != "texts":
        return None
    if kind == "text" and isinstance(value, str):
        return scrub_data(value)
    if kind == "texts" and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return scrub_data(list(value)[:MAX_ITEMS])
    if kind == "data" and isinstance(value, dict) and _plain(value):
        # A key named like a secret has no business in a profile, whatever its value.
        value = scrub_data({k: v for k, v in value.items() if not SECRET_NAME.search(k)})
        return SHAPES[field](value) if field in SHAPES else value
    raise ValueError(f"profile field {field!r} expects {kind}, got {type(value).__name__}")


def _clean_all(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for field, value in values.items():
        try:
            kept[field] = clean(field, value)
        except ValueError as exc:
            logger.warning("profile %s: %s (left out)", source, exc)
    return kept


@dataclass(frozen=True)
class Profile:
    """One (user, browser) profile file. Build with :meth:`of`."""

    path: Path

    @classmethod
    def of(cls, data_dir: Path, user: str, browser: str | None = None) -> "Profile":
        if not user:
            raise ValueError("A profile needs a user.")
        return cls(Path(data_dir) / PROFILE_DIR / f"{profile_key(user, browser)}.json")

    def load(self) -> dict[str, Any]:
        """The saved fields (known and valid ones only); {} when there is no file or it cannot be read."""
        try:
            if self.path.stat().st_size > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES} bytes")
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("profile %s cannot be read, ignored: %s", self.path.name, exc)
            return {}
        return _clean_all({k: v for k, v in saved.items() if k in FIELDS}, self.path.name)

    def update(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``values`` (known fields only) into the file; returns what it holds now.

        Never raises: a profile that cannot be written is logged and the page goes on (its session keeps the
        values)."""
        fresh = _clean_all({k: v for k, v in values.items() if k in FIELDS}, self.path.name)
        if unknown := sorted(set(values) - set(FIELDS)):
            logger.debug("profile %s: unknown fields left out: %s", self.path.name, unknown)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{self.path}.lock", timeout=LOCK_TIMEOUT_S):
                merged = {**self.load(), **fresh}
                self._write(merged)
        except (OSError, Timeout) as exc:
            logger.warning("profile %s not saved: %s", self.path.name, exc)
            return fresh
        return merged

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# URL parameters ----------------------------------------------------------------------------------


def _to_text(value: Any) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def to_query(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """The shareable fields of ``values`` as URL parameters (name -> values; repeated keys for lists).

    The task kind and the sample sizes and seed are always written; other task fields only when set."""
    params: dict[str, list[str]] = {}
    for field, name in QUERY.items():
        value = values.get(field)
        if field == "compare_runs" and value:
            params[name] = [",".join(value)]
        elif isinstance(value, list) and value:
            params[name] = list(value)
        elif isinstance(value, str) and value:
            params[name] = [value]
    for field, names, default in (("task_ref", _task_names(), TaskRef().to_dict()),
                                  ("sample", _sample_names(), SampleSpec().to_dict())):
        value = values.get(field)
        if not isinstance(value, dict):
            continue
        for key, name in names.items():
            if key in value and (value[key] != default[key] or key in ("kind", *SAMPLE_QUERY)):
                params[name] = [_to_text(value[key])]
    if isinstance(values.get("optimize_form"), Mapping):
        params.update(form_to_query(values["optimize_form"]))
    return params


def _group(params: Mapping[str, list[str]], field: str) -> dict[str, Any] | None:
    """The task / sample dict from the parameters that name its fields (defaults for the rest), or None."""
    if field == "task_ref":
        names, default = _task_names(), TaskRef().to_dict()
    else:
        names, default = _sample_names(), SampleSpec().to_dict()
    given = {f: params[name][-1] for f, name in names.items() if params.get(name)}
    if not given:
        return None
    return clean(field, {**default, **{f: parse_value(v, default[f]) for f, v in given.items()}})


def _named_fields(params: Mapping[str, list[str]]) -> tuple[dict[str, Any], list[str]]:
    """The fields of :data:`QUERY` and the Optimize form a URL names, with a note for each value left out."""
    found: dict[str, Any] = {}
    notes: list[str] = []
    for field, name in QUERY.items():
        raw = [v.strip() for v in params.get(name, []) if v and v.strip()]
        if not raw:
            continue
        if field == "compare_runs":
            raw = [r.strip() for v in raw for r in v.split(",") if r.strip()]
        if field in ("student", "reflection", "compare_models"):
            kept = [v for v in raw if len(v) <= MAX_NAME]
        else:
            kept = [v for v in raw if ID.match(v)]
        if len(kept) < len(raw):
            notes.append(f"the link's {name} is not a valid name or id")
        if kept:
            found[field] = kept[:MAX_ITEMS] if FIELDS[field] == "texts" else kept[-1]
    form, bad = form_from_query(params)
    if form:
        found["optimize_form"] = form
    if bad:
        notes.append(f"the link's {', '.join(bad)} cannot be read")
    return found, notes


def from_query(params: Mapping[str, list[str]], *, data_dir: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """The fields a URL names (parameter -> all its values), and a one-line note for each value left out.

    With ``data_dir``, a task file from a URL must lie inside it (a link is anyone's: it may not point the
    server at any path)."""
    found, notes = _named_fields(params)
    for field in ("task_ref", "sample"):
        try:
            value = _group(params, field)
        except (ValueError, TypeError):
            notes.append(f"the link's {'task' if field == 'task_ref' else 'sample sizes'} cannot be read")
            continue
        if value is None:
            continue
        if field == "task_ref" and data_dir is not None and not _sources_inside(value, data_dir):
            notes.append("the link's task file is not in this server's data dir")
            continue
        found[field] = value
    return _clean_all(found, "link"), notes


def _sources_inside(ref: dict[str, Any], data_dir: Path) -> bool:
    root = Path(data_dir).resolve()
    for key in ("source", "test_source"):
        text = str(ref.get(key) or "")
        if text and not Path(text).expanduser().resolve().is_relative_to(root):
            return False
    return True
