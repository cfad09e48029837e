"""Databricks serving endpoints without a pasted token: the Databricks SDK's unified auth (a profile of
~/.databrickscfg, OAuth machine-to-machine with a service principal) gives the token of real LM calls over HTTP to a
stub workspace on 127.0.0.1, which also answers the SDK's discovery and token requests. An OAuth token is refreshed on
the LM that holds it, the key scrub covers every token and the client secret (a 401 that echoes the token leaves it
in no trace, log or file), no credentials at all is a clear error before any call, and a pasted DATABRICKS_TOKEN wins
without the SDK being asked."""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import pickle
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.config.databricks import SERVING_PATH
from core.config.errors import ModelError
from core.config.secrets import MASK, install, scrub
from core.config.settings import credential_status
from core.evaluation.baseline import run_baselines
from core.lm.databricks_auth import TokenRefresh
from core.lm.models import ModelSpec, build_lm, check_connection, key_present
from core.tasks import SampleSpec, TaskRef
from core.tracking import tracing
from tests.scenario import write_csv
from tests.stub_server import Faults, StubLLMServer, _Handler, _Server

SDK_PREFIXES = ("DATABRICKS_", "ARM_", "AZURE_", "GOOGLE_")


class WorkspaceHandler(_Handler):
    """The stub's chat API under any path (``/serving-endpoints/chat/completions`` here), plus what the Databricks SDK
    asks a workspace for OAuth M2M: its host metadata, its OIDC discovery document and a token endpoint that wants
    the client's id and secret in a Basic header."""

    stub: "Workspace"

    def do_GET(self) -> None:
        ws = self.stub
        ws.seen.append(self.path)
        if self.path == "/.well-known/databricks-config":
            return self._send(200, {"oidc_endpoint": f"{ws.root_url}/oidc", "workspace_id": "1234567890"})
        if self.path == "/oidc/.well-known/oauth-authorization-server":
            return self._send(200, {"issuer": f"{ws.root_url}/oidc",
                                    "authorization_endpoint": f"{ws.root_url}/oidc/v1/authorize",
                                    "token_endpoint": f"{ws.root_url}/oidc/v1/token"})
        return super().do_GET()

    def do_POST(self) -> None:
        if self.path != "/oidc/v1/token":
            return super().do_POST()
        ws = self.stub
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ws.seen.append(self.path)
        expected = "Basic " + base64.b64encode(f"{ws.client_id}:{ws.client_secret}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._send(401, {"error": "invalid_client"})
        token = f"oauth-{uuid.uuid4().hex}"
        with ws._lock:
            ws.issued.append(token)
        return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": ws.token_ttl_s})


@dataclass
class Workspace(StubLLMServer):
    """A stub Databricks workspace: serving endpoints and OAuth on one loopback host."""

    client_id: str = "studio-service-principal"
    client_secret: str = field(default_factory=lambda: f"dose-{uuid.uuid4().hex}")
    token_ttl_s: int = 3600
    issued: list[str] = field(default_factory=list)  # every OAuth token it handed out, in order
    seen: list[str] = field(default_factory=list)  # every discovery and token request's path

    def start(self) -> "Workspace":
        self._server = _Server(("127.0.0.1", 0), type("Handler", (WorkspaceHandler,), {"stub": self}))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-workspace", daemon=True)
        self._thread.start()
        return self

    def bearers(self) -> list[str]:
        """The token each chat call carried."""
        return [r["headers"].get("Authorization", "").removeprefix("Bearer ") for r in self.chat_requests()]


@pytest.fixture(autouse=True)
def no_databricks(tmp_path, monkeypatch):
    """No Databricks or cloud variable of this machine's, no ~/.databrickscfg, no secrets file."""
    for name in list(os.environ):
        if name.startswith(SDK_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(tmp_path / "no-secrets.toml"))


@pytest.fixture
def workspace():
    with Workspace() as ws:
        yield ws


def m2m(monkeypatch, ws: Workspace) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", ws.root_url)
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", ws.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", ws.client_secret)


def spec(**kw) -> ModelSpec:
    """A Databricks preset's shape (key variable DATABRICKS_TOKEN, no base URL of its own) on the stub's model."""
    return ModelSpec("stub endpoint", "databricks/stub-small", "databricks", api_key_env="DATABRICKS_TOKEN",
                     num_retries=0, **kw)


def test_a_profile_of_databrickscfg_gives_the_token_of_a_real_call(workspace, tmp_path, monkeypatch):
    token = f"dapi-test-{uuid.uuid4().hex}"
    cfg = tmp_path / "databrickscfg"
    cfg.write_text(f"[studio]\nhost = {workspace.root_url}\ntoken = {token}\n", encoding="utf-8")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    assert credential_status()["databricks"] is False and not key_present(spec())  # no DEFAULT profile, none named
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "studio")
    assert credential_status()["databricks"] is True and key_present(spec())
    lm = build_lm(spec(), cache=False)
    assert scrub(f"sent {token}") == f"sent {MASK}"  # the profile's token is registered with the scrub
    assert lm("Reply with one word.")
    deep = copy.deepcopy(lm)  # a program's deepcopy: the same token source
    assert [type(c) for c in deep.callbacks] == [TokenRefresh] and deep.callbacks[0] is lm.callbacks[0]
    again = pickle.loads(pickle.dumps(lm))  # no SDK config travels (locks, secrets): resolved again on first call
    assert again.callbacks[0].config is None and again("Another word.")
    assert check_connection(spec()).ok
    assert workspace.bearers() == [token] * 3
    assert {r["path"] for r in workspace.chat_requests()} == {f"{SERVING_PATH}/chat/completions"}
    assert workspace.issued == []  # a personal access token: no OAuth


