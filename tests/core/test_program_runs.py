"""Your own DSPy program run as a user runs it (#24): the two example programs over HTTP against the stub, baselines
and GEPA (round robin and all) through the CLI and its worker process, the per-predictor record checked against
GEPA's own ``detailed_results``, and the refusals: a program that raises on some examples, a file changed after
the run was planned, a program input no column feeds, a metric GEPA could not call."""

import json
import shutil
from pathlib import Path

import pytest

from core.cli.main import build_parser
from core.cli.task_args import sample_spec, task_ref
from core.config.errors import ConfigError
from core.evaluation.baseline import run_baselines
from core.lm.models import openai_compatible
from core.program.user_program import describe
from core.tracking.store import RunStore
from core.tracking.tracing import predictor_calls
from tests.core.test_cli import run_cli
from tests.stub_programs import program_stub

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "programs" / "extract_then_classify.py"
QA = ROOT / "examples" / "programs" / "context_qa.py"
DEMO = ROOT / "core" / "demo_data" / "demo_sentences.csv"
MAPPED = ["--input-columns", "sentence=description", "--output-columns", "label=target:label"]


@pytest.fixture
def pstub():
    with program_stub() as server:
        yield server


def pipeline_args(program: Path = EXAMPLE, *extra: str) -> list[str]:
    return ["--task", str(DEMO), "--program", f"{program}:make_program", "--metric", f"{program}:metric", *MAPPED,
            "--train-per-label", "3", "--val-per-label", "2", "--test-per-label", "4", *extra]


def in_process(command: str, args: list[str], stub) -> tuple:
    """(task reference, sample, the student's spec) as the CLI builds them for ``args``."""
    parsed = build_parser().parse_args([command, *args, "--models", "x"] if command == "baseline" else
                                       [command, *args])
    return task_ref(parsed), sample_spec(parsed), openai_compatible("stub-small", "stub-small", stub.base_url)


def artifacts(store: RunStore, run_id: str) -> dict:
    return {name: store.read_json(run_id, name) for name in ("instructions.json", "search.json",
                                                             "detailed_results.json")}


@pytest.mark.slow
@pytest.mark.parametrize("selector", ["round_robin", "all"])
def test_gepa_optimizes_a_two_predictor_program_and_records_which_predictor_changed(pstub, settings, selector):
    url = pstub.base_url
    out = run_cli("optimize", *pipeline_args(), "--student", f"openai/stub-small@{url}", "--reflection",
                  f"openai/stub-large@{url}", "--budget", "150", "--component-selector", selector)
    assert out.returncode == 0, out.stderr[-3000:]
    store = RunStore(settings)
    runs = store.list_runs(kind="optimization")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    run = store.get_run(runs.iloc[0]["run_id"])
    tags = run.data.tags
    info = describe(f"{EXAMPLE}:make_program")
    assert tags["studio.module"] == "program" and tags["studio.program_identity"] == info.identity
    assert tags["studio.predictors"] == "extract.predict, classify"
    assert json.loads(store.read_json(run.info.run_id, "config.json")["task_ref"]["fields"])["program_sha"] == \
        info.file_sha256
    got = artifacts(store, run.info.run_id)
    # The studio's record of every candidate is GEPA's own, predictor by predictor.
    search, detailed = got["search.json"], got["detailed_results.json"]
    assert search["components"] == ["extract.predict", "classify"]
    assert [c["instructions"] for c in search["candidates"]] == detailed["candidates"]
    assert [c["parents"] for c in search["candidates"]] == [[p for p in ps if p is not None]
                                                            for ps in detailed["parents"]]
    # Each proposal rewrote one predictor in turn (round robin) or both (all).
    rewrote = [sorted(p["instructions"]) for p in search["proposals"] if p.get("instructions")]
    if selector == "round_robin":
        assert {len(r) for r in rewrote} == {1} and {r[0] for r in rewrote} == {"extract.predict", "classify"}
    else:
        assert rewrote and all(r == ["classify", "extract.predict"] for r in rewrote)
    # Only the classifier reads its hints: GEPA kept the classify rewrite.
    changed = got["instructions.json"]["predictors"]
    assert changed["classify"]["changed"] and "Label as" in changed["classify"]["optimized"]
    assert "test score" in out.stdout and "original 0.200 ->" in out.stdout
    evals = store.list_runs(kind="evaluation")
    scores = dict(zip(evals["program"], evals["score"], strict=True))
    assert scores["optimized"] > scores["original"]
    if selector == "all":  # the whole optimized program, shipped and loaded as MLflow serves it
        _exported_program_answers(store, evals)


