"""The run store: every baseline, evaluation and optimization is an MLflow run.

One experiment per task (``<root>/<task>``, by default ``gepa-studio/<task>``: :mod:`core.tracking.experiments`
names and makes every experiment). Runs carry ``studio.*`` tags (kind, task, model,
program, job), params (model, sample sizes, seed, program fingerprint), metrics (aggregates) and
artifacts (records CSV, program JSON, rendered prompt). Nothing secret is ever logged: specs name
their key variable, never its value, and tags, params and text artifacts are scrubbed of key values
(``core.config.secrets``) on the way in.

Creating and migrating a SQLite store, and creating an experiment, happen under a file lock beside the
database (:func:`data_lock`): several processes opening a fresh data dir at once would otherwise race in
MLflow's first migration and can leave the file half-migrated for good.

A run or artifact the store lacks is a StoreError ("no run", "no artifact"); a store that cannot be reached is a
:class:`StoreUnreachable` naming the tracking URI, never read as "no run".
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping

import pandas as pd
from filelock import FileLock, Timeout

from core.config.errors import StoreError, StoreUnreachable, unreachable
from core.config.secrets import scrub
from core.config.settings import Settings
from core.tracking.experiments import ensure_experiment, experiment_name, task_experiments
from core.tracking.procs import pid_alive
from core.tracking.store_sql import read_summary

logger = logging.getLogger(__name__)

RunKind = Literal["baseline", "evaluation", "optimization"]
TAG = "studio."
RUN_COLUMNS = [
    "run_id", "run_name", "kind", "task", "model", "program", "module", "status", "stop_reason", "start_time",
    "end_time", "job_id", "parent_run_id", "reflection_model", "budget", "accuracy", "accuracy_ci_low",
    "accuracy_ci_high", "macro_f1", "n", "cost_usd", "cost_per_1k", "p50_latency_s", "input_tokens", "output_tokens",
    "errors", "optimization_cost_usd", "student_cost_usd", "reflection_cost_usd", "best_val_score", "failed",
    "failure_rate", "degraded", "partial", "started_by", "repeat_key", "seed", "optimizer", "sweep",
]
# Columns read from tags (and, for an optimization, its params); every other column is a metric or computed.
TAG_COLUMNS = {
    "kind": f"{TAG}kind", "task": f"{TAG}task", "model": f"{TAG}model", "program": f"{TAG}program",
    "module": f"{TAG}module", "stop_reason": f"{TAG}stop_reason", "job_id": f"{TAG}job_id",
    "parent_run_id": "mlflow.parentRunId", "reflection_model": f"{TAG}reflection_model",
    "started_by": f"{TAG}started_by", "repeat_key": f"{TAG}repeat_key",
    "optimizer": f"{TAG}optimizer",  # on an optimization's evaluations: the optimizer that made the pair
    "sweep": f"{TAG}sweep",  # the sweep job that queued the optimization (on it and its evaluations)
    "metric": f"{TAG}metric",  # what the run's score measures: accuracy, or a task's metric ("token F1")
}
STATE_TAGS = (f"{TAG}degraded", f"{TAG}state", f"{TAG}pid", f"{TAG}host", f"{TAG}pid_started")
SUMMARY_PARAMS = ("module", "budget", "reflection_model_name", "seed")  # an optimization's config, as params
TEXT_COLUMNS = {"run_id", "run_name", "status", "start_time", "end_time", "budget", *TAG_COLUMNS}


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
        name = experiment_name(self.settings, task_name)
        if name in self._experiments:
            return self._experiments[name]
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            location = (self.settings.artifact_root / task_name).as_uri() if self.is_local else None
            with data_lock(self.settings):  # two processes of this machine starting the first run of a task
                exp_id = ensure_experiment(self.client, self.settings, name, location)  # or a Ray worker's
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
                    from core.analytics.export import neutralize_formulas  # people open these CSVs in spreadsheets

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
        """The experiments of the tasks under the settings' root (never the Ray jobs' mailbox)."""
        return task_experiments(self.client, self.settings)

    def search(self, filter_string: str = "", max_results: int | None = None) -> list[Any]:
        """Runs of every studio experiment matching ``filter_string``, newest first: all of them, page after page
        (MLflow's largest page), unless ``max_results`` says how many."""
        from mlflow.store.tracking import SEARCH_MAX_RESULTS_THRESHOLD

        ids = [e.experiment_id for e in self.experiments()]
        runs: list[Any] = []
        token = None
        while ids and (max_results is None or len(runs) < max_results):
            size = SEARCH_MAX_RESULTS_THRESHOLD if max_results is None else min(SEARCH_MAX_RESULTS_THRESHOLD,
                                                                                max_results - len(runs))
            page = self.client.search_runs(ids, filter_string=filter_string, max_results=size,
                                           order_by=["attributes.start_time DESC"], page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
        return runs

    def list_runs(self, kind: RunKind | None = None, task: str | None = None, job_id: str | None = None,
                  max_results: int | None = None) -> pd.DataFrame:
        """One row per run (columns RUN_COLUMNS plus any other metric), newest first: every run unless
        ``max_results`` says how many.

        A SQL store (SQLite, PostgreSQL, MySQL) is read in four queries of the columns the table needs (MLflow's
        own search builds every param, tag and metric of every run: ~5 s per 1,000 runs); a tracking server is
        paged through with MLflow's search."""
        wanted = {f"{TAG}kind": kind, f"{TAG}task": task, f"{TAG}job_id": job_id}
        wanted = {k: v for k, v in wanted.items() if v}
        ids = [e.experiment_id for e in self.experiments()]
        pieces = read_summary(self.client, ids, wanted, [*TAG_COLUMNS.values(), *STATE_TAGS], SUMMARY_PARAMS)
        if pieces is None:
            clauses = " and ".join(f"tags.`{k}` = '{v}'" for k, v in wanted.items())
            return runs_frame(self.search(clauses, max_results))
        frame = _frame(*pieces)
        return frame if max_results is None else frame.head(max_results)

    def get_run(self, run_id: str) -> Any:
        """The MLflow run; StoreError when the store has no such run, StoreUnreachable when it cannot be asked."""
        try:
            return self.client.get_run(run_id)
        except Exception as exc:
            self._raise_if_unreachable(exc)
            raise StoreError(f"No run {run_id!r} in the store at {self.settings.tracking_uri}.") from exc

    def download(self, run_id: str, artifact: str, dst: str | Path) -> Path:
        """An artifact, downloaded; StoreError when the run lacks it, StoreUnreachable when the store cannot be
        asked."""
        try:
            return Path(self.client.download_artifacts(run_id, artifact, str(dst)))
        except Exception as exc:
            self._raise_if_unreachable(exc)
            raise StoreError(f"Run {run_id} has no artifact {artifact!r}.") from exc

    def _raise_if_unreachable(self, exc: BaseException) -> None:
        if unreachable(exc):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise StoreUnreachable(
                f"The MLflow tracking server at {self.settings.tracking_uri} cannot be reached: {first}",
                "Check that it is running and that MLFLOW_TRACKING_URI names it; nothing was read.") from exc

    def read_text(self, run_id: str, artifact: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            return self.download(run_id, artifact, tmp).read_text(encoding="utf-8")

    def read_json(self, run_id: str, artifact: str) -> Any:
        return json.loads(self.read_text(run_id, artifact))

    def read_csv(self, run_id: str, artifact: str, **kw: Any) -> pd.DataFrame:
        """A CSV artifact as written (formula cells neutralised for spreadsheets are read back as they were)."""
        from core.analytics.export import restore_formulas

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


def _process_gone(tags: Mapping[str, Any]) -> bool:
    """The process a run's ``studio.pid``/``studio.host`` tags name, on this machine, has ended (or is a
    zombie, or its pid now belongs to another process). Runs of other machines are never judged."""
    import socket

    pid = str(tags.get(f"{TAG}pid") or "")
    if not pid.isdigit() or tags.get(f"{TAG}host") != socket.gethostname():
        return False
    started = tags.get(f"{TAG}pid_started")
    return not pid_alive(int(pid), started if isinstance(started, str) and started else None)


def run_status(status: str, tags: Mapping[str, Any]) -> str:
    """MLflow's status, except INTERRUPTED for a run killed or stopped before its end (tagged, or RUNNING in a
    process that is gone): it can be resumed."""
    if status == "KILLED" and tags.get(f"{TAG}state") == "interrupted":
        return "INTERRUPTED"
    if status == "RUNNING" and _process_gone(tags):
        return "INTERRUPTED"
    return status


def runs_frame(runs: Iterable[Any]) -> pd.DataFrame:
    """One row per MLflow run, as :meth:`RunStore.list_runs` returns them."""
    runs = list(runs)
    base = pd.DataFrame([(r.info.run_id, r.info.run_name, r.info.status, r.info.start_time, r.info.end_time)
                         for r in runs], columns=["run_id", "run_name", "status", "start_time", "end_time"])
    keys = [*TAG_COLUMNS.values(), *STATE_TAGS]
    index = pd.Index(base["run_id"])
    tags = pd.DataFrame([{k: r.data.tags.get(k) for k in keys} for r in runs], index=index, columns=keys)
    params = pd.DataFrame([{k: r.data.params.get(k) for k in SUMMARY_PARAMS} for r in runs], index=index,
                          columns=list(SUMMARY_PARAMS))
    return _frame(base, tags, pd.DataFrame([r.data.metrics for r in runs], index=index), params)


def _frame(base: pd.DataFrame, tags: pd.DataFrame, metrics: pd.DataFrame, params: pd.DataFrame) -> pd.DataFrame:
    """The run table from run infos and wide tags, metrics and params (indexed by run id), newest first.

    ``status`` reads INTERRUPTED as :func:`run_status` says; ``module`` is the program kind (runs older than the tag
    read "predict"); ``degraded`` from its tag; ``partial`` for a run that did not go through all its examples."""
    base = base.set_index(pd.Index(base["run_id"].astype(str), name=None))
    tags = tags.reindex(index=base.index, columns=[*TAG_COLUMNS.values(), *STATE_TAGS])
    params = params.reindex(index=base.index, columns=list(SUMMARY_PARAMS))
    frame = pd.DataFrame({"run_id": base.index, "run_name": base["run_name"]}, index=base.index)
    for col, key in TAG_COLUMNS.items():
        frame[col] = tags[key].astype(object)
    frame["module"] = frame["module"].fillna(params["module"]).fillna("predict")
    frame["reflection_model"] = frame["reflection_model"].fillna(params["reflection_model_name"])
    frame["budget"] = params["budget"].astype(object)
    frame["seed"] = pd.to_numeric(params["seed"], errors="coerce").astype("float64")  # the optimizer's seed
    frame["stop_reason"] = frame["stop_reason"].fillna("")
    for col in [*TAG_COLUMNS, "budget"]:
        frame[col] = frame[col].where(frame[col].notna(), None)  # missing text is None, as MLflow's tags.get says
    status = base["status"].astype(object).copy()
    status[(status == "KILLED") & (tags[f"{TAG}state"] == "interrupted")] = "INTERRUPTED"
    for rid in status.index[(status == "RUNNING") & tags[f"{TAG}pid"].notna()]:  # few: ask each process
        if _process_gone(tags.loc[rid].to_dict()):
            status[rid] = "INTERRUPTED"
    frame["status"] = status
    for col in ("start_time", "end_time"):
        ms = pd.to_numeric(base[col], errors="coerce")
        frame[col] = pd.to_datetime(ms.where(ms > 0), unit="ms", utc=True)  # 0: never set
    metrics = metrics.reindex(index=base.index)
    frame = frame.join(metrics[[c for c in metrics.columns if c not in frame.columns]].astype("float64"))
    frame["degraded"] = (tags[f"{TAG}degraded"] == "true").astype(bool)
    complete = frame["complete"] if "complete" in frame else pd.Series(float("nan"), index=frame.index)
    frame["partial"] = (frame["status"] == "INTERRUPTED") | (complete == 0.0)
    for col in RUN_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="object" if col in TEXT_COLUMNS else "float64", index=frame.index)
    frame = frame.rename_axis(None).sort_values(["start_time", "run_id"], ascending=[False, True], kind="stable",
                                                na_position="last")
    return frame[RUN_COLUMNS + sorted(c for c in frame.columns if c not in RUN_COLUMNS)].reset_index(drop=True)
