"""The original notebook's experiment on the dashboard: the Optimize page's "Original notebook" preset (its settings,
four models to swap, the estimate, one Start and the job's progress), Compare's section that puts the notebook's claims
beside a reproduction, and the starting program Prompts names beside each program."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.config.errors import StudioError
from core.jobs import JobInfo
from core.jobs.kinds import submit_notebook
from core.lm.models import ModelCatalog
from core.optimize import OptimizeConfig
from core.presets import notebook
from core.presets.notebook import NOTEBOOK_MODELS, PRESET, SIDE_NAMES, START_TAG, NotebookModels
from core.program.program import STARTS
from core.tasks import TaskRef
from core.tasks.readers import PUBMED_HUB_URLS
from ui import auth, cache, state
from ui.jobs import ACTIVE, job_picker, live_panel, state_line
from ui.widgets import JOB_STATE_ICONS, pct, show_error, studio_errors, usd, usd_range

# Widget and session keys of this section (the Optimize page owns them).
MODE = "optimize.setup"  # "own": the page's form; "notebook": this preset
JOB = "optimize.notebook.job_id"  # the notebook job this session started or watches
TRAIN, TEST = "optimize.notebook.train", "optimize.notebook.test"  # local PubMed files ("" = the hub's)
HUB_OK = "optimize.notebook.hub"  # the user asked to read PubMed from the hub (a download, the first time)
SETTINGS = "optimize.notebook.settings"  # give every model the notebook's generation settings
MODES = {"own": "Your settings", "notebook": "Original notebook"}
ROLES = {"student": "Student", "large": "Large baseline", "frontier": "Frontier baseline", "reflection": "Reflection"}
ROLE_HELP = {"student": "The model GEPA optimizes (the notebook: GPT-OSS 20B).",
             "large": "Evaluated as it is, to beat (the notebook: GPT-OSS 120B).",
             "frontier": "Evaluated as it is, the ceiling (the notebook: Claude Sonnet 4).",
             "reflection": "Reads the student's mistakes and the judge's rationale, rewrites the instruction; also the "
                           "judge (the notebook: Claude Sonnet 4)."}
AGREEMENT = {"holds": "agrees", "reversed": "disagrees: reversed", "unresolved": "cannot tell: 0 is in the interval",
             "no data": "no data"}


# The Optimize page's preset ---------------------------------------------------------------


def preset_section() -> bool:
    """The setup choice above the form; with "Original notebook" chosen, the preset in full. True when chosen."""
    mode = st.segmented_control("Setup", list(MODES), default="own", required=True, key=MODE, format_func=MODES.get,
                                persist_state="session",
                                help="Original notebook: the Databricks notebook GEPA Studio grew out of, set up "
                                     "exactly (task, sample, starting program, models, optimizer options, judge "
                                     "feedback).")
    if mode != "notebook":
        return False
    st.subheader("The original notebook's experiment")
    st.write("GPT-OSS 20B optimized by GEPA with Claude Sonnet 4 reflecting, on PubMed sentence roles, beside GPT-OSS "
             "120B and Claude Sonnet 4: rerun it exactly, or swap the models below and keep everything else.")
    st.table(settings_table().set_index("setting"))  # a static table: long values wrap
    with studio_errors():
        models = _models(cache.catalog())
        ref = _data()
        if models is not None and ref is not None:
            _plan_and_start(PRESET.config(models, task_ref=ref), models)
    _progress()
    return True


def notebook_models() -> tuple[str | None, str | None]:
    """The preset's student and reflection model as picked (the page's header names them, not the Models page's)."""
    return st.session_state.get("optimize.notebook.student"), st.session_state.get("optimize.notebook.reflection")


def settings_table() -> pd.DataFrame:
    """The notebook's settings besides its models, read from the preset."""
    s, p = PRESET.sample, PRESET
    return pd.DataFrame({"setting": ["Task", "Sample", "Sampling", "Starting program", "GEPA", "Feedback", "Cache"],
                         "the notebook's": [
        "PubMed RCT: the role of each abstract sentence (5 labels)",
        f"{s.train_per_label} train per label from the train file, {s.test_per_label} test per label from the test "
        f"file, {s.val_per_label or 'no'} validation"
        + (" (GEPA scores on the train examples)" if not s.val_per_label else ""),
        f"each label drawn with its own random_state={s.seed}, from the files as read (the notebook's draw)",
        f"{p.start}: {STARTS[p.start]}",
        f"auto {p.auto}, reflection minibatch {p.reflection_minibatch_size}, {p.threads} threads, seed {p.gepa_seed}, "
        f"merge {'on' if p.use_merge else 'off'}",
        "an LLM judge of correctness (the reflection model): the score, then the judge's rationale",
        "off: every call is made" if not p.cache else "on"]})