def _exported_program_answers(store: RunStore, evals) -> None:
    import mlflow
    import pandas as pd

    from core.ship.register import export_model

    optimized = evals[evals["program"] == "optimized"].iloc[0]["run_id"]
    model = mlflow.pyfunc.load_model(export_model(store, optimized).uri)
    assert [c.name for c in model.metadata.get_input_schema().inputs] == ["sentence"]
    got = model.predict(pd.DataFrame([{"sentence": "We conclude that the programme should be offered to all."}]))
    assert got["label"].tolist() == ["CONCLUSIONS"] and got["error"].isna().all()  # the taught classify ran


def test_baselines_run_both_example_programs_and_tag_them(pstub, store):
    ref, sample, spec = in_process("baseline", pipeline_args(), pstub)
    (out,) = run_baselines(store, ref, sample, [spec], threads=2, cache=False)
    assert out.error is None and out.result is not None
    assert out.result.metrics["n"] == 20 and out.result.metrics["failed"] == 0
    tags = store.get_run(out.run_id).data.tags
    assert tags["studio.module"] == "program" and tags["studio.program_ref"].endswith("make_program")
    saved = store.read_json(out.run_id, "program.json")
    assert set(saved["instructions"]) == {"extract.predict", "classify"}
    assert "{sentence}" in saved["prompts"]["extract.predict"] or "{{sentence}}" in saved["prompts"]["extract.predict"]
    # Two calls an example: extract, then classify.
    assert sum(1 for r in pstub.chat_requests() if r["body"]["model"] == "stub-small") == 40
    qa_ref, qa_sample, _ = in_process("baseline", ["--task", "qa", "--program", f"{QA}:ContextQA",
                                                   "--test-per-label", "6"], pstub)
    (qa,) = run_baselines(store, qa_ref, qa_sample, [spec], threads=2, cache=False)
    assert qa.error is None and qa.result.metrics["n"] == 6 and 0 < qa.result.metrics["score"] < 1


def test_a_program_that_raises_fails_those_examples_and_the_run_goes_on(pstub, store, tmp_path):
    program = tmp_path / "fragile.py"
    program.write_text(EXAMPLE.read_text().replace(
        "        finding = self.extract(sentence=sentence).finding",
        "        if 'patients' in sentence.lower():\n            raise ValueError('no trials here')\n"
        "        finding = self.extract(sentence=sentence).finding"))
    ref, sample, spec = in_process("baseline", pipeline_args(program), pstub)
    (out,) = run_baselines(store, ref, sample, [spec], threads=2, cache=False)
    assert out.error is None, out.error
    metrics = out.result.metrics
    failed = [r for r in out.result.records.to_dict("records") if r["outcome"] == "failed"]
    assert failed and metrics["failed"] == len(failed) < metrics["n"]
    assert {r["error_kind"] for r in failed} == {"program"}
    assert all("ValueError: no trials here (fragile.py, line" in r["error"] for r in failed)
    assert store.get_run(out.run_id).info.status == "FINISHED"


def test_a_program_file_changed_after_planning_is_refused_before_any_call(pstub, store, tmp_path):
    program = tmp_path / "pipeline.py"
    shutil.copy(EXAMPLE, program)
    ref, sample, spec = in_process("baseline", pipeline_args(program), pstub)
    program.write_text(program.read_text() + "\n# edited after the run was planned\n")
    with pytest.raises(ConfigError, match="changed after the run was planned"):
        run_baselines(store, ref, sample, [spec])
    assert pstub.chat_calls == 0


def test_gepa_optimizes_the_context_qa_example(pstub, settings):
    url = pstub.base_url
    out = run_cli("optimize", "--task", "qa", "--program", f"{QA}:ContextQA", "--student", f"openai/stub-small@{url}",
                  "--reflection", f"openai/stub-large@{url}", "--budget", "80", "--test-per-label", "10")
    assert out.returncode == 0, out.stderr[-3000:]
    evals = RunStore(settings).list_runs(kind="evaluation")
    scores = dict(zip(evals["program"], evals["score"], strict=True))
    assert scores["original"] < 0.6 < scores["optimized"]  # token F1: the hints GEPA added shorten the answers
    assert "test score (token F1)" in out.stdout


