"""The original notebook's experiment: its draw, its bare starting program, its settings read back from MLflow, and
``python -m core reproduce-notebook`` end to end against the stub server."""

import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

import dspy
import pandas as pd
import pytest
from pandas import StringDtype

from core.cli.main import main
from core.config.errors import ConfigError
from core.jobs import JobManager
from core.jobs.kinds import submit_notebook
from core.jobs.worker import execute
from core.lm.models import openai_compatible
from core.optimize import OptimizeConfig
from core.presets import notebook
from core.presets.notebook import PRESET
from core.program.program import get_instruction, make_program, render_prompt, to_examples
from core.tasks import (
    PUBMED_LABELS,
    SampleSpec,
    TaskRef,
    load_tables,
    make_splits,
    pubmed_task,
    sample_per_label,
)
from core.tracking.procs import pid_alive
from core.tracking.store import RunStore
from tests.stub_server import (
    Faults,
    chat_answer,
    field_value,
    gepa_responder,
    hinted_label,
    is_reflection_call,
    keyword_label,
    last_user_text,
    system_text,
)

MODELS = ("stub-small", "stub-mid", "stub-large")


def notebook_responder(model, messages, body):
    """The notebook's roles on one stub: stub-small the student (only the keyword rules its instruction teaches),
    stub-mid a larger model (keyword rules, but CONCLUSIONS read as RESULTS), stub-large the frontier model, the
    judge and the reflection model."""
    system = system_text(messages)
    if "`rationale`" in system:  # core.program.metric's judge
        return chat_answer("rationale",
                           f"The sentence reads as {field_value(last_user_text(messages), 'expected_label')}.")
    if is_reflection_call(messages):
        return gepa_responder("stub-large", messages, body)
    sentence = field_value(last_user_text(messages), "description")
    label = hinted_label(system, sentence) if model == "stub-small" else keyword_label(sentence)
    if model == "stub-mid" and label == "CONCLUSIONS":
        label = "RESULTS"
    return chat_answer("target", label)


def write_tables(tmp_path: Path, per_label: int = 25) -> tuple[Path, Path]:
    """Train and test CSVs shaped like the Hugging Face files (description, target, description_cln), rows of the
    labels interleaved and unevenly many (so the two draws differ), some repeated, sentences the stub's keyword rules
    decide."""
    from tests.scenario import make_table

    df = make_table(per_label)
    df["description_cln"] = df["description"].str.lower()
    rows = df.sample(frac=1, random_state=11).reset_index(drop=True)
    keep = rows.groupby("target").cumcount() < rows["target"].map(  # uneven: drop a few rows of some labels
        dict(zip(PUBMED_LABELS, (per_label, per_label - 3, per_label - 1, per_label - 5, per_label - 2), strict=True)))
    rows = rows[keep]
    # As in the real files: repeated sentences and stray spaces, which GEPA Studio's cleaning would drop or strip.
    rows = pd.concat([rows, rows[rows["target"] == "RESULTS"].head(3)]).sample(frac=1, random_state=12)
    rows.loc[rows.index[:4], "description"] = rows["description"].iloc[:4] + "  "
    first = rows.groupby("target").cumcount() < 8
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    rows[first].to_csv(train, index=False)
    rows[~first].to_csv(test, index=False)
    return train, test


# --- the draw ---


def test_the_notebook_draw_gives_the_rows_of_the_notebooks_own_lines(settings, tmp_path):
    train_csv, test_csv = write_tables(tmp_path)
    # The notebook's own lines, on the raw files as it read them:
    frames = []
    for path, n in ((train_csv, 3), (test_csv, 10)):
        df = pd.read_csv(path)
        df.drop("description_cln", axis=1, inplace=True)
        df = df.astype(StringDtype())
        frames.append(pd.concat([group.sample(n=n, random_state=1) for _, group in df.groupby("target")]))
    expected_train, expected_test = ([list(map(str, row)) for row in f[["description", "target"]].to_numpy()]
                                     for f in frames)

    config = PRESET.config(PRESET.models(), task_ref=TaskRef(kind="pubmed", source=str(train_csv),
                                                             test_source=str(test_csv)))
    plan = notebook.plan(config, settings)
    rows = lambda df: df[["description", "target"]].astype(str).to_numpy().tolist()  # noqa: E731
    assert rows(plan.splits.train) == expected_train
    assert rows(plan.splits.test) == expected_test

    # The generator-based draw (still the default, seed for seed) picks other rows from the same tables.
    task, train = plan.task, pd.read_csv(train_csv)
    assert SampleSpec().method == "one_stream"
    assert rows(sample_per_label(train, "target", 3, 1)) != expected_train
    assert rows(sample_per_label(train, "target", 3, 1, method="seed_per_label")) == expected_train
    other = make_splits(task, train, pd.read_csv(test_csv), SampleSpec(3, 0, 10, seed=1))
    assert rows(other.train) != expected_train
    # Drawing from the cleaned tables (repeats dropped, spaces stripped) would move the draw too.
    cleaned = make_splits(*load_tables(config.task_ref, settings),
                          SampleSpec(3, 0, 10, seed=1, method="seed_per_label"))
    assert rows(cleaned.train) != expected_train


