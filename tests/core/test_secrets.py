"""No secret anywhere: configured key values are scrubbed from messages, logs, streams, the job registry, progress
files and MLflow, and a provider that echoes the key in its 401 leaves it nowhere (stderr, worker log, data dir)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import pandas as pd
import pytest

from core.config import secrets
from core.config.secrets import MASK, ScrubbingStream, scrub, scrub_data
from core.jobs import JobManager
from core.lm.models import ModelCatalog, ModelSpec, redact
from tests.scenario import write_csv
from tests.stub_server import Faults, gepa_responder

ROOT = Path(__file__).resolve().parents[2]


def planted(tag: str) -> str:
    return f"sk-{tag}-{uuid.uuid4().hex}"


def files_holding(root: Path, value: str) -> list[str]:
    """Every file under ``root`` whose bytes hold ``value`` (as written, or URL-encoded)."""
    needles = {value.encode(), urllib.parse.quote(value, safe="").encode()}
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and any(n in p.read_bytes() for n in needles)]


def test_scrub_covers_providers_the_catalog_and_the_secrets_file(settings, monkeypatch):
    openai_key, team_key, toml_key, auth_secret = planted("openai"), planted("team"), planted("toml"), planted("oidc")
    monkeypatch.setenv("OPENAI_API_KEY", openai_key)
    monkeypatch.setenv("TEAM_LLM_ACCESS", team_key)  # a name nobody would guess: known from the catalog only
    catalog = ModelCatalog.load(settings.catalog_path)
    catalog.add(ModelSpec("team", "openai/team-model", api_key_env="TEAM_LLM_ACCESS"))
    catalog.save()
    secrets_file = Path(os.environ["GEPA_STUDIO_SECRETS"])
    secrets_file.write_text(f'ANTHROPIC_API_KEY = "{toml_key}"\n'
                            'DATABRICKS_API_BASE = "https://dbc-1.example.com/serving"\n'
                            'SHORT_TOKEN = "abc"\n[auth]\nclient_id = "studio-client"\n'
                            f'client_secret = "{auth_secret}"\n')
    text = (f"a={openai_key} b={team_key} c={toml_key} d={auth_secret} base=https://dbc-1.example.com/serving abc "
            "studio-client")
    clean = scrub(text)
    for value in (openai_key, team_key, toml_key, auth_secret):
        assert value not in clean
    assert clean.count(MASK) == 4
    assert "https://dbc-1.example.com/serving" in clean and "abc" in clean and "studio-client" in clean  # not secrets
    # A key set after a first scrub is covered too (values are read when scrubbing, not once).
    later = planted("later")
    monkeypatch.setenv("DATABRICKS_TOKEN", later)
    assert scrub(f"token {later}") == f"token {MASK}"


def test_scrub_catches_encoded_forms_and_leaves_other_text(monkeypatch):
    key = 'p@ss/w0rd+"quoted"\\x'
    monkeypatch.setenv("SERVICE_PASSWORD", key)
    for form in (key, urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key), json.dumps(key)[1:-1]):
        assert scrub(f"[{form}]") == f"[{MASK}]", form
    assert scrub("nothing to hide here") == "nothing to hide here"
    assert scrub_data({"a": [key, 1, None], "b": {"c": f"x{key}"}}) == {"a": [MASK, 1, None], "b": {"c": f"x{MASK}"}}


def test_redact_masks_the_specs_key_and_every_configured_one(monkeypatch):
    own, other = planted("own"), planted("other")
    monkeypatch.setenv("PLAIN_VARIABLE", own)  # neither a provider's nor a secret-looking name
    monkeypatch.setenv("ANTHROPIC_API_KEY", other)
    spec = ModelSpec("m", "openai/m", api_key_env="PLAIN_VARIABLE")
    assert redact(f"401: {own} / {other}", spec) == f"401: {MASK} / {MASK}"
    assert redact(f"{other}") == MASK


def test_log_records_are_scrubbed_whatever_handler_writes_them(monkeypatch, restore_logging):
    key = planted("log")
    monkeypatch.setenv("OPENAI_API_KEY", key)
    sink = io.StringIO()
    early = logging.getLogger("tests.secrets.early")  # its handler exists before install, as dspy's does
    early.addHandler(logging.StreamHandler(sink))
    early.propagate = False
    secrets.install()
    early.warning("call failed: %s", f"Incorrect API key provided: {key}")
    try:
        raise RuntimeError(f"HTTP 401 {key}")
    except RuntimeError:
        early.exception("job failed")
    early.error("with a stack", stack_info=True, extra={"k": key})
    out = sink.getvalue()
    assert key not in out
    assert "Incorrect API key provided: ***" in out and "RuntimeError: HTTP 401 ***" in out and "job failed" in out
    assert secrets.installed()
    secrets.install()  # twice is harmless
    early.removeHandler(early.handlers[0])


def test_scrubbing_streams_pass_text_on(monkeypatch):
    key = planted("stream")
    monkeypatch.setenv("DATABRICKS_TOKEN", key)
    inner = io.StringIO()
    stream = ScrubbingStream(inner)
    stream.write(f"Traceback: {key}\n")
    stream.writelines(["a", key])
    stream.flush()
    assert inner.getvalue() == f"Traceback: {MASK}\na{MASK}"


def test_job_registry_scrubs_errors_progress_and_the_log_tail(settings, monkeypatch):
    key = planted("jobs")
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    manager = JobManager(settings)
    job_id = manager.submit("baseline", f"title {key}", {"specs": []}, start=False)
    manager.finish(job_id, "failed", error=f"AuthError: Incorrect API key provided: {key}")
    manager.write_progress(job_id, {"phase": "done", "runs": {"m": {"error": f"401 {key}"}}})
    (manager.job_dir(job_id) / "worker.log").write_text(f"old line with {key}\n", encoding="utf-8")
    job = manager.get(job_id)
    assert job.error == f"AuthError: Incorrect API key provided: {MASK}" and key not in job.title
    assert manager.progress(job_id)["runs"]["m"]["error"] == f"401 {MASK}"
    assert manager.log_tail(job_id) == f"old line with {MASK}"
    assert files_holding(settings.data_dir, key) == [f"jobs/{job_id}/worker.log"]  # only the file we wrote by hand


def test_store_scrubs_tags_params_and_artifacts(store, monkeypatch):
    key = planted("mlflow")
    monkeypatch.setenv("OPENAI_API_KEY", key)
    run_id = store.start_run("baseline", "secrets", run_name="r", params={"note": f"p {key}"})
    store.set_tags(run_id, {"studio.error": f"401 {key}"})
    store.log_artifacts(run_id, {"a.txt": f"t {key}", "b.json": {"e": key},
                                 "records.csv": pd.DataFrame({"error": [f"401 {key}", "ok"]})})
    store.end_run(run_id, "FAILED")
    run = store.get_run(run_id)
    assert run.data.tags["studio.error"] == f"401 {MASK}" and run.data.params["note"] == f"p {MASK}"
    assert store.read_text(run_id, "a.txt") == f"t {MASK}" and store.read_json(run_id, "b.json") == {"e": MASK}
    assert store.read_csv(run_id, "records.csv")["error"].tolist() == [f"401 {MASK}", "ok"]
    assert files_holding(store.settings.data_dir, key) == []


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


@pytest.mark.slow
def test_a_provider_echoing_the_key_leaves_it_nowhere(stub, settings, tmp_path, monkeypatch):
    """The stub's 401 repeats the key it was sent. A failing baseline (CLI) and a failing background optimization
    (a real worker) must keep it out of stderr, the job's error and every file of the data dir."""
    key = planted("echoed")
    env = {"STUB_ACCESS": key}  # not a secret-looking name: known as secret only through the catalog
    stub.responder = gepa_responder
    stub.faults = Faults(echo_key_401=True, models=("stub-small",))  # the student's key is refused, echoed
    csv = write_csv(tmp_path / "s.csv", 6)
    added = run_cli("models", "add", "stubby", "openai/stub-small", "--api-base", stub.base_url,
                    "--key-env", "STUB_ACCESS", env=env)
    assert added.returncode == 0, added.stderr

    out = run_cli("baseline", "--task", str(csv), "--models", "stubby", "--train-per-label", "1",
                  "--test-per-label", "2", "--no-cache", "-q", env=env)
    assert out.returncode != 0
    sent = [r["headers"].get("Authorization") for r in stub.chat_requests()]
    assert sent and set(sent) == {f"Bearer {key}"}  # the key really went out, and came back in each 401
    assert key not in out.stderr and key not in out.stdout
    assert "Incorrect API key provided: ***" in out.stderr  # the echo was there, masked

    job = run_cli("optimize", "--task", str(csv), "--student", "stubby", "--reflection",
                  f"openai/stub-large@{stub.base_url}", "--budget", "20", "--train-per-label", "2",
                  "--val-per-label", "1", "--test-per-label", "1", "--threads", "1", "--background", env=env)
    assert job.returncode == 0, job.stderr[-2000:]
    assert key not in job.stderr and key not in job.stdout
    job_id = job.stdout.split()[2].rstrip(";")
    monkeypatch.setenv("STUB_ACCESS", key)  # read the job as the dashboard would, with the key configured
    manager = JobManager(settings)
    done = manager.wait(job_id, timeout=300)
    log = (manager.job_dir(job_id) / "worker.log").read_text(encoding="utf-8")
    assert key not in (done.error or "") and key not in log and key not in str(manager.progress(job_id))
    assert "Incorrect API key provided: ***" in log + (done.error or "")  # the echo reached the worker, masked
    leaked = files_holding(settings.data_dir, key)
    assert leaked == [], leaked  # mlflow.db, artifacts, records, worker.log, progress.json, jobs.db
    assert (settings.data_dir / "mlflow.db").exists() and (settings.data_dir / "jobs.db").exists()
    assert list(settings.data_dir.glob("runs/*/records.jsonl")) and list(settings.data_dir.glob("jobs/*/progress.json"))
