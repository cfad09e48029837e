"""What a report reads from the run store: the runs asked for, an optimization's two test evaluations, artifacts.

Reading is the only thing done here; an artifact that is absent (an older run, a run stopped early) reads as None.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.config.errors import ConfigError, StoreError
from core.tracking.runs import EVAL_KINDS, linked_evaluations
from core.tracking.store import TAG, RunStore, runs_frame

logger = logging.getLogger(__name__)

SEARCH_ARTIFACT = "search.json"
UNKNOWN_HINT = ("Run ids are in the History page's table, in MLflow's UI, and printed by `python -m core jobs show "
                "JOB_ID`; check the id and that MLFLOW_TRACKING_URI points at the store that holds it.")


@dataclass(frozen=True)
class RunInfo:
    """One run as the report sees it: its row of the run table, tags, params, metrics and artifact names."""

    run_id: str
    row: dict[str, Any]
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    artifacts: frozenset[str]

    @property
    def kind(self) -> str:
        return str(self.row.get("kind") or "")


@dataclass(frozen=True)
class Optimization:
    """An optimization run with its original and optimized test evaluations (None when it has none)."""

    info: RunInfo
    original: RunInfo | None
    optimized: RunInfo | None


@dataclass(frozen=True)
class ReportData:
    """The runs asked for (in order), the optimizations among them, every evaluation the report compares, and the
    run table of all of them (``runs_frame`` columns)."""

    runs: tuple[RunInfo, ...]
    optimizations: tuple[Optimization, ...]
    evaluations: tuple[RunInfo, ...]
    table: pd.DataFrame
    given: frozenset[str] = field(default_factory=frozenset)


def _get(store: RunStore, run_id: str) -> Any:
    try:
        return store.get_run(run_id)
    except StoreError as exc:
        raise StoreError(exc.message, UNKNOWN_HINT) from None


def _info(store: RunStore, run: Any) -> RunInfo:
    row = runs_frame([run]).iloc[0].to_dict()
    try:
        names = frozenset(store.list_artifacts(run.info.run_id))
    except Exception as exc:  # noqa: BLE001 - an unreadable artifact store leaves the report without artifacts
        logger.warning("Artifacts of run %s could not be listed: %s", run.info.run_id, exc)
        names = frozenset()
    return RunInfo(run_id=run.info.run_id, row=row, tags=dict(run.data.tags), params=dict(run.data.params),
                   metrics=dict(run.data.metrics), artifacts=names)


def load(store: RunStore, run_ids: Sequence[str]) -> ReportData:
    """Read the runs ``run_ids`` names (each once, in order) and what their report needs.

    Raises StoreError (with a hint) for an id the store does not hold, ConfigError for no id or a run that GEPA
    Studio did not make."""
    ids = list(dict.fromkeys(str(r).strip() for r in run_ids if str(r).strip()))
    if not ids:
        raise ConfigError("Name at least one run to report on.", "E.g. python -m core report RUN_ID [RUN_ID ...]")
    infos: dict[str, RunInfo] = {}
    for run_id in ids:
        info = _info(store, _get(store, run_id))
        if not info.kind:
            raise ConfigError(f"Run {run_id} was not made by GEPA Studio (it has no {TAG}kind tag).",
                              "Report on baselines, evaluations and optimizations made by GEPA Studio.")
        infos[run_id] = info
    optimizations = []
    for info in infos.values():
        if info.kind == "optimization":
            optimizations.append(_with_evaluations(store, info, infos))
    evaluations = [info for info in infos.values() if info.kind in EVAL_KINDS]
    for opt in optimizations:
        seen = {e.run_id for e in evaluations}
        evaluations += [e for e in (opt.original, opt.optimized) if e is not None and e.run_id not in seen]
    every = {**infos, **{e.run_id: e for e in evaluations}}
    table = pd.DataFrame([i.row for i in every.values()]).reset_index(drop=True)
    return ReportData(runs=tuple(infos.values()), optimizations=tuple(optimizations), evaluations=tuple(evaluations),
                      table=table, given=frozenset(ids))


def _with_evaluations(store: RunStore, info: RunInfo, known: dict[str, RunInfo]) -> Optimization:
    original, optimized = linked_evaluations(info.run_id, info.tags, pd.DataFrame())
    if not (original and optimized):  # older runs: no tags, look for its child runs
        children = store.list_runs(kind="evaluation", task=info.row.get("task") or None)
        original, optimized = linked_evaluations(info.run_id, info.tags, children)

    def child(run_id: str | None) -> RunInfo | None:
        if not run_id:
            return None
        if run_id in known:
            return known[run_id]
        try:
            return _info(store, store.get_run(run_id))
        except StoreError as exc:  # a deleted child: the report says it has no test evaluation
            logger.warning("Evaluation %s of optimization %s is gone: %s", run_id, info.run_id, exc)
            return None

    return Optimization(info=info, original=child(original), optimized=child(optimized))


@dataclass
class Reader:
    """Reads runs' artifacts for one report, each once (the same records serve several verdicts)."""

    store: RunStore
    _seen: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    def artifact(self, info: RunInfo | None, name: str, how: str = "text", **kw: Any) -> Any:
        """The artifact ``name`` of a run read as ``how`` ("text", "json" or "csv"), or None when it has none."""
        if info is None or name not in info.artifacts:
            return None
        key = (info.run_id, name, how)
        if key not in self._seen:
            self._seen[key] = self._read(info.run_id, name, how, **kw)
        return self._seen[key]

    def _read(self, run_id: str, name: str, how: str, **kw: Any) -> Any:
        try:
            if how == "csv":
                return self.store.read_csv(run_id, name, **kw)
            if how == "json":
                return self.store.read_json(run_id, name)
            return self.store.read_text(run_id, name)
        except Exception as exc:  # noqa: BLE001 - one unreadable artifact leaves its view out, never the report
            logger.warning("Artifact %s of run %s could not be read: %s", name, run_id, exc)
            return None

    def records(self, info: RunInfo | None) -> pd.DataFrame | None:
        """A run's per-example records (``records.csv``), or None."""
        frame = self.artifact(info, "records.csv", "csv")
        return frame if frame is not None and not frame.empty else None

    def confusion(self, info: RunInfo) -> pd.DataFrame | None:
        """A run's confusion matrix as logged (gold rows, predicted columns), or None."""
        frame = self.artifact(info, "confusion.csv", "csv", index_col=0)
        return frame if frame is not None and not frame.empty else None


def evaluation_usage(*runs: RunInfo | None) -> dict[str, float] | None:
    """Calls, tokens and spend of an optimization's test evaluations together (the "test evaluation" role): its
    ``cost_usd`` is what they spent (``spent_usd``; cache hits are free), as every other role's is; runs older than
    ``spent_usd`` give their list-price cost."""
    present = [r for r in runs if r is not None]
    if not present:
        return None
    keys = {"calls": "lm_calls", "input_tokens": "input_tokens", "output_tokens": "output_tokens"}
    usage = {out: float(sum(r.metrics.get(key, 0.0) or 0.0 for r in present)) for out, key in keys.items()}
    usage["cost_usd"] = float(sum(r.metrics.get("spent_usd", r.metrics.get("cost_usd", 0.0)) or 0.0 for r in present))
    return usage