def test_unknown_sampling_method_is_refused():
    with pytest.raises(ConfigError, match="Unknown sampling method 'notebook'") as err:
        SampleSpec(method="notebook")
    assert "seed_per_label" in err.value.hint
    assert SampleSpec.from_dict({"train_per_label": 3, "val_per_label": 0, "test_per_label": 10, "seed": 1}).method \
        == "one_stream"  # a spec stored before the method existed draws as it did


# --- the starting program ---


class TextClassificationSignature(dspy.Signature):  # the notebook's signature, as it wrote it
    description: str = dspy.InputField()
    target: Literal["CONCLUSIONS", "RESULTS", "METHODS", "OBJECTIVE", "BACKGROUND"] = dspy.OutputField()


def test_bare_start_renders_dspys_default_prompt_for_the_notebooks_signature():
    task = notebook.notebook_task(pubmed_task())
    example = to_examples(pd.DataFrame({"description": ["Patients were randomized."], "target": ["METHODS"]}), task)[0]
    ours = render_prompt(make_program(task, "predict", start="bare"), example)
    theirs = dspy.ChatAdapter().format(TextClassificationSignature, demos=[],
                                       inputs={"description": example.description})
    assert ours[0]["role"] == "system" and ours[0]["content"] == theirs[0]["content"]
    assert ours == theirs
    assert get_instruction(make_program(task, start="bare")) == TextClassificationSignature.instructions
    described = render_prompt(make_program(task), example)  # today's default start is unchanged
    assert described != ours and "What each label means" in described[0]["content"]
    own = make_program(task, "cot", "Name the sentence's role.", start="own")
    assert get_instruction(own) == "Name the sentence's role."


@pytest.mark.parametrize(("start", "instruction", "message"), [
    ("own", "  ", "needs the instruction"), ("bare", "Classify.", "takes no instruction"),
    ("plain", "", "Unknown starting program 'plain'")])
def test_start_choices_are_checked_where_the_config_is_built(start, instruction, message):
    with pytest.raises(ConfigError, match=message):
        PRESET.config(PRESET.models(), start=start, instruction=instruction)
    with pytest.raises(ConfigError, match=message):
        make_program(pubmed_task(), instruction=instruction or None, start=start)


def test_the_preset_is_the_notebooks_experiment():
    config, models = PRESET.config(PRESET.models()), PRESET.models()
    assert isinstance(config, OptimizeConfig) and PRESET.differences(config, models) == []
    assert OptimizeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert [models.role(r).model for r in notebook.NOTEBOOK_MODELS] == list(notebook.NOTEBOOK_MODELS.values())
    changed = PRESET.differences(PRESET.config(models, auto=None, max_metric_calls=30, threads=4), models)
    assert changed == ["Parallel calls: 4 (the notebook: 16)", "Budget: 30 metric calls (the notebook: light)"]


# --- the claims beside measured results ---


def _records(correct: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"idx": range(len(correct)), "gold": ["A"] * len(correct), "correct": correct,
                         "outcome": ["correct" if c else "wrong" for c in correct]})


def test_claims_frame_places_each_claim_beside_the_measured_difference_and_its_interval():
    n = 60
    records = {"student_original": _records([i < 30 for i in range(n)]),
               "student_optimized": _records([i < 48 for i in range(n)]),  # +30 points over the same examples
               "frontier": _records([6 <= i < 56 for i in range(n)])}  # 2 more right, 6 others wrong
    claims = notebook.claims_frame(records).set_index("claim")
    gain = claims.loc["gepa_gain"]
    assert gain["diff"] == pytest.approx(0.30) and gain["paired"] and gain["n"] == n
    assert 0 < gain["ci_low"] < 0.30 < gain["ci_high"] and gain["verdict"] == "holds"
    assert not gain["size_in_interval"]  # the notebook's +6 lies below this interval
    assert claims.loc["passes_large", "verdict"] == "no data"  # no large-model run
    tie = claims.loc["frontier_ahead"]
    assert tie["diff"] == pytest.approx(2 / 60) and tie["ci_low"] < 0 < tie["ci_high"]
    assert tie["verdict"] == "unresolved" and tie["size_in_interval"]
    measured = notebook.measured_frame(records).set_index("side")
    assert measured.loc["student_optimized", "accuracy"] == pytest.approx(0.8)
    assert measured.loc["student_optimized", "ci_low"] < 0.8 < measured.loc["student_optimized", "ci_high"]
    assert measured.loc["large", "n"] == 0


