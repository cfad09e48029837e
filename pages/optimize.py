"""Optimize: GEPA (or MIPROv2, few-shot, your own prompt) on the student; budget, estimate, start, live progress,
cancel/resume."""

import streamlit as st

from core.config.errors import StudioError
from core.jobs import MAX_SEEDS, repeat_seeds, submit_repeats
from core.lm.models import ModelSpec
from core.optimize import OPTIMIZERS, OptimizeConfig
from core.optimize.estimate import CHARS_PER_TOKEN
from core.program.program import STARTS
from core.tasks import SampleSpec, TaskRef
from core.tracking.runs import linked_evaluations, optimization_frame
from ui import auth, cache, routing, state, sweeps
from ui.jobs import finish_job_of, finish_progress, has_results, job_picker, live_panel, optimize_progress
from ui.notebook import preset_section
from ui.widgets import pct, show_error, studio_errors, usd, usd_range

BUDGETS = ("light", "medium", "heavy", "custom")
MODULES = {"predict": "Predict", "cot": "Chain of thought"}
FEEDBACK = {"rule": "Rule (gold label)", "judge": "Judge (reflection model)"}
START_NAMES = {"bare": "Bare signature", "described": "With label descriptions", "own": "Your own instruction"}


def config_form(ref: TaskRef, sample: SampleSpec, student: ModelSpec, reflection: ModelSpec) -> OptimizeConfig | None:
    """Optimizer, budget, spending cap and options (kept for the session) → an OptimizeConfig."""
    optimizer = st.segmented_control("Optimizer", list(OPTIMIZERS), default="gepa", required=True,
                                     key="optimize.optimizer", persist_state="session",
                                     format_func=lambda k: OPTIMIZERS[k].label,
                                     help="  \n".join(f"**{o.label}**: {o.summary}" for o in OPTIMIZERS.values()))
    chosen = OPTIMIZERS[optimizer]
    st.caption(f"{chosen.summary}. Cancel and the spending cap take effect {chosen.cancel}.")
    own_text = ""
    if optimizer == "own":
        own_text = st.text_area("Your prompt", key="optimize.own_instruction", persist_state="session",
                                placeholder="The instruction you use today: what the student should do with each text",
                                help="Evaluated as it is, against the studio's default program, on the same test examples.")
        if not own_text.strip():
            st.info("Type or paste your prompt to see what it costs and start its evaluation.", icon=":material/edit:")
            return None
    st.subheader("Budget")
    cols = st.columns([2, 1, 1])
    budget = "light"
    if optimizer != "own":
        options = BUDGETS if optimizer == "gepa" else BUDGETS[:-1]
        budget = cols[0].segmented_control("Budget", options, default="light", required=True, key="optimize.budget",
                                           persist_state="session", help={
                                               "gepa": "GEPA's budget in metric calls (one student prediction scored = one call).",
                                               "miprov2": "MIPROv2's auto setting: how many instructions, demos and trials.",
                                               "fewshot": "How many candidate programs: 6, 12 or 18.",
                                           }[optimizer]) or "light"
    calls = None
    if budget == "custom":
        calls = cols[1].number_input("Max metric calls", min_value=1, value=200, step=10, key="optimize.max_calls",
                                     persist_state="session")
    cap = None
    if cols[2].toggle("Spending cap", value=False, key="optimize.capped", persist_state="session",
                      help="Stop (as with Cancel) when student + reflection spend reaches the cap."):
        cap = cols[2].number_input("Cap ($)", min_value=0.01, value=2.0, step=0.5, format="%.2f", key="optimize.cap",
                                   persist_state="session")
    if sample.val_per_label == 0:
        st.caption("No validation split (0 per label on the Task page): GEPA scores candidates on the train "
                   "examples. A few validation examples per label give it an honest signal.")
    with st.expander("Advanced"):
        cols = st.columns(3)
        module = cols[0].segmented_control("Program", list(MODULES), default="predict", required=True,
                                           key="optimize.module", persist_state="session", format_func=MODULES.get)
        feedback = cols[1].segmented_control("Feedback", list(FEEDBACK), default="rule", required=True,
                                             key="optimize.feedback", persist_state="session", format_func=FEEDBACK.get,
                                             help="What GEPA's reflection reads about a wrong answer.")
        minibatch = cols[2].number_input("Reflection minibatch", min_value=1, value=3, key="optimize.minibatch",
                                         persist_state="session")
        cols = st.columns(4)
        threads = cols[0].number_input("Parallel calls", min_value=1, max_value=64, value=4, key="optimize.threads",
                                       persist_state="session")
        seed = cols[1].number_input("Seed", min_value=0, value=0, key="optimize.seed", persist_state="session",
                                    help="The optimizer's seed: a repeat with another seed shows how repeatable a result is.")
        use_merge = cols[2].toggle("Merge candidates", value=True, key="optimize.merge", persist_state="session")
        reuse = cols[3].toggle("Reuse cached answers", value=True, key="optimize.cache", persist_state="session")
        cols = st.columns([1, 2])
        start = cols[0].segmented_control("Starting program", list(START_NAMES), default="described", required=True,
                                          key="optimize.start_program", persist_state="session",
                                          format_func=START_NAMES.get, help="  \n".join(
                                              f"**{START_NAMES[k]}**: {v}" for k, v in STARTS.items()))
        instruction = ""
        if start == "own":
            instruction = cols[1].text_area("Your instruction", key="optimize.instruction", persist_state="session",
                                            placeholder="What the student should do with each text")
    return OptimizeConfig(
        task_ref=ref, sample=sample, student=student, reflection=reflection, module=module,
        auto=None if budget == "custom" else budget, max_metric_calls=int(calls) if calls else None,
        max_cost_usd=float(cap) if cap else None, reflection_minibatch_size=int(minibatch), use_merge=bool(use_merge),
        threads=int(threads), seed=int(seed), feedback=feedback, cache=bool(reuse), start=start,
        instruction=(own_text if optimizer == "own" else instruction).strip(), optimizer=optimizer,
    )


