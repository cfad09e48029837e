"""History: every run (filterable) with its details, and every background job. A run of a task scored beyond
classification shows its score, named by its metric (an optimization: original → optimized)."""

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.analytics.charts.scores import is_accuracy, measure_title, metric_name
from core.tracking.runs import (
    HISTORY_COLUMNS,
    distinct,
    filter_runs,
    metric_names,
    module_name,
    run_choices,
    run_spend,
    scored,
    with_spend,
)
from ui import cache, pairs, routing
from ui.failures import DEGRADED_BADGE, FAILURE_COLUMN_CONFIG, failure_details, failure_table
from ui.widgets import pct, run_column_config, studio_errors, usd

SPEND_HELP = ("What the providers billed this run (answers from the cache cost nothing); every run shows it, failed "
              "and cancelled ones included. – : not recorded (an older run).")
PER_1K_HELP = ("Cost of the program: tokens × price per 1,000 predictions, answers from the cache counted at list "
               "price (for comparing programs, whatever this run happened to spend).")

PAGE_ROWS = 500  # rows of the run table per page: a table of 10,000 runs takes seconds to send


def score_columns(rows: pd.DataFrame, table: pd.DataFrame) -> dict:
    """Beside accuracy, for rows of tasks scored beyond classification: each evaluation's mean score and each
    optimization's test score "original → optimized", named by the metric when the rows share one (else a metric
    column says which); returns their column config. Rows of classification only: nothing added."""
    rows = rows.assign(metric=metric_names(rows, pairs.task_metrics(rows)))
    others = sorted({m for m in rows["metric"] if not is_accuracy(m)})
    if not others:
        return {}
    before = scored(rows, "original_test_score", "original_test_accuracy")
    after = scored(rows, "optimized_test_score", "optimized_test_accuracy")
    at = list(table.columns).index("accuracy") + 1
    table.insert(at, "test score", [f"{pct(b)} → {pct(a)}" if b == b and a == a else "" for b, a in
                                    zip(before, after, strict=True)])
    table.insert(at, "score", scored(rows, "score", "accuracy").to_numpy())
    table["accuracy"] = table["accuracy"].where(rows["metric"].map(is_accuracy).to_numpy())  # classification's only
    what = metric_name(others[0]) if len(others) == 1 else "score"
    if len(others) > 1 or (rows["metric"] != others[0]).any():
        table.insert(at, "metric", rows["metric"].map(metric_name).to_numpy())
    return {"score": st.column_config.NumberColumn(f"score ({what})" if len(others) == 1 else "score",
                                                   format="percent", help="The mean score over the test examples "
                                                   "(a failed one scores 0); a classification run's is its accuracy, "
                                                   "the only one the accuracy column shows."),
            "test score": st.column_config.TextColumn(f"test {what}: original → optimized", help="An optimization's "
                                                      "paired test evaluations.")}

routing.require_app(__file__)
st.title("History")
where = cache.settings()
st.caption(f"Every run is an MLflow run. To browse them in MLflow's own UI: "
           f"`mlflow ui --backend-store-uri {where.tracking_uri}`")

runs_tab, jobs_tab = st.tabs(["Runs", "Jobs"])