# --- end to end against the stub server ---


@pytest.mark.slow
def test_reproduce_notebook_end_to_end_leaves_the_notebooks_settings_in_mlflow(stub, settings, tmp_path, capsys):
    stub.responder, stub.models = notebook_responder, MODELS
    train_csv, test_csv = write_tables(tmp_path)
    url = stub.base_url
    status = main(["reproduce-notebook", "--student", f"openai/stub-small@{url}", "--large", f"openai/stub-mid@{url}",
                   "--frontier", f"openai/stub-large@{url}", "--reflection", f"openai/stub-large@{url}",
                   "--data", str(train_csv), "--test-data", str(test_csv),
                   "--budget", "30"])  # the one setting changed: light is 440 metric calls
    out, err = capsys.readouterr()
    assert status == 0, err[-3000:]
    assert "Budget: 30 metric calls (the notebook: light)" in err and "per label" not in err and "Parallel" not in err
    # The report: each side's accuracy with its interval, then the notebook's claims beside the measured differences.
    lines = out.splitlines()
    assert lines[0] == "Measured on the same test examples" and "Average Metric" not in out
    row = lambda what: next(line.split() for line in lines if line.strip().startswith(what))  # noqa: E731
    assert row("student, before GEPA")[3:5] == ["stub-small", "20.0%"]  # the bare start: BACKGROUND for everything
    assert row("large model")[2:4] == ["stub-mid", "80.0%"] and row("frontier model")[2:4] == ["stub-large", "100.0%"]
    assert row("student, after GEPA")[3] == "stub-small" and row("frontier model")[-3:-1] == ["50", "0"]
    for claim in notebook.CLAIMS:
        assert any(line.strip().startswith(claim.text) for line in lines), out
    # The runs it left carry the notebook's settings.
    store = RunStore(settings)
    runs = store.list_runs()
    assert sorted(runs["kind"]) == ["baseline", "baseline", "evaluation", "evaluation", "optimization"]
    assert set(runs["status"]) == {"FINISHED"} and all(run_id in out for run_id in runs["run_id"])
    opt_id = runs.loc[runs["kind"] == "optimization", "run_id"].iloc[0]
    p = store.get_run(opt_id).data.params
    assert {k: p[k] for k in ("task", "sample_train_per_label", "sample_val_per_label", "sample_test_per_label",
                              "sample_seed", "sample_method", "n_train", "n_test", "module", "start",
                              "reflection_minibatch_size", "use_merge", "threads", "seed", "feedback",
                              "student_max_tokens", "student_reasoning_effort", "reflection_max_tokens")} == {
        "task": "pubmed", "sample_train_per_label": "3", "sample_val_per_label": "0", "sample_test_per_label": "10",
        "sample_seed": "1", "sample_method": "seed_per_label", "n_train": "15", "n_test": "50", "module": "predict",
        "start": "bare", "reflection_minibatch_size": "15", "use_merge": "True", "threads": "16", "seed": "1",
        "feedback": "judge", "student_max_tokens": "25000", "student_reasoning_effort": "medium",
        "reflection_max_tokens": "25000"}
    assert "reflection_reasoning_effort" not in p and p["budget"] == "30 metric calls"
    assert store.read_json(opt_id, "config.json")["cache"] is False
    for run_id in runs["run_id"]:
        r = store.get_run(run_id)
        assert r.data.tags["studio.start"] == "bare" and r.data.tags["studio.preset"] == "notebook"
        if r.data.tags["studio.kind"] != "optimization":
            assert {r.data.params[k] for k in ("cache", "threads", "max_tokens", "reasoning_effort",
                                               "test_fingerprint")} \
                == {"False", "16", "25000", "medium", p["test_fingerprint"]}
    baseline_id = runs.loc[runs["kind"] == "baseline", "run_id"].iloc[0]
    assert store.read_json(baseline_id, "program.json")["instruction"] == TextClassificationSignature.instructions
    # What went over the wire: the classifiers' and the reflection model's generation settings.
    bodies = [r["body"] for r in stub.chat_requests()]
    classify = [b for b in bodies if "`target`" in str(b["messages"][0]["content"])]
    reflect = [b for b in bodies if is_reflection_call(b["messages"])]
    assert len(classify) >= 4 * 50 and reflect
    assert {(b.get("max_completion_tokens") or b.get("max_tokens"), b.get("reasoning_effort")) for b in classify} \
        == {(25000, "medium")}
    assert {(b.get("max_completion_tokens") or b.get("max_tokens"), b.get("reasoning_effort")) for b in reflect} \
        == {(25000, None)}


