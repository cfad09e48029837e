"""The run table as the pages and the CLI read it: which runs exist, how they link (an optimization's original
and optimized evaluations, parents), chart and history frames, filters and pickers.

Pure functions over ``RunStore.list_runs()`` frames; inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from core.store import TAG
from core.tasks import label_counts

EVAL_KINDS = ("baseline", "evaluation")
CHART_COLUMNS = [
    "run_id", "model", "program", "label", "accuracy", "ci_low", "ci_high", "n", "macro_f1", "cost_per_1k",
    "p50_latency_s", "input_tokens", "output_tokens", "cost_usd", "failed", "failure_rate", "degraded",
]
# status reads INTERRUPTED for a run killed or stopped before its end; partial: it did not see all its examples.
HISTORY_COLUMNS = [
    "start_time", "kind", "task", "model", "program", "status", "partial", "degraded", "accuracy", "failed",
    "failure_rate", "macro_f1", "n", "cost_usd", "cost_per_1k", "optimization_cost_usd", "started_by", "run_name", "run_id",
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

    ``label`` is "<model> · <program>"; runs without an accuracy are left out: those that failed, or were stopped
    or killed before their end (a partial run logs its counts, never an accuracy).
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
    parts = [label_counts(df, label_column).assign(split=name) for name, df in splits.items()
             if df is not None and len(df)]
    if not parts:
        return pd.DataFrame(columns=["label", "count", "split"])
    return pd.concat(parts, ignore_index=True)