def estimate_and_start(config: OptimizeConfig) -> None:
    """What the budget implies (or why it cannot run), next to the Start button."""
    st.subheader("Estimate")
    estimate = plan = None
    try:
        plan = cache.plan_for(config.to_dict())
        estimate = plan.estimate.to_dict()
    except StudioError as exc:
        show_error(exc)
    numbers = st.container()  # filled below: the estimate is × the seeds chosen beside the Start button
    start_row = st.columns([1, 3], vertical_alignment="bottom")
    n = 1
    if config.optimizer != "own":  # your own prompt has no seed: a repeat would give the same numbers
        n = int(start_row[0].number_input("Repeat with N seeds", min_value=1, max_value=MAX_SEEDS, value=1, key="optimize.seeds",
                                persist_state="session",
                                help=f"N optimizations that differ only in the seed ({config.seed}, {config.seed + 1}, …) "
                                     "on the same examples: Compare shows the spread of their test accuracy, so one "
                                     "lucky seed is not read as the result."))
    times = f" × {n}" if n > 1 else ""
    if estimate:
        role = OPTIMIZERS[config.optimizer].reflection_role or "reflection model"
        cols = numbers.columns([1, 1.2, 1.5])  # a cost range needs the room: "$0.028–$0.066" is cut in a quarter
        cols[0].metric(f"Metric calls{times}", f"{estimate['metric_calls'] * n:,}",
                       help=f"Plus {estimate.get('test_calls', 0) * n:,} calls of the test evaluations afterwards."
                            + (f" Per seed: {estimate['metric_calls']:,}." if n > 1 else ""))
        cols[1].metric(f"Calls of the {role}{times}",
                       f"{estimate['reflection_calls_low'] * n}–{estimate['reflection_calls_high'] * n}")
        low, high = estimate["cost_low_usd"], estimate["cost_high_usd"]
        cols[2].metric(f"Estimated cost{times}", "unknown price" if low is None else usd_range(low * n, high * n),
                       help=f"From the models' prices and ~{CHARS_PER_TOKEN:g} characters per token; cached answers cost nothing."
                            + (f" Per seed: {usd_range(low, high)}." if n > 1 and low is not None else ""))
        student_cost = estimate["student_cost_usd"]
        test_cost = estimate.get("test_cost_usd")
        numbers.caption(f"Of the cost, the student: {usd(None if student_cost is None else student_cost * n)}. "
                        f"The test evaluations afterwards: {estimate.get('test_calls', 0) * n:,} calls"
                        + (f", about {usd(test_cost * n)}." if test_cost is not None else "."))
        if n > 1:
            numbers.caption(f"{n} jobs with seeds {', '.join(map(str, repeat_seeds(config, n)))}: the estimate is "
                       f"× {n}, one optimization per seed.")
    label = f"Start {n} optimizations" if n > 1 else "Start optimization"
    if start_row[1].button(label, key="optimize.start", type="primary", icon=":material/auto_fix_high:",
                           disabled=estimate is None):
        with studio_errors():
            manager, who = cache.job_manager(), auth.current_user()
            if n > 1:
                job_ids = submit_repeats(manager, config, n, plan=plan, started_by=who)
                state.set_optimize_job(job_ids[0])
            else:
                state.set_optimize_job(manager.submit_optimization(config, plan=plan, started_by=who))
            cache.clear_runs()
            st.toast(f"{n} optimizations queued (seeds {config.seed}–{config.seed + n - 1})" if n > 1 else
                     "Optimization queued: it runs in the background, you can leave this page.",
                     icon=":material/auto_fix_high:")


