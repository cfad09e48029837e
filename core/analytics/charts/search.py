"""Charts of GEPA's search (the frames of ``core.analytics.search``): score against metric calls, the lineage tree
(a program with several predictors: its candidates colored by the predictor each changed), the per-example grid, and
calls and cost by role."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics.charts._base import (
    BOTTOM_LEGEND,
    PALETTE,
    PARETO_COLOR,
    REFLECTION_COLOR,
    STUDENT_COLOR,
    _empty_figure,
    _require,
    _usd,
    count_range,
    legend_height,
)
from core.analytics.search import SEVERAL, best_candidates, change_label, grid_summary, instruction_text

KIND_STYLE = {  # candidate kind -> (legend name, marker symbol, color)
    "seed": ("seed", "square", "#7f7f7f"),
    "reflection": ("reflection", "circle", STUDENT_COLOR),
    "merge": ("merge", "diamond", PALETTE[4]),
}
BEST_COLOR = "#FFC107"
SEVERAL_COLOR = "#8C564B"  # a candidate that changed several components
UNCHANGED_COLOR = "#BDBDBD"  # one that changed none (a merge equal to its first parent)
ROLE_COLORS = {"student on train minibatches": STUDENT_COLOR, "student on validation": PALETTE[5],
               "reflection": REFLECTION_COLOR, "judge": PALETTE[4], "test evaluation": "#7f7f7f"}
HOVER_CHARS = 200


def _hover_text(text: object, limit: int = HOVER_CHARS, width: int = 70) -> str:
    """The first ``limit`` characters of ``text``, escaped and wrapped for a hover box."""
    raw = " ".join(str(text or "").split())
    raw = raw if len(raw) <= limit else raw[:limit - 1] + "…"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(raw, width)) or "(empty)"


def _pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{value * 100:.0f}%"


def search_score_chart(curve: pd.DataFrame) -> go.Figure:
    """Each candidate's validation score (%) against the metric calls spent when GEPA found it, by kind, and the
    best so far as a step line (``core.analytics.search.score_curve``)."""
    title = "Validation score by metric calls spent"
    if curve.empty:
        return _empty_figure(title, "No candidates recorded")
    _require(curve, ["metric_calls", "idx", "val_score", "best_so_far", "kind"], "search_score_chart")
    df = curve.sort_values(["metric_calls", "idx"], kind="stable")
    calls = df["metric_calls"].to_numpy(dtype=float)
    fig = go.Figure(go.Scatter(
        x=calls, y=df["best_so_far"].to_numpy(dtype=float) * 100, mode="lines", name="best so far",
        line={"shape": "hv", "color": PARETO_COLOR},
        hovertemplate="best %{y:.1f}% after %{x:,.0f} calls<extra></extra>"))
    for kind, group in df.groupby("kind", sort=False):
        name, symbol, color = KIND_STYLE.get(str(kind), (str(kind) or "candidate", "circle", PALETTE[0]))
        fig.add_trace(go.Scatter(
            x=group["metric_calls"].to_numpy(dtype=float), y=group["val_score"].to_numpy(dtype=float) * 100,
            mode="markers", name=name, marker={"symbol": symbol, "size": 10, "color": color}, cliponaxis=False,
            customdata=group["idx"].to_numpy(),
            hovertemplate=f"#%{{customdata}} ({name})<br>score %{{y:.1f}}% after %{{x:,.0f}} metric "
                          "calls<extra></extra>"))
    scored = df[df["val_score"].notna()]
    if scored.empty:
        headline = f"{len(df)} candidates, none scored on validation"
    else:
        best = scored.loc[scored["val_score"].idxmax()]
        seed = df[df["kind"] == "seed"]["val_score"].dropna()
        base = float(seed.iloc[0]) if len(seed) else float(scored["val_score"].iloc[0])
        headline = (f"No candidate beat the seed's {_pct(base)} on validation ({len(df)} candidates)"
                    if float(best["val_score"]) <= base else
                    f"Best validation score {_pct(best['val_score'])} (candidate #{int(best['idx'])}), "
                    f"up from {_pct(base)} for the seed, after {int(best['metric_calls']):,} metric calls")
    x_range = count_range(calls)
    fig.update_layout(
        title=headline, legend=BOTTOM_LEGEND, height=legend_height(430, 4, per_row=4),
        xaxis={"title": "Metric calls spent when found (count)", "range": [x_range[0], x_range[1] * 1.03]},
        yaxis={"title": "Validation score (%)", "range": [0, 105], "ticksuffix": "%"},
    )
    return fig


def _edges(lin: pd.DataFrame, merge: bool) -> tuple[list[float | None], list[float | None]]:
    score = dict(zip(lin["idx"], lin["val_score"].to_numpy(dtype=float) * 100, strict=True))
    xs: list[float | None] = []
    ys: list[float | None] = []
    for idx, parents, kind in zip(lin["idx"], lin["parents"], lin["kind"], strict=True):
        if (kind == "merge") != merge:
            continue
        for parent in parents:
            if parent in score and not (np.isnan(score[parent]) or np.isnan(score[idx])):
                xs += [parent, idx, None]
                ys += [score[parent], score[idx], None]
    return xs, ys


def _markers(fig: go.Figure, group: pd.DataFrame, name: str, symbol: str | list[str], color: str,
             kinds: list[str], changed: list[str] | None = None) -> None:
    """One marker trace of candidates: the Pareto front outlined; hover says each one's kind, score, parents, depth,
    what it changed (``changed``, several components) and the start of its instruction (of those it changed)."""
    said = changed or [""] * len(group)
    texts = group["instruction"].tolist()
    if changed and "instructions" in group.columns:  # the start of what changed, not of the first component's text
        texts = [instruction_text({c: (own or {}).get(c, "") for c in diff}) if diff else text
                 for own, diff, text in zip(group["instructions"], group["changed"], texts, strict=True)]
    hover = [f"<b>#{i}</b> {kind} · score {_pct(s)}"
             + (f"<br>parents: {', '.join(f'#{p}' for p in ps)}" if len(ps) else "")
             + f"<br>depth {d}" + (" · on the Pareto front" if front else "")
             + (f"<br>changed: {what}" if what else "")
             + f"<br>{_hover_text(text)}"
             for i, kind, s, ps, d, front, what, text in zip(
                 group["idx"], kinds, group["val_score"], group["parents"], group["depth"], group["on_front"], said,
                 texts, strict=True)]
    front = group["on_front"].to_numpy(dtype=bool)
    fig.add_trace(go.Scatter(
        x=group["idx"].to_numpy(dtype=float), y=group["val_score"].to_numpy(dtype=float) * 100,
        mode="markers+text", name=name, text=[f"#{i}" for i in group["idx"]], textposition="top center",
        marker={"symbol": symbol, "size": 13, "color": color,
                "line": {"color": [PARETO_COLOR if f else "white" for f in front],
                         "width": [2 if f else 1 for f in front]}},
        hovertext=hover, hoverinfo="text", cliponaxis=False))


def _change_group(kind: str, changed: list[str]) -> str:
    return "seed" if kind == "seed" else change_label(list(changed))


def _component_markers(fig: go.Figure, lin: pd.DataFrame, components: list[str]) -> None:
    """Candidates of a program with several components: one trace per component changed ("changed classify",
    "changed several", the seed as ever), each candidate's kind its marker symbol, and a legend key per kind."""
    groups = [_change_group(str(k), c) for k, c in zip(lin["kind"], lin["changed"], strict=True)]
    order = ["seed", *components, SEVERAL, ""]
    order += [g for g in dict.fromkeys(groups) if g not in order]
    colors = {name: PALETTE[(i + 1) % len(PALETTE)] for i, name in enumerate(components)}
    colors |= {"seed": KIND_STYLE["seed"][2], SEVERAL: SEVERAL_COLOR, "": UNCHANGED_COLOR}
    kinds = [str(k) for k in lin["kind"]]
    for group_name in order:
        rows = [i for i, g in enumerate(groups) if g == group_name]
        if not rows:
            continue
        group = lin.iloc[rows]
        styles = [KIND_STYLE.get(kinds[i], (kinds[i] or "candidate", "circle", "")) for i in rows]
        changed = ["" if kinds[i] == "seed" else ", ".join(lin["changed"].iloc[i]) or "nothing" for i in rows]
        name = "seed" if group_name == "seed" else f"changed {group_name or 'nothing'}"
        _markers(fig, group, name, [s[1] for s in styles], colors.get(group_name, PALETTE[0]),
                 [s[0] for s in styles], changed)
    for kind in dict.fromkeys(k for k in kinds if k != "seed"):  # the symbols' key: the colors are the components
        name, symbol, _ = KIND_STYLE.get(kind, (kind or "candidate", "circle", ""))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{name} (symbol)", hoverinfo="skip",
                                 marker={"symbol": symbol, "size": 11, "color": "#9E9E9E"}))


