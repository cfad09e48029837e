"""GEPA's search as tables: the score curve, the lineage tree, the per-example grid, rejected proposals and the
cost by role, from an optimization's search record (its ``search.json``, see ``core.optimize.search``).

A program with several predictors has several components (the record's ``components``): each candidate holds every
component's instruction, and the lineage says which of them changed from its first parent.

Pure functions of the record dict; an empty or older record (or none) gives empty frames with the same columns,
never an error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

CURVE_COLUMNS = ["metric_calls", "idx", "val_score", "best_so_far", "kind"]
LINEAGE_COLUMNS = ["idx", "parents", "kind", "val_score", "depth", "is_best", "on_front", "instruction",
                   "metric_calls", "iteration", "changed", "instructions"]
REJECTED_COLUMNS = ["iteration", "kind", "parents", "parent_score", "new_score", "reason", "instruction", "feedback",
                    "components"]
CHANGES_COLUMNS = ["idx", "parent", "component", "kind"]
SEVERAL = "several"  # a candidate that changed more than one component (a merge, or an "all" proposal)
COST_COLUMNS = ["role", "calls", "metric_calls", "input_tokens", "output_tokens", "cost_usd"]
# The record's role keys and the names a page shows, in the order it shows them.
ROLE_NAMES = {"student_train": "student on train minibatches", "student_val": "student on validation",
              "reflection": "reflection", "judge": "judge", "test_evaluation": "test evaluation"}
NO_INSTRUCTION = "the reflection model gave no usable instruction"


def _candidates(record: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not isinstance(record, Mapping):
        return []
    out = []
    for c in record.get("candidates") or []:
        if isinstance(c, Mapping) and isinstance(c.get("idx"), int):
            out.append(c)
    return sorted(out, key=lambda c: c["idx"])


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def instruction_text(instructions: Mapping[str, Any] | None) -> str:
    """A candidate's instructions as one text: one component's text alone, several as "name: text" blocks."""
    items = [(str(k), str(v)) for k, v in (instructions or {}).items()]
    if len(items) == 1:
        return items[0][1]
    return "\n\n".join(f"{name}: {text}" for name, text in items)


def _texts(instructions: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in instructions.items()} if isinstance(instructions, Mapping) else {}


def components(record: Mapping[str, Any] | None) -> list[str]:
    """The record's components (a program's predictor names, ``["self"]`` for the studio's own), else the names its
    candidates' instructions hold, in order."""
    if not isinstance(record, Mapping):
        return []
    named = [str(c) for c in record.get("components") or [] if isinstance(c, str)]
    if named:
        return named
    return list(dict.fromkeys(name for c in _candidates(record) for name in _texts(c.get("instructions"))))


