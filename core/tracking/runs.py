"""The run table as the pages and the CLI read it: which runs exist, how they link (an optimization's original
and optimized evaluations, parents), chart and history frames, filters and pickers.

Pure functions over ``RunStore.list_runs()`` frames; inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from core.tasks import label_counts
from core.tracking.optimizers import evaluates_own_prompt, optimizer_label, uses_second_model
from core.tracking.store import TAG

EVAL_KINDS = ("baseline", "evaluation")
# The program kind a run evaluated or optimized (its ``module`` column): one entry per kind.
MODULE_NAMES = {"predict": "Predict", "cot": "CoT", "program": "your program"}
OUTCOMES = ("finished", "capped", "cancelled", "failed", "running", "interrupted")
# Two numbers, named apart: ``spent_usd`` is a run's SPEND (what the providers billed it; a cache hit is free), on
# every kind of run; ``cost_per_1k`` (and an evaluation's ``cost_usd``) is the COST OF THE PROGRAM (tokens x price per
# prediction, cache hits at list price), for comparing programs.
SPEND = "spent_usd"
# metric: the studio.metric tag ("accuracy": classification); score*: a task's mean score in [0, 1] (else accuracy).
CHART_COLUMNS = [
    "run_id", "model", "program", "module", "label", "accuracy", "ci_low", "ci_high", "n", "macro_f1", "cost_per_1k",
    "p50_latency_s", "input_tokens", "output_tokens", "cost_usd", SPEND, "failed", "failure_rate", "degraded",
    "metric", "score", "score_ci_low", "score_ci_high", "score_answered",
]
# status reads INTERRUPTED for a run killed or stopped before its end; partial: it did not see all its examples.
HISTORY_COLUMNS = [
    "start_time", "kind", "task", "model", "module", "program", "status", "stop_reason", "partial", "degraded",
    "accuracy", "failed", "failure_rate", "macro_f1", "n", SPEND, "cost_per_1k", "started_by", "run_name", "run_id",
]
RESULT_COLUMNS = ("original_test_accuracy", "optimized_test_accuracy")  # an optimization's paired test results
ACCURACY = "accuracy"  # the metric of classification, and of runs from before the studio.metric tag
ORIGINAL_TAG = f"{TAG}original_eval_run_id"
OPTIMIZED_TAG = f"{TAG}optimized_eval_run_id"
PROMPT_URI_TAG = f"{TAG}prompt_uri"


def _when(value: Any) -> str:
    try:
        return "?" if _missing(value) or value is pd.NaT else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return "?"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def module_name(module: Any) -> str:
    """How a program kind reads: "Predict", "CoT"; an unknown kind as it is; none (older runs) as Predict."""
    return MODULE_NAMES["predict"] if _missing(module) or module == "" else MODULE_NAMES.get(str(module), str(module))


def _modules(runs: pd.DataFrame) -> pd.Series:
    """The table's ``module`` column, "predict" where unknown (runs from before the tag)."""
    if "module" not in runs:
        return pd.Series("predict", index=runs.index, dtype=object)
    return runs["module"].astype(object).where(runs["module"].notna() & (runs["module"] != ""), "predict")


def run_choice_label(row: Mapping[str, Any]) -> str:
    """How a run reads in a picker: model · program kind · original|optimized · task · start time · short id."""
    model = row.get("model") or row.get("run_name") or "?"
    program = row.get("program") or row.get("kind") or "?"
    return (f"{model} · {module_name(row.get('module'))} · {program} · {row.get('task') or '?'} · "
            f"{_when(row.get('start_time'))} · {str(row['run_id'])[:8]}")


def run_choices(runs: pd.DataFrame) -> dict[str, str]:
    """run_id → picker label, in the table's order."""
    return {str(r["run_id"]): run_choice_label(r) for r in runs.to_dict("records")}


def _metric(runs: pd.DataFrame, column: str) -> pd.Series:
    return runs[column].astype("float64") if column in runs else pd.Series(float("nan"), index=runs.index)


