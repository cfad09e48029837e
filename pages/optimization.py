"""Optimization: inside one optimization run (``?run=<id>``): GEPA's search (candidates, per-example wins, rejected
proposals), or what an optimizer that keeps no search record has (its entry's panels: trials, candidates and
demos); cost by role from the run's own figures, and MLflow traces. A task scored in [0, 1] (not classification)
shows its test scores named by its metric, the verdict on them and each output field's score."""

import streamlit as st

from core.jobs.repeats import GROUP, entry_of, optimization_choices, seed_choices
from core.optimize import entry
from core.report.scored import ACCURACY, metric_name, metric_of
from core.tracking.runs import latest_optimization, linked_evaluations, module_name, optimization_frame
from core.tracking.store import TAG
from ui import cache, inside, routing, state
from ui.widgets import pct, studio_errors, usd

routing.require_app(__file__)
st.title("Optimization")
st.write("Inside one optimization: what it tried, where the winner came from, and what each role cost.")

with studio_errors(stop=True):
    runs = cache.runs_table()
opts = optimization_frame(runs)
if opts.empty:
    st.info("No optimization yet.")
    st.page_link("pages/optimize.py", label="Optimize a prompt", icon=":material/auto_fix_high:")
    st.stop()

ids = set(opts["run_id"].astype(str))
in_view = state.optimization_run()
if in_view not in ids:
    if in_view:
        st.caption(f"No optimization `{in_view}` in this store: showing the newest.")
    in_view = latest_optimization(runs) or str(opts.iloc[0]["run_id"])
task = str(opts.loc[opts["run_id"] == in_view, "task"].iloc[0])
same_task = opts[opts["task"] == task]
entries = optimization_choices(same_task)  # a repeat is one entry ("… · 3 seeds") that opens to its seeds
st.session_state["optimization.run"] = entry_of(same_task, in_view)  # the kept choice is the truth; a pick updates it
opt_id = st.selectbox(f"Optimization of task {task}", list(entries), key="optimization.run", format_func=entries.get,
                      on_change=lambda: state.set_optimization_run(
                          next(iter(seed_choices(same_task, st.session_state["optimization.run"])))),
                      help="Optimizations of other tasks: pick the task on Compare or open them from History.")
if opt_id.startswith(GROUP):
    seeds = seed_choices(same_task, opt_id)
    st.session_state["optimization.seed"] = in_view if in_view in seeds else next(iter(seeds))
    opt_id = st.selectbox("Seed", list(seeds), key="optimization.seed", format_func=seeds.get,
                          on_change=lambda: state.set_optimization_run(st.session_state["optimization.seed"]),
                          help="The same optimization with other seeds: each seed searched on its own.")
row = opts[opts["run_id"] == opt_id].iloc[0]
optimizer = entry(row["program"])
with studio_errors(stop=True):
    metrics, tags = cache.run_metrics(opt_id), cache.run_tags(opt_id)
    eval_ids = linked_evaluations(opt_id, tags, runs)

metric = metric_name(metric_of(tags))  # "accuracy" for classification (and runs from before the tag), "token F1"
before, after = row["original_test_accuracy"], row["optimized_test_accuracy"]
result = f"test accuracy {pct(before)} → {pct(after)}" if metric == ACCURACY else inside.score_headline(metrics, metric)
result = result if row["has_results"] else "no test results yet"
budget = f"budget {row['budget']}" if isinstance(row["budget"], str) and row["budget"] else "budget ?"
if not optimizer.presets:  # no budget to name ("budget no search"): what it did
    budget = row["budget"] if isinstance(row["budget"], str) and row["budget"] else "no search"
models = f"**{row['model'] or '?'}**" + (f" ← **{row['reflection_model'] or '?'}** ({optimizer.reflection_role})"
                                         if optimizer.reflection_role else "")
st.markdown(f"{models} · {optimizer.label} · {module_name(row['module'])} · {budget} · {row['outcome']} · {result}")
cols = st.columns(4) if optimizer.presets else [st.container()] * 4  # no search: its cost alone, on the left
best = metrics.get("best_val_score")
if optimizer.presets:  # an optimizer with a budget searched: its best score, candidates and metric calls
    if metric == ACCURACY:
        cols[0].metric("Best validation score", "–" if best is None else f"{best * 100:.1f}%")
    else:  # GEPA's validation score is the task's mean score
        cols[0].metric(f"Best validation score ({metric})", "–" if best is None else f"{best:.3f}")
    cols[1].metric("Candidates", f"{int(metrics['candidates'])}" if "candidates" in metrics else "–")
    cols[2].metric("Metric calls", f"{int(metrics['metric_calls_used']):,}" if "metric_calls_used" in metrics else "–")
cols[3].metric("Optimization spend", usd(row["optimization_cost_usd"]),
               help="What the calls during the search cost (every model's; answers from the cache cost nothing); "
                    "the test evaluations are extra (by role, below).")
st.caption(f"Run `{opt_id}` of task {task}")
links = st.columns(2)
links[0].page_link("pages/prompts.py", label="Read the optimized prompt", icon=":material/difference:",
                   query_params={"prompts": opt_id})
links[1].page_link("pages/compare.py", label="Compare accuracy and cost" if metric == ACCURACY else
                   "Compare scores and cost", icon=":material/bar_chart:", query_params={"run": opt_id})
if metric != ACCURACY:
    program = f"{row['model'] or '?'} · {module_name(row['module'])}"
    with studio_errors():
        inside.test_scores_section(eval_ids, metric, (f"the original {program}", f"Optimized {program}"))

with studio_errors(stop=True):
    record = cache.search_record(opt_id, str(row["status"]))
running = record is None and row["status"] == "RUNNING" and "search" in optimizer.panels
if running and (job_id := tags.get(f"{TAG}job_id")):
    if record := cache.live_search_record(job_id):
        st.caption("Still running: GEPA's search so far (Refresh, in the sidebar, shows what it has done since).")
if record is None:
    with studio_errors():
        inside.without_record(opt_id, str(row["status"]), optimizer)
else:
    inside.incomplete_warning(record)
    with studio_errors():
        inside.score_section(record, metric)
    with studio_errors():
        inside.lineage_section(record)
    with studio_errors():
        inside.grid_section(record)
    with studio_errors():
        inside.rejected_section(record)
with studio_errors():
    inside.cost_section(record or {}, eval_ids, opt_id, optimizer)
inside.traces_line(opt_id, cache.settings().tracking_uri, tags, optimizer)
