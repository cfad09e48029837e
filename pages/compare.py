"""Compare: accuracy and cost of every baseline and evaluation, per-class F1, any two runs side by side (verdict,
flipped examples, confusion matrices), what optimizations cost, their paired tests, and a report to share. A task
scored beyond classification shows its score, named by its metric, per output field and per example, and the examples
whose score changed most instead of per-class F1 and confusion matrices."""

import streamlit as st

from core.analytics import charts
from core.analytics.charts.scores import is_accuracy, measure_title, metric_name
from core.analytics.failures import failed_runs, newest_per_label, usable
from core.analytics.stats import trade_off
from core.config.errors import StudioError
from core.jobs.repeats import GROUP, entry_of, optimization_choices, seed_choices
from core.tracking.runs import (
    MODULE_NAMES,
    chart_frame,
    distinct,
    filter_runs,
    latest_optimization,
    linked_evaluations,
    metric_names,
    module_name,
    most_expensive,
    optimization_frame,
    per_label_frame,
    run_choice_label,
    seed_note,
    seed_spread,
)
from ui import cache, pairs, routing, seeds, state, sweeps
from ui.failures import FAILURE_COLUMN_CONFIG, degraded_warning, failure_table
from ui.notebook import claims_section
from ui.widgets import pct, studio_errors, usd

KIND_NAMES = {"baseline": "Baselines", "evaluation": "Before/after"}
MARKED = ("capped", "cancelled", "failed")  # optimizations that stopped early: their evaluations say so
OPT_BARS = 30  # bars in the optimization spend chart (the newest)
SPEND_HELP = "What the providers billed this run; answers from the cache cost nothing. – : not recorded (older run)."
PER_1K_HELP = "Cost of the program per 1,000 predictions: tokens × price, answers from the cache at list price."
PROGRAM_COST_HELP = "Tokens × price of every prediction of this run, answers from the cache at list price."
PICKED_WITH = "compare.per_label.with"  # the optimization in view when the F1 per class runs were set
warned: set[str] = set()


def warn_if_degraded(row: dict) -> None:
    """A degraded (or breaker-stopped) run among those compared is said once, above what it skews."""
    run_id = str(row["run_id"])
    if row.get("degraded") and run_id not in warned:
        warned.add(run_id)
        with studio_errors():
            degraded_warning(row, cache.run_tags(run_id))


routing.require_app(__file__)
st.title("Compare")
with studio_errors(stop=True):
    runs = cache.runs_table()
if runs.empty:
    st.info("No runs yet: run baselines or an optimization first.")
    st.page_link("pages/baselines.py", label="Run baselines", icon=":material/straighten:")
    st.stop()

tasks = distinct(runs, "task")
current = state.task_ref().task_name
newest_task = str(runs.sort_values("start_time", ascending=False, na_position="last").iloc[0]["task"])
task = st.selectbox("Task", tasks, index=tasks.index(current if current in tasks else newest_task), key="compare.task",
                    help="Runs are only comparable on the same task (and the same test sizes and seed).")
if current not in tasks and task == newest_task:
    st.caption(f"No runs of task {current} yet: showing {newest_task}, the task with the newest runs.")
scoped = runs[runs["task"] == task]
scoped = scoped.assign(metric=metric_names(scoped, pairs.task_metrics(scoped)))  # "accuracy": classification
if sweep := sweeps.sweep_filter(scoped):  # only when runs carry a sweep: that sweep's runs, and a table per cell
    scoped = scoped[scoped["sweep"].astype(str) == sweep]
    sweeps.sweep_cells_section(scoped, sweep)
opts = charts.with_failures(optimization_frame(scoped), scoped, charts.OPTIMIZATION_FAILURE_COLUMNS)
spread = seed_spread(scoped)  # optimizations repeated with other seeds


def marked(frame):
    """Evaluations of an optimization that stopped early (capped, cancelled) say so in their label and table."""
    outcome = dict(zip(opts["run_id"], opts["outcome"], strict=True))
    parents = dict(zip(scoped["run_id"], scoped["parent_run_id"], strict=True))
    frame = frame.copy()
    frame["stopped"] = [outcome.get(parents.get(r), "") for r in frame["run_id"]]
    frame["stopped"] = frame["stopped"].where(frame["stopped"].isin(MARKED), "")
    frame["label"] = frame["label"] + frame["stopped"].map(lambda o: f" · {o}" if o else "")
    return frame


