"""The run store: every baseline, evaluation and optimization is an MLflow run.

One experiment per task (``gepa-studio/<task>``). Runs carry ``studio.*`` tags (kind, task, model,
program, job), params (model, sample sizes, seed, program fingerprint), metrics (aggregates) and
artifacts (records CSV, program JSON, rendered prompt). Nothing secret is ever logged: specs name
their key variable, never its value, and tags, params and text artifacts are scrubbed of key values
(``core.secrets``) on the way in.

Creating and migrating a SQLite store, and creating an experiment, happen under a file lock beside the
database (:func:`data_lock`): several processes opening a fresh data dir at once would otherwise race in
MLflow's first migration and can leave the file half-migrated for good.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import pandas as pd
from filelock import FileLock, Timeout

from core.errors import StoreError
from core.procs import pid_alive
from core.secrets import scrub
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
    "failed", "failure_rate", "degraded", "partial", "started_by",
]


LOCK_TIMEOUT_S = 300.0  # a first migration takes seconds; several queued processes take turns


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def lock_path(settings: Settings, name: str = "store") -> Path:
    """The lock file guarding ``name``: beside the SQLite database for the store, else in the data dir."""
    uri = settings.tracking_uri
    if name == "store" and uri.startswith("sqlite:///") and not uri.endswith(":memory:"):
        return Path(uri.removeprefix("sqlite:///")).with_suffix(".db.lock")
    return settings.data_dir / f".{name}.lock"


@contextmanager
def data_lock(settings: Settings, name: str = "store", timeout: float | None = None) -> Iterator[None]:
    """Hold the inter-process lock ``name`` of this data dir (``store``: the MLflow store's creation)."""
    timeout = LOCK_TIMEOUT_S if timeout is None else timeout
    path = lock_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout:
        raise StoreError(f"Another process has held {path} for {timeout:.0f} s.",
                         "Another GEPA Studio process is setting up this data dir; wait for it, or stop it.") from None


def open_client(settings: Settings) -> Any:
    """An MlflowClient whose store exists and is migrated: a local store is created under :func:`data_lock`."""
    uri = settings.tracking_uri
    if not uri.startswith(("sqlite:", "file:")):
        return _client(uri)  # a tracking server migrates its own database
    try:
        with data_lock(settings):
            client = _client(uri)  # MLflow builds its store here: creates or migrates the file
            client.search_experiments(max_results=1)
    except StoreError:
        raise
    except Exception as exc:  # any failure here means the store cannot be used: say so once
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise StoreError(
            f"The MLflow store at {uri} could not be opened: {first}",
            "If a crash left it half-created (e.g. 'table _alembic_tmp_experiments already exists'), move the file "
            "aside and run again; an older store is upgraded with `mlflow db upgrade <uri>`.",
        ) from exc
    return client


@dataclass
class RunStore:
    """A thin, thread-safe wrapper over ``MlflowClient`` (no global active run)."""

    settings: Settings
    started_by: str | None = None  # tagged on every run this store starts (who asked for it)

    def __post_init__(self) -> None:
        self.settings.ensure()
        self.client = open_client(self.settings)
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
            with data_lock(self.settings):  # two processes starting the first run of a task
                exp = self.client.get_experiment_by_name(name)
                exp_id = exp.experiment_id if exp else self.client.create_experiment(name, artifact_location=location)
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
        who = {f"{TAG}started_by": self.started_by} if self.started_by else {}
        all_tags = {f"{TAG}kind": kind, f"{TAG}task": task_name, **who,
                    **{k: scrub(str(v)) for k, v in (tags or {}).items()}}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id(task_name), run_name=run_name, tags=all_tags)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, scrub(str(v))[:6000]) for k, v in params.items() if v is not None]
        if items:
            self.client.log_batch(run_id, params=items)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and v == v]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set tags; values are scrubbed of key values (an error tag may quote a provider's answer)."""
        for k, v in tags.items():
            self.client.set_tag(run_id, k, scrub(str(v)))

    def log_artifacts(self, run_id: str, files: dict[str, str | bytes | pd.DataFrame | dict | list]) -> None:
        """Log named artifacts: text, bytes, a DataFrame (CSV) or JSON-able data."""
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, content in files.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, pd.DataFrame):
                    from core.export import neutralize_formulas  # people open these CSVs in spreadsheets

                    neutralize_formulas(content).to_csv(path, index=name.endswith("confusion.csv"))
                elif isinstance(content, bytes):
                    path.write_bytes(content)
                elif isinstance(content, str):
                    path.write_text(content, encoding="utf-8")
                else:
                    path.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
                if not isinstance(content, bytes):
                    _scrub_file(path)
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
        """A CSV artifact as written (formula cells neutralised for spreadsheets are read back as they were)."""
        from core.export import restore_formulas

        with tempfile.TemporaryDirectory() as tmp:
            return restore_formulas(pd.read_csv(self.download(run_id, artifact, tmp), **kw))

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [a.path for a in self.client.list_artifacts(run_id, path)]


def _scrub_file(path: Path) -> None:
    """Scrub key values out of a text file just written (one pass over the file, not one per cell)."""
    text = path.read_text(encoding="utf-8")
    clean = scrub(text)
    if clean != text:
        path.write_text(clean, encoding="utf-8")


def _process_gone(tags: dict[str, str]) -> bool:
    """The process a run's ``studio.pid``/``studio.host`` tags name, on this machine, has ended (or is a
    zombie, or its pid now belongs to another process). Runs of other machines are never judged."""
    import socket

    pid = tags.get(f"{TAG}pid", "")
    if not pid.isdigit() or tags.get(f"{TAG}host") != socket.gethostname():
        return False
    started = tags.get(f"{TAG}pid_started")
    return not pid_alive(int(pid), started or None)


def run_status(status: str, tags: dict[str, str]) -> str:
    """MLflow's status, except INTERRUPTED for a run killed or stopped before its end (tagged, or RUNNING in a
    process that is gone): it can be resumed."""
    if status == "KILLED" and tags.get(f"{TAG}state") == "interrupted":
        return "INTERRUPTED"
    if status == "RUNNING" and _process_gone(tags):
        return "INTERRUPTED"
    return status


def runs_frame(runs: Iterable[Any]) -> pd.DataFrame:
    """One row per run; ``status`` INTERRUPTED as :func:`run_status` says; ``degraded`` from its tag; ``partial``
    for a run that did not go through all its examples."""
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
            "status": run_status(r.info.status, tags),
            "start_time": r.info.start_time or None,  # ms; converted once for the whole column below
            "end_time": r.info.end_time or None,
            "job_id": tags.get(f"{TAG}job_id"),
            "started_by": tags.get(f"{TAG}started_by"),
            "parent_run_id": tags.get("mlflow.parentRunId"),
        }
        row.update(r.data.metrics)
        row["degraded"] = tags.get(f"{TAG}degraded") == "true"
        row["partial"] = row["status"] == "INTERRUPTED" or r.data.metrics.get("complete") == 0.0
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("start_time", "end_time"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(pd.to_numeric(frame[col], errors="coerce"), unit="ms", utc=True)
    for col in RUN_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64" if col not in RUN_COLUMNS[:11] else "object")
    extra = [c for c in frame.columns if c not in RUN_COLUMNS]
    return frame[RUN_COLUMNS + extra]
