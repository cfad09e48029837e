"""The Optimization and Prompts pages for tasks beyond classification, on real runs against the stub of
tests/stub_tasks.py: a GEPA optimization of the shipped ``extract`` task (one input, three outputs scored by token F1)
and baselines of ``qa`` (two inputs, context and question).

Optimization names the metric in its headline ("Score (…token F1…): 0.672 → 0.972") with the accuracy beside it,
gives the verdict of the paired permutation test and each output field's score; Prompts renders every input of a
several-input task, from a test example or typed in one box per input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.core.test_report_scores import optimize_extract
from tests.stub_tasks import task_stub
from tests.ui.conftest import _env, assert_clean, fresh_data_dir, open_page, texts, use_shared_store
from tests.ui.test_state_persist import with_url


@dataclass(frozen=True)
class Scored:
    data_dir: Path
    ids: dict[str, str]  # optimization, original, optimized, reference (extract); qa-small, qa-large (qa)


@pytest.fixture(scope="module")
def scored_store(tmp_path_factory, template_db) -> Scored:
    from core.config.settings import load_settings
    from core.evaluation.baseline import run_baselines
    from core.lm.models import openai_compatible
    from core.tasks import SampleSpec, TaskRef
    from core.tracking.store import RunStore

    root = tmp_path_factory.mktemp("scored")
    data_dir = fresh_data_dir(root, template_db)
    with pytest.MonkeyPatch.context() as mp, task_stub() as stub:
        _env(mp, data_dir, root / "no-secrets.toml")
        mp.setenv("GEPA_STUDIO_TRACES", "off")
        store = RunStore(load_settings().ensure())
        ids = optimize_extract(store, root, stub.base_url)
        specs = [openai_compatible(n, n, stub.base_url) for n in ("stub-small", "stub-large")]
        qa = run_baselines(store, TaskRef(kind="qa"), SampleSpec(2, 0, 4, seed=1), specs, threads=4)
    return Scored(data_dir, {**ids, "qa-small": qa[0].run_id, "qa-large": qa[1].run_id})


@pytest.fixture
def scored(scored_store, monkeypatch, tmp_path) -> Scored:
    use_shared_store(monkeypatch, scored_store.data_dir, tmp_path)
    return scored_store


def _run(run_id: str):
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    return RunStore(load_settings()).get_run(run_id).data


def test_the_optimization_page_names_the_metric_and_shows_each_field(scored):
    from core.analytics.verdict import verdict
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    ids = scored.ids
    from core.analytics.charts.scores import metric_name

    opt = _run(ids["optimization"])
    metric, m = metric_name(opt.tags["studio.metric"]), opt.metrics
    assert "token F1" in metric  # three outputs, each scored by token F1
    at = with_url("pages/optimization.py", run=ids["optimization"])
    assert_clean(at)
    header = next(t for t in texts(at, "markdown") if t.startswith("**stub-small** ← **stub-large**"))
    assert (f"Score ({metric}): {m['original_test_score']:.3f} → {m['optimized_test_score']:.3f} · all answers "
            f"right {m['original_test_accuracy'] * 100:.1f}% → {m['optimized_test_accuracy'] * 100:.1f}%") in header
    assert "test accuracy" not in header
    best = next(x for x in at.metric if x.label.startswith("Best validation score"))
    assert best.label == f"Best validation score ({metric})" and best.value == f"{m['best_val_score']:.3f}"

    # The verdict on the two test evaluations' scores: a paired permutation test, named by the metric.
    store = RunStore(load_settings())
    a, b = (store.read_csv(ids[k], "records.csv") for k in ("original", "optimized"))
    sentence = verdict(a, b, "the original stub-small · Predict", "Optimized stub-small · Predict",
                       metric=metric).sentence
    assert sentence in texts(at, "info") and "paired permutation test" in sentence

    # Each output field's score, original and optimized, in the task's order.
    fields = next(f.value for f in at.dataframe if "field" in f.value.columns)
    assert list(fields["field"]) == ["drug", "dose", "condition"]
    before, after = (_run(ids[k]).metrics for k in ("original", "optimized"))
    for row in fields.to_dict("records"):
        assert row["original"] == pytest.approx(before[f"score_field_{row['field']}"])
        assert row["optimized"] == pytest.approx(after[f"score_field_{row['field']}"])
        assert row["change"] == pytest.approx(row["optimized"] - row["original"])
    assert any(f"Score per output field** ({metric})" in t for t in texts(at, "markdown"))

    score_chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert score_chart["layout"]["yaxis"]["title"]["text"] == f"Validation score ({metric}, %)"
    links = [p.proto.label for p in at.get("page_link")]
    assert "Compare scores and cost" in links and "Compare accuracy and cost" not in links


def test_a_classification_optimization_keeps_its_accuracy(seeded):
    at = with_url("pages/optimization.py", run=seeded.optimization_id)
    assert_clean(at)
    header = next(t for t in texts(at, "markdown") if t.startswith("**stub-small** ← **stub-large**"))
    assert "test accuracy" in header and "Score (" not in header
    assert not [f for f in at.dataframe if "field" in f.value.columns]
    assert not any("Original → optimized" in s for s in texts(at, "subheader"))


def _prompt(at) -> str:
    return "\n".join(texts(at, "code"))


def test_prompts_show_every_input_of_a_several_input_task(scored):
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    ids = scored.ids
    records = RunStore(load_settings()).read_csv(ids["qa-large"], "records.csv")
    first = json.loads(str(records["text"].iloc[0]))
    # The optimization in view is the extract one: the programs picked stay (as after picking them on the page).
    at = open_page("pages/prompts.py", {"prompts.a": ids["qa-small"], "prompts.b": ids["qa-large"],
                                        "prompts.shown": ids["optimization"]})
    assert_clean(at)
    assert at.selectbox(key="prompts.b").value == ids["qa-large"]
    prompt = _prompt(at)
    assert f"[[ ## context ## ]]\n{first['context']}" in prompt
    assert f"[[ ## question ## ]]\n{first['question']}" in prompt
    assert '{"context"' not in prompt  # never the records cell, JSON and all, as the first input
    assert at.selectbox(key="prompts.example").options[0].startswith("#1: context: ")

    # Your own example: one box per input, each in its field.
    at.selectbox(key="prompts.example").select(-1).run()
    at.text_area(key="prompts.text.context").input("The lake is 40 metres deep.").run()
    at.text_area(key="prompts.text.question").input("How deep is the lake?").run()
    assert_clean(at)
    prompt = _prompt(at)
    assert "[[ ## context ## ]]\nThe lake is 40 metres deep." in prompt
    assert "[[ ## question ## ]]\nHow deep is the lake?" in prompt


def test_prompts_of_a_several_output_task_show_every_output(scored):
    ids = scored.ids
    at = open_page("pages/prompts.py", {"prompts.a": ids["original"], "prompts.b": ids["optimized"]})
    assert_clean(at)
    prompt = _prompt(at)
    for field in ("sentence", "drug", "dose", "condition"):
        assert f"[[ ## {field} ## ]]" in prompt, field
    at.selectbox(key="prompts.example").select(-1).run()
    assert at.text_area(key="prompts.text").placeholder == "one sentence from a clinical-trial report"