def _default(catalog: ModelCatalog, role: str) -> str | None:
    """The catalog's model that is the notebook's for ``role`` (its Databricks preset), if any."""
    return next((name for name in catalog.names() if catalog.get(name).model == NOTEBOOK_MODELS[role]), None)  # type: ignore[index]


def _models(catalog: ModelCatalog) -> NotebookModels | None:
    """The four models in one place (the notebook's by default) and their settings; None until each is chosen."""
    st.markdown("**Models**")
    picked: dict[str, str | None] = {}
    names = catalog.names()
    cols = [*st.columns(2), *st.columns(2)]  # two a row: "claude-sonnet-4 (Databricks)" reads in full at 1280 px
    for col, (role, label) in zip(cols, ROLES.items(), strict=True):
        key = f"optimize.notebook.{role}"
        if st.session_state.get(key) not in names:
            st.session_state[key] = _default(catalog, role)
        picked[role] = col.selectbox(label, names, key=key, help=ROLE_HELP[role], placeholder="Pick a model",
                                     persist_state="session")
    same = st.toggle("The notebook's generation settings", value=True, key=SETTINGS, persist_state="session",
                     help="max_tokens 25000 for every model, reasoning effort medium for the three classifiers and a "
                          "600 s timeout. Off: a swapped model keeps its own (for models that reject these).")
    if None in picked.values():
        st.info("Pick a model for each role: the notebook's Databricks models are not in this catalog.",
                icon=":material/smart_toy:")
        return None
    models = PRESET.models(**{role: catalog.get(name) for role, name in picked.items()}, notebook_settings=same)
    st.dataframe(_models_table(models), hide_index=True, key="optimize.notebook.models_table")
    return models


def _models_table(models: NotebookModels) -> pd.DataFrame:
    rows = [{"role": ROLES[role], "model": spec.name, "model string": spec.model, "max_tokens": spec.max_tokens,
             "reasoning effort": spec.reasoning_effort or "–"}
            for role, spec in ((r, models.role(r)) for r in NOTEBOOK_MODELS)]  # type: ignore[arg-type]
    return pd.DataFrame(rows)


def _data() -> TaskRef | None:
    """Where PubMed comes from: the Hugging Face files the notebook read (after one click: a download), or local
    copies; None while the user has not said."""
    stored = state.task_ref()
    for key, value in ((TRAIN, stored.source), (TEST, stored.test_source)):
        st.session_state.setdefault(key, value if stored.kind == "pubmed" else "")
    cols = st.columns(2)
    train = cols[0].text_input("PubMed train file", key=TRAIN, persist_state="session",
                               placeholder="empty: the Hugging Face train.csv the notebook read",
                               help="A local copy: a CSV with columns description,target (or PubMed 20k RCT's "
                                    f"train.txt). The notebook's: {PUBMED_HUB_URLS['train']}")
    test = cols[1].text_input("PubMed test file", key=TEST, persist_state="session",
                              placeholder="empty: the Hugging Face test.csv (with a local train file: its rest)",
                              help=f"The notebook's: {PUBMED_HUB_URLS['test']}")
    ref = TaskRef(kind="pubmed", source=train.strip(), test_source=test.strip())
    if not ref.source and not st.session_state.get(HUB_OK):
        st.info("The notebook read PubMed from the Hugging Face hub: load it (a download the first time), or give "
                "local copies above.", icon=":material/download:")
        if not st.button("Load PubMed from the hub", key="optimize.notebook.load", icon=":material/download:"):
            return None
        st.session_state[HUB_OK] = True
    return ref


