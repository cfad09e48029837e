"""Compare's sections on pairs of runs: original vs optimized, any two runs side by side (verdict, flipped examples,
confusion matrices; for a task scored beyond classification, the examples whose score changed most), the scores of
a task beyond classification (per output field, per example), and the report to share. Widget keys start with
``compare.``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.analytics.changed import changed_examples
from core.analytics.charts.scores import (
    field_score_table,
    is_accuracy,
    measure_title,
    metric_name,
    score_distribution,
)
from core.analytics.diff import diff_html
from core.analytics.flips import flipped, prompt_growth, scores_of, to_csv_bytes
from core.analytics.stats import paired_summary
from core.analytics.verdict import verdict
from core.config.errors import ConfigError, StudioError
from core.tracking.runs import EVAL_KINDS
from ui import cache
from ui.widgets import pct, points_delta, safe_text, studio_errors, usd

logger = logging.getLogger(__name__)

CHANGES = ("wrong → right", "right → wrong")
METRIC_TAG = "studio.metric"
REPORT = "compare.report"  # list[str]: the run ids of the report built in this session (the HTML stays in the cache)


def _verdict_box(sentence: str) -> None:
    st.info(safe_text(sentence), icon=":material/balance:")


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value == value else None  # NaN: unknown


def growth_caption(before: Mapping[str, float], after: Mapping[str, float]) -> str:
    """Input tokens per call and cost per 1k predictions, before → after ("" when the runs logged no tokens)."""
    growth = prompt_growth(before, after)
    tokens_before = _number(growth.get("input_tokens_per_call_before"))
    tokens_after = _number(growth.get("input_tokens_per_call_after"))
    if tokens_before is None or tokens_after is None:
        return ""
    ratio = _number(growth.get("ratio"))
    text = (f"Prompt growth: {tokens_before:,.0f} → {tokens_after:,.0f} input tokens per call"
            + (f" (× {ratio:.2f})" if ratio is not None else ""))
    cost_before, cost_after = _number(growth.get("cost_per_1k_before")), _number(growth.get("cost_per_1k_after"))
    if cost_before is not None and cost_after is not None:
        text += f"; cost per 1,000 predictions {usd(cost_before)} → {usd(cost_after)}"
    return text + "."


def task_metrics(runs: pd.DataFrame) -> dict[str, str]:
    """Task → its metric, for a run table without a ``metric`` column: the studio.metric tag of the task's newest
    evaluation (else of its newest run), one tag read per task; "accuracy" where the tag is missing (older runs) or
    cannot be read. {} when the table carries the column itself."""
    if runs.empty or "metric" in runs or "task" not in runs:
        return {}
    ordered = runs.sort_values("start_time", ascending=False, kind="stable", na_position="last")
    evaluations = ordered[ordered["kind"].isin(EVAL_KINDS)]
    out: dict[str, str] = {}
    for task in ordered["task"].dropna().astype(str).unique():
        pool = evaluations[evaluations["task"] == task]
        run_id = str((pool if not pool.empty else ordered[ordered["task"] == task]).iloc[0]["run_id"])
        try:
            out[task] = cache.run_tags(run_id).get(METRIC_TAG) or "accuracy"
        except StudioError as exc:  # the store lost the run: its task reads as classification, as older runs do
            logger.warning("no metric tag for task %s: %s", task, exc)
    return out


def paired_block(original_id: str, optimized_id: str, seeds: str | None = None, metric: str = "accuracy") -> None:
    """Original vs optimized on the same test examples: both accuracies (a task scored otherwise: both mean scores,
    named by ``metric``), the verdict (with ``seeds``, what the other seeds of a repeated optimization say:
    ``core.tracking.runs.seed_note``), the prompt's growth."""
    st.markdown("**Original vs optimized on the same test examples**")
    before, after = cache.artifact_csv(original_id, "records.csv"), cache.artifact_csv(optimized_id, "records.csv")
    if is_accuracy(metric):
        caption = _accuracy_pair(before, after)
    else:
        caption = _score_pair(before, after, metric)
    if seeds:
        st.warning(safe_text(seeds), icon=":material/casino:")
    with studio_errors():
        if growth := growth_caption(cache.run_metrics(original_id), cache.run_metrics(optimized_id)):
            caption += f" {growth}"
    st.caption(caption)


