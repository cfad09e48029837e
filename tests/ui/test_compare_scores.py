"""Compare and History for a task scored beyond classification (the shipped ``extract`` task: three text outputs, token
F1 each), seeded by real baselines and a real original/optimized pair against the task stub: the score named by its
metric on the charts, in the verdict (with its paired permutation test) and in History, the score per output field,
the examples whose score changed most with a word diff, and no confusion matrix; a classification pair keeps accuracy
and its confusion matrices."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace

import numpy as np
import pytest

from tests.stub_tasks import TASK_HINTS, task_stub
from tests.ui.conftest import _env, assert_clean, fresh_data_dir, open_page, texts, use_shared_store

FIELDS = ("drug", "dose", "condition")


@dataclass(frozen=True)
class Scored:
    data_dir: object
    baselines: dict[str, str]  # model -> run id
    optimization_id: str
    original_id: str
    optimized_id: str


def seed_extract(settings, base_url: str) -> Scored:
    """Baselines of stub-small and stub-large on ``extract`` (30 test examples), then an optimization whose optimized
    instruction teaches the student every hint (it then answers as stub-large does), evaluated on the same split."""
    from core.evaluation.baseline import EvalRun, run_baselines, run_evaluation
    from core.evaluation.evaluate import EvalOptions
    from core.lm.models import openai_compatible
    from core.program.program import get_instruction, make_program
    from core.tasks import TaskRef, prepare
    from core.tasks.task_file import read_task_file, shipped_task_files
    from core.tracking.store import TAG, RunStore

    store, ref = RunStore(settings), TaskRef(kind="extract")
    sample = read_task_file(shipped_task_files()["extract"]).sample_spec()
    specs = {name: openai_compatible(name, name, base_url, input_price_per_m=price, output_price_per_m=price * 4)
             for name, price in (("stub-small", 0.1), ("stub-large", 5.0))}
    outcomes = run_baselines(store, ref, sample, list(specs.values()), threads=4, cache=False)
    task, splits = prepare(ref, sample, settings)
    original = make_program(task)
    optimized = make_program(task, instruction=get_instruction(original) + "\n" + "\n".join(TASK_HINTS["extract"]))
    tags = store.get_run(outcomes[0].run_id).data.tags
    opt_id = store.start_run("optimization", task.name, run_name="GEPA · stub-small ← stub-large",
                             params={"budget": "light"},
                             tags={f"{TAG}model": "stub-small", f"{TAG}program": "gepa",
                                   f"{TAG}reflection_model": "stub-large", f"{TAG}metric": tags[f"{TAG}metric"]})
    run = EvalRun(kind="evaluation", parent_run_id=opt_id, sample=sample, task_ref=ref)
    how = EvalOptions(threads=4, cache=False)
    ids, results = {}, {}
    for label, program in (("original", original), ("optimized", optimized)):
        ids[label], results[label] = run_evaluation(store, task, specs["stub-small"], program, splits.test,
                                                    replace(run, program_label=label), how)
    store.log_metrics(opt_id, {"optimization_cost_usd": 0.05, "student_cost_usd": 0.01, "reflection_cost_usd": 0.04,
                               **{f"{p}_test_{m}": results[p].metrics[m] for p in ids for m in ("accuracy", "score")}})
    store.set_tags(opt_id, {f"{TAG}original_eval_run_id": ids["original"],
                            f"{TAG}optimized_eval_run_id": ids["optimized"]})
    store.end_run(opt_id)
    return Scored(settings.data_dir, {o.spec.name: o.run_id for o in outcomes}, opt_id, ids["original"],
                  ids["optimized"])


@pytest.fixture(scope="module")
def extract_store(tmp_path_factory, template_db) -> Scored:
    root = tmp_path_factory.mktemp("extract")
    data_dir = fresh_data_dir(root, template_db)
    with pytest.MonkeyPatch.context() as mp, task_stub() as stub:
        _env(mp, data_dir, root / "no-secrets.toml")
        from core.config.settings import load_settings

        return seed_extract(load_settings().ensure(), stub.base_url)


@pytest.fixture
def extract(extract_store, monkeypatch, tmp_path) -> Scored:
    use_shared_store(monkeypatch, extract_store.data_dir, tmp_path)
    return extract_store


def records(run_id: str):
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    return RunStore(load_settings().ensure()).read_csv(run_id, "records.csv")


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def title(spec: dict, part: str = "") -> str:
    layout = spec.get("layout", {})
    node = layout.get(part, {}).get("title", {}) if part else layout.get("title", {})
    return node.get("text", "") if isinstance(node, dict) else str(node)


def values(array) -> list[float]:
    """A figure's numbers, as plotly writes numpy arrays ({"dtype", "bdata"}: base64) or as a plain list."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def table_with(at, *columns: str):
    return next((f.value for f in at.dataframe if set(columns) <= set(f.value.columns)), None)


