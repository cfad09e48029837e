"""Quiet failures made visible (issue 20, items 6 and 7): the environment copied while another thread changes it, a
malformed secrets file, a tracking server that cannot be reached, a search recorder whose callbacks fail, a Ray
limiter that fell back to a per-node store, and the Ray worker scrubbing keys held in variables of any name.

Each test fails on the code before the fix (checked by planting each bug back)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from core.config import secrets
from core.config.errors import ConfigError, StoreError
from core.config.settings import Settings, get_secret, read_secrets, secrets_problem
from core.jobs import mailbox as mb
from core.tracking.store import RunStore, StoreUnreachable
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SHORT_KEY = "sk-short8"  # held in MY_THING: a name that does not look like a key
TINY_KEY = "sk-8char"  # exactly 8 characters: the shortest value scrubbed (every other planted key is 30+)


# The environment, copied while MLflow's telemetry changes it ----------------------------------------------------


def test_the_scrub_copies_the_environment_while_another_thread_changes_it():
    """Seed jobs started together failed with KeyError: '_MLFLOW_TELEMETRY_SESSION_ID' (dict(os.environ) raced)."""
    stop, errors = threading.Event(), []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            name = f"_H4_CHURN_{i % 64}"
            os.environ[name] = "x" * 12
            os.environ.pop(f"_H4_CHURN_{(i + 32) % 64}", None)
            i += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within a few hundred copies
    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        for _ in range(3000):
            try:
                secrets.secret_values()
                secrets.environ_snapshot()
            except (KeyError, RuntimeError) as exc:
                errors.append(repr(exc))
    finally:
        stop.set()
        thread.join(5)
        sys.setswitchinterval(old)
        for i in range(64):
            os.environ.pop(f"_H4_CHURN_{i}", None)
    assert errors == []


def test_the_snapshot_is_the_environment():
    assert secrets.environ_snapshot() == dict(os.environ)


# Keys in variables of any name, short ones included --------------------------------------------------------------


def test_a_declared_key_variable_is_scrubbed_whatever_its_name(monkeypatch):
    monkeypatch.setenv("MY_THING", SHORT_KEY)
    monkeypatch.setenv("TINY8", TINY_KEY)
    assert secrets.scrub(f"echo {SHORT_KEY} {TINY_KEY}") == f"echo {SHORT_KEY} {TINY_KEY}"  # not key-looking names
    config = {"specs": [{"name": "a", "api_key_env": "MY_THING"}], "reflection": {"api_key_env": "TINY8"}}
    assert secrets.key_env_names(config) == {"MY_THING", "TINY8"}
    secrets.declare_key_names(secrets.key_env_names(config))
    try:
        assert secrets.scrub(f"echo {SHORT_KEY} {TINY_KEY}") == "echo *** ***"
    finally:
        secrets._DECLARED.clear()


ECHO_WORKER = textwrap.dedent('''
    import logging, os, sys
    from core.jobs import kinds, remote

    def echo(config, ctx):
        for name in ("MY_THING", "TINY8"):
            value = os.environ[name]
            print(f"provider answered: invalid key {value}")  # a provider's error echoed to stdout
            sys.stderr.write(f"litellm: Authentication failed for key {value}\\n")
            logging.getLogger("litellm").error("401 for api_key=%s", value)
        ctx.emit({"phase": "evaluating", "message": f"auth failed for {os.environ['MY_THING']}"})
        raise RuntimeError(f"401: key {os.environ['TINY8']} rejected")

    kinds.KINDS["echo"] = kinds.JobKind("echo", echo, resumable=False)
    raise SystemExit(remote.main(sys.argv[1:]))
''')


def mailbox_with(tmp_path: Path, job_id: str, kind: str, config: dict) -> tuple[str, mb.Mailbox]:
    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    client = mb.client_for(uri)
    box = mb.Mailbox(client, mb.open_run(client, job_id))
    box.write_json("spec.json", {"job_id": job_id, "kind": kind, "config": config, "attempts": 1})
    return uri, box


def run_worker(script: str, uri: str, box: mb.Mailbox, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    path = tmp_path / "worker_entry.py"
    path.write_text(script, encoding="utf-8")
    full = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
            "GEPA_STUDIO_SECRETS": str(tmp_path / "no-secrets.toml"), **env}
    full.pop("GEPA_STUDIO_DATA_DIR", None)  # a Ray node has no data dir of the dashboard's, and no model catalog
    return subprocess.run([sys.executable, str(path), box.run_id], cwd=str(tmp_path), env=full, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.slow
def test_the_remote_worker_scrubs_keys_its_specs_name_whatever_the_variable(tmp_path):
    config = {"specs": [{"name": "mine", "model": "openai/x", "provider": "openai", "api_key_env": "MY_THING"},
                        {"name": "tiny", "model": "openai/y", "provider": "openai", "api_key_env": "TINY8"}]}
    uri, box = mailbox_with(tmp_path, "job-echo", "echo", config)
    done = run_worker(ECHO_WORKER, uri, box, tmp_path, MY_THING=SHORT_KEY, TINY8=TINY_KEY)
    log = done.stdout + done.stderr
    assert done.returncode == 1, log  # the job failed (as the kind did), and said so
    assert "provider answered: invalid key ***" in log and "Authentication failed for key ***" in log
    assert "401 for api_key=***" in log
    assert SHORT_KEY not in log and TINY_KEY not in log
    tags = box.tags()
    assert tags[mb.STATE] == "failed" and "***" in tags[mb.ERROR]
    assert SHORT_KEY not in json.dumps(tags) and TINY_KEY not in json.dumps(tags)


# A Ray limiter that cannot be reached ----------------------------------------------------------------------------


LIMITED_WORKER = textwrap.dedent('''
    import sys
    from core.jobs import kinds, remote
    from core.lm.limits import limiter, stores

    def actor_lookup_fails(self):  # what a job sees when the cluster's limiter actor cannot be found or created
        raise ConnectionError("no Ray cluster here (simulated actor lookup failure)")

    stores.RayStore.actor = actor_lookup_fails

    def limited(config, ctx):
        ctx.set_run_id(config["run_id"])
        ctx.emit({"phase": "evaluating", "models": {}})
        for _ in range(3):
            limiter().acquire("bucket", 6000, None)
        ctx.emit({"phase": "evaluating", "models": {"m": {"done": 3, "total": 3}}})
        return kinds.JobOutcome("succeeded")

    kinds.KINDS["limited"] = kinds.JobKind("limited", limited, resumable=False)
    raise SystemExit(remote.main(sys.argv[1:]))
''')


@pytest.mark.slow
def test_a_limiter_that_falls_back_says_so_in_the_job_and_its_run(tmp_path, settings, capsys):
    from core.cli.jobs import print_job
    from core.jobs import JobManager
    from core.jobs.remote import LIMITER_TAG

    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    client = mb.client_for(uri)
    run_id = client.create_run(client.create_experiment("gepa-studio/limited")).info.run_id
    _, box = mailbox_with(tmp_path, "job-limited", "limited", {"run_id": run_id})
    done = run_worker(LIMITED_WORKER, uri, box, tmp_path, GEPA_STUDIO_LIMITER="ray")
    assert done.returncode == 0, done.stdout + done.stderr
    progress = json.loads(box.tags()[mb.PROGRESS])
    assert progress["limiter_fallback"] is True and progress["models"] == {"m": {"done": 3, "total": 3}}
    [warning] = progress["warnings"]
    assert "ray rate limiter could not be reached" in warning and "memory store, per node" in warning
    assert "cluster-wide rpm/tpm may have been exceeded" in warning
    assert client.get_run(run_id).data.tags[LIMITER_TAG] == warning
    # `jobs show` prints it (the registry holds the progress the Ray backend synced from the mailbox)
    manager = JobManager(settings)
    job_id = manager.submit("baseline", "Baseline: m", {"specs": []}, start=False)
    manager.write_progress(job_id, progress)
    print_job(manager, job_id)
    assert f"  warning: {warning}" in capsys.readouterr().out.splitlines()


def test_the_limiter_records_its_fallback():
    from core.lm.limits import Limiter
    from core.lm.limits.stores import MemoryStore, RayStore

    class Unreachable(RayStore):
        def actor(self):
            raise ConnectionError("no cluster")

    lim = Limiter(Unreachable("h4-test"), MemoryStore)
    assert lim.fallback is None
    lim.reserve("k", 60, None)
    assert lim.fallback == {"from": "ray", "to": "memory", "reason": "no cluster"} and lim.kind == "memory"


# A tracking server that cannot be reached is not "no run" --------------------------------------------------------


def test_an_unreachable_tracking_server_is_not_a_missing_run(tmp_path, monkeypatch, store):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = RunStore(Settings(data_dir=tmp_path, tracking_uri=uri, artifact_root=tmp_path / "a"))
    for read in (lambda: down.get_run("0" * 32), lambda: down.download("0" * 32, "records.csv", tmp_path)):
        with pytest.raises(StoreUnreachable) as err:
            read()
        assert not isinstance(err.value, StoreError)  # code that reads StoreError as "gone" does not read this so
        assert uri in err.value.message and "cannot be reached" in err.value.message
    # A store that answers still says "no run" / "no artifact" for what it lacks.
    with pytest.raises(StoreError, match="No run"):
        store.get_run("0" * 32)
    run_id = store.start_run("baseline", "truth", run_name="a run")
    with pytest.raises(StoreError, match="has no artifact") as err:
        store.download(run_id, "nothing.csv", tmp_path)
    assert not isinstance(err.value, StoreUnreachable)


# A malformed secrets file ----------------------------------------------------------------------------------------


BROKEN_SECRETS = 'OPENAI_API_KEY = "sk-broken-file-0123456789abcdef"\n\nANTHROPIC_API_KEY = sk-unquoted\n'


def test_a_malformed_secrets_file_is_an_error_naming_its_file_and_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "secrets.toml"
    path.write_text(BROKEN_SECRETS, encoding="utf-8")
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError) as err:
        read_secrets()
    assert f"{path}, line 3" in err.value.message and "not valid TOML" in err.value.message
    assert secrets_problem() is not None and str(path) in secrets_problem().message
    assert get_secret("OPENAI_API_KEY") is None  # a single lookup does not crash (the dashboard still opens)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-0123")
    assert get_secret("OPENAI_API_KEY") == "sk-from-the-environment-0123"  # the environment still counts
    from core.cli.main import main

    assert main(["models"]) == 2  # the CLI refuses to run as though no key were set
    printed = capsys.readouterr().err
    assert f"{path}, line 3" in printed and "hint:" in printed
    path.write_text(BROKEN_SECRETS.replace("sk-unquoted", '"sk-quoted"'), encoding="utf-8")
    assert secrets_problem() is None and read_secrets()["ANTHROPIC_API_KEY"] == "sk-quoted"


# The search recorder's callback errors ---------------------------------------------------------------------------


def record_with_failing_callback(store, ref, log_dir, monkeypatch):
    """A real small GEPA run (fake LMs) whose recorder fails in one callback every iteration: returns its run id."""
    from core.lm.models import ModelSpec
    from core.optimize import run_optimization
    from core.optimize.search import SearchRecorder
    from tests.core.test_optimize import PRICED, config, fake_factory

    def broken(self, state):
        raise RuntimeError("state unreadable for api_key=sk-planted-in-callback-0123456789")

    monkeypatch.setattr(SearchRecorder, "_reconcile", broken)
    monkeypatch.setenv("PLANTED_API_KEY", "sk-planted-in-callback-0123456789")
    student = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)
    teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)
    res = run_optimization(config(ref, student, teacher, max_metric_calls=30), store, log_dir=log_dir,
                           lm_factory=fake_factory())
    assert res.status == "succeeded", res.error
    return res.run_id


def test_a_failing_search_callback_is_counted_in_the_record_and_the_run(settings, store, tmp_path, monkeypatch):
    from core.optimize.search_record import ERRORS_METRIC, incomplete_note
    from core.tasks import TaskRef
    from tests.scenario import write_csv

    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    run_id = record_with_failing_callback(store, ref, settings.jobs_dir / "gepa", monkeypatch)
    record = store.read_json(run_id, "search.json")
    count, first = record["errors"]["count"], record["errors"]["first"]
    assert count >= 2  # every iteration's end and the optimization's end failed
    assert first.startswith("on_iteration_end: RuntimeError: state unreadable") and "sk-planted" not in first
    assert store.get_run(run_id).data.metrics[ERRORS_METRIC] == count
    assert incomplete_note(record) == f"search record incomplete: {count} callback errors (first: {first})"
    saved = json.loads((settings.jobs_dir / "gepa" / "search.json").read_text(encoding="utf-8"))
    assert saved["errors"]["count"] >= 1  # the copy a resumed run reloads keeps its count


def test_a_whole_record_says_nothing():
    from core.optimize.search_record import incomplete_note

    assert incomplete_note({"errors": {"count": 0, "first": None}}) is None
    assert incomplete_note({}) is None  # a record written before errors were counted


def test_an_experiment_another_machine_created_meanwhile_is_taken_not_a_failure(settings, monkeypatch):
    """Ray workers share no lock: one may create the task's experiment between another's look and its create (a
    sweep cell failed with RESOURCE_ALREADY_EXISTS). The late one takes the experiment that is there."""
    first, late = RunStore(settings), RunStore(settings)
    made = first.experiment_id("raced")
    real, looks = late.client.get_experiment_by_name, []

    def look(name):  # the late store's first two looks (before and under its lock) miss the other's experiment
        looks.append(name)
        return None if len(looks) <= 2 else real(name)

    monkeypatch.setattr(late.client, "get_experiment_by_name", look)
    assert late.experiment_id("raced") == made
