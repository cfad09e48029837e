"""Repeatability: one optimization repeated with N seeds (core.jobs.repeats), its runs linked by ``studio.repeat_key``,
the spread of their test accuracy (core.tracking.runs.seed_spread) and its chart."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.analytics import charts
from core.config.errors import ConfigError
from core.jobs import MAX_SEEDS, JobManager, submit_repeats
from core.lm.models import ModelSpec
from core.tracking.runs import seed_note, seed_spread, spread_sentence
from core.tracking.store import RUN_COLUMNS, RunStore, runs_frame
from tests.core.test_optimize import PRICED, InlineBackend, config, fake_factory

STUDENT = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)
TEACHER = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)


@pytest.fixture
def ref(tmp_path):
    from core.tasks import TaskRef
    from tests.scenario import write_csv

    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def test_repeat_key_is_shared_by_seeds_only(ref):
    base = config(ref, STUDENT, TEACHER)
    key = base.repeat_key()
    assert len(key) == 12 and key == config(ref, STUDENT, TEACHER).repeat_key()
    assert replace(base, seed=7).repeat_key() == key
    assert replace(base, threads=8, cache=False).repeat_key() == key  # how it runs is not another experiment
    for other in (dict(max_metric_calls=90), dict(student=TEACHER), dict(module="cot"), dict(use_merge=False)):
        assert replace(base, **other).repeat_key() != key, other


@pytest.mark.parametrize("n, message", [(0, "from 1 to"), (MAX_SEEDS + 1, "from 1 to"), (2.5, "from 1 to")])
def test_bad_seed_counts_are_refused(settings, ref, n, message):
    with pytest.raises(ConfigError, match=message) as err:
        submit_repeats(JobManager(settings), config(ref, STUDENT, TEACHER), n, start=False)
    assert err.value.hint
    assert JobManager(settings).list() == []  # nothing queued


def test_own_prompt_is_not_repeated(settings, ref):
    own = config(ref, STUDENT, None, optimizer="own", instruction="Label each sentence.", auto="light",
                 max_metric_calls=None)
    with pytest.raises(ConfigError, match="no seed"):
        submit_repeats(JobManager(settings), own, 3, start=False)
    assert len(submit_repeats(JobManager(settings), own, 1, start=False)) == 1


@pytest.mark.slow
def test_three_seeds_leave_three_linked_runs_and_a_spread(settings, ref):
    backend = InlineBackend(fake_factory())
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    base = config(ref, STUDENT, TEACHER, max_metric_calls=30, seed=0)
    job_ids = submit_repeats(manager, base, 3, started_by="ana")
    jobs = [manager.get(j) for j in job_ids]
    assert [j.state for j in jobs] == ["succeeded"] * 3, [j.error for j in jobs]
    assert [j.config["seed"] for j in jobs] == [0, 1, 2]
    assert [j.title.rsplit(" · ", 1)[1] for j in jobs] == ["seed 0", "seed 1", "seed 2"]
    plans = [json.dumps(manager.plan(j), sort_keys=True) for j in job_ids]
    assert len(set(plans)) == 1  # one plan: the same task, splits and test examples

    store = RunStore(settings)
    table = store.list_runs(kind="optimization")  # read from MLflow's SQL tables
    assert list(table.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert set(table["repeat_key"]) == {base.repeat_key()}
    assert sorted(table["seed"]) == [0.0, 1.0, 2.0]
    assert set(table["run_id"]) == {j.run_id for j in jobs}
    searched = runs_frame(store.search("tags.`studio.kind` = 'optimization'"))  # MLflow's own search: the same
    merged = table.merge(searched, on="run_id", suffixes=("", "_search"))
    assert (merged["repeat_key"] == merged["repeat_key_search"]).all()
    assert (merged["seed"] == merged["seed_search"]).all()
    for run_id in table["run_id"]:
        assert store.get_run(run_id).data.tags["studio.started_by"] == "ana"

    everything = store.list_runs()
    spread = seed_spread(everything)
    assert len(spread) == 3 and set(spread["run_id"]) == set(table["run_id"])
    assert list(spread["seed"]) == [0, 1, 2] and set(spread["n_seeds"]) == {3}
    metrics = {r: store.get_run(r).data.metrics for r in table["run_id"]}
    optimized = sorted(m["optimized_test_accuracy"] for m in metrics.values())
    original = [m["original_test_accuracy"] for m in metrics.values()]
    first = spread.iloc[0]
    assert first["median"] == pytest.approx(np.median(optimized))
    assert (first["min"], first["max"]) == pytest.approx((optimized[0], optimized[-1]))
    assert first["min_gain"] == pytest.approx(min(m["optimized_test_accuracy"] - m["original_test_accuracy"]
                                                  for m in metrics.values()))
    assert first["label"] == "GEPA · pupil ← teacher · 30 metric calls"
    sentence = spread_sentence(spread, base.repeat_key())
    assert sentence.startswith("GEPA · pupil ← teacher · 30 metric calls, 3 seeds: optimized ")
    assert f"median {np.median(optimized) * 100:.1f} %" in sentence and f"{min(original) * 100:.1f}" in sentence
    note = seed_note(spread, str(table["run_id"].iloc[0]))
    assert note is not None and "one of 3 seeds" in note

    fig = charts.seed_spread_chart(spread)
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"Range (optimized)", "Original (each seed)", "Optimized (each seed)", "Median (optimized)"}
    assert sorted(traces["Optimized (each seed)"].x) == pytest.approx([v * 100 for v in optimized])
    assert traces["Original (each seed)"].marker.symbol == "circle-open"
    assert list(traces["Range (optimized)"].base) == pytest.approx([optimized[0] * 100])
    assert "over 3 seeds" in fig.layout.title.text


def opt(run_id, key, seed, before, after, minute, **kw):
    row = dict(run_id=run_id, run_name="GEPA", kind="optimization", task="demo", model="small", program="gepa",
               reflection_model="big", budget="light", status="FINISHED", repeat_key=key, seed=float(seed),
               original_test_accuracy=before, optimized_test_accuracy=after,
               start_time=pd.Timestamp(f"2026-11-24 10:{minute:02d}", tz="UTC"))
    row.update(kw)
    return row


def frame(*rows):
    df = pd.DataFrame(list(rows))
    for col in RUN_COLUMNS:
        if col not in df:
            df[col] = float("nan")
    return df


def test_spread_counts_each_seed_once_and_says_when_a_seed_lost():
    runs = frame(
        opt("a0", "k1", 0, 0.2, 0.6, 1), opt("a1", "k1", 1, 0.2, 0.66, 2), opt("a2", "k1", 2, 0.2, 0.15, 3),
        opt("a1-old", "k1", 1, 0.2, 0.9, 0),  # the same seed again, older: the newest counts
        opt("b0", "k2", 0, 0.3, 0.5, 4),  # one seed only: no spread
        opt("c0", "k3", 0, 0.3, 0.5, 5), opt("c1", "k3", 1, 0.3, float("nan"), 6),  # one seed with results
    )
    spread = seed_spread(runs)
    assert list(spread["run_id"]) == ["a0", "a1", "a2"]
    assert spread.iloc[0]["median"] == pytest.approx(0.6) and spread.iloc[0]["min_gain"] == pytest.approx(-0.05)
    sentence = spread_sentence(spread, "k1")
    assert sentence == ("GEPA · small ← big · light, 3 seeds: optimized 15.0–66.0 % (median 60.0 %) against 20.0 % "
                        "before; 1 of 3 seeds lost accuracy (the worst -5.0 points).")
    assert "the best of them" in seed_note(spread, "a1") and "the worst of them" in seed_note(spread, "a2")
    assert seed_note(spread, "b0") is None
    assert seed_spread(frame(opt("b0", "k2", 0, 0.3, 0.5, 4))).empty
    assert charts.seed_spread_chart(seed_spread(frame(opt("b0", "k2", 0, 0.3, 0.5, 4)))).data == ()


def test_every_seed_gaining_is_said_with_the_smallest_gain():
    spread = seed_spread(frame(opt("a0", "k", 0, 0.2, 0.58, 1), opt("a1", "k", 1, 0.2, 0.62, 2),
                               opt("a2", "k", 2, 0.2, 0.66, 3)))
    assert spread_sentence(spread, "k") == ("GEPA · small ← big · light, 3 seeds: optimized 58.0–66.0 % (median "
                                            "62.0 %) against 20.0 % before; every seed gained at least 38.0 points "
                                            "of accuracy.")


def test_a_scored_repeat_names_its_metric_not_accuracy():
    runs = frame(*[{**opt(f"a{i}", "k", i, 0.3, after, i), "metric": "token F1"}
                   for i, after in enumerate((0.5, 0.25))])
    sentence = spread_sentence(seed_spread(runs), "k")
    assert sentence.endswith("1 of 2 seeds lost token F1 (the worst -5.0 points).") and "accuracy" not in sentence


def test_cli_seeds_queue_consecutive_seeds_on_one_plan(settings, tmp_path, monkeypatch, capsys):
    from core.cli.main import main
    from tests.scenario import write_csv

    monkeypatch.setattr(JobManager, "schedule", lambda self: [])  # queued only: no worker process
    csv = write_csv(tmp_path / "s.csv", 12)
    args = ["optimize", "--task", str(csv), "--student", "openai/small@http://127.0.0.1:9/v1",
            "--reflection", "openai/big@http://127.0.0.1:9/v1", "--budget", "60", "--gepa-seed", "5",
            "--test-per-label", "4", "--background"]
    assert main([*args, "--seeds", "0"]) != 0
    assert "from 1 to" in capsys.readouterr().err and JobManager(settings).list() == []
    assert main([*args, "--seeds", "3"]) == 0
    out = capsys.readouterr()
    assert "3 seeds: 5, 6, 7" in out.err and out.out.count("queued job") == 3
    everything = JobManager(settings).list()
    # one group over the seeds (tests/core/test_repeat_group.py)
    assert [j.kind for j in everything].count("repeat") == 1
    jobs = sorted((j for j in everything if j.kind == "optimize"), key=lambda j: j.config["seed"])
    assert [(j.state, j.config["seed"]) for j in jobs] == [("queued", 5), ("queued", 6), ("queued", 7)]
    assert len({json.dumps(JobManager(settings).plan(j.id), sort_keys=True) for j in jobs}) == 1
