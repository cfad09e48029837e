"""Optimize: an optimizer of the optimizer table (GEPA, MIPROv2, few-shot, your own prompt) on the student; its
budget, estimate, start, live progress, cancel/resume. Its words and controls come from its table entry."""

import streamlit as st

from core.analytics.charts.scores import is_accuracy, metric_name
from core.config.errors import StudioError
from core.jobs import MAX_SEEDS, repeat_seeds, submit_repeat
from core.lm.models import ModelSpec
from core.optimize import OPTIMIZERS, OptimizeConfig, Optimizer, entry
from core.optimize.config import COMPONENT_SELECTORS
from core.optimize.estimate import CHARS_PER_TOKEN
from core.program.pick import check_program
from core.program.program import STARTS
from core.tasks import SampleSpec, Task, TaskRef
from core.tracking.runs import linked_evaluations, optimization_frame
from ui import auth, cache, routing, state, sweeps
from ui.jobs import finish_job_of, finish_progress, has_results, job_picker, live_panel, optimize_progress
from ui.notebook import notebook_models, preset_section
from ui.repeats import repeat_progress
from ui.widgets import pct, points_delta, show_error, studio_errors, usd, usd_range

MODULES = {"predict": "Predict", "cot": "Chain of thought"}
FEEDBACK = {"rule": "Gold label", "judge": "LLM judge"}  # short: the pair fits a third of the form at 1280 px
START_NAMES = {"bare": "Bare signature", "described": "With label descriptions", "own": "Your own instruction"}


def program_task(ref: TaskRef) -> Task | None:
    """The task in view when it runs your own program (after checking that the program lies under the operator's
    folder: a link may name any file), else None. Classification tasks name none: they are not read."""
    if not ref.fields and ref.kind in ("demo", "pubmed", "file"):
        return None
    try:
        task = cache.task_tables(ref.to_dict())[0]
    except StudioError:
        return None  # the estimate says why the task cannot be read
    if not task.program:
        return None
    check_program(task.program, cache.settings().programs_dir)
    return task


def config_form(ref: TaskRef, sample: SampleSpec, student: ModelSpec, reflection: ModelSpec) -> OptimizeConfig | None:
    """Optimizer, budget, spending cap and options (kept for the session) → an OptimizeConfig."""
    program = program_task(ref)
    optimizer = st.segmented_control("Optimizer", list(OPTIMIZERS), default="gepa", required=True,
                                     key="optimize.optimizer", persist_state="session",
                                     format_func=lambda k: OPTIMIZERS[k].label,
                                     help="  \n".join(f"**{o.label}**: {o.summary}" for o in OPTIMIZERS.values()))
    chosen = OPTIMIZERS[optimizer]
    st.caption(chosen.words.does + (f" Cancel and the spending cap take effect {chosen.cancel}." if chosen.presets
                                    else ""))
    own_text = ""
    if chosen.instruction_needed and program is not None:
        st.info("Your program keeps its own predictors and instructions: there is no prompt of yours to evaluate in "
                "their place. Pick an optimizer that improves them.", icon=":material/account_tree:")
        return None
    if chosen.instruction_needed:
        own_text = st.text_area("Your prompt", key="optimize.own_instruction", persist_state="session",
                                placeholder="The instruction you use today: what the student should do with each text",
                                help="Evaluated as it is, against the studio's default program, on the same test "
                                     "examples.")
        if not own_text.strip():
            st.info("Type or paste your prompt to see what it costs and start its evaluation.", icon=":material/edit:")
            return None
    budget, calls, cap = _budget_controls(chosen)
    if sample.val_per_label == 0 and chosen.words.no_validation:
        st.caption(f"No validation split (validation 0 on the Task page): {chosen.words.no_validation}")
    options = _advanced(chosen, program)
    instruction = options.pop("instruction")
    instruction = own_text if chosen.instruction_needed else instruction
    return OptimizeConfig(
        task_ref=ref, sample=sample, student=student, reflection=reflection, **options,
        auto=None if budget == "custom" else budget, **({chosen.custom: int(calls)} if calls else {}),
        max_cost_usd=float(cap) if cap else None, optimizer=optimizer, instruction=instruction.strip(),
    )