def changed_components(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The components whose instruction differs between two candidates (one that only one of them has counts), in
    ``after``'s order, then ``before``'s."""
    old, new = _texts(before), _texts(after)
    return [name for name in dict.fromkeys([*new, *old]) if old.get(name) != new.get(name)]


def change_label(changed: list[str]) -> str:
    """What a candidate changed, in one word: its one component, :data:`SEVERAL`, or "" (nothing)."""
    return changed[0] if len(changed) == 1 else (SEVERAL if changed else "")


def score_curve(record: Mapping[str, Any] | None) -> pd.DataFrame:
    """Each candidate's validation score against the metric calls spent when it was found, with the best so far."""
    rows = [{"metric_calls": int(c.get("metric_calls") or 0), "idx": c["idx"], "val_score": _float(c.get("val_score")),
             "kind": str(c.get("kind") or "")} for c in _candidates(record)]
    if not rows:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    frame = pd.DataFrame(rows).sort_values(["metric_calls", "idx"], kind="stable").reset_index(drop=True)
    frame["best_so_far"] = frame["val_score"].cummax()
    return frame[CURVE_COLUMNS]


def lineage(record: Mapping[str, Any] | None) -> pd.DataFrame:
    """The candidate tree: parents, depth (steps from the seed), whether it is the best or on the Pareto front, each
    component's instruction (``instructions``) and the components whose instruction differs from its first parent's
    (``changed``; the seed's: none). The frame's ``attrs["components"]`` are the record's components."""
    cands = _candidates(record)
    if not cands:
        return pd.DataFrame(columns=LINEAGE_COLUMNS)
    texts = {c["idx"]: _texts(c.get("instructions")) for c in cands}
    front = {int(i) for i in (record or {}).get("pareto_front") or [] if isinstance(i, int)}
    scores = {c["idx"]: _float(c.get("val_score")) for c in cands}
    best = (record or {}).get("best_idx")
    if not isinstance(best, int) or best not in scores:
        scored = [i for i, s in scores.items() if not math.isnan(s)]
        best = max(scored, key=lambda i: scores[i]) if scored else None
    depth: dict[int, int] = {}
    rows = []
    for c in cands:  # a parent always comes before its child (GEPA numbers candidates as it finds them)
        parents = [int(p) for p in c.get("parents") or [] if isinstance(p, int)]
        depth[c["idx"]] = 1 + max((depth.get(p, 0) for p in parents), default=-1)
        changed = changed_components(texts[parents[0]], texts[c["idx"]]) if parents and parents[0] in texts else []
        rows.append({"idx": c["idx"], "parents": parents, "kind": str(c.get("kind") or ("seed" if not parents else "")),
                     "val_score": scores[c["idx"]], "depth": depth[c["idx"]], "is_best": c["idx"] == best,
                     "on_front": c["idx"] in front, "instruction": instruction_text(c.get("instructions")),
                     "metric_calls": int(c.get("metric_calls") or 0), "iteration": int(c.get("iteration") or 0),
                     "changed": changed, "instructions": texts[c["idx"]]})
    frame = pd.DataFrame(rows, columns=LINEAGE_COLUMNS)
    frame.attrs["components"] = components(record)
    return frame


def component_changes(record: Mapping[str, Any] | None) -> pd.DataFrame:
    """Which component each candidate but the seed changed from its first parent: ``component`` is its name,
    :data:`SEVERAL` or "" (nothing)."""
    tree = lineage(record)
    rows = [{"idx": int(r["idx"]), "parent": int(r["parents"][0]), "component": change_label(r["changed"]),
             "kind": r["kind"]} for r in tree.to_dict("records") if r["parents"]]
    return pd.DataFrame(rows, columns=CHANGES_COLUMNS)


def pareto_grid(record: Mapping[str, Any] | None) -> pd.DataFrame:
    """Scores per validation example (rows: val ids) and candidate (columns: idx); NaN where not evaluated."""
    val_ids = list((record or {}).get("val_ids") or []) if isinstance(record, Mapping) else []
    cands = [c for c in _candidates(record) if isinstance(c.get("val_scores"), list)]
    if not val_ids or not cands:
        return pd.DataFrame(index=pd.Index([], name="val_id"), columns=pd.Index([], name="candidate"), dtype=float)
    data = {}
    for c in cands:
        scores = [_float(s) for s in c["val_scores"]][:len(val_ids)]
        data[c["idx"]] = scores + [math.nan] * (len(val_ids) - len(scores))
    grid = pd.DataFrame(data, index=pd.Index(val_ids, name="val_id"), dtype=float)
    grid.columns = pd.Index([int(c) for c in grid.columns], name="candidate")
    return grid


def best_candidates(grid: pd.DataFrame) -> pd.Series:
    """Per validation example, the candidates with its highest score (all of them on a tie; none if none scored)."""
    out = {}
    for val_id, row in grid.iterrows():
        top = row.max(skipna=True)
        out[val_id] = [] if pd.isna(top) else [int(c) for c, s in row.items() if not pd.isna(s) and s == top]
    return pd.Series(out, dtype=object, name="best", index=grid.index)


def grid_summary(grid: pd.DataFrame, best_idx: Any) -> dict[str, Any]:
    """Where the returned candidate stands on each validation example it was scored on: ``wins`` (best, ties
    included, with a score above 0), ``none`` (no candidate scored above 0: a tie at nothing is no win),
    ``beaten`` (another candidate did better) and ``beaten_by`` ({candidate: examples}, most first)."""
    out: dict[str, Any] = {"n": 0, "wins": 0, "none": 0, "beaten": 0, "beaten_by": {}}
    if grid.empty or best_idx is None or pd.isna(best_idx) or int(best_idx) not in grid.columns:
        return out
    best = int(best_idx)
    by: dict[int, int] = {}
    for (_, row), top_ids in zip(grid.iterrows(), best_candidates(grid), strict=True):
        if pd.isna(row[best]):
            continue
        out["n"] += 1
        if float(row.max(skipna=True)) <= 0:
            out["none"] += 1
        elif best in top_ids:
            out["wins"] += 1
        else:
            out["beaten"] += 1
            for i in top_ids:
                by[i] = by.get(i, 0) + 1
    out["beaten_by"] = dict(sorted(by.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def grid_sentence(grid: pd.DataFrame, best_idx: Any) -> str:
    """Is the returned candidate better everywhere or on a few examples? One sentence (page and report)."""
    s = grid_summary(grid, best_idx)
    if not s["n"]:
        return f"{len(grid)} validation examples; the returned candidate has no per-example scores."
    text = (f"Candidate #{int(best_idx)}, the one GEPA returned, is best (ties included) on {s['wins']} of {s['n']} "
            "validation examples")
    if s["none"]:
        text += f"; no candidate scores above 0 on {s['none']} of them"
    if not s["beaten"]:
        return text + "; no other candidate beats it on any example."
    beaten = ", ".join(f"#{i} on {c}" for i, c in s["beaten_by"].items())
    return text + (f"; on {s['beaten']} another candidate does better ({beaten}): GEPA's Pareto front keeps those as "
                   "parents.")


def _feedback_text(rows: Any) -> str:
    parts = []
    for row in rows or []:
        if not isinstance(row, Mapping):
            continue
        head = str(row.get("text") or "").strip()
        said = ", ".join(p for p in (f"gold {row['gold']}" if row.get("gold") else "",
                                     f"predicted {row['predicted']}" if row.get("predicted") else "") if p)
        parts.append(" · ".join(p for p in (head, said, str(row.get("feedback") or "").strip()) if p))
    return "\n\n".join(p for p in parts if p)


def _sum(scores: Any) -> float:
    values = [_float(s) for s in scores or []]
    values = [v for v in values if not math.isnan(v)]
    return float(sum(values)) if values else math.nan


def rejected_proposals(record: Mapping[str, Any] | None) -> pd.DataFrame:
    """The proposals GEPA turned down: the minibatch scores (sums, as GEPA compares them), why, the proposed
    instruction, the feedback the reflection model read, and the components it rewrote (``components``)."""
    proposals = (record or {}).get("proposals") if isinstance(record, Mapping) else None
    rows = []
    for p in proposals or []:
        if not isinstance(p, Mapping) or p.get("accepted"):
            continue
        rows.append({"iteration": int(p.get("iteration") or 0), "kind": str(p.get("kind") or ""),
                     "parents": [int(i) for i in p.get("parents") or [] if isinstance(i, int)],
                     "parent_score": _sum(p.get("parent_scores")), "new_score": _sum(p.get("new_scores")),
                     "reason": str(p.get("reason") or (NO_INSTRUCTION if not p.get("instructions") else "")),
                     "instruction": instruction_text(p.get("instructions")),
                     "feedback": _feedback_text(p.get("feedback")),
                     "components": list(_texts(p.get("instructions")))})
    return pd.DataFrame(rows, columns=REJECTED_COLUMNS)


def cost_by_role(record: Mapping[str, Any] | None, test_evaluation: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Calls, metric calls, tokens and cost of each role (those that spent nothing are left out); the test
    evaluation's ``calls``, ``input_tokens``, ``output_tokens`` and ``cost_usd`` come from ``test_evaluation``."""
    roles = dict((record or {}).get("roles") or {}) if isinstance(record, Mapping) else {}
    if test_evaluation:
        roles["test_evaluation"] = {**test_evaluation, "metric_calls": test_evaluation.get("metric_calls", 0)}
    rows = []
    for key, name in ROLE_NAMES.items():
        spend = roles.get(key)
        if not isinstance(spend, Mapping):
            continue
        row = {"role": name, **{c: _float(spend.get(c)) for c in COST_COLUMNS[1:]}}
        row = {k: (0.0 if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        if any(row[c] > 0 for c in COST_COLUMNS[1:]):
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COST_COLUMNS)
    for col in ("calls", "metric_calls", "input_tokens", "output_tokens"):
        frame[col] = frame[col].astype(int)
    frame["cost_usd"] = frame["cost_usd"].astype(float)
    return frame