def test_compare_names_token_f1_and_compares_scores(extract):
    from core.analytics.changed import changed_examples
    from core.analytics.verdict import verdict

    at = open_page("pages/compare.py")
    assert_clean(at)
    assert at.selectbox(key="compare.task").value == "extract"
    specs = charts(at)
    bars = next(s for s in specs if title(s).startswith("Score (token F1) by run"))
    assert title(bars, "xaxis") == "Score (token F1) (%)"
    cost = next(s for s in specs if title(s).startswith("Score (token F1) vs cost"))
    assert title(cost, "yaxis") == "Score (token F1) (%)"
    assert not any("Accuracy" in title(s) or "Accuracy" in title(s, "xaxis") for s in specs)
    # The stub-small bar sits at its mean token F1 (the run's score), not at its accuracy (0: no example is perfect).
    small = records(extract.baselines["stub-small"])
    bar_x = {y: x for trace in bars["data"] if trace["type"] == "bar"
             for y, x in zip(trace["y"], values(trace["x"]), strict=True)}
    assert bar_x["stub-small · Predict"] == pytest.approx(small["score"].mean() * 100, abs=0.05)

    # Original vs optimized: both scores named, the verdict on the scores, its paired permutation test.
    shown = {m.label: m.value for m in at.metric}
    assert {"Score (token F1) before", "Score (token F1) after"} <= set(shown)
    paired = verdict(records(extract.original_id), records(extract.optimized_id), "the original program",
                     "The optimized program", metric="token F1")
    assert paired.test == "paired permutation test" and paired.accuracy_b == 1.0
    assert paired.sentence in texts(at, "info") and "token F1" in paired.sentence
    assert shown["paired permutation test p"] == ("< 0.001" if paired.p_value < 0.001 else f"{paired.p_value:.3f}")

    # The two runs side by side (the optimization's pair by default): the same verdict, scores per field, the
    # examples whose score changed most with both answers and a word diff; no confusion matrix, no F1 per class.
    assert (at.selectbox(key="compare.pair.a").value, at.selectbox(key="compare.pair.b").value) == (
        extract.original_id, extract.optimized_id)
    side = verdict(records(extract.original_id), records(extract.optimized_id), "stub-small · Predict",
                   "stub-small · Predict · optimized", metric="token F1")
    assert side.sentence in texts(at, "info") and "paired permutation test" in side.sentence
    fields = table_with(at, "run", *FIELDS)
    assert fields is not None and list(fields.columns) == ["run", *FIELDS]
    optimized_row = fields[fields["run"] == "stub-small · Predict · optimized"].iloc[0]
    assert [optimized_row[f] for f in FIELDS] == [100.0, 100.0, 100.0]
    changed = table_with(at, "predicted_a", "predicted_b", "change")
    expected = changed_examples(records(extract.original_id), records(extract.optimized_id))
    assert len(expected) == 10 and list(changed["idx"]) == list(expected["idx"])
    assert (changed["change"] > 0).all()  # the taught student only gains
    diff = [h.value for h in at.get("html") if "gs-diff" in h.value]
    assert diff and "<ins>" in diff[0]
    assert not any(title(s).startswith(("A: ", "B: ", "F1 per class")) for s in specs)
    assert not [s for s in specs if s["data"] and s["data"][0]["type"] == "heatmap"]
    assert any("confusion matrices are for classification" in c and "token F1" in c for c in texts(at, "caption"))
    assert any(title(s).startswith("Score (token F1) per example") for s in specs)  # the score distribution

    # Another example of the changed ones: its answers side by side.
    at.selectbox(key="compare.changed.pick").select(1).run()
    assert_clean(at)
    assert any(str(expected.loc[1, "predicted_b"]) in c for c in texts(at, "code"))


