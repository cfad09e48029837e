"""Evaluation over real HTTP to the stub server: records, cost accounting, failures, resume, cache."""

import pytest

from core.config.errors import ProviderError
from core.evaluation.evaluate import EvalOptions, evaluate, read_records
from core.lm.models import ModelSpec, openai_compatible
from core.program.program import make_program, to_examples
from core.tasks import table_task
from tests.scenario import make_table
from tests.stub_server import StubError, chat_answer, count_tokens, field_value, keyword_classifier, last_user_text


@pytest.fixture
def task_and_examples():
    df = make_table(4)
    task = table_task(df, text_column="description", label_column="target", name="scenario")
    return task, to_examples(df, task)


def priced(stub, **kw):
    return ModelSpec("stub", "openai/stub-small", "openai-compatible", api_base=stub.base_url,
                     input_price_per_m=0.5, output_price_per_m=2.0, **kw)


def test_accuracy_records_and_exact_cost(stub, task_and_examples):
    task, examples = task_and_examples
    res = evaluate(make_program(task), priced(stub), examples, task, EvalOptions(threads=4, cache=False))
    m = res.metrics
    assert m["n"] == 20 and m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert 0.8 < m["accuracy_ci_low"] < 1.0 and m["accuracy_ci_high"] == 1.0
    # Tokens are what the server reported for the calls it answered; cost = tokens x price exactly.
    sent = stub.chat_requests()
    assert len(sent) == 20 and m["lm_calls"] == 20
    server_in = sum(sum(count_tokens(str(x["content"])) for x in r["body"]["messages"]) for r in sent)
    assert m["input_tokens"] == server_in
    expected = (m["input_tokens"] * 0.5 + m["output_tokens"] * 2.0) / 1e6
    assert m["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert m["cost_per_1k"] == pytest.approx(expected / 20 * 1000, rel=1e-12)
    for rec in res.records.itertuples():
        assert rec.cost_usd == pytest.approx((rec.input_tokens * 0.5 + rec.output_tokens * 2.0) / 1e6, rel=1e-12)
    assert set(res.per_label["label"]) == set(task.labels)
    assert m["p95_latency_s"] >= m["p50_latency_s"] > 0


def test_failures_are_failed_outcomes_with_kinds_not_wrong_answers(stub, task_and_examples):
    task, examples = task_and_examples

    def flaky(model, messages, body):
        sentence = field_value(last_user_text(messages), "description")
        if "cohort 2 " in sentence:
            return StubError(500, "upstream exploded")
        if "group 3" in sentence:
            return "I am not sure, maybe it is a result?"
        return keyword_classifier(model, messages, body)

    stub.responder = flaky
    res = evaluate(make_program(task), priced(stub, num_retries=0), examples, task, EvalOptions(threads=4, cache=False))
    recs = res.records.set_index("text")
    server_err = recs.loc["Patients in cohort 2 were randomized to drug B or placebo."]
    assert not server_err["correct"] and "upstream exploded" in server_err["error"]
    assert (server_err["outcome"], server_err["error_kind"]) == ("failed", "server_error")
    parse = recs[recs.index.str.contains("group 3")]
    assert len(parse) == 2 and (parse["error_kind"] == "parse").all() and (parse["outcome"] == "failed").all()
    assert parse["raw_output"].str.contains("maybe it is a result").all()
    assert (recs.drop(parse.index).drop(server_err.name)["outcome"] == "correct").all()
    m = res.metrics
    assert (m["failed"], m["failed_parse"], m["failed_server_error"], m["answered"]) == (3, 2, 1, 17)
    assert m["accuracy"] == pytest.approx(17 / 20) and m["failure_rate"] == pytest.approx(3 / 20)
    assert m["accuracy_answered"] == 1.0 and m["failed_timeout"] == 0


def test_systemic_failure_raises_a_provider_error(stub, task_and_examples):
    task, examples = task_and_examples
    with pytest.raises(ProviderError, match="the first 3 calls all failed") as err:
        evaluate(make_program(task), openai_compatible("x", "no-such-model", stub.base_url), examples, task,
                 EvalOptions(threads=2, cache=False))
    assert err.value.kind == "not_found"


def test_records_stream_to_disk_and_resume_skips_done(stub, task_and_examples, tmp_path):
    task, examples = task_and_examples
    path = tmp_path / "records.jsonl"
    seen = []

    def stop_after_8():
        return len(seen) >= 8

    part = evaluate(make_program(task), priced(stub), examples, task,
                    EvalOptions(threads=1, cache=False, records_path=path,
                    on_record=lambda d, t, r: seen.append(r.idx), should_stop=stop_after_8))
    assert part.metrics["complete"] == 0.0 and len(read_records(path)) == len(part.records) >= 8
    with open(path, "a") as fh:
        fh.write('{"idx": 99, "text": "torn li')  # a killed process can leave half a line
    stub.reset()
    full = evaluate(make_program(task), priced(stub), examples, task,
                    EvalOptions(threads=4, cache=False, records_path=path,
                    resume=True))
    assert full.metrics["complete"] == 1.0 and full.metrics["n"] == 20
    assert len(stub.chat_requests()) == 20 - len(part.records)
    assert sorted(full.records["idx"]) == list(range(20))


def test_repeat_hits_the_cache_and_spends_nothing(stub, task_and_examples):
    task, examples = task_and_examples
    spec = priced(stub, temperature=0.0)
    first = evaluate(make_program(task), spec, examples, task, EvalOptions(threads=4, cache=True))
    calls = len(stub.chat_requests())
    second = evaluate(make_program(task), spec, examples, task, EvalOptions(threads=4, cache=True))
    assert len(stub.chat_requests()) == calls  # 0 new LM calls
    assert second.metrics["cached"] == 20 and second.metrics["spent_usd"] == 0.0
    assert second.metrics["accuracy"] == first.metrics["accuracy"]
    off = evaluate(make_program(task), spec, examples, task, EvalOptions(threads=4, cache=False))
    assert len(stub.chat_requests()) == calls + 20 and off.metrics["cached"] == 0


def test_answer_not_a_label_is_recorded(stub, task_and_examples):
    task, examples = task_and_examples
    stub.responder = lambda model, messages, body: chat_answer("target", "SUMMARY")
    res = evaluate(make_program(task), priced(stub, num_retries=0), examples[:3], task,
                   EvalOptions(threads=1, cache=False))
    assert res.metrics["accuracy"] == 0.0 and (res.records["error_kind"] == "parse").all()
    assert res.records["raw_output"].str.contains("SUMMARY").all()
