"""A free TCP port on 127.0.0.1 for servers the tests start (MLflow, Streamlit), waiting for things, and an MLflow
tracking server on loopback."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, poll: float = 0.2) -> bool:
    """Poll ``url`` until it answers (True) or ``timeout`` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except OSError:
            time.sleep(poll)
    return False


def wait_for(predicate, timeout: float, poll: float = 0.05):
    """Poll ``predicate()`` until it returns something truthy (returned) or ``timeout`` seconds pass
    (AssertionError)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout} s")


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real ``mlflow server`` on a free loopback port, its store and artifacts in ``folder``: yields its URL."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination",
         str(folder / "server-artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_http(url + "/health", timeout=90, poll=0.5):
            raise AssertionError("mlflow server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def invoke_served(port: int, proc: subprocess.Popen, records: list[dict], wait_s: float) -> dict:
    """POST ``records`` to a served MLflow model's ``/invocations`` on ``port`` until it answers (its JSON), failing
    the test with the server's output if ``proc`` dies or nothing answers within ``wait_s``."""
    import json

    body = json.dumps({"dataframe_records": records}).encode()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.5)
    out = proc.stdout.read().decode(errors="replace")[-3000:] if proc.poll() is not None and proc.stdout else ""
    raise AssertionError(out or f"the server did not answer in {wait_s:.0f} s")