def _budget_controls(chosen: Optimizer) -> tuple[str, int | None, float | None]:
    """The optimizer's budget (its presets, and a number when it takes one) and the spending cap; none for an
    optimizer without a budget (your own prompt)."""
    if not chosen.presets:
        return "light", None, None
    st.subheader("Budget")
    cols = st.columns([2, 1, 1])
    options = chosen.presets + (("custom",) if chosen.custom else ())
    budget = cols[0].segmented_control("Budget", options, default="light", required=True, key="optimize.budget",
                                       persist_state="session", help=chosen.words.budget) or "light"
    calls = None
    if budget == "custom":
        calls = int(cols[1].number_input(f"Max {chosen.numbers[chosen.custom]}", min_value=1, value=200, step=10,
                                         key="optimize.max_calls", persist_state="session"))
    cap = None
    if cols[2].toggle("Spending cap", value=False, key="optimize.capped", persist_state="session",
                      help=f"Stop (as with Cancel) when the spend reaches the cap: it takes effect {chosen.cancel}."):
        cap = cols[2].number_input("Cap ($)", min_value=0.01, value=2.0, step=0.5, format="%.2f", key="optimize.cap",
                                   persist_state="session")
    return budget, calls, cap


def _advanced(chosen: Optimizer, program: Task | None) -> dict:
    """Program (your own: its predictors as they are, GEPA's component selector when it has several), parallel
    calls, cache, and the optimizer's own options (GEPA: feedback, minibatch, merge; a seed where one changes
    anything; the starting program where it searches from one), as OptimizeConfig fields."""
    options: dict = {"feedback": "rule", "reflection_minibatch_size": 3, "use_merge": True, "seed": 0,
                     "start": "described", "instruction": "", "module": "predict",
                     "component_selector": "round_robin"}  # the defaults of what this optimizer does not use
    with st.expander("Advanced"):
        if program is not None:
            _own_program(chosen, program, options)
        cols = st.columns([1, 1.2, 1])
        if program is None:
            options["module"] = cols[0].segmented_control("Program", list(MODULES), default="predict", required=True,
                                                          key="optimize.module", persist_state="session",
                                                          format_func=MODULES.get)
        if "feedback" in chosen.controls:
            options["feedback"] = cols[1].segmented_control(
                "Feedback", list(FEEDBACK), default="rule", required=True, key="optimize.feedback",
                persist_state="session", format_func=FEEDBACK.get,
                help=f"What the {chosen.reflection_role}'s reflection reads about a wrong answer: **Gold label**, "
                     f"the right label (a rule); **LLM judge**, a critique written by the {chosen.reflection_role}.")
        if "minibatch" in chosen.controls:
            options["reflection_minibatch_size"] = int(cols[2].number_input(
                "Reflection minibatch", min_value=1, value=3, key="optimize.minibatch", persist_state="session"))
        cols = st.columns(4)
        options["threads"] = int(cols[0].number_input("Parallel calls", min_value=1, max_value=64, value=4,
                                                      key="optimize.threads", persist_state="session"))
        if chosen.seeded:
            options["seed"] = int(cols[1].number_input(
                "Seed", min_value=0, value=0, key="optimize.seed", persist_state="session",
                help="The optimizer's seed: a repeat with another seed shows how repeatable a result is."))
        if "merge" in chosen.controls:
            options["use_merge"] = bool(cols[2].toggle("Merge candidates", value=True, key="optimize.merge",
                                                       persist_state="session"))
        options["cache"] = bool(cols[3].toggle("Reuse cached answers", value=True, key="optimize.cache",
                                               persist_state="session"))
        if not chosen.instruction_needed and program is None:  # your own prompt is its own starting program
            _starting_program(options)
    return options


def _own_program(chosen: Optimizer, program: Task, options: dict) -> None:
    """Your own program: no module or starting instruction to pick; GEPA's component selector when it has more than
    one predictor."""
    st.caption(f"Your program keeps its own predictors and instructions ({program.num_predictors}: "
               f"{', '.join(program.program_predictors)}).")
    if program.num_predictors > 1 and "selector" in chosen.controls:  # which predictors a GEPA proposal rewrites
        options["component_selector"] = st.segmented_control(
            "Component selector", list(COMPONENT_SELECTORS), default="round_robin", required=True,
            key="optimize.component_selector", persist_state="session",
            help="  \n".join(f"**{k}**: {v}" for k, v in COMPONENT_SELECTORS.items()))