def optimization_in_view() -> str | None:
    """The optimization in view (the URL's ``run``: the one last opened here or on another page), else the newest
    with test results that did not fail, else the newest; None when the task has none."""
    if opts.empty:
        return None
    current = state.optimization_run()
    if current in set(opts["run_id"].astype(str)):
        return current
    return latest_optimization(usable(scoped)) or latest_optimization(scoped) or str(opts.iloc[0]["run_id"])


def per_label_default(labels: dict[str, str], opt_id: str | None, opt_evals: tuple[str, ...]) -> list[str]:
    """The runs under F1 per class (the report's too): those kept, while they go with the optimization in view;
    else its two test evaluations, with the kept runs of no other optimization; else the three most accurate runs
    that did not fail. Never another optimization's evaluations, unless the user picked them beside this one."""
    kept = [rid for rid in state.compare_runs() if rid in labels]
    parents = dict(zip(scoped["run_id"].astype(str), scoped["parent_run_id"], strict=True))
    optimizations = set(opts["run_id"].astype(str))
    foreign = {rid for rid in kept if parents.get(rid) in optimizations and parents.get(rid) != opt_id}
    if kept and (st.session_state.get(PICKED_WITH) == opt_id or not foreign):
        return kept
    own = [rid for rid in opt_evals if rid in labels]
    default = list(dict.fromkeys([*own, *(rid for rid in kept if rid not in foreign)]))
    return default or list(usable(frame).sort_values("score", ascending=False)["run_id"].astype(str))[:3]


def score_columns(metric: str) -> dict:
    """The run table's columns for a task scored beyond classification, named by its metric."""
    what = metric_name(metric)
    return {"accuracy": st.column_config.NumberColumn("scored 100 %", format="percent", help="Share of the examples "
                                                      f"with a full {what} (every output right)."),
            "accuracy_answered": None, "macro_f1": None,
            "score": st.column_config.NumberColumn(f"mean {what}", format="percent", help=f"Mean {metric} over the "
                                                   "test examples; a failed example scores 0."),
            "score_ci_low": st.column_config.NumberColumn("ci_low", format="percent"),
            "score_ci_high": st.column_config.NumberColumn("ci_high", format="percent"),
            "score_answered": st.column_config.NumberColumn(f"{what} of the answered", format="percent")}


def per_label_section(picked: list[str], labels: dict[str, str], names: dict[str, str]) -> None:
    """F1 per class of the runs picked, as a heatmap and as bars (classification only)."""
    tables, missing = {}, []
    for rid in picked:
        try:
            tables[names[rid]] = cache.artifact_csv(rid, "per_label.csv")
        except StudioError:
            missing.append(labels[rid])
    if missing:
        st.caption("No per-class table for: " + "; ".join(missing))
    heatmap, bars = st.tabs(["Heatmap", "Bars"])
    with studio_errors():
        heatmap.plotly_chart(charts.per_label_f1_heatmap(per_label_frame(tables)), key="compare.chart.per_label_map")
    bars.plotly_chart(charts.per_label_bars(per_label_frame(tables)), key="compare.chart.per_label")


opt_in_view = optimization_in_view()
opt_evals: tuple[str, ...] = ()  # its original and optimized test evaluations
with studio_errors():
    if opt_in_view:
        opt_evals = tuple(r for r in linked_evaluations(opt_in_view, cache.run_tags(opt_in_view), runs) if r)
filters = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
kinds = filters[0].multiselect("Runs", list(KIND_NAMES), default=list(KIND_NAMES), format_func=KIND_NAMES.get,
                               key="compare.kinds")
all_evals = marked(charts.with_failures(chart_frame(filter_runs(scoped, kinds=kinds or list(KIND_NAMES))), scoped))
models = filters[1].multiselect("Models", distinct(all_evals, "model"), key="compare.models", placeholder="All models")
present = set(all_evals["module"]) if "module" in all_evals else set()
shown_modules = [m for m in MODULE_NAMES if m in present] or list(MODULE_NAMES)
modules = filters[2].multiselect("Program", shown_modules, format_func=MODULE_NAMES.get, key="compare.modules",
                                 placeholder="Every kind", help="Predict answers directly; CoT (chain of thought) "
                                 "reasons first; your program is your own DSPy program (docs/programs.md).")
