"""Guards on cost accounting: every figure is checked against the stub SERVER's own usage numbers
(``count_tokens`` of the messages it received and of the reply it sent) times the price, never against the
code's own token counts. Each test fails under a plausible one-line bug named in its docstring."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from core.evaluation.evaluate import EvalOptions, evaluate
from core.lm.models import ModelSpec, Price, build_lm, resolve_price
from core.optimize.progress import CostMeter
from core.program.program import make_program, to_examples
from core.tasks import table_task
from tests.scenario import make_table
from tests.stub_server import count_tokens, field_value, keyword_classifier, last_user_text

# Input and output prices far apart, so a dropped or swapped term shows.
IN_PER_M, OUT_PER_M = 0.5, 7.0


class ServerLedger:
    """Wraps a stub responder and keeps the usage the server reports for each answer it sends."""

    def __init__(self, inner: Any = keyword_classifier) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> Any:
        reply = self.inner(model, messages, body)
        if isinstance(reply, str):
            with self._lock:  # the stub's usage: count_tokens of every message's content, and of the reply
                self.calls.append({
                    "model": model,
                    "sentence": field_value(last_user_text(messages), "description"),
                    "input": sum(count_tokens(str(m.get("content") or "")) for m in messages),
                    "output": count_tokens(reply),
                })
        return reply

    def tokens(self, model: str | None = None) -> tuple[int, int]:
        with self._lock:
            calls = [c for c in self.calls if model is None or c["model"] == model]
        return sum(c["input"] for c in calls), sum(c["output"] for c in calls)


def usd(input_tokens: int, output_tokens: int, in_per_m: float = IN_PER_M, out_per_m: float = OUT_PER_M) -> float:
    return (input_tokens * in_per_m + output_tokens * out_per_m) / 1e6


@pytest.fixture
def task_and_examples():
    df = make_table(4)
    task = table_task(df, text_column="description", label_column="target", name="scenario")
    return task, to_examples(df, task)


def priced(stub, **kw) -> ModelSpec:
    return ModelSpec("stub", "openai/stub-small", "openai-compatible", api_base=stub.base_url,
                     input_price_per_m=IN_PER_M, output_price_per_m=OUT_PER_M, **kw)


def test_record_cost_is_server_tokens_times_both_prices(stub, task_and_examples):
    """Bug guarded: output tokens dropped from cost (from the record's tokens or from its cost)."""
    task, examples = task_and_examples
    ledger = ServerLedger()
    stub.responder = ledger
    res = evaluate(make_program(task), priced(stub), examples, task, EvalOptions(threads=4, cache=False))
    server_in, server_out = ledger.tokens()
    assert len(ledger.calls) == 20 and server_out > 0
    m = res.metrics
    assert (m["input_tokens"], m["output_tokens"]) == (server_in, server_out)
    assert m["cost_usd"] == pytest.approx(usd(server_in, server_out), rel=1e-9)
    assert m["cost_per_1k"] == pytest.approx(usd(server_in, server_out) / 20 * 1000, rel=1e-9)
    assert m["spent_usd"] == pytest.approx(m["cost_usd"], rel=1e-9)  # nothing came from the cache
    # Example by example: each record costs what the server billed for its one call.
    by_sentence = {c["sentence"]: c for c in ledger.calls}
    for rec in res.records.itertuples():
        call = by_sentence[rec.text]
        assert (rec.input_tokens, rec.output_tokens) == (call["input"], call["output"])
        assert rec.cost_usd == pytest.approx(usd(call["input"], call["output"]), rel=1e-9)


def test_a_cached_rerun_reports_list_price_but_spends_nothing(stub, task_and_examples):
    """Bug guarded: cached calls given 0 tokens (a re-run looks free). A second identical evaluation with the
    cache on makes no call, yet reports the same tokens and cost at list price; only spent_usd is 0."""
    task, examples = task_and_examples
    ledger = ServerLedger()
    stub.responder = ledger
    spec = priced(stub, temperature=0.0)
    first = evaluate(make_program(task), spec, examples, task, EvalOptions(threads=4, cache=True))
    server_in, server_out = ledger.tokens()
    assert len(ledger.calls) == 20
    second = evaluate(make_program(task), spec, examples, task, EvalOptions(threads=4, cache=True))
    assert len(ledger.calls) == 20  # every answer came from the cache
    list_price = usd(server_in, server_out)
    for run, spent in ((first, list_price), (second, 0.0)):
        m = run.metrics
        assert (m["input_tokens"], m["output_tokens"]) == (server_in, server_out)
        assert m["cost_usd"] == pytest.approx(list_price, rel=1e-9)
        assert m["cost_per_1k"] == pytest.approx(list_price / 20 * 1000, rel=1e-9)
        assert m["spent_usd"] == pytest.approx(spent, abs=1e-15)
    assert second.metrics["cached"] == 20 and first.metrics["cached"] == 0
    assert second.records["cost_usd"].tolist() == pytest.approx(first.records["cost_usd"].tolist(), rel=1e-9)


def test_cost_meter_charges_input_and_output_at_their_own_prices(stub):
    """Bug guarded: the GEPA cost meter with input and output prices swapped (or a term dropped).
    Long prompts and one-word answers make the two prices' shares very different."""
    ledger = ServerLedger(lambda model, messages, body: "OK")
    stub.responder = ledger
    spec = ModelSpec("meter", "openai/stub-large", "openai-compatible", api_base=stub.base_url,
                     input_price_per_m=3.0, output_price_per_m=15.0)
    lm = build_lm(spec, cache=False)
    meter = CostMeter(lm, resolve_price(spec), base_usd=0.25)  # base: what earlier attempts spent
    for i in range(3):
        lm(f"Call {i}: " + "word " * (40 * (i + 1)))
        total = meter.update()
    server_in, server_out = ledger.tokens("stub-large")
    assert len(ledger.calls) == 3 and server_in > 10 * server_out
    assert (meter.input_tokens, meter.output_tokens) == (server_in, server_out)
    assert total == pytest.approx(0.25 + usd(server_in, server_out, 3.0, 15.0), rel=1e-9)
    assert meter.update() == total  # nothing new: nothing added


def test_cost_meter_charges_nothing_for_cache_hits(stub):
    """A cached answer was not paid for: the meter (which caps spending) adds nothing for it."""
    ledger = ServerLedger(lambda model, messages, body: "OK")
    stub.responder = ledger
    spec = ModelSpec("meter", "openai/stub-large", "openai-compatible", api_base=stub.base_url,
                     input_price_per_m=3.0, output_price_per_m=15.0, temperature=0.0)
    lm = build_lm(spec, cache=True)
    meter = CostMeter(lm, Price(3.0, 15.0, "user"))
    lm("the same question " * 20)
    paid = meter.update()
    lm("the same question " * 20)
    assert len(ledger.calls) == 1
    assert meter.update() == pytest.approx(paid) == pytest.approx(usd(*ledger.tokens(), 3.0, 15.0), rel=1e-9)