with runs_tab:
    with studio_errors(stop=True):
        runs = cache.runs_table()
    if runs.empty:
        st.info("No runs yet.")
    else:
        cols = st.columns(5)
        kinds = cols[0].multiselect("Kind", distinct(runs, "kind"), key="history.kinds", placeholder="Any kind",
                                    persist_state="session")
        tasks = cols[1].multiselect("Task", distinct(runs, "task"), key="history.tasks", placeholder="Any task",
                                    persist_state="session")
        models = cols[2].multiselect("Model", distinct(runs, "model"), key="history.models", placeholder="Any model",
                                     persist_state="session")
        modules = cols[3].multiselect("Program", distinct(runs, "module"), key="history.modules",
                                      format_func=module_name, placeholder="Any program", persist_state="session",
                                      help="The program kind a run evaluated or optimized: Predict or chain of "
                                           "thought.")
        statuses = cols[4].multiselect("Status", distinct(runs, "status"), key="history.statuses",
                                       placeholder="Any status", persist_state="session")
        shown = filter_runs(runs, kinds=kinds, tasks=tasks, models=models, statuses=statuses, modules=modules)
        pages = max(1, -(-len(shown) // PAGE_ROWS))
        page = 1
        if pages > 1:  # thousands of runs: one page of the table at a time, never a silent cut
            if st.session_state.get("history.page", 1) > pages:  # the filters left fewer pages
                st.session_state["history.page"] = pages
            page = int(st.number_input(f"Page (of {pages:,}, {PAGE_ROWS:,} runs each, newest first)", min_value=1,
                                       max_value=pages, value=1, key="history.page"))
        rows = with_spend(shown.iloc[(page - 1) * PAGE_ROWS:page * PAGE_ROWS])
        span = f" · rows {(page - 1) * PAGE_ROWS + 1:,}–{(page - 1) * PAGE_ROWS + len(rows):,}" if pages > 1 else ""
        st.caption(f"{len(shown):,} of {len(runs):,} runs{span}")
        columns = [c for c in HISTORY_COLUMNS if c not in ("degraded", "failed", "failure_rate")]
        at = columns.index("accuracy") + 1
        columns[at:at] = ["failed", "failure_rate"]
        columns.insert(columns.index("status") + 1, "degraded")
        table = failure_table(rows)[columns]
        table["module"] = table["module"].map(module_name)
        scores = score_columns(rows, table)
        st.dataframe(table, hide_index=True, key="history.table",
                     column_config=run_column_config(
                         **scores,
                         module=st.column_config.TextColumn("program", help="The program kind: Predict or CoT "
                                                                            "(chain of thought)."),
                         program=st.column_config.TextColumn("version", help="original, optimized, or gepa (the "
                                                                             "optimization run itself)."),
                         spent_usd=st.column_config.NumberColumn("spend", format="$%.4f", help=SPEND_HELP),
                         cost_per_1k=st.column_config.NumberColumn("cost per 1k predictions", format="$%.4f",
                                                                   help=PER_1K_HELP),
                         stop_reason=st.column_config.TextColumn("stopped", help="Why an optimization stopped before "
                                                                 "its budget: its spending cap, or a cancel."),
                         **FAILURE_COLUMN_CONFIG,
                     ))

        choices = run_choices(rows)
        run_id = st.selectbox("Details of run", list(choices), index=None, format_func=choices.get,
                              key="history.run", placeholder="Pick a run of this page to see its details")
        if run_id:
            with studio_errors(stop=True):
                detail = cache.run_detail(run_id)
            info, metrics, params, tags = detail["info"], detail["metrics"], detail["params"], detail["tags"]
            metric = tags.get("studio.metric", "accuracy")
            what = "accuracy" if is_accuracy(metric) else metric_name(metric)
            st.markdown(f"### {info['run_name']}")
            st.caption(f"`{run_id}` · {info['status']} · kind {tags.get('studio.kind', '?')} · "
                       f"task {tags.get('studio.task', '?')}")
            if tags.get("studio.kind") == "optimization":
                st.page_link("pages/optimization.py", label="See inside this optimization: its candidates, "
                             "per-example wins, rejected proposals and cost by role", icon=":material/account_tree:",
                             query_params={"run": run_id})
            if error := tags.get("studio.error"):
                st.error(error)
            if tags.get("studio.degraded") == "true":
                stopped = " Stopped by the circuit breaker." if tags.get("studio.stopped_by") == "breaker" else ""
                st.warning(f"{DEGRADED_BADGE} {tags.get('studio.degraded_reason', '')}{stopped}".strip(),
                           icon=":material/warning:")
            failures = charts.failure_text(metrics.get("failed"), metrics.get("n"), charts.failure_counts(metrics)) \
                or charts.optimization_failure_text(metrics)
            if failures and failures != "no failures":
                st.caption(f"Failures: {failures}. Accuracy counts failed examples as wrong." if is_accuracy(metric)
                           else f"Failures: {failures}. The {what} counts a failed example as 0.")
                failure_details(run_id, charts.failure_counts(metrics), key="history.failures")
            mcols = st.columns(5)
            if is_accuracy(metric):
                mcols[0].metric("Accuracy", pct(metrics.get("accuracy", metrics.get("optimized_test_accuracy"))))
            elif "optimized_test_score" in metrics:
                mcols[0].metric(f"Test {measure_title(metric)}", f"{pct(metrics.get('original_test_score'))} → "
                                f"{pct(metrics['optimized_test_score'])}", help="Original → optimized program.")
            else:
                mcols[0].metric(measure_title(metric), pct(metrics.get("score", metrics.get("accuracy"))),
                                help=f"Mean {metric} over the test examples (a failed one scores 0).")
            mcols[1].metric("Examples", int(metrics["n"]) if "n" in metrics else "–")
            mcols[2].metric("Spend", usd(run_spend(tags.get("studio.kind"), metrics)), help=SPEND_HELP)
            mcols[3].metric("Cost per 1k predictions", usd(metrics.get("cost_per_1k")), help=PER_1K_HELP)
            mcols[4].metric("p50 latency",
                            "–" if "p50_latency_s" not in metrics else f"{metrics['p50_latency_s']:.2f} s")
            if cached := metrics.get("cached_calls", metrics.get("cached")):
                what = "LM calls" if "cached_calls" in metrics else "examples"
                st.caption(f"{int(cached):,} {what} answered from the cache (spent nothing).")
            records, per_label, program, prompt = (detail.get(k) for k in ("records", "per_label", "program", "prompt"))
            tabs = st.tabs(["Records", "Per class", "Prompt", "Metrics", "Params", "Tags"])
            with tabs[0]:
                if records is None:
                    st.caption("No per-example records (an optimization run: its evaluations have them).")
                else:
                    wrong_only = st.toggle("Only wrong or failed answers" if is_accuracy(metric) else
                                           "Only answers below a full score, or failed", key="history.wrong_only")
                    right = ((records["outcome"] == "correct") if "outcome" in records
                             else records["correct"].astype(bool))
                    table = records[~right] if wrong_only else records
                    st.dataframe(table, hide_index=True, key="history.records")
            with tabs[1]:
                if per_label is None:
                    st.caption("No per-class table." if is_accuracy(metric) else
                               f"No per-class table: this task is scored by {what}, not by labels.")
                else:
                    st.plotly_chart(charts.per_label_bars(per_label.assign(run_label=info["run_name"])),
                                    key="history.chart.per_label")
                    st.dataframe(per_label, hide_index=True)
            with tabs[2]:
                if program:
                    st.markdown("**Instruction**")
                    st.code(program.get("instruction", ""), language=None, wrap_lines=True)
                for message in prompt or []:
                    st.caption(message.get("role", "?"))
                    st.code(str(message.get("content", "")), language=None, wrap_lines=True)
                if not program and not prompt:
                    st.caption("No saved program: see the Prompts page for optimizations.")
            with tabs[3]:
                st.dataframe(pd.DataFrame(sorted(metrics.items()), columns=["metric", "value"]), hide_index=True)
            with tabs[4]:
                st.dataframe(pd.DataFrame(sorted(params.items()), columns=["param", "value"]), hide_index=True)
            with tabs[5]:
                st.dataframe(pd.DataFrame(sorted((k, v) for k, v in tags.items() if not k.startswith("mlflow.log")),
                                          columns=["tag", "value"]), hide_index=True)

with jobs_tab:
    with studio_errors():
        jobs = cache.jobs_table()
        if jobs.empty:
            st.info("No background jobs yet.")
        else:
            st.dataframe(jobs, hide_index=True, key="history.jobs", column_config={
                "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                "ended": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                "cost_usd": st.column_config.NumberColumn("spend", format="$%.4f", help=SPEND_HELP),
            })
            st.caption("Watch, cancel or resume a job on the Baselines or Optimize page.")