def test_oauth_m2m_gives_a_token_that_is_refreshed_on_the_lm_that_holds_it(workspace, monkeypatch):
    workspace.token_ttl_s = 40 + 3  # the SDK takes a token for expired 40 s early: this one is good for 3 s
    m2m(monkeypatch, workspace)
    assert credential_status()["databricks"] is True
    lm = build_lm(spec(), cache=False)
    assert lm.kwargs["api_base"] == workspace.root_url + SERVING_PATH  # from DATABRICKS_HOST
    first = workspace.issued[0]  # fetched as the LM was built
    lm("The first call.")
    assert workspace.bearers() == [first]
    time.sleep(3.5)  # the token expires: the next call of the same LM gets a fresh one
    lm("The second call, an hour later as it were.")
    lm.copy(temperature=0.5)("A copy's call.")  # a copy keeps the refresh, with kwargs of its own
    later = workspace.bearers()[1:]
    assert first not in later and set(later) <= set(workspace.issued) and len(set(later)) == 1
    assert workspace.seen[:3] == ["/.well-known/databricks-config", "/oidc/.well-known/oauth-authorization-server",
                                  "/oidc/v1/token"]
    for value in (first, *later, workspace.client_secret):
        assert scrub(f"401 for {value}") == f"401 for {MASK}", value


def test_a_401_that_echoes_the_sdk_token_leaves_it_nowhere(workspace, store, settings, tmp_path, monkeypatch, caplog,
                                                             restore_logging):
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "on")
    m2m(monkeypatch, workspace)
    workspace.faults = Faults(echo_key_401=True)  # every chat call: a 401 whose message repeats the token it got
    install()  # log records scrubbed, as in a worker or the CLI
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    caplog.set_level(logging.DEBUG)
    [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 1), [spec(input_price_per_m=1.0, output_price_per_m=1.0)],
                              threads=1, cache=False)
    tracing.flush()
    sent = set(workspace.bearers())
    assert sent and sent <= set(workspace.issued)  # the SDK's token really went out, and came back in each 401
    assert outcome.error and "auth" in outcome.error and not any(t in outcome.error for t in workspace.issued)
    exp = store.get_run(outcome.run_id).info.experiment_id
    traces = list(store.client.search_traces(locations=[exp], run_id=outcome.run_id, max_results=100))
    errors = [t.data.spans[0].attributes["studio.error"] for t in traces]
    assert errors and all("Incorrect API key provided: ***" in e for e in errors)  # the echo is there, masked
    secrets = [*workspace.issued, workspace.client_secret]  # LiteLLM's own OAuth tokens too (see databricks_auth)
    dumped = json.dumps([t.to_dict() for t in traces], default=str) + caplog.text
    assert not [s for s in secrets if s in dumped]
    roots = (settings.data_dir, Path(os.environ["DSPY_CACHEDIR"]))
    assert not [(str(p), s) for root in roots for p in root.rglob("*") if p.is_file() for s in secrets
                if s.encode() in p.read_bytes() or urllib.parse.quote(s, safe="").encode() in p.read_bytes()]


def test_no_credentials_at_all_is_a_clear_error_before_any_call(workspace, monkeypatch):
    monkeypatch.setenv("DATABRICKS_API_BASE", workspace.root_url + SERVING_PATH)  # where to call, but no credentials
    assert credential_status()["databricks"] is False and not key_present(spec())
    with pytest.raises(ModelError) as err:
        build_lm(spec())
    assert "DATABRICKS_TOKEN is not set and the Databricks SDK found no credentials" in err.value.message
    for way in ("DATABRICKS_TOKEN", "~/.databrickscfg", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_HOST",
                "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "Databricks Apps"):
        assert way in err.value.hint, way
    result = check_connection(spec())
    assert not result.ok and result.kind == "config" and result.hint == err.value.hint
    assert workspace.requests == [] and workspace.seen == []


@pytest.mark.parametrize("where", ["DATABRICKS_API_BASE", "DATABRICKS_HOST"])
def test_a_pasted_token_wins_and_the_sdk_is_not_asked(workspace, tmp_path, monkeypatch, where):
    with Workspace() as trap:  # what the SDK would find: a DEFAULT profile on another workspace
        cfg = tmp_path / "databrickscfg"
        cfg.write_text(f"[DEFAULT]\nhost = {trap.root_url}\ntoken = dapi-trap-{uuid.uuid4().hex}\n", encoding="utf-8")
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
        pasted = f"dapi-pasted-{uuid.uuid4().hex}"
        monkeypatch.setenv("DATABRICKS_TOKEN", pasted)
        monkeypatch.setenv(where, workspace.root_url + (SERVING_PATH if where == "DATABRICKS_API_BASE" else ""))
        assert credential_status()["databricks"] is True and key_present(spec())
        lm = build_lm(spec(), cache=False)
        lm("Reply with one word.")
        assert workspace.bearers() == [pasted] and lm.callbacks == []
        assert trap.seen == workspace.seen == [] and trap.requests == []  # no discovery anywhere: the SDK never looked


