"""The report over a task beyond classification: a real GEPA optimization of the shipped ``extract`` task (three text
outputs, token F1 each) against the stub of tests/stub_tasks.py, and a baseline of the stub's large model on the
same test examples as the break-even reference. The page names the metric where classification says accuracy, gives
the score with its interval, the verdict of a paired permutation test, each field's score and the examples whose
score changed most; it has no confusion matrix and no per-label F1.

Every number checked is computed here from the runs' own metrics and records, never typed."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from core.analytics import charts
from core.analytics.changed import changed_examples
from core.analytics.charts.scores import metric_name
from core.analytics.stats import break_even_predictions
from core.analytics.verdict import verdict
from core.report import build_report
from core.report.payback import score_trade_off
from core.tracking.store import RunStore
from tests.stub_tasks import task_stub

SAMPLE = (6, 6, 12)  # train, validation, test examples
BUDGET = 120  # metric calls: the stub's student climbs one hint per accepted proposal, well within it


def optimize_extract(store: RunStore, tmp: Path, base_url: str) -> dict[str, str]:
    """A GEPA optimization of ``extract`` (stub-small taught by stub-large) and a stub-large baseline on the same
    test split: their run ids (the optimization, its two test evaluations, the baseline)."""
    from core.evaluation.baseline import run_baselines
    from core.lm.models import openai_compatible
    from core.optimize import OptimizeConfig, run_optimization
    from core.tasks import SampleSpec, TaskRef

    small = openai_compatible("stub-small", "stub-small", base_url, input_price_per_m=1.0, output_price_per_m=4.0)
    # The reference costs more per prediction: the optimized student pays back after some predictions.
    large = openai_compatible("stub-large", "stub-large", base_url, input_price_per_m=30.0, output_price_per_m=60.0)
    ref, sample = TaskRef(kind="extract"), SampleSpec(*SAMPLE, seed=3)
    config = OptimizeConfig(task_ref=ref, sample=sample, student=small, reflection=large, auto=None,
                            max_metric_calls=BUDGET, threads=4, reflection_minibatch_size=3)
    result = run_optimization(config, store, log_dir=tmp / "gepa")
    assert result.status == "succeeded", result.error
    (baseline,) = run_baselines(store, ref, sample, [large], threads=4)
    return {"optimization": result.run_id, "original": result.original_eval_run_id,
            "optimized": result.optimized_eval_run_id, "reference": baseline.run_id}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-scores")
    with pytest.MonkeyPatch.context() as mp, task_stub() as stub:
        mp.setenv("GEPA_STUDIO_DATA_DIR", str(tmp / "studio"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'studio' / 'mlflow.db'}")
        mp.setenv("GEPA_STUDIO_SECRETS", str(tmp / "no-secrets.toml"))
        mp.setenv("GEPA_STUDIO_TRACES", "off")
        from core.config.settings import load_settings

        store = RunStore(load_settings().ensure())
        ids = optimize_extract(store, tmp, stub.base_url)
        page = build_report(store, [ids["optimization"], ids["reference"]])
        yield {"store": store, "ids": ids, "html": page}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _cells(row: list[str]) -> str:
    """A table row as the report writes it (escaped cells, tags between)."""
    return r"</td>\s*<td[^>]*>".join(re.escape(_esc(c)) for c in row)


def test_an_extract_optimization_is_reported_by_its_metric(world):
    store, ids, page = world["store"], world["ids"], world["html"]
    opt = store.get_run(ids["optimization"]).data
    tagged = opt.tags["studio.metric"]
    metric = metric_name(tagged)  # as screens name it
    assert "token F1" in tagged and opt.tags["studio.task_kind"] == "fields"
    assert "token F1" in metric
    section = page.split('id="evaluations"')[0]
    before, after = (store.get_run(ids[k]).data.metrics for k in ("original", "optimized"))
    # The headline: the score named by the metric, with its interval, and the accuracy (all answers right) beside it.
    assert f"<dt>Score ({_esc(metric)})</dt>" in section
    score = (f"{before['score']:.3f} (95 % CI {before['score_ci_low']:.3f}–{before['score_ci_high']:.3f}) → "
             f"{after['score']:.3f} (95 % CI {after['score_ci_low']:.3f}–{after['score_ci_high']:.3f})")
    assert f"<dd>{_esc(score)}</dd>" in section
    assert opt.metrics["optimized_test_score"] == pytest.approx(after["score"])
    assert f"{before['accuracy'] * 100:.1f}% → {after['accuracy'] * 100:.1f}%" in section
    assert before["score"] < after["score"] and 0 < before["partial"]  # the seed's answers are partly right

    # The verdict: a paired permutation test on the scores, in the sentence and the table.
    a, b = (store.read_csv(ids[k], "records.csv") for k in ("original", "optimized"))
    v = verdict(a, b, "the original stub-small · Predict", "Optimized stub-small · Predict", metric=metric)
    assert v.test == "paired permutation test" and metric in v.sentence
    assert f'<p class="verdict">{_esc(v.sentence)}</p>' in section
    assert f"{_esc(v.test)} p</th>" in section and f"mean {_esc(metric)} A</th>" in section
    assert "McNemar" not in section and "accuracy A</th>" not in section

    # Each output field's score, original and optimized, in the task's order.
    fields = ["drug", "dose", "condition"]
    rows = [[f, f"{before[f'score_field_{f}']:.3f}", f"{after[f'score_field_{f}']:.3f}",
             f"{after[f'score_field_{f}'] - before[f'score_field_{f}']:+.3f}".replace("-", "−")] for f in fields]
    assert "Score per output field" in section
    found = [re.search(_cells(r), section) for r in rows]
    assert all(found) and [m.start() for m in found] == sorted(m.start() for m in found)

    # The examples whose score changed most, largest first; no flipped-examples table.
    moved = changed_examples(a, b, 20)
    assert "Examples whose score changed most" in section and "went wrong → right" not in section
    top = moved.iloc[0]
    assert re.search(_cells([str(top["idx"]), f"{top['score_a']:.3f}", f"{top['score_b']:.3f}"]), section)

    # GEPA's own validation scores, named.
    assert f"Best validation score ({_esc(metric)})" in section


def test_no_confusion_matrix_and_the_evaluations_name_the_metric(world):
    store, ids, page = world["store"], world["ids"], world["html"]
    metric = metric_name(store.get_run(ids["optimization"]).data.tags["studio.metric"])
    assert "confusion.csv" not in store.list_artifacts(ids["original"])  # not classification: no label tables
    for absent in ("Confusion matrix", "F1 per label", "macro F1", "macro-F1"):
        assert absent not in page, absent
    evaluations = page.split('id="evaluations"')[1]
    assert f"score ({_esc(metric)})</th>" in evaluations and "all answers right</th>" in evaluations
    assert all(f"score: {f}</th>" in evaluations for f in ("drug", "dose", "condition"))
    assert "Accuracy by run" not in page and f"Score ({metric}) by run" in page
    reference = store.get_run(ids["reference"]).data.metrics
    assert f">{reference['score']:.3f}</td>" in evaluations


def test_the_break_even_compares_scores(world):
    store, ids, page = world["store"], world["ids"], world["html"]
    metric = metric_name(store.get_run(ids["optimization"]).data.tags["studio.metric"])
    ref, opt = (store.read_csv(ids[k], "records.csv") for k in ("reference", "optimized"))
    trade = score_trade_off(ref, opt, metric)
    assert trade["paired"] and trade["test"] == "paired permutation test"
    metrics = {k: store.get_run(ids[k]).data.metrics for k in ("optimization", "reference", "optimized")}
    breakeven = break_even_predictions(
        metrics["optimization"]["optimization_cost_usd"], metrics["reference"]["cost_per_1k"],
        metrics["optimized"]["cost_per_1k"])
    headline = charts.break_even_headline(breakeven, trade, metric)
    assert metric in headline and "accuracy" not in headline
    assert json.dumps(headline)[1:-1] in page
    assert json.dumps(charts.trade_off_detail(trade, metric))[1:-1] in page


def test_a_classification_chart_keeps_its_words():
    trade = {"diff": 0.1, "ci_low": 0.02, "ci_high": 0.2, "paired": True, "significant": True, "n": 30,
             "accuracy_reference": 0.5, "accuracy_optimized": 0.6, "p_value": 0.01}
    assert charts.break_even_headline(100.0, trade) == charts.break_even_headline(100.0, trade, "accuracy")
    assert "points higher accuracy (significant)" in charts.break_even_headline(100.0, trade)
    assert charts.trade_off_detail(trade).startswith("Reference 50.0% vs optimized 60.0% on the same 30 examples")
    assert "mean token F1 0.500 vs optimized 0.600" in charts.trade_off_detail(
        {**trade, "test": "paired permutation test"}, "token F1")
