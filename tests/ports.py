"""A free TCP port on 127.0.0.1 for servers the tests start (MLflow, Streamlit), and waiting for things."""

import socket
import time
import urllib.request


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