def _score_pair(before: pd.DataFrame, after: pd.DataFrame, metric: str) -> str:
    """Both mean scores, the paired test's p and the verdict sentence (it names the metric and the test); returns
    the caption of the examples each program scores higher on."""
    result = verdict(before, after, "the original program", "The optimized program", metric=metric_name(metric))
    interval = f"{result.ci_low * 100:+.1f} to {result.ci_high * 100:+.1f} points"
    title = measure_title(metric)
    cols = st.columns(3)
    cols[0].metric(f"{title} before", pct(result.accuracy_a))
    cols[1].metric(f"{title} after", pct(result.accuracy_b), **points_delta(result.diff),
                   help=f"Mean {metric_name(metric)} over the {result.n} examples (a failed one scores 0); 95% "
                        f"interval of the gain: {interval}.")
    if result.p_value is not None:
        p = result.p_value
        cols[2].metric(f"{result.test} p", "< 0.001" if p < 0.001 else f"{p:.3f}",
                       help=f"The {result.test} on the per-example differences of {metric_name(metric)}.")
    else:
        cols[2].metric("Test examples", f"{result.n:,}", help="Too few examples score differently for a p-value: "
                                                              "the verdict says what a test would need.")
    _verdict_box(result.sentence)
    return (f"The optimized program scores higher on {result.b_only} examples, the original on {result.a_only} "
            f"(n = {result.n}).")


def _accuracy_pair(before: pd.DataFrame, after: pd.DataFrame) -> str:
    """Both accuracies, McNemar's p and the verdict sentence; returns the caption of the examples only one of the
    programs gets right."""
    summary = paired_summary(before, after)
    n = int(summary["n"])
    interval = f"{summary['ci_low'] * 100:+.1f} to {summary['ci_high'] * 100:+.1f} points"
    cols = st.columns(3)
    cols[0].metric("Accuracy before", pct(summary["accuracy_before"]))
    cols[1].metric("Accuracy after", pct(summary["accuracy_after"]), **points_delta(summary["diff"]),
                   help=f"95% interval of the gain: {interval} (a score interval for paired proportions over the "
                        f"{n} examples)")
    if summary.get("p_value") is not None:
        p = float(summary["p_value"])
        cols[2].metric("McNemar exact p", "< 0.001" if p < 0.001 else f"{p:.3f}",
                       help="Exact McNemar test on the examples only one of the two programs gets right.")
    else:
        cols[2].metric("Test examples", f"{n:,}", help="Too few examples that only one program gets right for a "
                                                         "p-value: the verdict says what a test would need.")
    _verdict_box(summary["sentence"])
    return (f"Only the optimized program is right on {int(summary['after_only'])} examples, only the original on "
            f"{int(summary['before_only'])} (n = {n}).")


def short_names(frame: pd.DataFrame) -> dict[str, str]:
    """Run id → its chart label ("model · program kind [· optimized]"), with the short id where a label repeats:
    short enough for a chart's axis and a sentence."""
    repeated = set(frame["label"][frame["label"].duplicated()])
    return {str(r["run_id"]): f"{r['label']} ({str(r['run_id'])[:8]})" if r["label"] in repeated else str(r["label"])
            for r in frame.to_dict("records")}


def side_by_side(choices: Mapping[str, str], names: Mapping[str, str], default: Sequence[str],
                 metric: str = "accuracy") -> None:
    """Any two runs in view (``choices``: run id → picker label; ``names``: run id → short name): the verdict, the
    examples one gets right and the other wrong (filterable, as CSV), and both confusion matrices; for a task scored
    otherwise (``metric``), the verdict on the scores and the examples whose score changed most."""
    st.subheader("Two runs side by side")
    ids = list(choices)
    if len(ids) < 2:
        st.caption("Two runs in view are needed: widen the filters above.")
        return
    picks = [r for r in default if r in choices] + [r for r in ids if r not in default]
    # One above the other: a run's label (model · program · version · task · time · id) needs the page's width.
    for key, fallback in (("compare.pair.a", picks[0]), ("compare.pair.b", picks[1])):
        if st.session_state.get(key) not in choices:
            st.session_state[key] = fallback
    a = st.selectbox("Run A", ids, key="compare.pair.a", format_func=choices.get)
    b = st.selectbox("Run B", ids, key="compare.pair.b", format_func=choices.get,
                     help="Runs on the same test examples (same task, sizes and seed) can be compared example by "
                          "example.")
    if a == b:
        st.caption("Pick two different runs.")
        return
    name_a, name_b = names[a], names[b]
    try:
        records_a, records_b = cache.artifact_csv(a, "records.csv"), cache.artifact_csv(b, "records.csv")
    except StudioError as exc:  # a run logged without its per-example records (an older or a broken one)
        st.caption(safe_text(f"No example-by-example comparison: {exc.message}"))
        return
    try:
        result = verdict(records_a, records_b, name_a, name_b, metric=metric_name(metric))
    except ConfigError as exc:
        st.info(safe_text(f"These two runs cannot be compared example by example: {exc.message}"),
                icon=":material/compare_arrows:")
        if exc.hint:
            st.caption(safe_text(exc.hint))
        return
    _verdict_box(result.sentence)
    if not is_accuracy(metric):
        changed(changed_examples(records_a, records_b), (name_a, name_b), (a, b), metric)
        return
    flips(flipped(records_a, records_b), name_a, name_b, a, b)
    for column, side, rid, name in zip(st.columns(2), "ab", (a, b), (name_a, name_b), strict=True):
        with column, studio_errors():
            st.plotly_chart(charts.confusion_heatmap(cache.confusion(rid), title=f"{side.upper()}: {name}"),
                            key=f"compare.chart.confusion.{side}")


