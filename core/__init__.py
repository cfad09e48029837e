"""GEPA Studio's engine: tasks, models, evaluation, cost, the MLflow run store, GEPA jobs and charts.

Its rooms, bottom to top (a room imports only rooms below it; pyproject.toml's layers contract): config; lm, tasks;
analytics, program; tracking; evaluation; optimize; presets, ship, report; jobs; cli. Each room's ``__init__`` says
what it is for.

This is the one place that sets environment defaults, before DSPy, LiteLLM or MLflow load: LiteLLM uses its
bundled price map (no 5 s fetch at import), MLflow draws no progress bar per artifact read, and DSPy's response cache
lives in the data dir (``<data dir>/dspy-cache``) unless ``DSPY_CACHEDIR`` is set.
"""

import os as _os

if _os.environ.get("GEPA_STUDIO_ONLINE_PRICES", "").lower() not in ("1", "true", "yes"):
    _os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
_os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bar per artifact read
_os.environ.setdefault("MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE", "10000")  # 1000 drops traces of a busy run
_os.environ.setdefault(
    "DSPY_CACHEDIR",
    _os.path.join(_os.path.abspath(_os.environ.get("GEPA_STUDIO_DATA_DIR") or ".gepa-studio"), "dspy-cache"),
)
