"""An optimization's part of the report: the verdict original → optimized, flipped examples, prompt growth, GEPA's
search (score curve, lineage, per-example grid, rejected proposals, cost by role) and both prompts with their diff.

A task scored in [0, 1] (its runs' tag ``studio.metric`` names the metric) shows its score named by the metric, the
accuracy (all answers right) beside it, the per-field scores and the examples whose score changed most in place of the
flipped ones (``core.report.scored``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.analytics import charts, flips
from core.analytics import search as views
from core.analytics.diff import DIFF_STYLE, diff_counts, diff_html
from core.analytics.stats import needed_phrase
from core.analytics.verdict import verdict
from core.config.errors import StudioError
from core.report import data, payback, scored
from core.report.page import Column, Figures, details, esc, facts, missing, num, para, pct, pre, table, usd
from core.tracking.runs import module_name, optimization_frame, run_spend

logger = logging.getLogger(__name__)

MAX_ROWS = 50  # rows of a long table (flipped examples, rejected proposals) before "… and N more"
MAX_CANDIDATES = 60  # candidates whose instruction and parent diff are listed


def title(opt: data.Optimization) -> str:
    row = opt.info.row
    return f"GEPA · {row.get('model') or '?'} ← {row.get('reflection_model') or '?'} · {module_name(row.get('module'))}"


def section(reader: data.Reader, opt: data.Optimization, figs: Figures,
            reference: data.RunInfo | None = None) -> str:
    """The HTML of one optimization; ``reference``: the model it would replace (for the break-even)."""
    info = opt.info
    frame = optimization_frame(pd.DataFrame([info.row]))
    outcome = str(frame.iloc[0]["outcome"]) if not frame.empty else "?"
    m, p = info.metrics, info.params
    metric = scored.run_metric(info, opt.original, opt.optimized)  # as tagged; ``shown`` as the page names it
    shown = scored.metric_name(metric)
    named = "" if metric == scored.ACCURACY else f" ({shown})"
    parts = [f'<h2 id="run-{esc(info.run_id)}">Optimization: {esc(title(opt))}</h2>', facts([
        ("Run", info.run_id), ("Task", str(info.row.get("task") or "?")),
        ("Outcome", outcome + (f" ({info.row['stop_reason']})" if info.row.get("stop_reason") else "")),
        ("Budget", str(info.row.get("budget") or "?")),
        ("Examples", f"{p.get('n_train', '?')} train, {p.get('n_val', '?')} validation, {p.get('n_test', '?')} test"),
        ("Metric calls used", num(m.get("metric_calls_used"))),
        ("Candidates", num(m.get("candidates"))),
        (f"Best validation score{named}", num(m.get("best_val_score"), 3)),
        ("Spend", _spend(info.row.get("kind"), m)),
    ])]
    before, after = reader.records(opt.original), reader.records(opt.optimized)
    parts.append(_verdict(opt, before, after, shown))
    if metric != scored.ACCURACY and opt.original is not None and opt.optimized is not None:
        order = scored.output_order(before)
        parts.append(scored.field_table(scored.field_scores(opt.original.metrics, order),
                                        scored.field_scores(opt.optimized.metrics, order), shown))
    if before is not None and after is not None:
        parts.append(_flips(before, after) if metric == scored.ACCURACY else scored.changed(before, after))
    parts.append(payback.seeds(reader, opt, figs))
    if opt.original is not None and opt.optimized is not None:
        parts.append(_growth(opt.original.metrics, opt.optimized.metrics))
    parts.append(payback.break_even(reader, opt, reference, figs, metric))
    record = reader.artifact(info, data.SEARCH_ARTIFACT, "json")
    parts.append(_search(record, opt, figs, named) if isinstance(record, dict) else
                 "<h3>GEPA's search</h3>" + para("This run has no record of GEPA's search (search.json): it was made "
                                                 "before GEPA Studio recorded one, or stopped before it was written.",
                                                 "note"))
    parts.append(_prompts(reader, opt))
    return "".join(parts)


def _spend(kind: Any, m: Mapping[str, float]) -> str:
    """ "$0.0112 (student $0.0100, reflection $0.0012; 40 LM calls from the cache)", "not recorded" when unknown."""
    total = run_spend(str(kind or "optimization"), m)
    if total is None:
        return "not recorded (a run from before every run logged its spend)"
    split = f"student {usd(m.get('student_cost_usd'))}, reflection {usd(m.get('reflection_cost_usd'))}"
    cached = m.get("cached_calls")
    return f"{usd(total)} ({split}" + (f"; {num(cached)} LM calls from the cache)" if cached else ")")


def _names(opt: data.Optimization) -> tuple[str, str]:
    row = opt.info.row
    model = f"{row.get('model') or '?'} · {module_name(row.get('module'))}"
    return f"the original {model}", f"Optimized {model}"


def _verdict(opt: data.Optimization, before: pd.DataFrame | None, after: pd.DataFrame | None,
             metric: str = scored.ACCURACY) -> str:
    head = "<h3>Original → optimized on the test set</h3>"
    if metric != scored.ACCURACY:
        head += scored.headline(opt, metric)
    if before is None or after is None:
        return head + para("No test evaluations of both programs: the run stopped before them (or they failed). "
                           f"Evaluate its best program with: python -m core finish {opt.info.run_id}", "note")
    try:
        v = verdict(before, after, *_names(opt), metric=metric)
    except StudioError as exc:
        return head + para(f"No verdict: {exc}", "note")
    return head + para(v.sentence, "verdict") + verdict_table([v])


def _p(value: Any) -> str:
    if missing(value):
        return "too few differ"
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3g}"


def _needed(n: int, needed: Any) -> str:
    return "–" if missing(needed) else needed_phrase(n, int(needed))  # the verdict's own words


def verdict_table(verdicts: list[Any], names: list[tuple[str, str]] | None = None) -> str:
    """Verdicts as a table: n, both accuracies, the difference with its interval, the exact McNemar p, who alone
    got examples right, and the test size that would tell them apart. Verdicts on a score (``Verdict.metric`` not
    accuracy) name the metric and their test: mean scores, and who scored higher on how many examples."""
    rows = []
    for i, v in enumerate(verdicts):
        row = {"n": v.n, "acc_a": v.accuracy_a, "acc_b": v.accuracy_b,
               "diff": f"{v.diff * 100:+.1f} ({v.ci_low * 100:+.1f} to {v.ci_high * 100:+.1f})".replace("-", "−"),
               "p": _p(v.p_value), "only": f"{v.a_only} / {v.b_only}", "needed": _needed(v.n, v.needed_n)}
        if names:
            row["a"], row["b"] = names[i]
        rows.append(row)
    columns = [Column("a", "A"), Column("b", "B"), Column("n", "n", num, True),
               Column("acc_a", "accuracy A", pct, True), Column("acc_b", "accuracy B", pct, True),
               Column("diff", "B − A, points (95 % CI)", str, True), Column("p", "McNemar p (exact)", str, True),
               Column("only", "right only in A / in B", str, True),
               Column("needed", "n to tell apart", str, True)]
    metrics = {v.metric for v in verdicts}
    if metrics and metrics != {scored.ACCURACY}:
        metric, tests = " / ".join(sorted(metrics)), " / ".join(sorted({v.test for v in verdicts}))
        columns[3:8] = [Column("acc_a", f"mean {metric} A", lambda v: num(v, 3), True),
                        Column("acc_b", f"mean {metric} B", lambda v: num(v, 3), True),
                        Column("diff", "B − A, points (95 % CI)", str, True), Column("p", f"{tests} p", str, True),
                        Column("only", "higher in A / in B", str, True)]
    return table(pd.DataFrame(rows), columns)


def _flips(before: pd.DataFrame, after: pd.DataFrame) -> str:
    try:
        changed = flips.flipped(before, after)
    except StudioError as exc:
        return para(f"No flipped examples: {exc}", "note")
    counts = changed["change"].value_counts() if not changed.empty else pd.Series(dtype=int)
    up, down = int(counts.get("wrong → right", 0)), int(counts.get("right → wrong", 0))
    head = "<h3>Examples that changed</h3>" + para(f"{up} went wrong → right and {down} right → wrong; "
                                                   f"the other {len(before) - up - down} kept their outcome.")
    if changed.empty:
        return head
    return head + table(changed, [
        Column("idx", "example"), Column("change", "change", nowrap=True), Column("gold", "gold"),
        Column("predicted_a", "original predicted"), Column("predicted_b", "optimized predicted"),
        Column("text", "text")], limit=MAX_ROWS)


def _growth(before: Mapping[str, float], after: Mapping[str, float]) -> str:
    g = flips.prompt_growth(before, after)
    ratio = g.get("ratio")
    change = g.get("cost_per_1k_change")
    lines = [
        ("Input tokens per call", f"{num(g.get('input_tokens_per_call_before'))} → "
                                  f"{num(g.get('input_tokens_per_call_after'))}"
                                  + ("" if missing(ratio) else f" (× {float(ratio):.2f})")),
        ("Cost per 1,000 predictions", f"{usd(g.get('cost_per_1k_before'))} → {usd(g.get('cost_per_1k_after'))}"
                                       + ("" if missing(change) else f" ({'+' if change >= 0 else '−'}"
                                                                     f"{usd(abs(float(change)))})")),
    ]
    return "<h3>Prompt growth</h3>" + facts(lines)


def _search(record: dict[str, Any], opt: data.Optimization, figs: Figures, named: str = "") -> str:
    """GEPA's search; ``named``: " (token F1)" where its validation scores are a task's scores, "" for accuracy."""
    parts = ["<h3>GEPA's search</h3>"]
    curve = views.score_curve(record)
    if not curve.empty and curve["val_score"].notna().any():
        best = curve["val_score"].max()
        found = curve.loc[curve["val_score"] == best, "metric_calls"].iloc[0]
        used = opt.info.metrics.get("metric_calls_used")
        seed = num(curve.iloc[0]["val_score"], 3)
        parts.append(para(f"The best validation score{named} went from {seed} (the seed) to {num(best, 3)} across "
                          f"{len(curve)} candidates; the best was found after {num(found)} metric calls"
                          + ("." if missing(used) else f", of {num(used)} the search spent.")))
        fig = charts.search_score_chart(curve)
        if named:
            fig.update_layout(yaxis_title=f"Validation score{named} (%)")
        parts.append(figs.add(fig))
    lineage = views.lineage(record)
    if not lineage.empty:
        parts.append(figs.add(charts.lineage_chart(lineage)))
        parts.append(_candidates(lineage))
    grid = views.pareto_grid(record)
    if not grid.empty:
        parts.append("<h3>Which candidate is best on which validation example</h3>")
        parts.append(para(views.grid_sentence(grid, record.get("best_idx"))))
        parts.append(figs.add(charts.pareto_grid_chart(grid, record.get("val_texts"))))
    parts.append(_rejected(views.rejected_proposals(record)))
    roles = views.cost_by_role(record, data.evaluation_usage(opt.original, opt.optimized))
    if not roles.empty:
        parts.append("<h3>Calls and spend by role</h3>")
        parts.append(para("Spend: what the providers billed; answers from the cache cost nothing.", "muted small"))
        parts.append(table(roles, [Column("role", "role"), Column("calls", "calls", num, True),
                                   Column("metric_calls", "metric calls", num, True),
                                   Column("input_tokens", "input tokens", num, True),
                                   Column("output_tokens", "output tokens", num, True),
                                   Column("cost_usd", "spend", usd, True)]))
        parts.append(figs.add(charts.cost_by_role_chart(roles)))
    return "".join(parts)


def _candidates(lineage: pd.DataFrame) -> str:
    texts = dict(zip(lineage["idx"].astype(int), lineage["instruction"].astype(str), strict=True))
    items = []
    for row in lineage.head(MAX_CANDIDATES).to_dict("records"):
        parents = [int(x) for x in (row.get("parents") or [])]
        marks = " · ".join(m for m, on in (("returned", row.get("is_best")),
                                           ("on the Pareto front", row.get("on_front")))
                           if on)
        summary = (f"Candidate {int(row['idx'])} ({row.get('kind')}"
                   + (f", from {', '.join(map(str, parents))}" if parents else "") + f"): validation score "
                   f"{num(row.get('val_score'), 3)}, found after {num(row.get('metric_calls'))} metric calls"
                   + (f" · {marks}" if marks else ""))
        body = pre(str(row.get("instruction") or ""))
        if parents and parents[0] in texts:
            counts = diff_counts(texts[parents[0]], str(row.get("instruction") or ""))
            body += (para(f"Against candidate {parents[0]}: {counts['removed']} words removed, {counts['added']} "
                          "added.", "small muted") + _diff(texts[parents[0]], str(row.get("instruction") or "")))
        items.append(details(summary, body))
    more = len(lineage) - min(len(lineage), MAX_CANDIDATES)
    tail = para(f"… and {more} more candidates, left out here.", "muted small") if more > 0 else ""
    return "<h3>Candidates: instruction and the change from its parent</h3>" + "".join(items) + tail


def _diff(before: str, after: str) -> str:
    return diff_html(before, after).replace(DIFF_STYLE, "")  # the page's CSS holds the diff style once


def _rejected(rejected: pd.DataFrame) -> str:
    head = "<h3>Rejected proposals</h3>"
    if rejected.empty:
        return head + para("GEPA turned down no proposal (or none was recorded).")
    frame = rejected.copy()
    frame["parents"] = frame["parents"].map(lambda ps: ", ".join(str(x) for x in ps) if isinstance(ps, list | tuple)
                                            else str(ps))
    return head + para(f"{len(frame)} proposals were turned down on their minibatch; the scores are the minibatch "
                       "sums of the parent and of the proposal.") + table(frame, [
        Column("iteration", "iteration", num, True), Column("kind", "kind"), Column("parents", "parents"),
        Column("parent_score", "parent score", lambda v: num(v, 2), True),
        Column("new_score", "proposal score", lambda v: num(v, 2), True), Column("reason", "why"),
        Column("instruction", "proposed instruction"), Column("feedback", "feedback the reflection model read")],
        limit=MAX_ROWS)


def _prompts(reader: data.Reader, opt: data.Optimization) -> str:
    before = reader.artifact(opt.original, "prompt.txt")
    after = reader.artifact(opt.optimized, "prompt.txt")
    source = "the rendered prompt of the first test example"
    if before is None or after is None:
        instructions = reader.artifact(opt.info, "instructions.json", "json") or {}
        before, after = instructions.get("original"), instructions.get("optimized")
        source = "the instructions"
    if before is None or after is None:
        return "<h3>Prompts</h3>" + para("Neither the test evaluations' prompts nor the instructions were logged.",
                                         "note")
    counts = diff_counts(before, after)
    return ("<h3>Prompts</h3>" + para(f"Original and optimized: {source}. {counts['removed']} words removed, "
                                      f"{counts['added']} added.")
            + f'<div class="cols"><div><h4>Original</h4>{pre(before)}</div>'
            f'<div><h4>Optimized</h4>{pre(after)}</div></div><h4>What changed</h4>{_diff(before, after)}')