def lineage_chart(lineage: pd.DataFrame, components: Sequence[str] | None = None) -> go.Figure:
    """The candidate tree: x is the order GEPA found the candidates in, y their validation score (%); parent → child
    edges (merges dashed), the best candidate ringed, Pareto-front candidates outlined; hover shows the score and the
    start of the instruction (``core.analytics.search.lineage``). With several ``components`` (by default the frame's
    ``attrs["components"]``), a candidate's color is the component it changed from its first parent and its symbol its
    kind; hover says what it changed."""
    title = "Candidate lineage"
    if lineage.empty:
        return _empty_figure(title, "No candidates recorded")
    _require(lineage, ["idx", "parents", "kind", "val_score", "depth", "is_best", "on_front", "instruction"],
             "lineage_chart")
    lin = lineage.sort_values("idx", kind="stable")
    fig = go.Figure()
    for merge, name, dash, color in ((False, "parent → child", "solid", "#9e9e9e"),
                                     (True, "merge parents → child", "dash", KIND_STYLE["merge"][2])):
        xs, ys = _edges(lin, merge)
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, hoverinfo="skip",
                                     line={"color": color, "dash": dash, "width": 1.5}))
    names = list(components) if components is not None else list(lineage.attrs.get("components") or [])
    several = len(names) > 1 and "changed" in lin.columns
    if several:
        _component_markers(fig, lin, names)
    else:
        for kind, group in lin.groupby("kind", sort=False):
            name, symbol, color = KIND_STYLE.get(str(kind), (str(kind) or "candidate", "circle", PALETTE[0]))
            _markers(fig, group, name, symbol, color, [name] * len(group))
    best = lin[lin["is_best"].astype(bool)]
    if not best.empty:
        fig.add_trace(go.Scatter(
            x=best["idx"].to_numpy(dtype=float), y=best["val_score"].to_numpy(dtype=float) * 100, mode="markers",
            name="best", hoverinfo="skip", marker={"symbol": "circle-open", "size": 26, "color": BEST_COLOR,
                                                   "line": {"width": 3}}))
        b = best.iloc[0]
        steps = int(b["depth"])
        headline = (f"The seed (#{int(b['idx'])}, {_pct(b['val_score'])}) stayed best" if steps == 0 else
                    f"Candidate #{int(b['idx'])} is best ({_pct(b['val_score'])}), "
                    f"{steps} step{'s' if steps != 1 else ''} from the seed")
    else:
        headline = title
    merges = int((lin["kind"] == "merge").sum())
    headline += f" · {len(lin)} candidates" + (f", {merges} from merges" if merges else "")
    top = int(lin["idx"].max())
    fig.update_layout(
        title=headline, legend=BOTTOM_LEGEND,
        height=legend_height(460, len(fig.data), per_row=3) if several else legend_height(460, 5, per_row=5),
        xaxis={"title": "Candidate, in the order GEPA found it", "range": [-0.6, top + 0.6],
               **({"dtick": 1} if top <= 30 else {})},
        yaxis={"title": "Validation score (%)", "range": [0, 110], "ticksuffix": "%"},
    )
    return fig