def _starting_program(options: dict) -> None:
    options["start"] = st.segmented_control(
        "Starting program", list(START_NAMES), default="described", required=True, key="optimize.start_program",
        persist_state="session", format_func=START_NAMES.get,
        help="  \n".join(f"**{START_NAMES[k]}**: {v}" for k, v in STARTS.items()))
    if options["start"] == "own":
        options["instruction"] = st.text_area("Your instruction", key="optimize.instruction", persist_state="session",
                                              placeholder="What the student should do with each text")


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
    chosen, n = OPTIMIZERS[config.optimizer], 1
    # Seeds beside the button; an optimizer without a seed has its button alone, on the left.
    start_row = st.columns([1, 3], vertical_alignment="bottom") if chosen.seeded else [st.container()] * 2
    if chosen.seeded:  # a repeat of an optimizer without a seed would give the same numbers
        n = int(start_row[0].number_input(
            "Repeat with N seeds", min_value=1, max_value=MAX_SEEDS, value=1, key="optimize.seeds",
            persist_state="session",
            help=f"N optimizations that differ only in the seed ({config.seed}, {config.seed + 1}, …) on the same "
                 "examples: Compare shows the spread of their test accuracy, so one lucky seed is not read as the "
                 "result."))
    if estimate:
        _estimate_numbers(numbers, estimate, chosen, n)
        if n > 1:
            numbers.caption(f"{n} jobs with seeds {', '.join(map(str, repeat_seeds(config, n)))}: the estimate is "
                       f"× {n}, one optimization per seed.")
    label = f"Start {n} optimizations" if n > 1 else chosen.words.start
    if start_row[1].button(label, key="optimize.start", type="primary", icon=":material/auto_fix_high:",
                           disabled=estimate is None):
        with studio_errors():
            manager, who = cache.job_manager(), auth.current_user()
            if n > 1:  # one group job: one card, one entry in the pickers, its seeds under it
                state.set_optimize_job(submit_repeat(manager, config, n, plan=plan, started_by=who))
            else:
                state.set_optimize_job(manager.submit_optimization(config, plan=plan, started_by=who))
            cache.clear_runs()
            st.toast(f"{n} optimizations queued (seeds {config.seed}–{config.seed + n - 1})" if n > 1 else
                     f"{chosen.label} queued: it runs in the background, you can leave this page.",
                     icon=":material/auto_fix_high:")


def _estimate_numbers(numbers: st.delta_generator.DeltaGenerator, estimate: dict, chosen: Optimizer, n: int) -> None:
    """Metric calls (an optimizer with a budget), calls of its second model (one that uses it), the cost range and
    its split, each × the seeds."""
    times = f" × {n}" if n > 1 else ""
    cols = numbers.columns([1, 1.2, 1.5])  # a cost range needs the room: "$0.028–$0.066" is cut in a quarter
    test_calls = estimate.get("test_calls", 0) * n
    if chosen.presets:
        cols[0].metric(f"Metric calls{times}", f"{estimate['metric_calls'] * n:,}",
                       help=f"Plus {test_calls:,} calls of the test evaluations afterwards."
                            + (f" Per seed: {estimate['metric_calls']:,}." if n > 1 else ""))
    else:
        cols[0].metric("Test calls", f"{test_calls:,}", help="The student on the test examples: your prompt and "
                                                            "the studio's default program, the same examples each.")
    if chosen.reflection_role:
        cols[1].metric(f"Calls of the {chosen.reflection_role}{times}",
                       f"{estimate['reflection_calls_low'] * n}–{estimate['reflection_calls_high'] * n}")
    low, high = estimate["cost_low_usd"], estimate["cost_high_usd"]
    cols[2].metric(f"Estimated cost{times}", "unknown price" if low is None else usd_range(low * n, high * n),
                   help=f"From the models' prices and ~{CHARS_PER_TOKEN:g} characters per token; cached answers cost "
                        "nothing." + (f" Per seed: {usd_range(low, high)}." if n > 1 and low is not None else ""))
    if not chosen.presets:  # the test evaluation is all it runs: the cost above is it
        return
    student_cost, test_cost = estimate["student_cost_usd"], estimate.get("test_cost_usd")
    numbers.caption(f"Of the cost, the student: {usd(None if student_cost is None else student_cost * n)}. "
                    f"The test evaluations afterwards: {test_calls:,} calls"
                    + (f", about {usd(test_cost * n)}." if test_cost is not None else "."))


MARKED = {
    "capped": "Capped: {label} stopped at the spending cap; these are the test results of the best program it had "
              "found.",
    "cancelled": "Cancelled: {label} was stopped early; these are the test results of the best program it had found.",
    "failed": "Stopped by a failing provider; these are the test results of the best program it had found.",
}


