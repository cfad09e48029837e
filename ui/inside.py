"""The Optimization page's sections: GEPA's search as core.analytics.search builds it from a run's search.json; for
an optimizer that keeps no search record, what its run has (MIPROv2's trials, few-shot's candidates and demos); the
calls and cost by role (from the search record, else from the run's own spend metrics) and its traces.

Each function renders one section from the SearchRecord dict (or the frames built from it, or the run's metrics);
none computes more than a label. Widget keys start with ``optimization.``.

A task scored in [0, 1] (the run's tag ``studio.metric`` names its metric) shows its scores named by the metric: the
headline, the verdict (a paired test on the scores), each output field's score; classification keeps its accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.analytics.diff import diff_counts, diff_html
from core.analytics.search import (
    COST_COLUMNS,
    changed_components,
    components,
    cost_by_role,
    grid_sentence,
    lineage,
    pareto_grid,
    rejected_proposals,
    score_curve,
)
from core.analytics.verdict import verdict
from core.optimize import Optimizer
from core.optimize.search_record import incomplete_note
from core.report.scored import ACCURACY, field_scores, output_order
from core.tracking.trace_writer import DROPPED_METRIC
from core.tracking.tracing import TRACING_TAG
from ui import cache
from ui.jobs import progress_history
from ui.widgets import pct, studio_errors

logger = logging.getLogger(__name__)

KIND_WORDS = {"seed": "seed", "reflection": "reflection of", "merge": "merge of"}
# What the test evaluations' metrics are called in cost_by_role's input.
TEST_METRICS = {"calls": "lm_calls", "input_tokens": "input_tokens", "output_tokens": "output_tokens",
                "cost_usd": "cost_usd"}
ROLE_TAGS = {"student_train": "student on train minibatches", "student_val": "student on validation",
             "reflection": "reflection", "judge": "judge", "evaluation": "test evaluation", "student": "student"}


def _score(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.2f}"


def _parents(parents: Any) -> str:
    return " + ".join(f"#{int(p)}" for p in (parents or []))


def candidate_label(row: Mapping[str, Any]) -> str:
    """"#2 · 0.80 · reflection of #0" (" · best" on the winner)."""
    kind = str(row.get("kind") or "")
    origin = ("seed" if kind == "seed" or not row.get("parents")
              else f"{KIND_WORDS.get(kind, kind)} {_parents(row['parents'])}")
    best = " · best" if row.get("is_best") else ""
    return f"#{int(row['idx'])} · {_score(row.get('val_score'))} · {origin}{best}"


def incomplete_warning(record: Mapping[str, Any]) -> None:
    """Say that the search record misses what its failed callbacks would have recorded (none failed: nothing)."""
    if note := incomplete_note(record):
        st.warning(note[0].upper() + note[1:] + ". Candidates, proposals or costs below may be missing.",
                   icon=":material/warning:")


def score_headline(metrics: Mapping[str, float], metric: str) -> str:
    """"Score (token F1): 0.672 → 0.972 · all answers right 0.0% → 91.7%" from an optimization's metrics (a run
    from before scores: its accuracies, which are its scores)."""
    def score(which: str) -> str:
        value = metrics.get(f"{which}_test_score", metrics.get(f"{which}_test_accuracy"))
        return "–" if value is None or value != value else f"{float(value):.3f}"

    return (f"Score ({metric}): {score('original')} → {score('optimized')} · all answers right "
            f"{pct(metrics.get('original_test_accuracy'))} → {pct(metrics.get('optimized_test_accuracy'))}")


def test_scores_section(eval_ids: tuple[str | None, str | None], metric: str, names: tuple[str, str]) -> None:
    """A scored task's test evaluations: the verdict on the two programs' scores (``names``: original, optimized)
    and each output field's mean score in both."""
    original, optimized = eval_ids
    if not (original and optimized):
        return
    st.subheader("Original → optimized on the test set")
    before, after = cache.artifact_csv(original, "records.csv"), cache.artifact_csv(optimized, "records.csv")
    st.info(verdict(before, after, *names, metric=metric).sentence, icon=":material/balance:")
    order = output_order(before)
    fields_a, fields_b = (field_scores(cache.run_metrics(rid), order) for rid in (original, optimized))
    if not fields_a and not fields_b:
        return
    table = pd.DataFrame([{"field": f, "original": fields_a.get(f), "optimized": fields_b.get(f)}
                          for f in dict.fromkeys([*fields_a, *fields_b])])
    table["change"] = table["optimized"] - table["original"]
    st.markdown(f"**Score per output field** ({metric})")
    st.dataframe(table, hide_index=True, key="optimization.fields", column_config={
        "original": st.column_config.NumberColumn("original", format="%.3f"),
        "optimized": st.column_config.NumberColumn("optimized", format="%.3f"),
        "change": st.column_config.NumberColumn("change", format="%+.3f"),
    })
    st.caption("Each output's mean score on the test set; an example's score weighs them.")


