"""app.yaml, the Databricks App's definition: it runs app.py with Streamlit on the port Databricks gives, sets only
variables the studio reads (or documents), and writes no secret: a secret comes through ``valueFrom``.

What Databricks Apps accepts (checked against its documentation, not a workspace: none can be reached from here):
top-level ``command`` (a list, run without a shell; ``$DATABRICKS_APP_PORT`` is the one variable put into it) and
``env`` (items with ``name`` and either ``value`` or ``valueFrom``, an app resource's key).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from streamlit import config

from core.config.secrets import SECRET_NAME
from tests.ports import free_port, wait_http
from tests.test_env_vars_documented import documented, read_by_code
from ui import auth

ROOT = Path(__file__).resolve().parents[1]
APP_YAML = ROOT / "app.yaml"
# What a key or token looks like: a Databricks PAT, an OpenAI / Anthropic key, a JWT, or any long run of letters and
# digits without the / . : a path or address has.
TOKEN_LIKE = re.compile(r"dapi[0-9a-f]{16,}|sk-[A-Za-z0-9_-]{16,}|eyJ[A-Za-z0-9_-]{10,}\.|[A-Za-z0-9_+=-]{32,}")


@pytest.fixture(scope="module")
def app() -> dict:
    return yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env(app) -> dict[str, dict]:
    return {item["name"]: item for item in app["env"]}


def test_only_the_settings_databricks_apps_knows(app):
    assert set(app) <= {"command", "env"}, set(app)
    assert isinstance(app["command"], list) and all(isinstance(a, str) for a in app["command"]), app["command"]
    assert isinstance(app["env"], list)
    names = [item["name"] for item in app["env"]]
    assert len(names) == len(set(names)), names
    for item in app["env"]:
        assert set(item) in ({"name", "value"}, {"name", "valueFrom"}), item
        assert all(isinstance(v, str) for v in item.values()), f"{item}: YAML turned a value into a non-string"


def test_the_command_runs_the_dashboard_on_the_port_databricks_gives(app):
    command = app["command"]
    assert command[:3] == ["streamlit", "run", "app.py"] and (ROOT / "app.py").is_file()
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert flags["--server.port"] == "$DATABRICKS_APP_PORT"
    for flag in flags:  # each is a Streamlit option (a typo would stop the app at start)
        assert flag.startswith("--") and flag[2:] in config.get_config_options(), flag
    assert [a for a in command if "$" in a] == ["$DATABRICKS_APP_PORT"], "no other variable is put into a command"


def test_it_trusts_the_workspace_proxy_and_names_who_may_use_it(env):
    assert env[auth.TRUST_PROXY_HEADERS]["value"] in auth.PROXIES
    assert auth.parse_allowed(env[auth.ALLOWED_USERS]["value"]), "an empty allow-list lets nobody in"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "databricks"
    assert env["MLFLOW_REGISTRY_URI"]["value"] == "databricks-uc"
    assert env["GEPA_STUDIO_EXPERIMENT_ROOT"]["value"].startswith(("/Shared/", "/Users/", "/Workspace/"))
    assert Path(env["GEPA_STUDIO_DATA_DIR"]["value"]).is_absolute()


def test_every_variable_it_sets_is_one_the_studio_reads(env):
    read, rows = set(read_by_code()), documented()
    studio = {name for name in env if name.startswith("GEPA_STUDIO_")}
    assert studio and not studio - read, f"set by app.yaml, read by no code: {sorted(studio - read)}"
    unknown = set(env) - studio - read - rows
    assert not unknown, f"neither read by the code nor in docs/configuration.md: {sorted(unknown)}"


def test_no_secret_is_written_in_it(app, env):
    for name, item in env.items():
        if SECRET_NAME.search(name):
            assert "valueFrom" in item, f"{name} is a secret: it comes from an app resource (valueFrom), not a value"
        if "value" in item:
            assert not TOKEN_LIKE.search(item["value"]), f"{name}: its value looks like a key or token"
    assert not [a for a in app["command"] if TOKEN_LIKE.search(a)]


def test_the_secret_check_would_see_one():
    assert SECRET_NAME.search("OPENAI_API_KEY") and SECRET_NAME.search("DATABRICKS_TOKEN")
    assert not SECRET_NAME.search("GEPA_STUDIO_TRUST_PROXY_HEADERS")
    for value in ("dapi0123456789abcdef0123456789abcdef", "sk-proj-abcdefghijklmnopqrstuv",
                  "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.x", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"):
        assert TOKEN_LIKE.search(value), value
    for value in ("/Shared/gepa-studio", "@example.com", "databricks-uc", "/tmp/gepa-studio", "gepa_studio"):
        assert not TOKEN_LIKE.search(value), value


@pytest.mark.slow
def test_the_command_starts_the_dashboard_as_databricks_would_run_it(app, env, tmp_path):
    """The command as written, the port put in as Databricks does, its environment with a local store in place of
    the workspace's: the server answers on that port."""
    port = free_port()
    command = [sys.executable, "-m", *[a.replace("$DATABRICKS_APP_PORT", str(port)) for a in app["command"]]]
    local = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "GEPA_STUDIO_DATA_DIR": str(tmp_path),
             "GEPA_STUDIO_SECRETS": str(tmp_path / "none.toml"), "PYTHONPATH": str(ROOT)}
    values = {name: item["value"] for name, item in env.items() if "value" in item}
    environment = {**os.environ, **values, **local}
    environment.pop("MLFLOW_REGISTRY_URI")  # the tracking store's own registry
    with open(tmp_path / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            assert wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=60), (
                (tmp_path / "streamlit.log").read_text())
        finally:
            proc.terminate()
            proc.wait(20)
