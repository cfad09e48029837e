"""Session-state keys, one constant each, with typed getters and setters; what lasts beyond the session.

Only plain data lives here (model names, ids, dicts): never an LM, a program or a client. Each
browser session has its own ``st.session_state``, so one user's selections never leak into another
session; the run history and the model catalog are shared through the data dir instead.

Keys are prefixed by the page that owns them. Values other pages read live under the constants
below; the widgets that edit them have their own keys (``<key>.w``), because Streamlit forgets a
widget's value when its page is left. Options only one page uses (budget, filters) are widget keys
``<page>.<name>`` kept with ``persist_state="session"``. ``<page>.flash`` holds a one-shot message.

What the user works on outlives the session (a reload, a restart, a second tab, a link): :func:`restore`
fills a new session from the URL's parameters, then this browser's profile (``core.presets.profile``, keyed by the
user and the ``gepa_studio_browser`` cookie), then the defaults; every setter writes the session, the
profile and the URL; :func:`sync_url` puts the parameters back after a page switch (which clears them).
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any

import streamlit as st

from core.presets.optimize_form import FORM
from core.presets.profile import FIELDS, Profile, from_query, query_names, to_query
from core.tasks import SampleSpec, TaskRef

logger = logging.getLogger(__name__)

# The router (app.py).
ROUTED = "app.routed"  # bool: this session's runs go through app.py (see ui.routing)
NEXT_PAGE = "app.next_page"  # str | None: a page to open once app.py routes (a deep link, see ui.routing)
RESTORED = "app.restored"  # bool: restore() has filled this session
PROFILE = "app.profile"  # str: path of this session's profile file ("" while there is none)
NEW_BROWSER = "app.new_browser"  # str | None: a browser id to set as a cookie (the request carried none)
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
# Runs in view.
COMPARE_RUNS = "compare.run_ids"  # list[str]: the runs in view on Compare
PROMPTS_RUN = "prompts.run_id"  # str | None: the optimization in view on Prompts
# str | None: the optimization in view (URL ``run``): Optimization, Compare, Prompts
OPTIMIZATION_RUN = "optimization.run_id"
# The Optimize page's form: its values as plain data (core.presets.optimize_form.FORM), and each field's widget key.
OPTIMIZE_FORM = "optimize.form"  # dict: field -> value, the fields the user set
FORM_WIDGETS = {field: f"optimize.{field}" for field in FORM}  # each field's widget on the Optimize page

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
    COMPARE_RUNS: [],
    PROMPTS_RUN: None,
    OPTIMIZATION_RUN: None,
    OPTIMIZE_FORM: {},
}

# What lasts: session key -> profile field (core.presets.profile.FIELDS says which are also in the URL).
LASTING: dict[str, str] = {
    STUDENT: "student", REFLECTION: "reflection", COMPARE: "compare_models", TASK_REF: "task_ref",
    TASK_SAMPLE: "sample", TASK_UPLOAD: "upload", BASELINE_JOB: "baseline_job", OPTIMIZE_JOB: "optimize_job",
    COMPARE_RUNS: "compare_runs", PROMPTS_RUN: "prompts_run", OPTIMIZATION_RUN: "optimization_run",
    OPTIMIZE_FORM: "optimize_form",
}
assert set(LASTING.values()) == set(FIELDS), "every profile field has a session key"
JOB_KEYS = {OPTIMIZE_JOB: "optimize", BASELINE_JOB: "baseline"}  # session key -> job kind
# Fields a link inside the app may set (``st.page_link(..., query_params={"run": id})``): see follow_links.
LINKED = ("optimization_run", "prompts_run")

BROWSER_COOKIE = "gepa_studio_browser"
BROWSER_ID = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
COOKIE_MAX_AGE_S = 365 * 24 * 3600


def _fresh(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def init() -> None:
    """Give every key its default once per session (``setdefault``: never overwrites a choice)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, _fresh(value))


def _get(key: str) -> Any:
    init()
    return st.session_state[key]