def metric_names(runs: pd.DataFrame, task_metrics: Mapping[str, str] | None = None) -> pd.Series:
    """Each run's metric: its ``metric`` column (the studio.metric tag), else its task's in ``task_metrics`` (task →
    metric, read from one run of each task), else "accuracy" (classification, and runs from before the tag)."""
    names = runs["metric"].astype(object) if "metric" in runs else pd.Series(None, index=runs.index, dtype=object)
    if task_metrics and "task" in runs:
        names = names.where(names.notna() & (names.astype(str) != ""), runs["task"].map(dict(task_metrics)))
    return names.where(names.notna() & (names.astype(str) != ""), ACCURACY).astype(str)


def scored(runs: pd.DataFrame, score: str, accuracy: str) -> pd.Series:
    """Column ``score`` where a run is scored beyond accuracy and logged it, else ``accuracy`` (classification)."""
    value = _metric(runs, score)
    return value.where((metric_names(runs) != ACCURACY) & value.notna(), _metric(runs, accuracy))


def spend(runs: pd.DataFrame) -> pd.Series:
    """Each run's spend in USD (what the providers billed it; cache hits cost nothing), NaN where not known.

    Runs logged before every run logged ``spent_usd`` read sensibly: an optimization's ``optimization_cost_usd``
    (always its spend), else the last ``running_cost_usd`` a failed GEPA run logged; an evaluation's list-price
    ``cost_usd`` when none of its examples came from the cache (``cached`` 0), 0 when all did, else unknown."""
    out = _metric(runs, SPEND)
    kinds = runs["kind"] if "kind" in runs else pd.Series(None, index=runs.index, dtype=object)
    opt = kinds == "optimization"
    older = _metric(runs, "optimization_cost_usd").fillna(_metric(runs, "running_cost_usd"))
    out = out.where(out.notna() | ~opt, older)
    cost, cached, n = _metric(runs, "cost_usd"), _metric(runs, "cached"), _metric(runs, "n")
    evaluation = cost.where(cached == 0).where(~((cached > 0) & (cached == n)), 0.0)
    return out.where(out.notna() | opt, evaluation)