newest = filters[3].toggle("Newest only", value=True, key="compare.newest",
                           help="The newest run of each model · program that did not fail (a failed one only when "
                                "nothing else ran); off: every run, repeated runs included.")
frame = filter_runs(all_evals, models=models, modules=modules)
if newest:  # the optimization in view's own evaluations stand for their labels: it is what is compared
    own_labels = set(frame.loc[frame["run_id"].astype(str).isin(opt_evals), "label"])
    frame = newest_per_label(frame[~frame["label"].isin(own_labels) | frame["run_id"].astype(str).isin(opt_evals)])


def metric_in_view() -> str:
    """The metric of the runs in view: the newest run's; where the task's runs were scored by several metrics, the
    one picked (runs of two metrics never share a chart)."""
    found = list(dict.fromkeys(frame["metric"].astype(str)))  # newest run first
    if len(found) < 2:
        return found[0] if found else "accuracy"
    st.caption(f"Runs of task {task} were scored by {len(found)} metrics ({', '.join(map(metric_name, found))}): "
               "runs of different metrics never share a chart; pick one.")
    return st.selectbox("Metric", found, format_func=measure_title, key="compare.metric")


metric = metric_in_view()
frame = frame[frame["metric"] == metric]

in_view: list[str] = []  # the runs picked under F1 per class: also the pair's default and the report's runs
if frame.empty:
    st.info("No finished baseline or evaluation runs match.")
else:
    for row in frame[frame["degraded"]].to_dict("records"):
        warn_if_degraded(row)
    cols = st.columns(2)
    with studio_errors():
        cols[0].plotly_chart(charts.accuracy_bars(frame, metric), key="compare.chart.accuracy")
        cols[1].plotly_chart(charts.accuracy_vs_cost(frame, metric), key="compare.chart.cost")
    if not is_accuracy(metric):
        how = (f"the weighted mean of its fields' scores ({metric.removeprefix('weighted: ')})"
               if metric_name(metric) != metric else f"its {metric} from 0 to 100 %")
        st.caption(f"{measure_title(metric)}: each example's score is {how}, 0 for a failed one; the bars show the "
                   "mean over the test examples, the whiskers its 95 % interval.")
    with st.expander(f"Table ({len(frame)} runs)"):
        table = failure_table(frame)
        scores_only = ["metric", "score", "score_ci_low", "score_ci_high", "score_answered"]
        table = table.drop(columns=["task", *(c for c in table.columns if c.startswith("failed_")),
                                    *(scores_only if is_accuracy(metric) else ["metric", "ci_low", "ci_high"])])
        table["module"] = table["module"].map(module_name)
        st.dataframe(table, hide_index=True, key="compare.table", column_config={
            **FAILURE_COLUMN_CONFIG,
            "module": st.column_config.TextColumn("program kind", help="Predict or CoT (chain of thought)"),
            "program": st.column_config.TextColumn("program", help="original, or optimized by GEPA"),
            "stopped": st.column_config.TextColumn("stopped", help="The optimization stopped early (spending cap, "
                                                   "cancel): its best program so far was evaluated."),
            "accuracy": st.column_config.NumberColumn(format="percent"),
            "accuracy_answered": st.column_config.NumberColumn("accuracy of the answered", format="percent"),
            "ci_low": st.column_config.NumberColumn(format="percent"),
            "ci_high": st.column_config.NumberColumn(format="percent"),
            "cost_per_1k": st.column_config.NumberColumn("cost per 1k predictions", format="$%.4f", help=PER_1K_HELP),
            "cost_usd": st.column_config.NumberColumn("cost of the program", format="$%.4f", help=PROGRAM_COST_HELP),
            "spent_usd": st.column_config.NumberColumn("spend", format="$%.4f", help=SPEND_HELP),
            **({} if is_accuracy(metric) else score_columns(metric)),
        })
    names = pairs.short_names(frame)  # in charts: "model · program kind [· optimized]", told apart by id if repeated
    if not is_accuracy(metric):
        pairs.field_scores(frame, scoped, names, metric)

    st.subheader("F1 per class" if is_accuracy(metric) else f"{measure_title(metric)} per example")
    if not is_accuracy(metric):
        st.caption(f"F1 per class and confusion matrices are for classification: this task is scored by "
                   f"{metric_name(metric)}, example by example.")
    labels = {str(r["run_id"]): run_choice_label(r) + (f" · {r['stopped']}" if r["stopped"] else "")
              for r in frame.to_dict("records")}
    default: list[str] = []
    with studio_errors():
        default = per_label_default(labels, opt_in_view, opt_evals)
    st.session_state[PICKED_WITH] = opt_in_view
    st.session_state["compare.per_label.runs"] = default[:6]  # the kept choice is the truth; a pick updates it
    picked = st.multiselect("Runs", list(labels), format_func=labels.get, max_selections=6,
                            key="compare.per_label.runs",
                            on_change=lambda: state.set_compare_runs(st.session_state["compare.per_label.runs"]))
    if is_accuracy(metric):
        per_label_section(picked, labels, names)
    else:
        pairs.score_spread(picked, names, metric)
    in_view = list(picked)
    with studio_errors():
        pairs.side_by_side(labels, names, picked, metric)