def pareto_grid_chart(grid: pd.DataFrame, val_texts: Sequence[str] | None = None) -> go.Figure:
    """Candidates (rows) × validation examples (columns), colored by score; the best candidate on average is
    outlined and a star marks each cell where another candidate beats it; hover shows the example's text and its
    best candidates (``core.analytics.search.pareto_grid``, ``val_texts`` aligned with its rows)."""
    title = "Scores per validation example"
    if grid.empty or grid.shape[1] == 0:
        return _empty_figure(title, "No validation scores recorded")
    examples = [str(v) for v in grid.index]
    cands = [int(c) for c in grid.columns]
    texts = [_hover_text(t, 300) for t in list(val_texts or [])[:len(examples)]]
    texts += [""] * (len(examples) - len(texts))
    tops = [", ".join(f"#{c}" for c in best) or "none scored" for best in best_candidates(grid)]
    z = grid.T.to_numpy(dtype=float)
    finite = z[np.isfinite(z)]
    in_unit = not finite.size or (finite.min() >= 0 and finite.max() <= 1)
    low, high = (0.0, 1.0) if in_unit else (finite.min(), finite.max())
    custom = np.empty((len(cands), len(examples), 2), dtype=object)
    custom[:, :, 0], custom[:, :, 1] = texts, tops
    fig = go.Figure(go.Heatmap(
        z=z, x=examples, y=[f"#{c}" for c in cands], zmin=low, zmax=high, colorscale="Blues", xgap=1, ygap=1,
        colorbar={"title": "Score"}, customdata=custom,
        hovertemplate="example %{x} · candidate %{y} · score %{z:.2f}<br>best here: %{customdata[1]}"
                      "<br>%{customdata[0]}<extra></extra>"))
    means = grid.mean(axis=0, skipna=True)
    if not means.notna().any():
        fig.update_layout(title=title)
        return fig
    winner = int(means.idxmax())
    beats = grid.gt(grid[winner].fillna(-np.inf), axis=0)  # cells where a candidate beats the winner
    marks = [(examples[i], f"#{c}") for i in range(len(examples)) for c in cands if bool(beats.iloc[i][c])]
    if marks:
        fig.add_trace(go.Scatter(x=[m[0] for m in marks], y=[m[1] for m in marks], mode="markers", hoverinfo="skip",
                                 name=f"beats #{winner} on this example",
                                 marker={"symbol": "star", "size": 11, "color": BEST_COLOR,
                                         "line": {"color": PARETO_COLOR, "width": 1}}))
    row = cands.index(winner)
    fig.add_shape(type="rect", x0=-0.5, x1=len(examples) - 0.5, y0=row - 0.5, y1=row + 0.5,
                  line={"color": BEST_COLOR, "width": 3}, xref="x", yref="y")
    fig.update_layout(
        title=_grid_headline(grid, winner), height=max(320, 170 + 28 * len(cands)), legend=BOTTOM_LEGEND,
        xaxis={"title": "Validation example (id)", "type": "category", "side": "bottom"},
        yaxis={"title": "Candidate (outlined: best on average)", "type": "category", "autorange": "reversed"},
    )
    return fig