def result(job_id: str) -> bool:
    """Test accuracy before and after, and what the optimization cost, once the run has its test results (a
    capped or cancelled run too, once its test evaluations ran: marked so). False when there is none yet."""
    job = cache.job_manager().get(job_id)
    if not job.run_id or job.state in ("queued", "running") or (
            job.state != "succeeded" and not has_results(job.run_id)):
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
            st.caption(MARKED[outcome].format(label=entry(job.config.get("optimizer")).label))
        metric = r.get("metric") or "accuracy"
        scored = not is_accuracy(metric)  # a task beyond classification: its mean score, named by its metric
        before, after = (r.get("original_test_score"), r.get("optimized_test_score")) if scored else (
            r.get("original_test_accuracy"), r.get("optimized_test_accuracy"))
        known = all(isinstance(v, float) and v == v for v in (before, after))
        title = f"Test score ({metric_name(metric)})" if scored else "Test accuracy"
        cols = st.columns(3)
        cols[0].metric(f"{title} before", pct(before))
        cols[1].metric(f"{title} after", pct(after), **points_delta(after - before if known else None))
        cols[2].metric("Optimization spend", usd(r.get("optimization_cost_usd")),
                       help="What the calls during the search cost; answers from the cache cost nothing.")
        original, optimized = linked_evaluations(job.run_id, cache.run_tags(job.run_id), runs)
        st.caption(f"Optimization run `{job.run_id}` · evaluations `{original}` (original) and `{optimized}` "
                   "(optimized)")
    cols = st.columns(3)
    cols[0].page_link("pages/compare.py", label="Compare accuracy and cost", icon=":material/bar_chart:",
                      query_params={"run": job.run_id})
    cols[1].page_link("pages/prompts.py", label="Read the optimized prompt", icon=":material/difference:",
                      query_params={"run": job.run_id})
    cols[2].page_link("pages/optimization.py", label="See inside the optimization", icon=":material/account_tree:",
                      query_params={"run": job.run_id})
    return True


routing.require_app(__file__)
st.title("Optimize")
st.write("Pick an optimizer to improve the student's prompt on training examples, or evaluate your own prompt. "
         "Then the original and the new program are scored on the same test examples.")

state.keep_optimize_form()  # the form as the user left it: a reload, a restart or a link brings it back
ref, sample = state.task_ref(), state.sample()
student_name, reflection_name = state.student(), state.reflection()
header = st.container()  # filled once the setup is known: the notebook's preset names its own models
cols = st.columns(2)
cols[0].page_link("pages/models.py", label="Change models", icon=":material/smart_toy:")
cols[1].page_link("pages/task.py", label="Change the task", icon=":material/dataset:")

notebook_chosen = preset_section()  # "Original notebook": its settings, estimate, Start and progress, not the form
cols = header.columns(3)
shown = notebook_models() if notebook_chosen else (student_name, reflection_name)
cols[0].markdown(f"**Student**  \n{shown[0] or '—'}")
# What the picked optimizer uses the second model for (your own prompt: nothing); the notebook's is its reflection.
role = "reflection model" if notebook_chosen else entry(st.session_state.get("optimize.optimizer")).reflection_role
cols[1].markdown(f"**{role[:1].upper() + role[1:]}**  \n{shown[1] or '—'}" if role else "**Second model**  \nnone")
cols[2].markdown(f"**Task**  \n{ref.task_name}: {sample.train_per_label} train / {sample.val_per_label} validation / "
                 f"{sample.test_per_label} test per label" if not notebook_chosen else
                 "**Task**  \nPubMed sentence roles, as the notebook drew them")
if notebook_chosen:
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

job_id = state.optimize_job()
if notebook_chosen and not job_id:
    st.stop()  # the preset follows its own job above
st.subheader("Progress")
job_picker(("optimize", "repeat"), job_id, key="optimize.job.w", on_pick=state.set_optimize_job)
if not job_id:
    if not st.session_state.get(sweeps.JOB):  # a sweep in view above is this session's work
        st.caption("No optimization in this session yet.")
    st.stop()
if not live_panel(job_id, repeat_progress if cache.job_manager().get(job_id).kind == "repeat" else optimize_progress):
    state.set_optimize_job(None)  # e.g. the data dir changed: say so once, then forget it
    st.stop()
with studio_errors():
    finish = finish_job_of(cache.job_manager().get(job_id).run_id)
    if finish is not None and not (finish["state"] == "succeeded" and has_results(finish["run_id"])):
        live_panel(finish["id"], finish_progress)  # the test evaluations of the stopped run, then its result
    if not result(job_id) and (run_id := cache.job_manager().get(job_id).run_id):
        st.page_link("pages/optimization.py", label="See inside the optimization so far",
                     icon=":material/account_tree:", query_params={"run": run_id})