claims_section(task)  # only when runs of the original notebook's experiment exist for this task


def pick_optimization(in_view: str) -> str:
    """The optimization in view, picked (a repeat is one entry, "… · 3 seeds", that opens to its seeds), with a link
    inside it; returns its run id."""
    entries = optimization_choices(opts)
    st.session_state["compare.opt"] = entry_of(opts, in_view)  # the kept choice is the truth; a pick updates it
    picked = st.selectbox("Optimization", list(entries), format_func=entries.get, key="compare.opt",
                          on_change=lambda: state.set_optimization_run(first_seed(st.session_state["compare.opt"])),
                          help="Preselected: the optimization last opened, else the newest with test results.")
    opt_id = picked
    if picked.startswith(GROUP):
        seeds = seed_choices(opts, picked)
        st.session_state["compare.seed"] = in_view if in_view in seeds else first_seed(picked)
        opt_id = st.selectbox("Seed", list(seeds), key="compare.seed", format_func=seeds.get,
                              on_change=lambda: state.set_optimization_run(st.session_state["compare.seed"]),
                              help="The same optimization with other seeds: the spread over them is below.")
    st.page_link("pages/optimization.py", label="Inside this optimization: candidates, per-example wins, rejected "
                 "proposals", icon=":material/account_tree:", query_params={"run": opt_id})
    return opt_id


def first_seed(entry: str) -> str:
    """The run a picker entry opens on: a repeat's first seed with test results (else its first seed)."""
    seeds = list(seed_choices(opts, entry))
    done = set(opts.loc[opts["has_results"].astype(bool), "run_id"].astype(str))
    return next((r for r in seeds if r in done), seeds[0])


def optimization_section(opt_id: str) -> str | None:
    """The optimization's paired test (original vs optimized), then when it pays for itself; returns the break-even
    reference picked (None when there is none)."""
    opt_row = opts[opts["run_id"] == opt_id].iloc[0]
    warn_if_degraded(opt_row.to_dict())
    original_id, optimized_id = linked_evaluations(opt_id, cache.run_tags(opt_id), runs)
    if not opt_row["has_results"] or not original_id or not optimized_id:
        if opt_row["outcome"] in ("running", "interrupted"):
            st.info(f"This optimization is {opt_row['outcome']}: its test results come when it ends.")
        else:
            st.info("This optimization stopped before its test evaluation. Its best program is kept: evaluate it on "
                    f"the Optimize page, or with `python -m core finish {opt_id}`.")
            st.page_link("pages/optimize.py", label="Optimize page", icon=":material/auto_fix_high:")
        return None
    if opt_row["outcome"] in MARKED:
        st.caption(f"This optimization was {opt_row['outcome']}: below, the best program it had found then.")
    for row in charts.with_failures(runs[runs["run_id"].isin([original_id, optimized_id])], runs).to_dict("records"):
        warn_if_degraded(row)
    with studio_errors():
        pairs.paired_block(original_id, optimized_id, seeds=seed_note(spread, opt_id), metric=opt_row["metric"])
    return break_even_section(opt_row, optimized_id)