def test_refusals_say_what_to_fix(pstub, tmp_path):
    unmapped = run_cli("baseline", "--task", str(DEMO), "--program", f"{EXAMPLE}:make_program", "--models",
                       f"openai/stub-small@{pstub.base_url}")
    assert unmapped.returncode == 2 and "sentence" in unmapped.stderr
    bad_metric = tmp_path / "m.py"
    bad_metric.write_text("def metric(gold):\n    return 1.0\n")
    wrong = run_cli("baseline", *pipeline_args()[:4], "--metric", f"{bad_metric}:metric", *MAPPED, "--models",
                    f"openai/stub-small@{pstub.base_url}")
    assert wrong.returncode == 2 and "cannot be called as GEPA calls a metric" in wrong.stderr
    empty = tmp_path / "empty.py"
    empty.write_text("import dspy\n\nclass Nothing(dspy.Module):\n    def forward(self, sentence):\n"
                     "        return dspy.Prediction(label='x')\n")
    none = run_cli("baseline", "--task", str(DEMO), "--program", f"{empty}:Nothing", *MAPPED, "--models",
                   f"openai/stub-small@{pstub.base_url}")
    assert none.returncode == 2 and "has no predictor" in none.stderr
    assert pstub.chat_calls == 0


def test_each_call_is_traced_with_the_predictor_that_made_it(pstub, store, monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "on")
    ref, sample, spec = in_process("baseline", [*pipeline_args()[:-6], "--test-per-label", "2"], pstub)
    (out,) = run_baselines(store, ref, sample, [spec], threads=2, cache=False)
    exp = store.get_run(out.run_id).info.experiment_id
    traces = list(store.client.search_traces(locations=[exp], run_id=out.run_id, max_results=100))
    by_predictor: dict[str, int] = {}
    for trace in traces:
        name = trace.info.tags.get("studio.predictor", "")
        by_predictor[name] = by_predictor.get(name, 0) + 1
        sent = json.dumps(trace.data.spans[0].inputs)
        assert ("finding" in sent.split("Your output fields are")[-1][:200]) == (name == "extract.predict")
    assert by_predictor == {"extract.predict": 10, "classify": 10} == {
        k: int(v) // 2 for k, v in {"extract.predict": out.result.metrics["lm_calls"],
                                    "classify": out.result.metrics["lm_calls"]}.items()}
    # The split the Optimization page shows: calls and tokens per predictor add up to the run's.
    split = {row["predictor"]: row for row in predictor_calls(store, out.run_id)}
    assert {name: row["calls"] for name, row in split.items()} == by_predictor
    assert {row["role"] for row in split.values()} == {"evaluation"}
    assert sum(row["input_tokens"] for row in split.values()) == out.result.metrics["input_tokens"]
    assert split["extract.predict"]["output_tokens"] > split["classify"]["output_tokens"] > 0  # reasoning, finding


def test_the_estimate_counts_every_predictor_without_running_the_program(pstub, settings, monkeypatch):
    import dspy

    from core.optimize import OptimizeConfig
    from core.optimize.optimizers import estimate
    from core.tasks.sources import prepare

    ref, sample, spec = in_process("baseline", pipeline_args(), pstub)
    task, splits = prepare(ref, sample, settings)
    monkeypatch.setattr("core.program.user_program.load_user_program",
                        lambda *a, **k: pytest.fail("the estimate ran the program's code"))
    config = OptimizeConfig(task_ref=ref, sample=sample, student=spec, reflection=spec, auto="light")
    got = estimate(config, task, splits)
    expected = dspy.GEPA.auto_budget(None, num_preds=2, num_candidates=6, valset_size=len(splits.val))
    assert task.num_predictors == 2 and got.metric_calls == expected
    assert got.metric_calls > dspy.GEPA.auto_budget(None, num_preds=1, num_candidates=6, valset_size=len(splits.val))
    assert got.test_calls == 2 * len(splits.test) * 2
