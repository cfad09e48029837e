"""The run table read straight from MLflow's SQL tables (SQLite, PostgreSQL, MySQL), through MLflow's own
SQLAlchemy models: only the columns the table needs, in four queries.

MLflow's search builds an object for every param, tag and metric of every run (about 5 s per 1,000 studio runs
here, and offset paging makes the later pages slower); these queries take about 0.1 s per 1,000. A store that is
not a SQL store (a tracking server), or whose schema this code no longer matches, gets None: the caller then
pages through MLflow's search.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

BASE_COLUMNS = ["run_id", "run_name", "status", "start_time", "end_time"]


def _wide(rows: list[tuple[Any, ...]], nan_flag: bool = False) -> pd.DataFrame:
    """(run_id, key, value[, is_nan]) rows as one row per run (the index) and one column per key: floats when
    ``nan_flag`` (metrics, whose NaN MLflow stores as 0 plus the flag), else objects (None where missing)."""
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="run_id"))
    columns = np.array(rows, dtype=object)  # one pass in C (a zip over the rows takes twice as long)
    run_codes, run_ids = pd.factorize(columns[:, 0])
    key_codes, keys = pd.factorize(columns[:, 1])
    if nan_flag:
        values = columns[:, 2].astype("float64")
        values[columns[:, 3].astype(bool)] = np.nan
        table = np.full((len(run_ids), len(keys)), np.nan)
    else:
        values = columns[:, 2]
        table = np.full((len(run_ids), len(keys)), None, dtype=object)
    table[run_codes, key_codes] = values  # (run, key) is the tables' primary key: one value per cell
    return pd.DataFrame(table, index=pd.Index(run_ids, name="run_id"), columns=pd.Index(keys, dtype=object))


def read_summary(client: Any, experiment_ids: list[str], wanted: Mapping[str, str], tag_keys: Iterable[str],
                 param_keys: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """(runs, tags, metrics, params) of the active runs of ``experiment_ids`` whose tags have the ``wanted``
    values: runs with columns BASE_COLUMNS (times in ms), the others wide and indexed by run id (tags and params
    only the keys asked for, every latest metric). None when the store cannot be read so."""
    try:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from sqlalchemy import select
    except ImportError:
        return None
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if not isinstance(store, SqlAlchemyStore):
        return None
    where = [SqlRun.experiment_id.in_([int(i) for i in experiment_ids]), SqlRun.lifecycle_stage == "active",
             *(SqlRun.run_uuid.in_(select(SqlTag.run_uuid).where(SqlTag.key == k, SqlTag.value == v))
               for k, v in wanted.items())]

    def of_runs(model: Any, *columns: str, keys: Iterable[str] | None = None) -> Any:
        query = select(*(getattr(model, c) for c in columns)).join(SqlRun, SqlRun.run_uuid == model.run_uuid)
        return query.where(*where, *([model.key.in_(list(keys))] if keys is not None else []))

    queries = [
        select(SqlRun.run_uuid, SqlRun.name, SqlRun.status, SqlRun.start_time, SqlRun.end_time).where(*where),
        of_runs(SqlTag, "run_uuid", "key", "value", keys=tag_keys),
        of_runs(SqlLatestMetric, "run_uuid", "key", "value", "is_nan"),
        of_runs(SqlParam, "run_uuid", "key", "value", keys=param_keys),
    ]
    try:
        with store.ManagedSessionMaker() as session:
            conn = session.connection()
            cursor = conn.connection.cursor()  # plain tuples: SQLAlchemy's row objects cost more than the query
            results = []
            for query in queries:
                cursor.execute(str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})))
                results.append(cursor.fetchall())
            cursor.close()
    except Exception as exc:  # noqa: BLE001 - MLflow's schema moved on: its own search still works
        logger.warning("could not read the run table from SQL (%s); using MLflow's search", exc)
        return None
    base, tags, metrics, params = results
    return (pd.DataFrame.from_records(base, columns=BASE_COLUMNS), _wide(tags), _wide(metrics, nan_flag=True),
            _wide(params))