def break_even_section(opt_row, optimized_id: str) -> str | None:
    """When the optimized student pays for itself against a reference model: by default the most expensive that
    did not fail, scored by the same metric; a failed reference (picked by the user) gets no accuracy claim."""
    st.markdown("**When does the optimization pay for itself?**")
    metric = opt_row["metric"]
    what, column = ("accuracy", "accuracy") if is_accuracy(metric) else (metric_name(metric), "score")
    references = newest_per_label(all_evals[all_evals["metric"] == metric])
    references = references[references["run_id"] != optimized_id]
    optimized_rows = runs[runs["run_id"] == optimized_id]
    if references.empty or optimized_rows.empty:
        st.caption("Run a baseline of a more expensive model to see when the optimized student pays back.")
        return None
    ref_labels = {str(r["run_id"]): run_choice_label(r) for r in references.to_dict("records")}
    default_ref = most_expensive(usable(references)) or most_expensive(references) or next(iter(ref_labels))
    ref_id = st.selectbox("Instead of", list(ref_labels), index=list(ref_labels).index(default_ref),
                          format_func=ref_labels.get, key="compare.reference",
                          help="The model you would otherwise use (usually the expensive one). Runs that failed "
                               "are never the default.")
    reference, optimized = references[references["run_id"] == ref_id].iloc[0], optimized_rows.iloc[0]
    accuracy = None
    if bool(failed_runs(references[references["run_id"] == ref_id]).iloc[0]):
        failures = charts.failure_text(reference.get("failed"), reference.get("n"),
                                       charts.failure_counts(reference.to_dict()))
        st.warning(f"{reference['label']} failed on this task ({failures or 'degraded'}): its {what} is not the "
                   f"model's, so no {what} is compared against it.", icon=":material/warning:")
    elif not is_accuracy(metric):
        st.caption(f"Costs only: how the {what} of the two compares, the verdict of the two runs side by side says.")
    else:
        try:
            accuracy = trade_off(cache.artifact_csv(ref_id, "records.csv"),
                                 cache.artifact_csv(optimized_id, "records.csv"))
        except StudioError as exc:  # no records to compare: the headline says nothing about accuracy
            st.caption(f"No accuracy trade-off: {exc.message}")
    fig = charts.break_even_chart(
        float(opt_row["optimization_cost_usd"]), float(reference["cost_per_1k"]), float(optimized["cost_per_1k"]),
        labels=(f"{reference['label']}", f"{optimized['model']} · optimized (incl. optimization)"), trade_off=accuracy,
    )
    st.plotly_chart(fig, key="compare.chart.break_even")
    named = "" if is_accuracy(metric) else f" {what}"
    st.caption(f"{reference['label']}: {usd(reference['cost_per_1k'])} per 1k predictions at "
               f"{pct(reference[column])}{named}; optimized student: {usd(optimized['cost_per_1k'])} per 1k at "
               f"{pct(optimized.get(column))}{named}; "
               f"the optimization spent {usd(opt_row['spent_usd'])}.")
    return ref_id


st.subheader("Optimizations")
selected, reference_id = None, None
if opts.empty:
    st.info(f"No optimization of task {task} yet.")
    st.page_link("pages/optimize.py", label="Optimize a prompt", icon=":material/auto_fix_high:")
else:
    st.plotly_chart(charts.optimization_cost_split(opts.head(OPT_BARS)), key="compare.chart.opt_cost")
    if len(opts) > OPT_BARS:
        st.caption(f"What the newest {OPT_BARS} of {len(opts):,} optimizations spent.")
    selected = pick_optimization(opt_in_view or str(opts.iloc[0]["run_id"]))
    with studio_errors():
        reference_id = optimization_section(selected)
    seeds.spread_section(spread)

pairs.report_section([*in_view, selected], {selected: reference_id} if selected and reference_id else None,
                     picked_under="F1 per class" if is_accuracy(metric) else f"{measure_title(metric)} per example")
