"""The trace writer (core.tracking.trace_writer): traces written in batches, off the call's path, against a real
stub server and a real SQLite MLflow store. Counts per role for an evaluation and a GEPA run, the key scrub and a
tracing error that must not matter are in test_tracing.py (they run this writer too)."""

import json
import logging
import sqlite3
from collections import Counter

from core.evaluation.baseline import load_run_detail, resume_evaluation, run_baselines, run_dir
from core.lm.models import openai_compatible
from core.tasks import SampleSpec
from core.tracking import tracing
from tests.core import test_tracing

# as test_tracing.py has them: tracing on for every test here (autouse), the scenario task, and a run's traces
traces_on, ref, traces_of = test_tracing.traces_on, test_tracing.ref, test_tracing.traces_of


def test_traces_of_many_calls_reach_mlflow_in_batches_and_read_back_whole(stub, store, ref):
    spec = openai_compatible("small", "stub-small", stub.base_url, input_price_per_m=1.0, output_price_per_m=2.0)
    [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 6, seed=2), [spec], threads=6, cache=False)
    run_id, calls = outcome.run_id, int(outcome.result.metrics["lm_calls"])
    assert calls == 30 and tracing.trace_counts(store, run_id) == {"evaluation": calls}
    traces = traces_of(store, run_id)
    assert len({t.info.trace_id for t in traces}) == calls
    for t in traces:  # what MLflow's UI reads: the run link, the span, tokens and cost promoted to the trace
        assert t.info.trace_metadata["mlflow.sourceRun"] == run_id and t.info.state == "OK"
        assert t.info.request_preview and t.info.token_usage["total_tokens"] > 0
        [span] = t.data.spans
        assert span.span_type == "CHAT_MODEL" and span.outputs["outputs"]
    assert "traces_dropped" not in store.get_run(run_id).data.metrics


def test_a_resumed_run_does_not_trace_a_call_twice(stub, store, ref):
    """A kill after a flush wrote some calls' traces but before their records were saved: the resume makes those
    calls again (same requests); their traces are written once."""
    spec = openai_compatible("small", "stub-small", stub.base_url)
    [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 2, seed=5), [spec], threads=2, cache=False)
    run_id, calls = outcome.run_id, int(outcome.result.metrics["lm_calls"])
    assert tracing.trace_counts(store, run_id) == {"evaluation": calls} == {"evaluation": 10}
    records = run_dir(store, run_id) / "records.jsonl"
    kept = records.read_text().splitlines()[:4]  # the records of six examples were lost with the process
    records.write_text("\n".join(kept) + "\n")
    store.end_run(run_id, "KILLED")
    _, result = resume_evaluation(store, run_id)
    assert len(stub.chat_requests()) == 16  # the six examples were sent again
    assert result.metrics["n"] == 10 and tracing.trace_counts(store, run_id) == {"evaluation": 10}
    examples = Counter(t.info.tags["studio.example"] for t in traces_of(store, run_id))
    assert sorted(examples) == sorted(str(i) for i in load_run_detail(store, run_id)["records"]["idx"])
    assert set(examples.values()) == {1}


def test_a_store_that_refuses_traces_leaves_a_run_that_says_how_many(stub, store, ref, settings, caplog):
    db = sqlite3.connect(settings.data_dir / "mlflow.db")
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON trace_info BEGIN SELECT RAISE(ABORT, 'no more traces'); END")
    db.commit()
    db.close()
    spec = openai_compatible("small", "stub-small", stub.base_url)
    with caplog.at_level(logging.WARNING, logger="core.tracking.trace_writer"):
        [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 1), [spec], threads=2, cache=False)
    assert outcome.error is None and outcome.result.metrics["lm_calls"] == 5  # the run itself is whole
    run = store.get_run(outcome.run_id)
    assert run.info.status == "FINISHED" and tracing.trace_counts(store, outcome.run_id) == {}
    assert run.data.metrics["traces_dropped"] == 5
    assert run.data.tags["studio.traces_dropped"].startswith("could not write 5 traces of this run to MLflow")
    assert "no more traces" in run.data.tags["studio.traces_dropped"]
    assert [r for r in caplog.records if "MLflow traces of run" in r.getMessage()]


def test_trace_ids_follow_the_call():
    from core.tracking.trace_store import trace_ids

    first, again, other = trace_ids("run|evaluation|m|[...]#0"), trace_ids("run|evaluation|m|[...]#0"), trace_ids("x")
    assert first == again and first != other
    assert first[0].startswith("tr-") and len(first[0]) == 35 and len(first[1]) == 16
    json.dumps(first)


def test_the_configured_secrets_are_looked_up_once_a_batch_not_once_a_trace(stub, store, ref, monkeypatch):
    """Looking up every configured secret (the environment, secrets.toml, the catalog) cost more than the rest of a
    trace: the writer takes it once for a batch and scrubs each trace with it."""
    from core.tracking import trace_writer

    lookups: list[int] = []
    real = trace_writer.secret_values
    monkeypatch.setattr(trace_writer, "secret_values", lambda *a: lookups.append(1) or real(*a))
    spec = openai_compatible("small", "stub-small", stub.base_url)
    [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 6, seed=3), [spec], threads=6, cache=False)
    assert tracing.trace_counts(store, outcome.run_id) == {"evaluation": 30}
    assert 1 <= len(lookups) < 10  # a batch a second (or at the end), not 30
