"""The original notebook's code path against ``python -m core reproduce-notebook``: same experiment, same stub.

A stub server (in this process) answers every call after 300 ms: stub-small is the student, stub-mid the larger
model, stub-large the frontier model, the judge and the reflection model (tests/core/test_notebook.py).

1. The notebook's own code: its per-label draw, its TextClassifier (dspy.Predict on its signature; max_tokens=25000,
   reasoning_effort="medium", cache=False), its sequential ``check_accuracy`` over the three models, its
   ``dspy.GEPA(reflection_minibatch_size=15, num_threads=16, seed=1, reflection_lm=...)`` with a small budget in place
   of auto="light", and ``check_accuracy`` of the compiled program. Its Databricks judge is a managed service: here
   both paths use GEPA Studio's judge feedback (core.program.metric, the reflection model judging) in GEPA, and exact
   match in the test evaluations.
2. ``reproduce-notebook`` with the same sizes, budget and stub (in this process; its data dir's MLflow store exists,
   as after any earlier use: creating it is timed apart).
Prints both wall times and the LM calls each made per model (they must match: the gain is concurrency, not less
work), then the speed-up last (target >= 4x on 2 cores).
Run: .venv/bin/python bench/notebook_flow.py
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import _common  # noqa: F401  (paths and environment)

BUDGET, LATENCY, TARGET = 60, 0.3, 4.0
TMP = Path(tempfile.mkdtemp(prefix="bench-notebook-"))
os.environ.update({"GEPA_STUDIO_DATA_DIR": str(TMP / "studio"), "GEPA_STUDIO_SECRETS": str(TMP / "none.toml"),
                   "MLFLOW_TRACKING_URI": f"sqlite:///{TMP / 'studio' / 'mlflow.db'}"})


def notebook_path(url: str, train_csv: Path, test_csv: Path) -> dict[str, float]:
    """The notebook's cells, in order (its accuracies, by name)."""
    import dspy
    import numpy as np
    import pandas as pd
    from pandas import StringDtype

    from core.presets.notebook import notebook_task
    from core.program.metric import make_metric
    from core.tasks import pubmed_task
    from tests.core.test_notebook import TextClassificationSignature

    def read(path: Path) -> pd.DataFrame:
        df = pd.read_csv(path)
        df.drop("description_cln", axis=1, inplace=True)
        return df.astype(StringDtype())

    train_df, test_df = read(train_csv), read(test_csv)
    train = pd.concat([group.sample(n=3, random_state=1) for _, group in train_df.groupby("target")])
    test = pd.concat([group.sample(n=10, random_state=1) for _, group in test_df.groupby("target")])
    train_dataset = [dspy.Example(**row).with_inputs("description") for row in train.to_dict(orient="records")]
    test_dataset = [dspy.Example(**row).with_inputs("description") for row in test.to_dict(orient="records")]

    class TextClassifier(dspy.Module):
        def __init__(self, lm_name: str) -> None:
            super().__init__()
            self.lm = dspy.LM(model=f"openai/{lm_name}", api_base=url, api_key="stub", max_tokens=25000, cache=False,
                              reasoning_effort="medium")
            self.generate_classification = dspy.Predict(TextClassificationSignature)

        def forward(self, description: str):
            with dspy.context(lm=self.lm):
                return self.generate_classification(description=description)

    def check_accuracy(classifier, test_data=test_dataset) -> float:
        return float(np.mean([int(classifier(description=ex["description"]).target == ex["target"])
                              for ex in test_data]))

    judge = dspy.LM("openai/stub-large", api_base=url, api_key="stub", max_tokens=25000, cache=False)
    metric = make_metric(notebook_task(pubmed_task()), "judge", judge_lm=judge)
    out = {name: check_accuracy(TextClassifier(name)) for name in ("stub-small", "stub-mid", "stub-large")}
    gepa = dspy.GEPA(metric=metric, max_metric_calls=BUDGET, reflection_minibatch_size=15,
                     reflection_lm=dspy.LM("openai/stub-large", api_base=url, api_key="stub", max_tokens=25000),
                     num_threads=16, seed=1)
    compiled = gepa.compile(TextClassifier("stub-small"), trainset=train_dataset)
    path = TMP / "compiled_gepa.json"
    compiled.save(str(path))
    text_classifier_gepa = TextClassifier("stub-small")
    text_classifier_gepa.load(str(path))
    out["stub-small optimized"] = check_accuracy(text_classifier_gepa)
    return out


def studio_path(url: str, train_csv: Path, test_csv: Path) -> int:
    from core.cli.main import main

    return main(["reproduce-notebook", "--student", f"openai/stub-small@{url}", "--large", f"openai/stub-mid@{url}",
                 "--frontier", f"openai/stub-large@{url}", "--reflection", f"openai/stub-large@{url}",
                 "--data", str(train_csv), "--test-data", str(test_csv), "--budget", str(BUDGET)])


def create_store() -> None:
    """What any earlier use of the data dir leaves: its MLflow store, created and migrated."""
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    RunStore(load_settings())


def calls(stub) -> Counter:
    return Counter(r["body"]["model"] for r in stub.chat_requests())


def main() -> None:
    import logging

    from tests.core.test_notebook import MODELS, notebook_responder, write_tables
    from tests.stub_server import StubLLMServer

    train_csv, test_csv = write_tables(TMP)
    with StubLLMServer(responder=notebook_responder, latency_s=LATENCY, models=MODELS) as stub:
        start = time.perf_counter()
        accuracies = notebook_path(stub.base_url, train_csv, test_csv)
        notebook_s, notebook_calls = time.perf_counter() - start, calls(stub)
        stub.reset()
        start = time.perf_counter()
        create_store()
        store_s = time.perf_counter() - start
        start = time.perf_counter()
        status = studio_path(stub.base_url, train_csv, test_csv)
        studio_s, studio_calls = time.perf_counter() - start, calls(stub)
    logging.shutdown()
    print(f"\nnotebook code path: {notebook_s:.1f} s, {sum(notebook_calls.values())} LM calls "
          f"{dict(sorted(notebook_calls.items()))}; accuracies {accuracies}")
    print(f"reproduce-notebook: {studio_s:.1f} s, {sum(studio_calls.values())} LM calls "
          f"{dict(sorted(studio_calls.items()))}; exit status {status}")
    print(f"(not counted: creating the data dir's MLflow store on first use, {store_s:.1f} s; the notebook's MLflow "
          "was there already)")
    print(f"call counts {'match' if notebook_calls == studio_calls else 'DIFFER'}; budget {BUDGET} metric calls, "
          f"{LATENCY * 1000:.0f} ms per call")
    print(f"speed-up of GEPA Studio over the notebook: {notebook_s / studio_s:.2f}x (target >= {TARGET:g}x)")


if __name__ == "__main__":
    main()