def _plan_and_start(config: OptimizeConfig, models: NotebookModels) -> None:
    """The estimate, what differs from the notebook, and Start (submits the notebook job with exactly this plan)."""
    plan, error = cache.notebook_plan(config.to_dict())
    if error is not None:
        show_error(StudioError(error["message"], error["hint"]))
        if config.task_ref.kind == "pubmed":
            st.caption("Point the preset at local copies of the notebook's files (the two fields above): download "
                       f"{PUBMED_HUB_URLS['train']} and {PUBMED_HUB_URLS['test']} where there is network, then give "
                       "their paths here (or on the Task page).")
        return
    st.markdown("**Estimate**")
    est, evals = plan.estimate.to_dict(), notebook.evaluation_costs(plan, models)
    known = None if any(v is None for v in evals.values()) else sum(evals.values())  # type: ignore[arg-type]
    cols = st.columns(3)
    cols[0].metric("Metric calls", f"{est['metric_calls']:,}", help="GEPA's budget: student predictions scored.")
    cols[1].metric("GEPA cost", "unknown price" if est["cost_low_usd"] is None
                   else usd_range(est["cost_low_usd"], est["cost_high_usd"]), help="Student and reflection calls.")
    cols[2].metric("Test evaluations", "unknown price" if known is None else usd(known),
                   help="; ".join(f"{name}: {usd(v)}" for name, v in evals.items()))
    for note in (f"{len(plan.splits.train)} train and {len(plan.splits.test)} test examples, drawn as the notebook "
                 "drew them.", *plan.splits.notes):
        st.caption(note)
    changed = PRESET.differences(config, models)
    if changed:
        st.warning("**Differs from the notebook in:**\n" + "\n".join(f"- {line}" for line in changed),
                   icon=":material/difference:")
    else:
        st.success("Exactly the notebook's experiment.", icon=":material/check_circle:")
    if st.button("Run the notebook's experiment", key="optimize.notebook.start", type="primary",
                 icon=":material/play_arrow:", help="GEPA on the student with the two baselines beside it, then the "
                                                    "student before and after on the same test sentences."):
        with studio_errors():
            st.session_state[JOB] = submit_notebook(cache.job_manager(), plan, models,
                                                    started_by=auth.current_user())
            cache.clear_runs()
            st.toast("The notebook's experiment is queued: it runs in the background.", icon=":material/play_arrow:")


def _progress() -> None:
    job_picker("notebook", st.session_state.get(JOB), key="optimize.notebook.job.w",
               on_pick=lambda job_id: st.session_state.__setitem__(JOB, job_id))
    if st.session_state.get(JOB) and not live_panel(st.session_state[JOB], notebook_progress):
        st.session_state[JOB] = None


def notebook_progress(job: JobInfo, progress: dict) -> None:
    """GEPA's metric calls, a bar per baseline, each part's state and the last status lines; Cancel while it runs; at
    the end each side's accuracy and the way to Compare."""
    st.markdown(f"**{job.title}**  \n{JOB_STATE_ICONS.get(job.state, '')} {state_line(job, progress)}")
    used, budget = int(progress.get("metric_calls_used") or 0), int(progress.get("metric_calls_budget") or 0)
    parts = progress.get("parts") or {}
    opt = parts.get("optimization") or {}
    text = f"GEPA on {opt.get('model', 'the student')}: {used:,} / {budget:,} metric calls" if budget else (
        "GEPA: starting")
    st.progress(min(1.0, used / budget) if budget else 0.0,
                text=text + (f" — {opt['state']}" if opt.get("state") else ""))
    for side in ("large", "frontier"):
        p = parts.get(side) or {}
        done, total, failed = int(p.get("done") or 0), int(p.get("total") or 0), int(p.get("failed") or 0)
        label = f"{p.get('model', side)}: {done} / {total} test examples" + (f" · {failed} failed" if failed else "")
        st.progress(min(1.0, done / total) if total else 0.0, text=label + f" — {p.get('state', 'waiting')}")
    if job.state == "failed" and job.error:
        st.error(job.error, icon=":material/error:")
    if progress.get("status"):
        st.caption("  \n".join(progress["status"][-4:]))
    if job.state in ACTIVE and st.button("Cancel", key="optimize.notebook.cancel", icon=":material/stop_circle:",
                                         help="Stops the baselines and GEPA after its current iteration."):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun(scope="fragment")
    measured = pd.DataFrame(progress.get("measured") or [])
    if not measured.empty and job.state not in ACTIVE:
        st.dataframe(_measured_table(measured), hide_index=True, key="optimize.notebook.measured")
        st.page_link("pages/compare.py", label="The notebook's claims beside this run", icon=":material/bar_chart:")
    with st.expander("Worker log"):
        st.code(cache.job_manager().log_tail(job.id) or "(empty)", language=None)