def score_section(record: Mapping[str, Any], metric: str = ACCURACY) -> None:
    st.subheader("Validation score against budget")
    fig = charts.search_score_chart(score_curve(record))
    if metric != ACCURACY:  # GEPA's validation scores are the task's scores: named by its metric
        fig.update_layout(yaxis_title=f"Validation score ({metric}, %)")
    st.plotly_chart(fig, key="optimization.chart.score")
    st.caption("Each dot is a candidate GEPA scored on the validation examples, at the metric calls spent when it "
               "was found; the line is the best so far.")


def lineage_section(record: Mapping[str, Any]) -> None:
    """The candidate tree, then one candidate's full instruction and its word diff against its parent(s); a program
    with several predictors: the diff of each predictor the candidate changed, the others named as unchanged."""
    st.subheader("Candidates and where they came from")
    tree = lineage(record)
    st.plotly_chart(charts.lineage_chart(tree), key="optimization.chart.lineage")
    if tree.empty:
        return
    rows = {int(r["idx"]): r for r in tree.to_dict("records")}
    best = next((i for i, r in rows.items() if r.get("is_best")), next(iter(rows)))
    if st.session_state.get("optimization.candidate") not in rows:
        st.session_state["optimization.candidate"] = best  # a new run in view: its winner
    pick = st.selectbox("Candidate", list(rows), key="optimization.candidate",
                        format_func=lambda i: candidate_label(rows[i]),
                        help="Each candidate's validation score and origin: a reflection rewrites one parent, a "
                             "merge combines two.")
    row = rows[pick]
    st.caption(f"Found at iteration {int(row.get('iteration') or 0)} after {int(row.get('metric_calls') or 0):,} "
               f"metric calls" + (" · on the Pareto front" if row.get("on_front") else ""))
    parents = [int(p) for p in row.get("parents") or [] if int(p) in rows]
    names = components(record)
    if len(names) > 1:
        _predictor_diffs(row, [rows[p] for p in parents], names)
        return
    if not parents:
        st.caption("The starting instruction: nothing to compare it with.")
        st.code(str(row.get("instruction") or ""), language=None, wrap_lines=True)
    else:  # the diff below holds the whole text too: the plain one is there to copy
        with st.expander("Its full instruction, plain"):
            st.code(str(row.get("instruction") or ""), language=None, wrap_lines=True)
    for parent in parents:
        before, after = str(rows[parent].get("instruction") or ""), str(row.get("instruction") or "")
        counts = diff_counts(before, after)
        st.markdown(f"**Against its parent #{parent}** ({_score(rows[parent].get('val_score'))}): "
                    f"{counts['removed']} words removed (red), {counts['added']} added (green)")
        st.html(diff_html(before, after))


def _plain_instructions(texts: Mapping[str, str], names: list[str]) -> None:
    for name in names:
        st.markdown(f"**{name}**")
        st.code(str(texts.get(name, "")), language=None, wrap_lines=True)