def flips(frame, name_a: str, name_b: str, a: str, b: str) -> None:
    """The flipped examples, filtered by gold label and direction, with a CSV download."""
    st.markdown(f"**Flipped examples** (A = {name_a}, B = {name_b})")
    if frame.empty:
        st.caption("None: both runs are right, or both wrong, on every example.")
        return
    cols = st.columns([2, 2])
    golds = sorted(frame["gold"].astype(str).unique())
    wanted = cols[0].multiselect("Gold label", golds, key="compare.flips.labels", placeholder="Every label")
    changes = cols[1].multiselect("Change", list(CHANGES), key="compare.flips.changes", placeholder="Both ways",
                                  help="wrong → right: A is wrong and B right; right → wrong: the other way.")
    shown = frame
    if wanted:
        shown = shown[shown["gold"].astype(str).isin(wanted)]
    if changes:
        shown = shown[shown["change"].isin(changes)]
    counts = frame["change"].value_counts()
    st.caption(f"{int(counts.get(CHANGES[0], 0))} wrong → right, {int(counts.get(CHANGES[1], 0))} right → wrong "
               f"from A to B; showing {len(shown)}.")
    st.dataframe(shown, hide_index=True, key="compare.flips", column_config={
        "predicted_a": "A predicted", "predicted_b": "B predicted", "raw_a": "A's raw answer",
        "raw_b": "B's raw answer",
        "text": st.column_config.TextColumn("text", width="large"),
    })
    st.download_button("Download these examples (CSV)", to_csv_bytes(shown), key="compare.flips.download",
                       file_name=f"flipped-{a[:8]}-{b[:8]}.csv", mime="text/csv", icon=":material/download:",
                       on_click="ignore")


def changed(frame: pd.DataFrame, names: tuple[str, str], ids: tuple[str, str], metric: str) -> None:
    """The examples whose score changed most from A to B (``core.analytics.changed``: largest change first), as CSV,
    and one picked: its input and expected answer, both answers side by side and a word diff from A's to B's."""
    what = metric_name(metric)
    st.markdown(f"**The examples whose {what} changed most** (A = {names[0]}, B = {names[1]})")
    if frame.empty:
        st.caption(f"None: both runs score the same {what} on every example.")
        return
    ups = int((frame["change"] > 0).sum())
    st.caption(f"The {len(frame)} largest changes, largest first: B scores higher on {ups}, lower on "
               f"{len(frame) - ups}. A failed example scores 0.")
    shown = frame.assign(change=frame["change"] * 100, score_a=frame["score_a"] * 100, score_b=frame["score_b"] * 100)
    st.dataframe(shown, hide_index=True, key="compare.changed", column_config={
        "score_a": st.column_config.NumberColumn(f"A's {what}", format="%.0f%%"),
        "score_b": st.column_config.NumberColumn(f"B's {what}", format="%.0f%%"),
        "change": st.column_config.NumberColumn("change (points)", format="%+.0f"),
        "predicted_a": "A answered", "predicted_b": "B answered", "gold": "expected",
        "text": st.column_config.TextColumn("input", width="large"),
    })
    st.download_button("Download these examples (CSV)", to_csv_bytes(frame), key="compare.changed.download",
                       file_name=f"changed-{ids[0][:8]}-{ids[1][:8]}.csv", mime="text/csv",
                       icon=":material/download:", on_click="ignore")
    rows = frame.to_dict("records")
    pick = st.selectbox("Example", range(len(rows)), key="compare.changed.pick", format_func=lambda i: (
        f"#{rows[i]['idx']}: {rows[i]['score_a'] * 100:.0f}% → {rows[i]['score_b'] * 100:.0f}% {what}"))
    row = rows[pick if pick is not None and pick < len(rows) else 0]
    st.caption(safe_text(f"Input: {row['text']}  ·  expected: {row['gold']}"))
    for column, side, name in zip(st.columns(2), "ab", names, strict=True):
        column.markdown(f"**{side.upper()}: {safe_text(name)}** · {row[f'score_{side}'] * 100:.0f}% {what}")
        column.code(safe_text(row[f"predicted_{side}"]) or " ", language=None, wrap_lines=True)
    st.caption("Word by word, from A's answer to B's: removed words struck, added words marked.")
    st.html(diff_html(safe_text(row["predicted_a"]), safe_text(row["predicted_b"])))


