"""Which backend runs jobs: local processes unless a Ray cluster is named (the environment, secrets.toml or the Home
page's saved address); choosing one calls no cluster, and a cluster with a local MLflow file is refused at
submission."""

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from core.config.errors import ConfigError
from core.config.settings import load_settings, save_cluster, saved_cluster
from core.jobs import JobManager
from core.jobs.backends import backend_for, backend_name
from core.jobs.local import ProcessBackend
from core.jobs.ray_backend import RayBackend, job_of, runtime_env, submission_id

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there: any call to it would fail the test


def test_local_without_an_address_and_ray_with_one(settings, monkeypatch):
    assert backend_name(settings) == "local" and isinstance(backend_for(settings), ProcessBackend)
    monkeypatch.setenv("RAY_ADDRESS", UNREACHABLE)
    monkeypatch.setenv("GEPA_STUDIO_RAY_MAX_JOBS", "40")
    ray_settings = load_settings()
    backend = backend_for(ray_settings)
    assert isinstance(backend, RayBackend) and backend.address == UNREACHABLE and backend.max_jobs == 40
    assert backend._jobs is None  # built without a call to the cluster


def test_saved_cluster_is_used_and_the_environment_wins(settings, monkeypatch):
    with pytest.raises(ConfigError, match="dashboard address"):
        save_cluster(settings.data_dir, "head:6379")
    assert save_cluster(settings.data_dir, " http://head:8265/ ") == "http://head:8265"
    assert saved_cluster(settings.data_dir) == "http://head:8265" == load_settings().ray_address
    monkeypatch.setenv("RAY_ADDRESS", "http://other:8265")
    assert load_settings().ray_address == "http://other:8265"
    monkeypatch.delenv("RAY_ADDRESS")
    save_cluster(settings.data_dir, "")
    assert load_settings().ray_address is None and backend_name(load_settings()) == "local"


def test_a_local_tracking_file_with_a_cluster_is_refused_at_submission(settings, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", UNREACHABLE)
    monkeypatch.setitem(sys.modules, "ray", None)  # the refusal comes before Ray is needed at all
    manager = JobManager(load_settings())
    job_id = manager.submit("optimize", "refused", {"any": "config"})
    job = manager.get(job_id)
    assert job.state == "failed"
    assert "need an MLflow tracking server" in job.error and "MLFLOW_TRACKING_URI=http://" in job.error


def test_handles_name_the_job_and_attempt():
    sid = submission_id("20261126-052400-3c0f08", 2)
    assert sid == "gepa-20261126-052400-3c0f08-a2" and job_of("ray:" + sid) == "20261126-052400-3c0f08"


def test_what_travels_with_a_ray_job_carries_no_key(settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-travel-test-0123456789")
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "off")
    env = runtime_env(replace(settings, tracking_uri="http://mlflow:5000", ray_address=UNREACHABLE))
    assert env["env_vars"] == {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "GEPA_STUDIO_LIMITER": "ray",
                               "PYTHONUNBUFFERED": "1", "GEPA_STUDIO_TRACES": "off",
                               "GEPA_STUDIO_EXPERIMENT_ROOT": "gepa-studio"}
    assert [Path(p).name for p in env["py_modules"]] == ["core"] and "sk-travel-test" not in repr(env)


def test_local_jobs_started_before_the_cluster_stay_local_processes(settings):
    backend = RayBackend(UNREACHABLE, "http://mlflow:5000")
    assert backend.alive(str(os.getpid())) and not backend.alive("999999999")  # no call to the cluster
    backend.sync(None, "some-job", str(os.getpid()))
    backend.request_cancel(str(os.getpid()))
    assert backend._jobs is None