def _predictor_diffs(row: Mapping[str, Any], parents: list[Mapping[str, Any]], names: list[str]) -> None:
    """A candidate of a program with several predictors (``names``): against each parent, the word diff of every
    predictor it changed, under the predictor's name, and the unchanged ones by name; the full texts, plain."""
    texts = dict(row.get("instructions") or {})
    names = list(dict.fromkeys([*names, *texts]))
    if not parents:
        st.caption("The starting instructions, one per predictor: nothing to compare them with.")
        _plain_instructions(texts, names)
        return
    with st.expander("Its full instructions, plain"):
        _plain_instructions(texts, names)
    for parent in parents:
        before = dict(parent.get("instructions") or {})
        changed = changed_components(before, texts)
        st.markdown(f"**Against its parent #{int(parent['idx'])}** ({_score(parent.get('val_score'))}): "
                    + (f"changed {', '.join(changed)}" if changed else "no predictor's instruction changed"))
        for name in changed:
            counts = diff_counts(str(before.get(name, "")), str(texts.get(name, "")))
            st.markdown(f"##### {name}")
            st.caption(f"{counts['removed']} words removed (red), {counts['added']} added (green)")
            st.html(diff_html(str(before.get(name, "")), str(texts.get(name, ""))))
        if unchanged := [n for n in names if n not in changed]:
            st.caption(f"unchanged: {', '.join(unchanged)}")


def grid_section(record: Mapping[str, Any]) -> None:
    """Which candidate is best on which validation example (GEPA's Pareto front)."""
    st.subheader("Which candidate wins on which example")
    grid = pareto_grid(record)
    st.plotly_chart(charts.pareto_grid_chart(grid, val_texts=record.get("val_texts")), key="optimization.chart.grid")
    if grid.empty:
        return
    st.caption(grid_sentence(grid, record.get("best_idx")))


def rejected_section(record: Mapping[str, Any]) -> None:
    """Proposals GEPA turned down: the minibatch scores that decided it, and what the reflection model read."""
    st.subheader("Rejected proposals")
    table = rejected_proposals(record)
    if table.empty:
        st.caption("GEPA rejected no proposal in this run: every proposal it made scored better on its minibatch "
                   "than its parent." if record.get("proposals") else "No proposals were recorded in this run.")
        return
    several = len(components(record)) > 1  # a program's predictors: say which of them each proposal rewrote
    shown = table.assign(parents=table["parents"].map(_parents), components=table["components"].map(", ".join))
    columns = ["iteration", "kind", "parents", *(["components"] if several else []), "parent_score", "new_score",
               "reason"]
    st.dataframe(shown[columns], hide_index=True,
                 key="optimization.rejected", column_config={
                     "parents": st.column_config.TextColumn("parent"),
                     "components": st.column_config.TextColumn("rewrote"),
                     "parent_score": st.column_config.NumberColumn("parent's minibatch score", format="%.2f"),
                     "new_score": st.column_config.NumberColumn("proposal's minibatch score", format="%.2f"),
                     "reason": st.column_config.TextColumn("why rejected", width="large"),
                 })
    labels = {i: (f"Iteration {int(r['iteration'])} · {r['kind']} of {_parents(r['parents'])} · "
                  + (f"rewrote {', '.join(r['components']) or 'nothing'} · " if several else "")
                  + f"{_score(r['parent_score'])} → {_score(r['new_score'])}")
              for i, r in enumerate(table.to_dict("records"))}
    pick = st.selectbox("Read a rejected proposal", list(labels), format_func=labels.get, key="optimization.proposal")
    row = table.iloc[pick]
    if row["reason"]:
        st.caption(str(row["reason"]))
    rewrote = list(row["components"]) if several else []  # which predictors it rewrote
    plural = "s" if len(rewrote) > 1 else ""
    st.markdown(f"**Proposed instruction{plural} for {', '.join(rewrote)}**" if rewrote else "**Proposed instruction**")
    st.code(str(row["instruction"] or ""), language=None, wrap_lines=True)
    st.markdown("**Feedback the reflection model read**")
    st.code(str(row["feedback"] or "(none recorded)"), language=None, wrap_lines=True)


def test_evaluation(eval_ids: tuple[str | None, str | None]) -> dict[str, float] | None:
    """The paired test evaluations' calls, tokens and cost, summed (None before they ran)."""
    ids = [rid for rid in eval_ids if rid]
    if not ids:
        return None
    totals = dict.fromkeys(TEST_METRICS, 0.0)
    for rid in ids:
        metrics = cache.run_metrics(rid)
        for key, name in TEST_METRICS.items():
            value = metrics.get(name)
            totals[key] += float(value) if value is not None and value == value else 0.0
    return totals