def field_scores(frame: pd.DataFrame, runs: pd.DataFrame, names: Mapping[str, str], metric: str) -> None:
    """One row per run in view, one column per output field: each field's mean score (tasks with several outputs;
    nothing otherwise)."""
    columns = ["run_id", *(c for c in runs.columns if str(c).startswith("score_field_"))]
    table = field_score_table(frame[["run_id"]].merge(runs[columns], on="run_id", how="left"), metric)
    fields = [c for c in table.columns if c != "run_id"]
    if len(fields) < 2:
        return
    st.markdown(f"**{measure_title(metric)} per output field**")
    table.insert(0, "run", table["run_id"].astype(str).map(names))
    st.dataframe(table.drop(columns="run_id").assign(**{f: table[f] * 100 for f in fields}), hide_index=True,
                 key="compare.fields", column_config={f: st.column_config.NumberColumn(f, format="%.1f%%")
                                                      for f in fields})


def score_spread(run_ids: Sequence[str], names: Mapping[str, str], metric: str) -> None:
    """The per-example scores of the runs picked, as overlaid histograms or boxes."""
    parts, missing = [], []
    for rid in run_ids:
        try:
            records = cache.artifact_csv(rid, "records.csv")
        except StudioError:
            missing.append(names.get(rid, rid))
            continue
        if "correct" in records:
            parts.append(pd.DataFrame({"run": names.get(rid, rid), "score": scores_of(records)}))
    if missing:
        st.caption(safe_text("No per-example records for: " + "; ".join(missing)))
    scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", "score"])
    histogram, box = st.tabs(["Histogram", "Box"])
    with studio_errors():
        histogram.plotly_chart(score_distribution(scores, metric, "histogram"), key="compare.chart.scores")
        box.plotly_chart(score_distribution(scores, metric, "box"), key="compare.chart.scores_box")


def report_section(run_ids: Sequence[str], references: Mapping[str, str] | None = None,
                   picked_under: str = "F1 per class") -> None:
    """Build (on click), then download, one self-contained HTML report of these runs; ``references``: per
    optimization, the break-even reference picked on screen (it joins the report, so its break-even matches);
    ``picked_under``: the section whose runs are in view."""
    st.subheader("Share")
    refs = tuple(sorted((o, r) for o, r in (references or {}).items() if o and r))
    ids = list(dict.fromkeys([*(r for r in run_ids if r), *(r for _, r in refs)]))
    if not ids:
        st.caption("Nothing in view to report on.")
        return
    st.caption(f"One HTML file with the charts, tables, verdicts, break-even, seed spread and both prompts of the "
               f"{len(ids)} runs in view (the runs under {picked_under}, the optimization and the model it would "
               "replace): it opens offline, plotly's JavaScript inside.")
    row = st.container(horizontal=True)
    if row.button("Build report", key="compare.report.build", icon=":material/description:"):
        st.session_state[REPORT] = ids
    if st.session_state.get(REPORT) != ids:
        return  # not built yet, or built for other runs
    with studio_errors():
        html = cache.report_html(tuple(ids), refs)
        row.download_button("Download report (HTML)", html, key="compare.report.download", type="primary",
                            file_name=f"gepa-studio-report-{date.today().isoformat()}.html", mime="text/html",
                            icon=":material/download:", on_click="ignore")
