"""Session-state keys, one constant each, with typed getters and setters.

Only plain data lives here (model names, ids, dicts): never an LM, a program or a client. Each
browser session has its own ``st.session_state``, so one user's selections never leak into another
session; the run history and the model catalog are shared through the data dir instead.

Keys are prefixed by the page that owns them. Values other pages read live under the constants
below; the widgets that edit them have their own keys (``<key>.w``), because Streamlit forgets a
widget's value when its page is left. Options only one page uses (budget, filters) are widget keys
``<page>.<name>`` kept with ``persist_state="session"``. ``<page>.flash`` holds a one-shot message.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.tasks import SampleSpec, TaskRef

# The router (app.py).
ROUTED = "app.routed"  # bool: this session's runs go through app.py (see ui.routing)
NEXT_PAGE = "app.next_page"  # str | None: a page to open once app.py routes (a deep link, see ui.routing)
# Models page: roles, as names of models in the shared catalog.
STUDENT = "models.student"  # str | None: the cheap model GEPA optimizes
REFLECTION = "models.reflection"  # str | None: the strong model that rewrites the prompt
COMPARE = "models.compare"  # list[str]: models to run baselines with
FOUND_MODELS = "models.found"  # list[dict]: ModelSpec dicts a server scan found, not yet added
LAST_CHECK = "models.last_check"  # dict | None: {"model", "ok", "latency_s", "sample", "kind", "message", "hint"}
# Task page.
TASK_REF = "task.ref"  # dict: TaskRef.to_dict()
TASK_SAMPLE = "task.sample"  # dict: SampleSpec.to_dict()
TASK_UPLOAD = "task.upload"  # dict | None: {"file_id", "filename", "path"} of the last stored upload
# Jobs this session started or watches (they run in the background and survive page switches).
BASELINE_JOB = "baselines.job_id"  # str | None
OPTIMIZE_JOB = "optimize.job_id"  # str | None

DEFAULTS: dict[str, Any] = {
    STUDENT: None,
    REFLECTION: None,
    COMPARE: [],
    FOUND_MODELS: [],
    LAST_CHECK: None,
    TASK_REF: TaskRef().to_dict(),
    TASK_SAMPLE: SampleSpec().to_dict(),
    TASK_UPLOAD: None,
    BASELINE_JOB: None,
    OPTIMIZE_JOB: None,
}


def init() -> None:
    """Give every key its default once per session (``setdefault``: never overwrites a choice)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, list(value) if isinstance(value, list) else
                                    dict(value) if isinstance(value, dict) else value)


def _get(key: str) -> Any:
    init()
    return st.session_state[key]


# Models ------------------------------------------------------------------------------------


def student() -> str | None:
    return _get(STUDENT)


def set_student(name: str | None) -> None:
    st.session_state[STUDENT] = name


def reflection() -> str | None:
    return _get(REFLECTION)


def set_reflection(name: str | None) -> None:
    st.session_state[REFLECTION] = name


def compare_models() -> list[str]:
    return list(_get(COMPARE))


def set_compare_models(names: list[str]) -> None:
    st.session_state[COMPARE] = list(names)


def found_models() -> list[dict[str, Any]]:
    return [dict(d) for d in _get(FOUND_MODELS)]


def set_found_models(specs: list[dict[str, Any]]) -> None:
    st.session_state[FOUND_MODELS] = [dict(d) for d in specs]


def last_check() -> dict[str, Any] | None:
    value = _get(LAST_CHECK)
    return dict(value) if value else None


def set_last_check(result: dict[str, Any] | None) -> None:
    st.session_state[LAST_CHECK] = dict(result) if result else None


# Task --------------------------------------------------------------------------------------


def task_ref() -> TaskRef:
    return TaskRef.from_dict(_get(TASK_REF))


def sample() -> SampleSpec:
    return SampleSpec.from_dict(_get(TASK_SAMPLE))


def set_task(ref: TaskRef, spec: SampleSpec) -> None:
    st.session_state[TASK_REF] = ref.to_dict()
    st.session_state[TASK_SAMPLE] = spec.to_dict()


def upload() -> dict[str, str] | None:
    value = _get(TASK_UPLOAD)
    return dict(value) if value else None


def set_upload(value: dict[str, str] | None) -> None:
    st.session_state[TASK_UPLOAD] = dict(value) if value else None


# Jobs --------------------------------------------------------------------------------------


def baseline_job() -> str | None:
    return _get(BASELINE_JOB)


def set_baseline_job(job_id: str | None) -> None:
    st.session_state[BASELINE_JOB] = job_id


def optimize_job() -> str | None:
    return _get(OPTIMIZE_JOB)


def set_optimize_job(job_id: str | None) -> None:
    st.session_state[OPTIMIZE_JOB] = job_id


# One-shot messages that survive an ``st.rerun`` -------------------------------------------


def flash(page: str, message: str) -> None:
    """Keep a success message for the next run of ``page`` (e.g. after changing what the page shows)."""
    st.session_state[f"{page}.flash"] = message


def pop_flash(page: str) -> str | None:
    return st.session_state.pop(f"{page}.flash", None)
