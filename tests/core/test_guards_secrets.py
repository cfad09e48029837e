"""Guard on secrets: a provider that echoes the API key in its 401 body must not get the key into any file.

Bug guarded: the key scrubbing (``redact``) made a no-op. The stub answers every call with a 401 whose
message repeats the key it was sent, so an unscrubbed error text carries the key into the records, the
records CSV and the MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

from core.evaluation.baseline import run_baselines
from core.evaluation.evaluate import read_records
from core.lm.models import ModelSpec
from core.tasks import SampleSpec, TaskRef
from tests.scenario import write_csv
from tests.stub_server import Faults

SECRET = "sk-guard-planted-7f3a9c1e5d"


def files_holding(secret: str, *tops: Path) -> list[str]:
    hits = []
    for top in tops:
        for root, _, names in os.walk(top):
            hits += [str(Path(root, n)) for n in names if secret.encode() in Path(root, n).read_bytes()]
    return hits


def test_a_key_echoed_in_a_401_reaches_no_file(stub, store, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROVIDER_KEY", SECRET)
    stub.faults = Faults(echo_key_401=True)
    spec = ModelSpec("keyed", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="GUARD_PROVIDER_KEY",
                     num_retries=0, input_price_per_m=1.0, output_price_per_m=1.0)
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    outcomes = run_baselines(store, ref, SampleSpec(2, 0, 3), [spec], threads=2, cache=False)
    # The key really went out and the provider really sent it back.
    sent = stub.chat_requests()
    assert sent and all(r["headers"].get("Authorization") == f"Bearer {SECRET}" for r in sent)
    # Nowhere: not in mlflow.db (tags, params), the records (JSONL and CSV), any artifact, or DSPy's cache.
    assert files_holding(SECRET, settings.data_dir, Path(os.environ["DSPY_CACHEDIR"])) == []
    # The run failed with a message that names the failure, not the key, and left its records behind.
    assert outcomes[0].error and "auth" in outcomes[0].error and SECRET not in outcomes[0].error
    runs = store.list_runs(kind="baseline")
    assert list(runs["status"]) == ["FAILED"]
    run_id = runs["run_id"].iloc[0]
    assert SECRET not in store.get_run(run_id).data.tags.get("studio.error", "?")
    records = read_records(settings.data_dir / "runs" / run_id / "records.jsonl")
    assert len(records) >= 1 and set(records["error_kind"]) == {"auth"}
    assert "records.csv" in store.list_artifacts(run_id)
    assert (settings.data_dir / "mlflow.db").exists()