def _measured_table(measured: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"": measured["what"], "model": measured["model"],
                         "accuracy [95% CI]": [f"{pct(a)} [{pct(lo)}, {pct(hi)}]" if n else "–" for a, lo, hi, n in
                                               zip(measured["accuracy"], measured["ci_low"], measured["ci_high"],
                                                   measured["n"], strict=True)],
                         "n": measured["n"], "failed": measured["failed"]})


# Compare: the notebook's claims beside a reproduction ---------------------------------------


def _points(v: float) -> str:
    return "–" if v != v else f"{v * 100:+.1f}"


def claims_section(task: str) -> None:
    """When runs of the notebook's experiment exist for ``task``: each claim the notebook made, its number, what the
    chosen reproduction measured (with its 95% interval) and whether they agree."""
    with studio_errors():
        found = cache.notebook_reproductions(task)
        if found.empty:
            return
        st.subheader("The notebook's claims beside this run")
        ids = list(dict.fromkeys(found["reproduction"]))  # newest first
        pick = ids[0] if len(ids) == 1 else st.selectbox(
            "Reproduction", ids, key="compare.notebook", help="Runs of the notebook's experiment on this task.")
        mine = found[(found["reproduction"] == pick) & found["side"].isin(list(SIDE_NAMES))]
        records: dict[str, pd.DataFrame | None] = {}
        for side, run_id in zip(mine["side"], mine["run_id"], strict=True):
            try:
                records[side] = cache.artifact_csv(run_id, "records.csv")
            except StudioError:
                records[side] = None  # no records (yet): said as "no data"
        claims = notebook.claims_frame(records)  # type: ignore[arg-type]
        st.table(pd.DataFrame({  # a static table: long values wrap
            "the notebook reported": claims["text"], "its number": claims["reported"],
            "measured, points [95% CI]": [f"{_points(d)} [{_points(lo)}, {_points(hi)}]" if n else "–" for d, lo, hi, n
                                          in zip(claims["diff"], claims["ci_low"], claims["ci_high"], claims["n"],
                                                 strict=True)],
            "agrees?": [AGREEMENT[v] + ("" if inside is None or v == "no data" else
                                        "; its size inside the interval" if inside else "; its size outside it")
                        for v, inside in zip(claims["verdict"], claims["size_in_interval"], strict=True)]}
        ).set_index("the notebook reported"))
        st.caption(claims_sentence(claims, dict(zip(mine["side"], mine["model"], strict=True))))
        with st.expander("Accuracy of each side"):
            names = dict(zip(mine["side"], mine["model"], strict=True))
            st.dataframe(_measured_table(notebook.measured_frame(records, names)), hide_index=True,  # type: ignore[arg-type]
                         key="compare.notebook.measured")


def claims_sentence(claims: pd.DataFrame, models: dict[str, str]) -> str:
    """One sentence: how many claims this run's measurements agree with, cannot tell, contradict."""
    counts = claims["verdict"].value_counts()
    n = int(claims["n"].max()) if len(claims) else 0
    who = ", ".join(f"{role} {models[side]}" for side, role in (("student_original", "student"), ("large", "large"),
                                                                 ("frontier", "frontier")) if side in models)
    return (f"Of the notebook's {len(claims)} claims (its models: GPT-OSS 20B, GPT-OSS 120B, Claude Sonnet 4), "
            f"{int(counts.get('holds', 0))} agree with this run, {int(counts.get('unresolved', 0))} cannot be told "
            f"from no difference on its {n} test examples, {int(counts.get('reversed', 0))} are reversed"
            + (f" and {int(counts.get('no data', 0))} have no data" if counts.get("no data") else "")
            + (f" (this run: {who})." if who else "."))


# Prompts: which starting program a run began from -------------------------------------------


def starting_program(run_id: str) -> str:
    """The starting program a run began from (tag ``studio.start``: the run's own, else its optimization's)."""
    tags = cache.run_tags(run_id)
    if tags.get("studio.program_ref"):  # your own program: its file's instructions, whatever the run's start
        return (f"Your own program `{Path(tags['studio.program_ref'].rpartition(':')[0]).name}:"
                f"{tags['studio.program_ref'].rpartition(':')[2]}` ({tags.get('studio.predictors', '')}), with the "
                "instructions its file gives.")
    start = tags.get(START_TAG)
    if not start and tags.get("mlflow.parentRunId"):
        start = cache.run_tags(tags["mlflow.parentRunId"]).get(START_TAG)
    if start in STARTS:
        return f"Began from **{start}**: {STARTS[start]}."
    return f"Began from **described**: {STARTS['described']}; a run that does not record its start began there."