def with_spend(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (not modified) with its ``spent_usd`` column filled as :func:`spend` reads it."""
    return runs.assign(**{SPEND: spend(runs)})


def run_spend(kind: str | None, metrics: Mapping[str, float]) -> float | None:
    """One run's spend from its kind and metrics, as :func:`spend` reads it (None where not known)."""
    value = spend(pd.DataFrame([{**metrics, "kind": kind}])).iloc[0]
    return None if pd.isna(value) else float(value)


def chart_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Baseline and evaluation runs as the charts' input (columns CHART_COLUMNS plus task, kind, start_time).

    ``label`` is "<model> · <Predict|CoT>" for an original program and "<model> · <Predict|CoT> · optimized" for an
    optimized one ("· optimized by MIPROv2" when another optimizer than GEPA made it), so two program kinds of one
    model, or two optimizers' programs, never share a label. Runs without an accuracy are left out:
    those that failed, or were stopped or killed before their end (a partial run logs its counts, never an accuracy).
    """
    if runs.empty:
        return pd.DataFrame(columns=CHART_COLUMNS + ["task", "kind", "start_time"])
    df = runs[runs["kind"].isin(EVAL_KINDS) & runs["accuracy"].notna()].copy()
    df[SPEND] = spend(df)
    df["model"] = df["model"].fillna(df["run_name"]).fillna("?").astype(str)
    df["program"] = df["program"].fillna("original").astype(str)
    df["module"] = _modules(df)
    names = df["module"].map(MODULE_NAMES).fillna(df["module"]).astype(str)
    # An optimized program says which optimizer made it (the evaluation's optimizer tag, else its parent's program
    # tag when the parent is in ``runs``), GEPA's plainly.
    made_by = dict(zip(runs["run_id"], runs["program"], strict=True)) if "parent_run_id" in runs else {}
    parents = df["parent_run_id"] if "parent_run_id" in df else pd.Series(None, index=df.index, dtype=object)
    optimizer = parents.map(lambda r: made_by.get(r) if isinstance(r, str) else None)
    if "optimizer" in df:
        optimizer = df["optimizer"].where(df["optimizer"].notna() & (df["optimizer"].astype(str) != ""), optimizer)
    suffix = [("" if p == "original" else f" · {p}" if o in (None, "gepa") or o != o else " · own prompt"
               if evaluates_own_prompt(o) else f" · {p} by {optimizer_label(o)}")
              for p, o in zip(df["program"], optimizer, strict=True)]
    df["label"] = df["model"] + " · " + names + pd.Series(suffix, index=df.index, dtype=object)
    df["ci_low"], df["ci_high"] = df["accuracy_ci_low"], df["accuracy_ci_high"]
    df["metric"] = metric_names(df)
    for score in ("score", "score_ci_low", "score_ci_high", "score_answered"):
        df[score] = scored(df, score, score.replace("score", "accuracy"))
    return df[CHART_COLUMNS + ["task", "kind", "start_time"]].reset_index(drop=True)


def latest_per_label(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the newest run of each label (model · program kind [· optimized])."""
    if frame.empty:
        return frame.copy()
    ordered = frame.sort_values("start_time", ascending=False, kind="stable", na_position="last")
    return ordered.drop_duplicates("label", keep="first").reset_index(drop=True)


def _outcomes(opts: pd.DataFrame) -> pd.Series:
    """How each optimization ended (one of OUTCOMES): capped when its stop reason is the spending cap."""
    status = opts["status"].astype(object)
    stop = opts["stop_reason"].fillna("").astype(str) if "stop_reason" in opts else pd.Series("", index=opts.index)
    out = pd.Series("finished", index=opts.index, dtype=object)
    out[status == "FAILED"] = "failed"
    out[status == "KILLED"] = "cancelled"
    out[stop.str.startswith("spending cap") & status.isin(["KILLED", "FINISHED"])] = "capped"
    out[status == "INTERRUPTED"] = "interrupted"
    out[status == "RUNNING"] = "running"
    return out


def _text(values: pd.Series, missing: str = "?") -> pd.Series:
    return values.astype(object).where(values.notna() & (values.astype(str) != ""), missing).astype(str)


def _optimization_labels(df: pd.DataFrame) -> pd.Series:
    """ "<optimizer> · <student> ← <reflection> · <budget> · <before>→<after>", vectorised: Compare labels thousands
    (no "← <reflection>" for your own prompt, which uses no other model)."""
    def pct(col: str) -> pd.Series:
        return (df[col].astype(float) * 100).map("{:.1f}%".format)

    result = (pct("original_test_score") + "→" + pct("optimized_test_score")).where(df["has_results"],
                                                                                        "no test results")
    marked = df["outcome"].map(lambda o: f" · {o}" if o in ("capped", "cancelled", "failed") else "")
    return _setup_labels(df) + " · " + result + marked


def _setup_labels(df: pd.DataFrame) -> pd.Series:
    """ "<optimizer> · <student> ← <reflection> · <budget>": what an optimization was asked to do."""
    budget = _text(df["budget"], "").map(lambda b: f" · {b}" if b else "")
    optimizer = _text(df["program"], "gepa").map(optimizer_label)
    teacher = (" ← " + _text(df["reflection_model"])).where(_text(df["program"], "gepa").map(uses_second_model), "")
    return optimizer + " · " + _text(df["model"]) + teacher + budget


def optimization_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Optimization runs (input of optimization_cost_split): their spend (``spent_usd``, split by role; NaN where a run
    logged none, never 0), the LM calls answered from the cache, test accuracies before and after,
    ``outcome`` (one of OUTCOMES), ``has_results`` (both test accuracies known) and a readable ``run_label``:
    "GEPA · <student> ← <reflection> · <budget> · <before>→<after>" (or "· no test results"), then "· capped",
    "· cancelled" or "· failed" when so. Labels are unique only together with the run id."""
    columns = ["run_id", "run_label", "program", "model", "reflection_model", "budget", "module", "task", "status",
               "outcome", "stop_reason", "start_time", "repeat_key", "seed", "student_cost_usd", "reflection_cost_usd",
               "optimization_cost_usd", SPEND, "cached_calls", "best_val_score", "original_test_accuracy",
               "optimized_test_accuracy", "original_cost_per_1k", "optimized_cost_per_1k", "has_results", "metric",
               "original_test_score", "optimized_test_score"]
    if runs.empty or (df := runs[runs["kind"] == "optimization"].copy()).empty:
        return pd.DataFrame(columns=columns)
    for col in columns:
        if col not in df:
            df[col] = float("nan") if col.endswith(("accuracy", "per_1k", "_usd", "_test_score")) \
                or col in ("seed", "cached_calls") else None
    df["module"] = _modules(df)
    df[SPEND] = df["optimization_cost_usd"] = spend(df)
    df["stop_reason"] = df["stop_reason"].fillna("")
    df["metric"] = metric_names(df)
    for score in ("original_test_score", "optimized_test_score"):
        df[score] = scored(df, score, score.replace("score", "accuracy"))
    df["outcome"] = _outcomes(df)
    df["has_results"] = df[list(RESULT_COLUMNS)].notna().all(axis=1).astype(bool)
    df["run_label"] = _optimization_labels(df)
    return df[columns].reset_index(drop=True)


def per_label_frame(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-label tables of several runs, stacked with a ``run_label`` column (input of per_label_bars)."""
    parts = [t.assign(run_label=label) for label, t in tables.items() if not t.empty]
    if not parts:
        return pd.DataFrame(columns=["label", "run_label", "f1"])
    return pd.concat(parts, ignore_index=True).astype({"label": str})


def linked_evaluations(opt_run_id: str, tags: Mapping[str, str], runs: pd.DataFrame) -> tuple[str | None, str | None]:
    """(original, optimized) evaluation run ids of an optimization: from its tags, else from its child runs."""
    original, optimized = tags.get(ORIGINAL_TAG), tags.get(OPTIMIZED_TAG)
    if (original and optimized) or runs.empty:
        return original or None, optimized or None
    children = runs[(runs["parent_run_id"] == opt_run_id) & (runs["kind"] == "evaluation")]
    newest = children.drop_duplicates("program")  # newest first: the first of each program
    found = dict(zip(newest["program"], newest["run_id"], strict=True))
    return original or found.get("original") or None, optimized or found.get("optimized") or None


def latest_optimization(runs: pd.DataFrame) -> str | None:
    """The newest optimization with test results (before and after), else the newest at all, else None."""
    if runs.empty:
        return None
    opts = optimization_frame(runs).sort_values("start_time", ascending=False, kind="stable", na_position="last")
    pick = opts[opts["has_results"]] if opts["has_results"].any() else opts
    return None if pick.empty else str(pick.iloc[0]["run_id"])


def filter_runs(runs: pd.DataFrame, *, kinds: Sequence[str] = (), tasks: Sequence[str] = (),
                models: Sequence[str] = (), statuses: Sequence[str] = (), modules: Sequence[str] = ()) -> pd.DataFrame:
    """Runs matching every non-empty filter (an empty list means "any"); ``modules`` are program kinds."""
    mask = pd.Series(True, index=runs.index)
    for column, wanted in (("kind", kinds), ("task", tasks), ("model", models), ("status", statuses)):
        if wanted:
            mask &= runs[column].isin(list(wanted))
    if modules:
        mask &= _modules(runs).isin(list(modules))
    return runs[mask]


def distinct(runs: pd.DataFrame, column: str) -> list[str]:
    return [] if runs.empty or column not in runs else sorted({str(v) for v in runs[column].dropna()})


def most_expensive(frame: pd.DataFrame, exclude: Iterable[str] = ()) -> str | None:
    """run_id of the run with the highest cost per 1k predictions (the reference to pay back), or None."""
    pool = frame[~frame["run_id"].isin(list(exclude)) & frame["cost_per_1k"].notna()]
    return None if pool.empty else str(pool.sort_values("cost_per_1k", ascending=False).iloc[0]["run_id"])


def split_label_counts(splits: Mapping[str, pd.DataFrame | None], label_column: str) -> pd.DataFrame:
    """Rows per label and split (columns label, count, split): the input of label_distribution."""
    parts = [label_counts(df, label_column).assign(split=name) for name, df in splits.items()
             if df is not None and len(df)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["label", "count", "split"])


def has_test_results(runs: pd.DataFrame, run_id: str | None) -> bool:
    """Does the optimization ``run_id`` have both test accuracies (before and after) in the run table?"""
    if not run_id or runs.empty or not set(RESULT_COLUMNS) <= set(runs.columns):
        return False
    row = runs.loc[runs["run_id"] == run_id, list(RESULT_COLUMNS)]
    return bool(not row.empty and row.iloc[0].notna().all())


SPREAD_COLUMNS = ["repeat_key", "label", "metric", "run_id", "seed", "original", "optimized", "gain", "n_seeds",
                  "median", "min", "max", "original_min", "original_max", "min_gain"]


def seed_spread(runs: pd.DataFrame) -> pd.DataFrame:
    """Optimizations repeated with other seeds, one row per seed (columns SPREAD_COLUMNS): per ``repeat_key`` with at
    least 2 seeds that have test results, its ``label``, each seed's ``original`` and ``optimized`` test score (the
    accuracy for classification) and ``gain``, and the repeat's ``n_seeds``, ``median``, ``min`` and ``max``
    optimized score, the range of the original's, and the smallest gain. A seed run twice counts once (its newest
    run); repeats are ordered newest first."""
    opts = optimization_frame(runs)
    df = opts[opts["has_results"] & opts["repeat_key"].notna() & opts["seed"].notna()].copy()
    df = df.sort_values("start_time", ascending=False, kind="stable", na_position="last")
    df = df.drop_duplicates(["repeat_key", "seed"], keep="first")
    df = df[df.groupby("repeat_key")["seed"].transform("size") >= 2]
    if df.empty:
        return pd.DataFrame(columns=SPREAD_COLUMNS)
    df["label"] = _setup_labels(df)
    df["original"] = df["original_test_score"].astype(float)  # = the accuracy for classification
    df["optimized"] = df["optimized_test_score"].astype(float)
    df["gain"] = df["optimized"] - df["original"]
    groups = df.groupby("repeat_key", sort=False)
    df["n_seeds"] = groups["seed"].transform("size").astype(int)
    for name, col, how in (("median", "optimized", "median"), ("min", "optimized", "min"), ("max", "optimized", "max"),
                           ("original_min", "original", "min"), ("original_max", "original", "max"),
                           ("min_gain", "gain", "min")):
        df[name] = groups[col].transform(how)
    df[["label", "metric"]] = groups[["label", "metric"]].transform("first")  # the newest run's name the repeat
    order = {key: i for i, key in enumerate(df["repeat_key"].unique())}  # newest repeat first, then by seed
    df = df.assign(_order=df["repeat_key"].map(order)).sort_values(["_order", "seed"], kind="stable")
    return df[SPREAD_COLUMNS].reset_index(drop=True)


def _pct_range(low: float, high: float) -> str:
    return f"{low * 100:.1f} %" if round(low * 1000) == round(high * 1000) else f"{low * 100:.1f}–{high * 100:.1f} %"


def spread_sentence(spread: pd.DataFrame, repeat_key: str) -> str:
    """One plain sentence on a repeat of ``seed_spread``: its optimized range and median against the original, and
    whether every seed gained, in points of the repeat's metric (accuracy for classification)."""
    rows = spread[spread["repeat_key"] == repeat_key]
    r = rows.iloc[0]
    metric = str(r["metric"]) if pd.notna(r.get("metric")) and str(r.get("metric")) else ACCURACY
    losers = rows[rows["gain"] < 0]
    if losers.empty and r["min_gain"] > 0:
        tail = f"every seed gained at least {r['min_gain'] * 100:.1f} points of {metric}"
    elif losers.empty:
        tail = "the worst seed gained nothing"
    else:
        tail = (f"{len(losers)} of {int(r['n_seeds'])} seeds lost {metric} (the worst "
                f"{losers['gain'].min() * 100:+.1f} points)")
    return (f"{r['label']}, {int(r['n_seeds'])} seeds: optimized {_pct_range(r['min'], r['max'])} (median "
            f"{r['median'] * 100:.1f} %) against {_pct_range(r['original_min'], r['original_max'])} before; {tail}.")


def seed_note(spread: pd.DataFrame, run_id: str) -> str | None:
    """What the verdict on one optimization must not hide: it is one of N seeds, and where it lies in their range
    (None when it was not repeated)."""
    row = spread[spread["run_id"] == run_id]
    if row.empty:
        return None
    r = row.iloc[0]
    place = ("the best of them" if r["optimized"] >= r["max"] and r["max"] > r["min"] else
             "the worst of them" if r["optimized"] <= r["min"] and r["max"] > r["min"] else "")
    return (f"This optimization is seed {int(r['seed'])}, one of {int(r['n_seeds'])} seeds of the same setup: "
            f"optimized {_pct_range(r['min'], r['max'])} across them (median {r['median'] * 100:.1f} %), this seed "
            f"{r['optimized'] * 100:.1f} %{', ' + place if place else ''}. Read the range, not one seed.")


SWEEP_CELL_COLUMNS = ["student", "optimizer", "budget", "runs", "with_results", "original", "optimized",
                      "optimized_min", "optimized_max", "gain", "cost_usd"]


def sweeps_in(runs: pd.DataFrame) -> list[str]:
    """The sweeps (``sweep`` column: the sweep job's id) that runs belong to, newest first."""
    if runs.empty or "sweep" not in runs:
        return []
    tagged = runs[runs["sweep"].notna() & (runs["sweep"].astype(str) != "")]
    return list(tagged.sort_values("start_time", ascending=False, na_position="last")["sweep"].astype(str).unique())


def sweep_cells(runs: pd.DataFrame, sweep: str) -> pd.DataFrame:
    """One row per cell of a sweep (student × optimizer × budget; its seeds together): runs, runs with test results,
    mean test accuracy before and after, the min–max of the optimized accuracy over the seeds, the mean gain and
    the summed optimization cost. Columns SWEEP_CELL_COLUMNS."""
    mine = runs[runs["sweep"].astype(str) == sweep] if not runs.empty and "sweep" in runs else runs.iloc[0:0]
    opts = optimization_frame(mine)
    if opts.empty:
        return pd.DataFrame(columns=SWEEP_CELL_COLUMNS)
    opts = opts.assign(optimizer=_text(opts["program"], "gepa").map(optimizer_label),
                       student=_text(opts["model"]), budget=_text(opts["budget"], ""),
                       gain=opts["optimized_test_accuracy"] - opts["original_test_accuracy"])
    rows = []
    for (student, optimizer, budget), g in opts.groupby(["student", "optimizer", "budget"], sort=True):
        done = g[g["has_results"]]
        after = done["optimized_test_accuracy"]
        rows.append({"student": student, "optimizer": optimizer, "budget": budget, "runs": len(g),
                     "with_results": len(done), "original": done["original_test_accuracy"].mean(),
                     "optimized": after.mean(), "optimized_min": after.min(), "optimized_max": after.max(),
                     "gain": done["gain"].mean(),
                     "cost_usd": g["optimization_cost_usd"].astype(float).sum(min_count=1)})
    return pd.DataFrame(rows, columns=SWEEP_CELL_COLUMNS)
