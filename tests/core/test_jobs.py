"""The job shape: the kinds table, plans stored with a job and run as stored, configs that check themselves,
and the CLI's progress line."""

from __future__ import annotations

import pytest

from core.cli.jobs import progress_postfix
from core.config.errors import ConfigError, JobError
from core.jobs import KINDS, JobManager
from core.jobs.worker import execute
from core.lm.models import ModelSpec, openai_compatible
from core.optimize import OptimizeConfig, plan_optimization
from core.tasks import SampleSpec, TaskRef, split_fingerprint
from core.tracking.store import RunStore
from tests.core.test_optimize import fake_factory
from tests.scenario import make_table, write_csv


class Parked:
    """A backend that never starts anything (jobs stay queued until a test executes them here)."""

    def start(self, job_id, settings):
        raise AssertionError("not expected to start")

    def alive(self, handle):
        return False

    def kill(self, handle):
        pass


def test_every_kind_is_one_table_entry():
    assert set(KINDS) == {"optimize", "baseline", "finish", "notebook", "sweep", "repeat"}
    assert KINDS["sweep"].resumable and KINDS["sweep"].group is not None  # a group: runs no process
    assert KINDS["optimize"].resumable and KINDS["baseline"].resumable
    assert not KINDS["finish"].resumable  # a stopped finish job is submitted again, not resumed
    assert not KINDS["notebook"].resumable  # a resume would run its baselines again


def test_an_unknown_kind_is_refused(settings):
    with pytest.raises(JobError, match="Unknown job kind"):
        JobManager(settings, backend=Parked()).submit("nonsense", "x", {}, start=False)


@pytest.mark.parametrize("change, message", [
    (dict(threads=0), "Threads"),
    (dict(auto=None), "exactly one budget"),
    (dict(reflection=None), "No reflection model"),
    (dict(module="tree"), "Unknown module"),
    (dict(feedback="vibes"), "Unknown feedback"),
])
def test_a_config_checks_itself_when_built(change, message):
    spec = openai_compatible("s", "s", "http://127.0.0.1:9/v1")
    kw = dict(task_ref=TaskRef(), sample=SampleSpec(), student=spec, reflection=spec, auto="light")
    kw.update(change)
    with pytest.raises(ConfigError, match=message):
        OptimizeConfig(**kw)


def test_a_job_runs_exactly_the_plan_it_was_submitted_with(settings, tmp_path):
    """The task file changes after Start: the job still runs the splits the page showed, and records who asked."""
    path = write_csv(tmp_path / "task.csv", 12)
    ref = TaskRef(kind="file", source=str(path), name="planned")
    pupil = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1")
    teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1")
    config = OptimizeConfig(task_ref=ref, sample=SampleSpec(3, 1, 2, seed=5), student=pupil, reflection=teacher,
                            auto=None, max_metric_calls=40, threads=2)
    plan = plan_optimization(config, settings)
    manager = JobManager(settings, backend=Parked())
    job_id = manager.submit_optimization(config, start=False, plan=plan, started_by="alice@example.org")
    # Another sample of the same labels, reordered: sampling it again would draw other rows.
    changed = make_table(12).sample(frac=1.0, random_state=99)
    changed["description"] = changed["description"] + " (edited)"
    changed.to_csv(path, index=False)
    job = execute(manager, job_id, lm_factory=fake_factory())
    assert job.state == "succeeded", job.error
    params = RunStore(settings).get_run(job.run_id).data.params
    assert params["test_fingerprint"] == split_fingerprint(plan.splits.test, plan.task)
    # Who asked is kept with the job and tagged on every run it started (the optimization and its evaluations).
    assert job.started_by == "alice@example.org"
    runs = RunStore(settings).list_runs(job_id=job_id)
    assert len(runs) == 3 and set(runs["started_by"]) == {"alice@example.org"}
    assert manager.progress(job_id)["metric_calls_budget"] == plan.estimate.metric_calls


def test_progress_line_keeps_cost_and_candidates_once_a_best_score_exists():
    before = progress_postfix({"total_cost_usd": 0.0123, "candidates": 2})
    after = progress_postfix({"best_val_score": 0.75, "total_cost_usd": 0.0456, "candidates": 3})
    assert before == "cost=$0.0123 cand=2"
    assert after == "best=0.750 cost=$0.0456 cand=3"


def test_cli_progress_bar_names_the_phase_once_the_budget_is_known(capsys):
    """After the search the job evaluates on the test set: the bar says so instead of a stale "starting"."""
    import time

    from core.cli.jobs import follow

    class Manager:
        def progress(self, job_id):
            return {"phase": "evaluating", "metric_calls_budget": 80, "metric_calls_used": 84, "candidates": 4,
                    "total_cost_usd": 0.0364}

    assert follow(Manager(), "job", lambda: time.sleep(1.2) or "done") == "done"
    err = capsys.readouterr().err
    assert "evaluating" in err and "80/80" in err and "starting" not in err