def spend_by_role(metrics: dict[str, float], progress: dict[str, Any], role: str) -> pd.DataFrame:
    """A run without a search record, by role from its own figures: the student's and the second model's calls
    (progress.json), tokens and spend (the run's metrics); roles that spent nothing are left out."""
    def number(value: Any) -> float:
        return float(value) if isinstance(value, (int, float)) and value == value else 0.0

    rows = []
    for key, name in (("student", "student"), ("reflection", role)):
        if not name:
            continue
        row = {"role": name, "calls": int(number(progress.get(f"{key}_calls"))),
               "metric_calls": int(number(metrics.get("metric_calls_used"))) if key == "student" else 0,
               "input_tokens": int(number(metrics.get(f"{key}_input_tokens"))),
               "output_tokens": int(number(metrics.get(f"{key}_output_tokens"))),
               "cost_usd": number(metrics.get(f"{key}_cost_usd"))}
        if row["calls"] or row["input_tokens"] or row["cost_usd"]:
            rows.append(row)
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def cost_section(record: Mapping[str, Any], eval_ids: tuple[str | None, str | None], run_id: str,
                 optimizer: Optimizer) -> None:
    """Calls, tokens and cost of each role: from the search record, else from the run's own spend metrics."""
    st.subheader("Calls and cost by role")
    with studio_errors():
        test = test_evaluation(eval_ids)
        roles = cost_by_role(record, test) if record.get("roles") else None
        if roles is None:
            metrics = cache.run_metrics(run_id)
            progress = cache.artifact_json(run_id, "progress.json") \
                if "progress.json" in cache.run_detail(run_id)["artifacts"] else {}
            roles = pd.concat([spend_by_role(metrics, progress or {}, optimizer.reflection_role),
                               cost_by_role(None, test)], ignore_index=True)
            if cached := int(metrics.get("cached_calls") or 0):
                st.caption(f"{cached:,} calls were answered from the cache: they cost nothing.")
        if roles.empty:
            st.caption("No call reached a provider in this run.")
            return
        st.plotly_chart(charts.cost_by_role_chart(roles), key="optimization.chart.cost")
        st.dataframe(roles, hide_index=True, key="optimization.cost", column_config={
            "calls": st.column_config.NumberColumn("LM calls", format="%d"),
            "metric_calls": st.column_config.NumberColumn("metric calls", format="%d"),
            "input_tokens": st.column_config.NumberColumn("input tokens", format="%d"),
            "output_tokens": st.column_config.NumberColumn("output tokens", format="%d"),
            "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f"),
        })


DROPPED_TAG = f"studio.{DROPPED_METRIC}"  # the writer's tag on a run whose traces could not all be written


def traces_line(run_id: str, tracking_uri: str, tags: Mapping[str, str], optimizer: Optimizer) -> None:
    """How many MLflow traces the run has per role (its second model named by its role), and where to read them;
    without any, whether the run's own record (its tracing tag) says tracing was off."""
    try:
        counts = cache.trace_counts(run_id)
    except Exception as exc:  # noqa: BLE001 - a count that cannot be read is a caption, not a broken page
        logger.warning("trace counts of %s unreadable: %s", run_id, exc)
        st.caption("MLflow's traces of this run could not be counted.")
        return
    where = f"`mlflow ui --backend-store-uri {tracking_uri}` → this run → Traces"
    counts = {role: n for role, n in counts.items() if n}
    if dropped := tags.get(DROPPED_TAG):  # e.g. "could not write 5 traces of this run to MLflow (last error: …)"
        st.warning(f"Some traces of this run are missing: {dropped}", icon=":material/warning:")
    if not counts and not optimizer.presets:  # no search: its only calls are the test evaluations, on their runs
        st.caption("This run made no LM calls of its own: its test evaluations' traces are on their two "
                   f"evaluation runs (`mlflow ui --backend-store-uri {tracking_uri}` → an evaluation run → Traces).")
        return
    if not counts:
        st.caption({"off": "No MLflow traces for this run: tracing was off for it (`GEPA_STUDIO_TRACES=off`).",
                    "on": "No MLflow traces found for this run, though tracing was on for it: they may still be "
                          "being written (Refresh)."}.get(tags.get(TRACING_TAG, ""),
                   "No MLflow traces for this run: tracing was off (`GEPA_STUDIO_TRACES=off`) or the run predates it."))
        return
    names = {**ROLE_TAGS, **({"reflection": optimizer.reflection_role} if optimizer.reflection_role else {})}
    parts = [f"{n:,} {names.get(role, role)}" for role, n in counts.items()]
    st.caption(f"MLflow traces of this run: {', '.join(parts)} (every LM call, tagged with its role). Read them in "
               f"MLflow's own UI: {where}.")
    if tags.get("studio.predictors"):  # your own program: its calls split by the predictor that made them
        by = cache.predictor_calls(run_id)
        if by:
            st.markdown("**Calls by predictor** (from the traces: each call's `studio.predictor` tag)")
            st.dataframe(pd.DataFrame(by).assign(role=lambda f: f["role"].map(lambda r: names.get(r, r))),
                         hide_index=True, key="optimization.by_predictor", column_config={
                             "calls": st.column_config.NumberColumn("LM calls", format="%d"),
                             "input_tokens": st.column_config.NumberColumn("input tokens", format="%d"),
                             "output_tokens": st.column_config.NumberColumn("output tokens", format="%d"),
                             "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f")})