def _set(**values: Any) -> None:
    """Set lasting keys (by profile field); what changed is written to the profile and the URL too."""
    init()
    keys = {field: key for key, field in LASTING.items()}
    changed = {field: value for field, value in values.items() if st.session_state[keys[field]] != value}
    if not changed:
        return
    for field, value in changed.items():
        st.session_state[keys[field]] = value
    if path := st.session_state.get(PROFILE):
        Profile(Path(path)).update(changed)
    sync_url()


# Restoring a session --------------------------------------------------------------------------


def browser_id() -> str | None:
    """This browser's id (the ``gepa_studio_browser`` cookie); a new one when a browser sent none.

    None without a browser (AppTest, a script: no request headers), when the profile is the user's alone."""
    sent = st.context.cookies.get(BROWSER_COOKIE)
    if isinstance(sent, str) and BROWSER_ID.match(sent):
        return sent
    if not isinstance(st.context.headers.get("host"), str):  # every browser's request names its host
        return None
    st.session_state.setdefault(NEW_BROWSER, secrets.token_urlsafe(32))
    return st.session_state[NEW_BROWSER]


def set_browser_cookie() -> None:
    """Called by app.py on every run: store a new browser id in the browser (its request carried none).

    Runs in the page itself (``st.html`` is not an iframe), so the cookie is the app's own, sent with the
    next connection."""
    new = st.session_state.get(NEW_BROWSER)
    if not new:
        return
    st.html(f"<script>document.cookie = '{BROWSER_COOKIE}={new}; path=/; max-age={COOKIE_MAX_AGE_S}; "
            "SameSite=Lax' + (location.protocol === 'https:' ? '; Secure' : '');</script>",
            unsafe_allow_javascript=True)


def _url() -> dict[str, list[str]]:
    return {name: st.query_params.get_all(name) for name in st.query_params}