def test_history_shows_the_score_named_by_its_metric(extract):
    at = open_page("pages/history.py")
    assert_clean(at)
    table = table_with(at, "score", "test score", "accuracy")
    assert table is not None and "metric" not in table  # one metric: the column's name says it
    by_id = table.set_index("run_id")
    small = records(extract.baselines["stub-small"])["score"].mean()
    assert by_id.loc[extract.baselines["stub-small"], "score"] == pytest.approx(small)
    assert by_id.loc[extract.optimization_id, "test score"].endswith("→ 100.0%")
    at.selectbox(key="history.run").select(extract.optimization_id).run()
    assert_clean(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test Score (token F1)"] == by_id.loc[extract.optimization_id, "test score"]


def test_a_classification_pair_keeps_accuracy_and_its_confusion_matrices(seeded):
    at = open_page("pages/compare.py")
    assert_clean(at)
    specs = charts(at)
    assert title(specs[0]).startswith("Accuracy by run") and title(specs[0], "xaxis") == "Accuracy (%)"
    assert [title(s) for s in specs if title(s).startswith(("A: ", "B: "))] == [
        "A: stub-small · Predict", "B: stub-small · Predict · optimized"]
    assert {"Accuracy before", "Accuracy after"} <= {m.label for m in at.metric}
    assert not any("token F1" in title(s) or "Score" in title(s) for s in specs)
    assert table_with(at, "run", *FIELDS) is None and table_with(at, "predicted_a", "score_a") is None
    history = open_page("pages/history.py")
    assert "score" not in history.dataframe[0].value  # classification only: History as before


def test_charts_name_the_metric_and_never_mix_two():
    """Pure: the metric's screen name, a chart refusing runs of two metrics, the score distribution's bars."""
    import pandas as pd

    from core.analytics.charts import accuracy_bars
    from core.analytics.charts.scores import measure_title, metric_name, score_distribution
    from core.config.errors import ConfigError

    assert metric_name("weighted: drug token F1, dose token F1, condition token F1") == "token F1"
    assert metric_name("weighted: tags set F1, answer token F1") == "weighted: tags set F1, answer token F1"
    assert measure_title(None) == "Accuracy" and measure_title("judge: tone") == "Score (judge: tone)"
    runs = pd.DataFrame({"run_id": ["a", "b"], "label": ["m · Predict", "n · Predict"], "model": ["m", "n"],
                         "accuracy": [0.5, 0.2], "score": [0.5, 0.7], "metric": ["accuracy", "token F1"],
                         "n": [10, 10]})
    with pytest.raises(ConfigError, match="different metrics"):
        accuracy_bars(runs, "token F1")
    scores = pd.DataFrame({"run": ["a"] * 4 + ["b"] * 2, "score": [0.0, 0.55, 1.0, 1.0, 0.3, None]})
    fig = score_distribution(scores, "token F1")
    assert [t.type for t in fig.data] == ["histogram", "histogram"] and fig.layout.xaxis.title.text.startswith(
        "Score (token F1)")
    assert list(fig.data[0].x) == pytest.approx([0.0, 55.0, 100.0, 100.0])
    assert "n=1" in fig.data[1].name  # a missing score is no bar
    assert [t.type for t in score_distribution(scores, "token F1", "box").data] == ["box", "box"]