MARKED = {
    "capped": "Capped: GEPA stopped at the spending cap; these are the test results of the best program it had found.",
    "cancelled": "Cancelled: GEPA was stopped early; these are the test results of the best program it had found.",
    "failed": "Stopped by a failing provider; these are the test results of the best program it had found.",
}


def result(job_id: str) -> bool:
    """Test accuracy before and after, and what the optimization cost, once the run has its test results (a
    capped or cancelled run too, once its test evaluations ran: marked so). False when there is none yet."""
    job = cache.job_manager().get(job_id)
    if not job.run_id or job.state in ("queued", "running") or (job.state != "succeeded" and not has_results(job.run_id)):
        return False
    st.subheader("Result")
    runs = cache.runs_table()
    opts = optimization_frame(runs[runs["run_id"] == job.run_id])
    if opts.empty:
        st.caption("The result is being written; press Refresh in a few seconds.")
    else:
        r = opts.iloc[0]
        outcome = str(r.get("outcome") or "")
        if outcome in MARKED:
            st.caption(MARKED[outcome])
        before, after = r.get("original_test_accuracy"), r.get("optimized_test_accuracy")
        known = all(isinstance(v, float) and v == v for v in (before, after))
        cols = st.columns(3)
        cols[0].metric("Test accuracy before", pct(before))
        cols[1].metric("Test accuracy after", pct(after), delta=f"{(after - before) * 100:+.1f} pts" if known else None)
        cols[2].metric("Optimization cost", usd(r.get("optimization_cost_usd")))
        original, optimized = linked_evaluations(job.run_id, cache.run_tags(job.run_id), runs)
        st.caption(f"Optimization run `{job.run_id}` · evaluations `{original}` (original) and `{optimized}` (optimized)")
    cols = st.columns(3)
    cols[0].page_link("pages/compare.py", label="Compare accuracy and cost", icon=":material/bar_chart:",
                      query_params={"run": job.run_id})
    cols[1].page_link("pages/prompts.py", label="Read the optimized prompt", icon=":material/difference:",
                      query_params={"prompts": job.run_id})
    cols[2].page_link("pages/optimization.py", label="See inside the optimization", icon=":material/account_tree:",
                      query_params={"run": job.run_id})
    return True


routing.require_app(__file__)
st.title("Optimize")
st.write("GEPA runs the student on training examples, shows its mistakes to the reflection model, and keeps the "
         "instructions that score best on the validation examples. Then both the original and the optimized "
         "program are scored on the same test examples.")

ref, sample = state.task_ref(), state.sample()
student_name, reflection_name = state.student(), state.reflection()
cols = st.columns(3)
cols[0].markdown(f"**Student**  \n{student_name or '—'}")
cols[1].markdown(f"**Reflection**  \n{reflection_name or '—'}")
cols[2].markdown(f"**Task**  \n{ref.task_name}: {sample.train_per_label} train / {sample.val_per_label} validation / "
                 f"{sample.test_per_label} test per label")
cols = st.columns(2)
cols[0].page_link("pages/models.py", label="Change models", icon=":material/smart_toy:")
cols[1].page_link("pages/task.py", label="Change the task", icon=":material/dataset:")

if preset_section():  # "Original notebook" chosen: its settings, estimate, Start and progress instead of the form
    pass
elif not student_name or not reflection_name:
    st.info("Choose a student and a reflection model on the Models page first.", icon=":material/smart_toy:")
else:
    try:
        catalog = cache.catalog()
        student, reflection = catalog.get(student_name), catalog.get(reflection_name)
    except StudioError as exc:
        show_error(exc)
    else:
        try:
            config = config_form(ref, sample, student, reflection)
        except StudioError as exc:
            show_error(exc)
        else:
            if config is not None:
                estimate_and_start(config)
                sweeps.sweep_form(config)

with studio_errors():
    sweeps.sweep_section()  # a sweep is one card: its jobs are listed under it, not in the picker below

st.subheader("Progress")
job_picker("optimize", state.optimize_job(), key="optimize.job.w", on_pick=state.set_optimize_job)
job_id = state.optimize_job()
if not job_id:
    st.caption("No optimization in this session yet.")
    st.stop()
if not live_panel(job_id, optimize_progress):
    state.set_optimize_job(None)  # e.g. the data dir changed: say so once, then forget it
    st.stop()
with studio_errors():
    finish = finish_job_of(cache.job_manager().get(job_id).run_id)
    if finish is not None and not (finish["state"] == "succeeded" and has_results(finish["run_id"])):
        live_panel(finish["id"], finish_progress)  # the test evaluations of the stopped run, then its result
    if not result(job_id) and (run_id := cache.job_manager().get(job_id).run_id):
        st.page_link("pages/optimization.py", label="See inside the optimization: GEPA's search so far",
                     icon=":material/account_tree:", query_params={"run": run_id})
