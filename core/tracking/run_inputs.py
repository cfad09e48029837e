"""A run's inputs: each split it used, linked as an ``mlflow.data`` dataset (name, digest, schema, size), safely
when several runs log the same dataset at once; the params that describe each model it called (:func:`spec_params`)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.config.secrets import scrub
from core.lm.models import ModelSpec, resolve_price
from core.tasks import Task
from core.tracking.store import TAG, RunStore, data_lock

logger = logging.getLogger(__name__)

DATASETS_ERROR_TAG = f"{TAG}datasets_error"  # a run whose dataset inputs could not be linked says why
DATASET_ATTEMPTS, DATASET_RETRY_S, DATASET_LOCK_S = 4, 0.25, 60.0
DATASET_CONTEXTS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


def log_datasets(store: RunStore, run_id: str, splits: Mapping[str, pd.DataFrame | None], task: Task) -> bool:
    """Log each split (``train``, ``val``/``validation``, ``test``) as an ``mlflow.data`` dataset input of the run,
    with context train / validation / test: its name, digest, schema and size (not its rows). Never raises.

    Runs started together log the same dataset at once, and MLflow inserts a dataset it has not seen in each of
    them (``UNIQUE constraint failed: datasets``): a local store takes turns under a lock in the data dir, and any
    store is tried again once the other writer has committed. A link that still fails is not lost silently: the
    run gets tag ``studio.datasets_error``. Returns whether the datasets are linked."""
    error: BaseException | None = None
    for attempt in range(DATASET_ATTEMPTS):
        try:
            inputs = _dataset_inputs(splits, task)
            with _datasets_lock(store):
                if inputs:
                    store.client.log_inputs(run_id, datasets=inputs)
            return True
        except Exception as exc:  # noqa: BLE001 - the datasets are a record of the run, not the run
            error = exc
            time.sleep(DATASET_RETRY_S * (attempt + 1))
    message = scrub(str(error))[:500]
    logger.warning("could not log the datasets of run %s: %s", run_id, message)
    try:
        store.set_tags(run_id, {DATASETS_ERROR_TAG: f"its datasets could not be linked: {message}"})
    except Exception:  # noqa: BLE001 - the warning above says it
        logger.warning("could not tag run %s with its datasets' error", run_id)
    return False


def _dataset_inputs(splits: Mapping[str, pd.DataFrame | None], task: Task) -> list[Any]:
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for key, frame in splits.items():
        if frame is None or not len(frame):
            continue
        context = DATASET_CONTEXTS.get(key, key)
        columns = [c for c in task.columns if c in frame.columns]
        data = frame[columns].astype(str).reset_index(drop=True)
        dataset = mlflow.data.from_pandas(data, name=f"{task.name}-{context}", targets=task.label_column
                                          if task.label_column in columns else None)
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs


def _datasets_lock(store: RunStore) -> Any:
    """One writer of datasets at a time on a local store (processes and threads alike); a server serializes itself."""
    return data_lock(store.settings, "datasets", timeout=DATASET_LOCK_S) if store.is_local else contextlib.nullcontext()


def spec_params(spec: ModelSpec) -> dict[str, Any]:
    """Params that describe a model spec (names only: never a key value): what a run logs of each model."""
    price = resolve_price(spec)
    return {
        "model": spec.model, "model_name": spec.name, "provider": spec.provider, "api_base": spec.api_base,
        "temperature": spec.temperature, "max_tokens": spec.max_tokens, "reasoning_effort": spec.reasoning_effort,
        "timeout_s": spec.timeout_s, "num_retries": spec.num_retries,
        "price_input_per_m": price.input_per_m, "price_output_per_m": price.output_per_m, "price_source": price.source,
    }