def _grid_headline(grid: pd.DataFrame, best: int) -> str:
    s = grid_summary(grid, best)
    head = f"Candidate #{best} is best on {s['wins']} of {s['n']} validation examples"
    tail = [f"none scores above 0 on {s['none']}"] if s["none"] else []
    tail += [f"others beat it on {s['beaten']}"] if s["beaten"] else []
    return head + (f" ({'; '.join(tail)})" if tail else "")


def _role_color(role: str) -> str:
    """A role's bar color: the search record's roles by name; a run's own roles (the student, and its second model
    by the name its optimizer gives it: teacher, prompt model...) as the student's and the reflection's."""
    if role in ROLE_COLORS:
        return ROLE_COLORS[role]
    return STUDENT_COLOR if role.startswith("student") else REFLECTION_COLOR


def cost_by_role_chart(roles: pd.DataFrame) -> go.Figure:
    """Horizontal bars of each role's cost (USD) with its calls in the label (``core.analytics.search.cost_by_role``);
    when nothing was priced, the bars are the calls."""
    title = "Calls and cost by role"
    if roles.empty:
        return _empty_figure(title, "No calls recorded")
    _require(roles, ["role", "calls", "cost_usd"], "cost_by_role_chart")
    names = [str(r) for r in roles["role"]]
    calls = roles["calls"].to_numpy(dtype=float)
    cost = roles["cost_usd"].fillna(0).to_numpy(dtype=float)
    priced = float(cost.sum()) > 0
    values = cost if priced else calls
    labels = [f" {_usd(c)} · {int(n):,} calls" if priced else f" {int(n):,} calls"
              for c, n in zip(cost, calls, strict=True)]
    extra = [f"<br>{int(m):,} metric calls" if m else ""
             for m in roles.get("metric_calls", pd.Series(0, index=roles.index))]
    tokens = [f"<br>{int(i):,} input / {int(o):,} output tokens"
              for i, o in zip(roles.get("input_tokens", pd.Series(0, index=roles.index)),
                              roles.get("output_tokens", pd.Series(0, index=roles.index)), strict=True)]
    fig = go.Figure(go.Bar(
        y=names, x=values, orientation="h", text=labels, textposition="outside", cliponaxis=False, showlegend=False,
        marker={"color": [_role_color(n) for n in names]},
        hovertext=[f"<b>{n}</b><br>{_usd(c)} · {int(k):,} calls{m}{t}"
                   for n, c, k, m, t in zip(names, cost, calls, extra, tokens, strict=True)],
        hoverinfo="text"))
    top = int(np.argmax(values))
    total = float(values.sum())
    if priced:
        headline = f"{names[top].capitalize()} cost most: {_usd(cost[top])} of {_usd(total)} ({cost[top] / total:.0%})"
    else:
        headline = f"No cost recorded (unpriced models): {int(total):,} calls, most by {names[top]}"
    fig.update_layout(
        title=headline, height=170 + 48 * len(names),
        yaxis={"title": None, "autorange": "reversed", "automargin": True},
        xaxis={"title": "Cost (USD)" if priced else "Calls (count)", "range": [0, float(values.max()) * 1.5 or 1.0],
               **({"tickprefix": "$"} if priced else {})},
    )
    return fig