def test_dry_run_prints_the_notebooks_plan(settings, tmp_path, capsys):
    train_csv, test_csv = write_tables(tmp_path)
    assert main(["reproduce-notebook", "--data", str(train_csv), "--test-data", str(test_csv), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "15 train / 0 validation / 50 test examples; 440 metric calls" in err
    assert "gpt-oss-20b (Databricks) ← claude-sonnet-4 (Databricks) · pubmed · light" in err
    assert "differs from the notebook in: Train file: " in err and "Budget" not in err and "task_ref" not in err
    assert RunStore(settings).list_runs().empty


# --- the notebook job kind (the dashboard's preset) ---


class InProcess:
    """Runs a job inside this process when the manager starts it; the job's handle is this live process."""

    def __init__(self):
        self.manager = None

    def start(self, job_id, settings):
        execute(self.manager, job_id)
        return str(os.getpid())

    def alive(self, handle):
        return pid_alive(int(handle))

    def kill(self, handle):
        raise AssertionError("nothing to kill in this process")


@pytest.mark.slow
def test_the_notebook_job_runs_every_part_tags_its_runs_fails_on_a_dead_provider_and_cancels(stub, settings, tmp_path):
    """A tiny notebook job on the stub (1 train / 2 test per label, 12 metric calls) run in this process, the same
    job with the large model's provider dead, then one cancelled (one store: a fresh MLflow database costs seconds)."""
    stub.responder, stub.models = notebook_responder, MODELS
    train_csv, test_csv = write_tables(tmp_path)
    spec = lambda name: openai_compatible(name, name, stub.base_url)  # noqa: E731
    models = PRESET.models(student=spec("stub-small"), large=spec("stub-mid"), frontier=spec("stub-large"),
                           reflection=spec("stub-large"))
    config = PRESET.config(models, task_ref=TaskRef(kind="pubmed", source=str(train_csv), test_source=str(test_csv)),
                           sample=replace(PRESET.sample, train_per_label=1, test_per_label=2),
                           reflection_minibatch_size=3, auto=None, max_metric_calls=12, threads=8)
    backend = InProcess()
    backend.manager = manager = JobManager(settings, backend=backend)
    plan = notebook.plan(config, settings)
    job_id = submit_notebook(manager, plan, models, started_by="tester")

    job = manager.get(job_id)
    assert (job.kind, job.state, job.error) == ("notebook", "succeeded", None)
    progress = manager.progress(job_id)
    parts = progress["parts"]
    assert {k: (p["state"], p.get("done"), p.get("total")) for k, p in parts.items()} == {
        "optimization": ("succeeded", None, None), "large": ("succeeded", 10, 10), "frontier": ("succeeded", 10, 10)}
    assert progress["metric_calls_used"] >= 12 and progress["phase"] == "done"  # the optimize kind's own keys
    assert progress["reproduction"] == job_id and any("baseline stub-mid: accuracy" in s for s in progress["status"])
    assert {row["side"]: row["n"] for row in progress["measured"]} == dict.fromkeys(notebook.SIDE_NAMES, 10)
    store = RunStore(settings)
    found = notebook.reproductions(store, "pubmed")
    assert sorted(found["side"]) == sorted(["optimization", *notebook.SIDE_NAMES])
    assert set(found["reproduction"]) == {job_id}
    sides = found.set_index("side")["run_id"]
    assert sides["optimization"] == job.run_id and parts["large"]["run_id"] == sides["large"]
    assert set(store.list_runs(job_id=job_id)["run_id"]) == set(found["run_id"])  # on_interrupted finds them all

    stub.faults = Faults(server_error=1.0, models=("stub-mid",))
    dead = manager.get(submit_notebook(manager, plan, models, started_by="tester"))
    assert dead.state == "failed" and dead.error.startswith("stub-mid: ")
    parts = manager.progress(dead.id)["parts"]
    assert (parts["large"]["state"], parts["frontier"]["state"], parts["optimization"]["state"]) == (
        "failed", "succeeded", "succeeded")  # the other parts finish

    # Cancel (the dashboard's button) stops every part: GEPA after its iteration, the baselines where they are.
    stub.faults, stub.latency_s = None, 0.05
    long = notebook.plan(replace(config, max_metric_calls=400, threads=2), settings)
    worker = threading.Thread(target=submit_notebook, args=(manager, long, models))
    worker.start()
    while not [j for j in manager.list() if j.state == "running"]:
        time.sleep(0.05)
    (running,) = [j for j in manager.list() if j.state == "running"]
    manager.cancel(running.id)
    worker.join(60)
    cancelled, progress = manager.get(running.id), manager.progress(running.id)
    assert (cancelled.state, cancelled.error) == ("cancelled", "cancelled")
    assert progress["parts"]["optimization"]["state"] == "cancelled" and progress["metric_calls_used"] < 400
