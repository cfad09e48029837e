"""Pure table shaping for the pages (no Streamlit): runs → chart inputs, filters, paired stats, diffs.

Everything here takes DataFrames or plain data and returns new ones; inputs are never modified.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from core import stats
from core.errors import ConfigError
from core.store import TAG

EVAL_KINDS = ("baseline", "evaluation")
CHART_COLUMNS = [
    "run_id", "model", "program", "label", "accuracy", "ci_low", "ci_high", "n", "macro_f1", "cost_per_1k",
    "p50_latency_s", "input_tokens", "output_tokens", "cost_usd",
]
HISTORY_COLUMNS = [
    "start_time", "kind", "task", "model", "program", "status", "accuracy", "macro_f1", "n", "cost_usd",
    "cost_per_1k", "optimization_cost_usd", "run_name", "run_id",
]
ORIGINAL_TAG = f"{TAG}original_eval_run_id"
OPTIMIZED_TAG = f"{TAG}optimized_eval_run_id"
PROMPT_URI_TAG = f"{TAG}prompt_uri"


def _when(value: Any) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return "?"
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return "?"


def run_choice_label(row: Mapping[str, Any]) -> str:
    """How a run reads in a picker: model · program · task · start time · short id."""
    model = row.get("model") or row.get("run_name") or "?"
    program = row.get("program") or row.get("kind") or "?"
    return f"{model} · {program} · {row.get('task') or '?'} · {_when(row.get('start_time'))} · {str(row['run_id'])[:8]}"


def run_choices(runs: pd.DataFrame) -> dict[str, str]:
    """run_id → picker label, in the table's order."""
    return {str(r["run_id"]): run_choice_label(r) for r in runs.to_dict("records")}


def chart_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Baseline and evaluation runs as the charts' input (columns CHART_COLUMNS plus task, kind, start_time).

    ``label`` is "<model> · <program>"; runs without an accuracy (failed before any metric) are left out.
    """
    if runs.empty:
        return pd.DataFrame(columns=CHART_COLUMNS + ["task", "kind", "start_time"])
    df = runs[runs["kind"].isin(EVAL_KINDS) & runs["accuracy"].notna()].copy()
    df["model"] = df["model"].fillna(df["run_name"]).fillna("?").astype(str)
    df["program"] = df["program"].fillna("original").astype(str)
    df["label"] = df["model"] + " · " + df["program"]
    df["ci_low"] = df["accuracy_ci_low"]
    df["ci_high"] = df["accuracy_ci_high"]
    return df[CHART_COLUMNS + ["task", "kind", "start_time"]].reset_index(drop=True)


def latest_per_label(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the newest run of each label (model · program)."""
    if frame.empty:
        return frame.copy()
    ordered = frame.sort_values("start_time", ascending=False, kind="stable", na_position="last")
    return ordered.drop_duplicates("label", keep="first").reset_index(drop=True)


def optimization_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Optimization runs with a readable ``run_label`` and their cost split (input of optimization_cost_split)."""
    columns = ["run_id", "run_label", "model", "task", "status", "start_time", "student_cost_usd",
               "reflection_cost_usd", "optimization_cost_usd", "best_val_score"]
    if runs.empty:
        return pd.DataFrame(columns=columns + ["original_test_accuracy", "optimized_test_accuracy"])
    df = runs[runs["kind"] == "optimization"].copy()
    for col in ("original_test_accuracy", "optimized_test_accuracy"):
        if col not in df:
            df[col] = float("nan")
    df["run_label"] = [
        f"GEPA · {m or '?'} · {_when(t)}" for m, t in zip(df["model"], df["start_time"], strict=True)
    ]
    return df[columns + ["original_test_accuracy", "optimized_test_accuracy"]].reset_index(drop=True)


def per_label_frame(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-label tables of several runs, stacked with a ``run_label`` column (input of per_label_bars)."""
    parts = [t.assign(run_label=label) for label, t in tables.items() if not t.empty]
    if not parts:
        return pd.DataFrame(columns=["label", "run_label", "f1"])
    out = pd.concat(parts, ignore_index=True)
    out["label"] = out["label"].astype(str)
    return out


