"""The run store: every baseline, evaluation and optimization is an MLflow run.

One experiment per task (``gepa-studio/<task>``). Runs carry ``studio.*`` tags (kind, task, model,
program, job), params (model, sample sizes, seed, program fingerprint), metrics (aggregates) and
artifacts (records CSV, program JSON, rendered prompt). Nothing secret is ever logged: specs name
their key variable, never its value.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

import pandas as pd

from core.errors import StoreError
from core.settings import Settings

logger = logging.getLogger(__name__)

RunKind = Literal["baseline", "evaluation", "optimization"]
EXPERIMENT_PREFIX = "gepa-studio/"
TAG = "studio."
RUN_COLUMNS = [
    "run_id", "run_name", "kind", "task", "model", "program", "status", "start_time", "end_time",
    "job_id", "parent_run_id", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1", "n",
    "cost_usd", "cost_per_1k", "p50_latency_s", "input_tokens", "output_tokens", "errors",
    "optimization_cost_usd", "student_cost_usd", "reflection_cost_usd", "best_val_score",
]


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


@dataclass
class RunStore:
    """A thin, thread-safe wrapper over ``MlflowClient`` (no global active run)."""

    settings: Settings

    def __post_init__(self) -> None:
        self.settings.ensure()
        self.client = _client(self.settings.tracking_uri)
        self._experiments: dict[str, str] = {}

    @property
    def is_local(self) -> bool:
        return self.settings.tracking_uri.startswith("sqlite:") or self.settings.tracking_uri.startswith("file:")

    def experiment_id(self, task_name: str) -> str:
        name = EXPERIMENT_PREFIX + task_name
        if name in self._experiments:
            return self._experiments[name]
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            location = (self.settings.artifact_root / task_name).as_uri() if self.is_local else None
            try:
                exp_id = self.client.create_experiment(name, artifact_location=location)
            except Exception:  # another process may have created it first
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
        self._experiments[name] = exp_id
        return exp_id

    # Writing ---------------------------------------------------------------------------------

    def start_run(
        self,
        kind: RunKind,
        task_name: str,
        *,
        run_name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        """Create a RUNNING run; return its id."""
        all_tags = {f"{TAG}kind": kind, f"{TAG}task": task_name, **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id(task_name), run_name=run_name, tags=all_tags)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items() if v is not None]
        if items:
            self.client.log_batch(run_id, params=items)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and v == v]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, str(v))

    def log_artifacts(self, run_id: str, files: dict[str, str | bytes | pd.DataFrame | dict | list]) -> None:
        """Log named artifacts: text, bytes, a DataFrame (CSV) or JSON-able data."""
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, content in files.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, pd.DataFrame):
                    content.to_csv(path, index=name.endswith("confusion.csv"))
                elif isinstance(content, bytes):
                    path.write_bytes(content)
                elif isinstance(content, str):
                    path.write_text(content, encoding="utf-8")
                else:
                    path.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
            self.client.log_artifacts(run_id, str(root))

    def end_run(self, run_id: str, status: Literal["FINISHED", "FAILED", "KILLED"] = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    # Reading ---------------------------------------------------------------------------------

    def experiments(self) -> list[Any]:
        from mlflow.entities import ViewType

        return [e for e in self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
                if e.name.startswith(EXPERIMENT_PREFIX)]

    def search(self, filter_string: str = "", max_results: int = 5000) -> list[Any]:
        ids = [e.experiment_id for e in self.experiments()]
        if not ids:
            return []
        runs: list[Any] = []
        token = None
        while len(runs) < max_results:
            page = self.client.search_runs(ids, filter_string=filter_string, max_results=min(1000, max_results),
                                           order_by=["attributes.start_time DESC"], page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
        return runs

    def list_runs(self, kind: RunKind | None = None, task: str | None = None, job_id: str | None = None,
                  max_results: int = 5000) -> pd.DataFrame:
        """One row per run (columns RUN_COLUMNS plus any other metric), newest first."""
        clauses = []
        if kind:
            clauses.append(f"tags.`{TAG}kind` = '{kind}'")
        if task:
            clauses.append(f"tags.`{TAG}task` = '{task}'")
        if job_id:
            clauses.append(f"tags.`{TAG}job_id` = '{job_id}'")
        return runs_frame(self.search(" and ".join(clauses), max_results))

    def get_run(self, run_id: str) -> Any:
        try:
            return self.client.get_run(run_id)
        except Exception as exc:
            raise StoreError(f"No run {run_id!r} in the store at {self.settings.tracking_uri}.") from exc

    def download(self, run_id: str, artifact: str, dst: str | Path) -> Path:
        try:
            return Path(self.client.download_artifacts(run_id, artifact, str(dst)))
        except Exception as exc:
            raise StoreError(f"Run {run_id} has no artifact {artifact!r}.") from exc

    def read_text(self, run_id: str, artifact: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            return self.download(run_id, artifact, tmp).read_text(encoding="utf-8")

    def read_json(self, run_id: str, artifact: str) -> Any:
        return json.loads(self.read_text(run_id, artifact))

    def read_csv(self, run_id: str, artifact: str, **kw: Any) -> pd.DataFrame:
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_csv(self.download(run_id, artifact, tmp), **kw)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [a.path for a in self.client.list_artifacts(run_id, path)]


def runs_frame(runs: Iterable[Any]) -> pd.DataFrame:
    rows = []
    for r in runs:
        tags = r.data.tags
        row: dict[str, Any] = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "kind": tags.get(f"{TAG}kind"),
            "task": tags.get(f"{TAG}task"),
            "model": tags.get(f"{TAG}model"),
            "program": tags.get(f"{TAG}program"),
            "status": r.info.status,
            "start_time": pd.to_datetime(r.info.start_time, unit="ms", utc=True) if r.info.start_time else pd.NaT,
            "end_time": pd.to_datetime(r.info.end_time, unit="ms", utc=True) if r.info.end_time else pd.NaT,
            "job_id": tags.get(f"{TAG}job_id"),
            "parent_run_id": tags.get("mlflow.parentRunId"),
        }
        row.update(r.data.metrics)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in RUN_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64" if col not in RUN_COLUMNS[:11] else "object")
    extra = [c for c in frame.columns if c not in RUN_COLUMNS]
    return frame[RUN_COLUMNS + extra]