def without_record(run_id: str, status: str, optimizer: Optimizer) -> None:
    """A run with no search.json: an optimizer that keeps none says so and shows what it has (trials, candidates and
    demos); an older GEPA run (or one still running) says why; then its progress, if logged."""
    if status == "RUNNING":
        st.info(f"This optimization is still running: what {optimizer.label} did is shown here when it ends. Watch "
                "its progress on the Optimize page.", icon=":material/autorenew:")
        st.page_link("pages/optimize.py", label="Optimize page", icon=":material/auto_fix_high:")
        return
    st.info(optimizer.words.record,
            icon=":material/info:" if "search" not in optimizer.panels else ":material/history:")
    artifacts = cache.run_detail(run_id)["artifacts"]
    if "trials" in optimizer.panels or "candidates" in optimizer.panels:
        _trials(run_id, artifacts, optimizer)
    if "candidates" in optimizer.panels:
        _demos(run_id, artifacts)
    if "progress.json" not in artifacts:
        st.caption("No progress was logged.")
        return
    progress = cache.artifact_json(run_id, "progress.json")
    history = progress_history(progress)
    if not history.empty:
        budget = int(progress.get("metric_calls_budget") or 0) or None
        st.plotly_chart(charts.progress_chart(history, budget=budget), key="optimization.chart.progress")


def _trials(run_id: str, artifacts: list[str], optimizer: Optimizer) -> None:
    """MIPROv2's trials or few-shot's candidate programs (trials.json), as the run logged them."""
    st.subheader("Candidates" if "candidates" in optimizer.panels else "Trials")
    trials = (cache.artifact_json(run_id, "trials.json") or {}).get("trials") if "trials.json" in artifacts else None
    if not trials:
        st.caption(f"{optimizer.label} logged no trials in this run.")
        return
    st.dataframe(pd.DataFrame(trials), hide_index=True, key="optimization.trials")


def _demos(run_id: str, artifacts: list[str]) -> None:
    """The demos in the optimized program's prompt (optimized_program.json)."""
    st.subheader("Demos in the optimized prompt")
    program = cache.artifact_json(run_id, "optimized_program.json") if "optimized_program.json" in artifacts else None
    demos = list(_find_demos((program or {}).get("state")))
    if not demos:
        st.caption("The optimized program has no demos.")
        return
    st.caption(f"{len(demos)} demos: worked examples the student reads before each text.")
    # A static table: a demo's whole text wraps (a data grid cuts a long sentence at its column's edge).
    st.table(pd.DataFrame([{k: v for k, v in d.items() if not str(k).startswith("_")} for d in demos]), hide_index=True)


def _find_demos(state: Any) -> Any:
    """Every demo in a DSPy program state (its predictors' ``demos`` lists)."""
    if isinstance(state, Mapping):
        for key, value in state.items():
            if key == "demos" and isinstance(value, list):
                yield from (d for d in value if isinstance(d, Mapping))
            else:
                yield from _find_demos(value)