def linked_evaluations(opt_run_id: str, tags: Mapping[str, str], runs: pd.DataFrame) -> tuple[str | None, str | None]:
    """(original, optimized) evaluation run ids of an optimization: from its tags, else from its child runs."""
    original, optimized = tags.get(ORIGINAL_TAG), tags.get(OPTIMIZED_TAG)
    if (original and optimized) or runs.empty:
        return original or None, optimized or None
    children = runs[(runs["parent_run_id"] == opt_run_id) & (runs["kind"] == "evaluation")]
    for _, row in children.iterrows():  # newest first: keep the first of each program
        if row["program"] == "original" and not original:
            original = row["run_id"]
        elif row["program"] == "optimized" and not optimized:
            optimized = row["run_id"]
    return original or None, optimized or None


def latest_optimization(runs: pd.DataFrame) -> str | None:
    """The newest finished optimization run (or the newest at all), or None."""
    if runs.empty:
        return None
    opts = runs[runs["kind"] == "optimization"]
    finished = opts[opts["status"] == "FINISHED"]
    pick = finished if not finished.empty else opts
    return None if pick.empty else str(pick.sort_values("start_time", ascending=False).iloc[0]["run_id"])


def paired_summary(before: pd.DataFrame, after: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Paired comparison of two evaluations' records on the same examples (matched by ``idx``).

    Returns n, accuracy_before, accuracy_after, diff (after - before) with its bootstrap interval and
    p-value, and McNemar's exact test (after_only / before_only: examples only one of them gets right).
    """
    key = "idx" if "idx" in before and "idx" in after else None
    if key:
        a = before[[key, "correct"] + (["gold"] if "gold" in before else [])]
        b = after[[key, "correct"] + (["gold"] if "gold" in after else [])]
        merged = a.merge(b, on=key, suffixes=("_a", "_b"))
        if len(merged) != len(a) or len(merged) != len(b):
            raise ConfigError(
                f"The two runs were not scored on the same examples ({len(a)} and {len(b)} records, {len(merged)} shared).",
                "Compare the original and optimized evaluations of one optimization (same test split).",
            )
        if "gold_a" in merged and not (merged["gold_a"].astype(str) == merged["gold_b"].astype(str)).all():
            raise ConfigError("The two runs' examples differ (different gold labels at the same index).",
                              "Compare runs made on the same test split (same task, sizes and seed).")
        x, y = merged["correct_a"], merged["correct_b"]
    else:
        x, y = before["correct"], after["correct"]
    x = _flags(x)
    y = _flags(y)
    boot = stats.paired_bootstrap_diff(x, y, n_boot=n_boot, seed=seed)
    test = stats.mcnemar_exact(x, y)
    n = len(x)
    return {
        "n": float(n),
        "accuracy_before": float(sum(x) / n) if n else float("nan"),
        "accuracy_after": float(sum(y) / n) if n else float("nan"),
        "diff": boot["diff"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"], "p_bootstrap": boot["p_value"],
        "after_only": float(test["b_only"]), "before_only": float(test["a_only"]), "p_mcnemar": test["p_value"],
    }


def _flags(values: Iterable[Any]) -> list[bool]:
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v.strip().lower() in ("true", "1", "yes"))
        else:
            out.append(bool(v) if v == v else False)
    return out


def filter_runs(runs: pd.DataFrame, *, kinds: Sequence[str] = (), tasks: Sequence[str] = (),
                models: Sequence[str] = (), statuses: Sequence[str] = ()) -> pd.DataFrame:
    """Runs matching every non-empty filter (an empty list means "any")."""
    mask = pd.Series(True, index=runs.index)
    for column, wanted in (("kind", kinds), ("task", tasks), ("model", models), ("status", statuses)):
        if wanted:
            mask &= runs[column].isin(list(wanted))
    return runs[mask]


def distinct(runs: pd.DataFrame, column: str) -> list[str]:
    if runs.empty or column not in runs:
        return []
    return sorted({str(v) for v in runs[column].dropna()})


def most_expensive(frame: pd.DataFrame, exclude: Iterable[str] = ()) -> str | None:
    """run_id of the run with the highest cost per 1k predictions (the reference to pay back), or None."""
    pool = frame[~frame["run_id"].isin(list(exclude)) & frame["cost_per_1k"].notna()]
    if pool.empty:
        return None
    return str(pool.sort_values("cost_per_1k", ascending=False).iloc[0]["run_id"])


def split_label_counts(splits: Mapping[str, pd.DataFrame | None], label_column: str) -> pd.DataFrame:
    """Rows per label and split (columns label, count, split): the input of label_distribution."""
    from core.data import label_counts

    parts = [label_counts(df, label_column).assign(split=name) for name, df in splits.items()
             if df is not None and len(df)]
    if not parts:
        return pd.DataFrame(columns=["label", "count", "split"])
    return pd.concat(parts, ignore_index=True)


# Diffs -------------------------------------------------------------------------------------

_TOKENS = re.compile(r"\s+|[^\s]+")
DIFF_STYLE = (
    "<style>.gs-diff{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:0.85rem;"
    "line-height:1.45;border:1px solid rgba(128,128,128,.3);border-radius:6px;padding:.75rem;margin:0}"
    ".gs-diff ins{background:#d1fadf;color:#05603a;text-decoration:none}"
    ".gs-diff del{background:#fee4e2;color:#912018}</style>"
)


def diff_html(before: str, after: str) -> str:
    """A word-level diff of two texts as HTML: removed words in <del>, added words in <ins>, rest escaped."""
    a, b = _TOKENS.findall(before or ""), _TOKENS.findall(after or "")
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = html.escape("".join(a[i1:i2])), html.escape("".join(b[j1:j2]))
        if op == "equal":
            out.append(old)
        if op in ("delete", "replace") and old:
            out.append(f"<del>{old}</del>")
        if op in ("insert", "replace") and new:
            out.append(f"<ins>{new}</ins>")
    return f'{DIFF_STYLE}<pre class="gs-diff">{"".join(out)}</pre>'


def diff_counts(before: str, after: str) -> dict[str, int]:
    """Words removed and added between two texts."""
    a, b = (before or "").split(), (after or "").split()
    removed = added = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            removed += i2 - i1
        if op in ("insert", "replace"):
            added += j2 - j1
    return {"removed": removed, "added": added}


def messages_text(messages: list[dict[str, Any]]) -> str:
    """Prompt messages as one text block (core's own rendering, for diffs)."""
    from core.program import prompt_text

    return prompt_text(messages)


# Tasks -------------------------------------------------------------------------------------

TEXT_COLUMN_NAMES = ("text", "description", "sentence", "abstract", "content", "document", "body", "input")
LABEL_COLUMN_NAMES = ("label", "target", "class", "category", "labels", "y", "output")


def guess_columns(df: pd.DataFrame) -> tuple[str, str]:
    """A likely (text column, label column) of an uploaded table: by name, else longest text / fewest values."""
    columns = [str(c) for c in df.columns]
    lower = {c.lower(): c for c in columns}
    text = next((lower[n] for n in TEXT_COLUMN_NAMES if n in lower), None)
    label = next((lower[n] for n in LABEL_COLUMN_NAMES if n in lower and lower[n] != text), None)
    if text is None:
        lengths = {c: df[c].astype(str).str.len().mean() for c in columns if c != label}
        text = max(lengths, key=lengths.__getitem__) if lengths else columns[0]
    if label is None:
        rest = [c for c in columns if c != text] or columns
        label = min(rest, key=lambda c: df[c].nunique())
    return text, label