def restore(user: str, data_dir: Path) -> None:
    """Once per session, before any page: the URL's parameters, then this browser's profile, then the defaults.

    A value the session already holds stays. A model the URL names that the catalog lacks is left out (with a
    toast). With no job id from either, the user's newest queued or running job of each kind is shown."""
    if st.session_state.get(RESTORED):
        return
    st.session_state[RESTORED] = True
    profile = Profile.of(data_dir, user, browser_id())
    st.session_state[PROFILE] = str(profile.path)
    saved = profile.load()
    linked, notes = from_query(_url(), data_dir=data_dir)
    from ui.lasting import active_jobs, known_models

    if missing := known_models(linked):
        notes.append(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in this server's models")
    if "prompts_run" in linked and "optimization_run" not in linked:  # an older link to Prompts: its run is in view
        linked["optimization_run"] = linked["prompts_run"]
    values = {**saved, **linked}
    if "optimize_form" in linked:  # a link names some fields of the form: the rest stay as this browser had them
        values["optimize_form"] = {**saved.get("optimize_form", {}), **linked["optimize_form"]}
    for key, field in LASTING.items():
        if field in values:
            st.session_state.setdefault(key, _fresh(values[field]))
    init()
    for field, value in st.session_state[OPTIMIZE_FORM].items():  # the form's widgets start from the kept values
        st.session_state.setdefault(FORM_WIDGETS[field], value)
    active = active_jobs(user) if not all(st.session_state.get(k) for k in JOB_KEYS) else {}
    for key, kind in JOB_KEYS.items():
        if not st.session_state.get(key) and active.get(kind):
            st.session_state[key] = active[kind]
    now = {field: st.session_state[key] for key, field in LASTING.items()}
    if linked and any(saved.get(f) != now[f] for f in linked):
        profile.update(now)  # a link opened in this browser: it is now what this browser works on
    if notes:
        st.toast("Left out of the link: " + "; ".join(notes) + ".", icon=":material/link_off:")


def follow_links() -> None:
    """Called by app.py before :func:`sync_url`: a link within the session that names a run (``?run=<id>``) puts it
    in view. The URL only differs from the session's state after such a link (every setter writes the URL); a
    parameter a page switch cleared is absent, not different, and is put back by sync_url."""
    linked, _ = from_query(_url())
    changes = {f: linked[f] for f in LINKED if f in linked and linked[f] != _get(_key_of(f))}
    if changes:
        _set(**changes)


def _key_of(field: str) -> str:
    return next(key for key, name in LASTING.items() if name == field)


def url_params() -> dict[str, list[str]]:
    """The shareable state as URL parameters."""
    init()
    return to_query({field: st.session_state[key] for key, field in LASTING.items()})


def sync_url() -> None:
    """Make the URL show the shareable state (a page switch clears it in the browser); writes only a change.

    Parameters that are not this module's are left alone."""
    wanted = url_params()
    current = _url()
    changed = {name: values if len(values) > 1 else values[0] for name, values in wanted.items()
               if current.get(name) != values}
    stale = [name for name in query_names() if name in current and name not in wanted]
    if changed:
        st.query_params.update(changed)
    for name in stale:
        del st.query_params[name]


# The Optimize form --------------------------------------------------------------------------


def keep_optimize_form() -> None:
    """Called by the Optimize page: the form's widget values (as the user left them) into the session's lasting
    form, so a reload, a restart or a link brings them back; only a change is written."""
    init()
    values = {field: st.session_state[key] for field, key in FORM_WIDGETS.items() if key in st.session_state}
    form = {**_get(OPTIMIZE_FORM), **values}
    if form != _get(OPTIMIZE_FORM):
        _set(optimize_form=form)


def optimize_form() -> dict[str, Any]:
    """The kept values of the Optimize form (field -> value; a field the user never set is absent)."""
    return dict(_get(OPTIMIZE_FORM))


# Models ------------------------------------------------------------------------------------


def student() -> str | None:
    return _get(STUDENT)


def set_student(name: str | None) -> None:
    _set(student=name)


def reflection() -> str | None:
    return _get(REFLECTION)


def set_reflection(name: str | None) -> None:
    _set(reflection=name)


def compare_models() -> list[str]:
    return list(_get(COMPARE))


def set_compare_models(names: list[str]) -> None:
    _set(compare_models=list(names))


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
    _set(task_ref=ref.to_dict(), sample=spec.to_dict())


def upload() -> dict[str, str] | None:
    value = _get(TASK_UPLOAD)
    return dict(value) if value else None


def set_upload(value: dict[str, str] | None) -> None:
    _set(upload=dict(value) if value else None)


# Jobs --------------------------------------------------------------------------------------


def baseline_job() -> str | None:
    return _get(BASELINE_JOB)


def set_baseline_job(job_id: str | None) -> None:
    _set(baseline_job=job_id)


def optimize_job() -> str | None:
    return _get(OPTIMIZE_JOB)


def set_optimize_job(job_id: str | None) -> None:
    _set(optimize_job=job_id)


# Runs in view ------------------------------------------------------------------------------


def compare_runs() -> list[str]:
    """The run ids in view on Compare ([]: the page chooses)."""
    return list(_get(COMPARE_RUNS))


def set_compare_runs(run_ids: list[str]) -> None:
    _set(compare_runs=[str(r) for r in run_ids])


def prompts_run() -> str | None:
    """The optimization in view on Prompts (None: the page chooses)."""
    return _get(PROMPTS_RUN)


def set_prompts_run(run_id: str | None) -> None:
    _set(prompts_run=run_id)


def optimization_run() -> str | None:
    """The optimization in view on Optimization (None: the page chooses)."""
    return _get(OPTIMIZATION_RUN)


def set_optimization_run(run_id: str | None) -> None:
    _set(optimization_run=run_id)


# One-shot messages that survive an ``st.rerun`` -------------------------------------------


def flash(page: str, message: str) -> None:
    """Keep a success message for the next run of ``page`` (e.g. after changing what the page shows)."""
    st.session_state[f"{page}.flash"] = message


def pop_flash(page: str) -> str | None:
    return st.session_state.pop(f"{page}.flash", None)
