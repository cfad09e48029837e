"""A stub OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

It speaks just enough of the OpenAI HTTP API (``POST /v1/chat/completions``, ``GET /v1/models``)
and of Ollama's (``GET /api/tags``) for LiteLLM and DSPy to talk to it as to any real
server. What it answers is decided per request by a ``responder`` callable, so a test can
make a model that classifies by keyword rules, one whose accuracy depends on its
instruction, one that writes garbage, or one that fails with an HTTP error.

``faults`` injects what real providers do (see :class:`Faults`): 429 with Retry-After, 500, hangs past
the client's timeout, slow answers, empty or malformed bodies, labels outside the set, truncated
answers, a 401 that echoes the key it was given, and a server that dies after N calls. ``slots=N`` makes it a
llama.cpp-like server that serves at most N chat calls at once (the others queue) and says so at ``GET /props``.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from tests.stub_text import (
    KEYWORDS,
    LABELS,
    chat_answer,
    count_tokens,
    field_value,
    keyword_label,
    last_user_text,
    system_text,
)

# (model, messages, request body) -> reply text, or a StubError to fail the call.
Responder = Callable[[str, list[dict[str, Any]], dict[str, Any]], "str | StubError"]


@dataclass
class StubError:
    """A failure the stub returns instead of an answer."""

    status: int
    message: str = "stub error"
    headers: dict[str, str] | None = None  # e.g. {"Retry-After": "0.2"} on a 429


@dataclass
class Faults:
    """Faults injected into chat calls. Rates are shares of calls (drawn from a seeded generator, so a run is
    repeatable); ``models`` limits them to some models (None: every model)."""

    rate_limit: float = 0.0  # HTTP 429 with a Retry-After header
    retry_after_s: float = 1.0
    server_error: float = 0.0  # HTTP 500
    timeout: float = 0.0  # the call hangs for hang_s (past the client's timeout), then gets a 504
    hang_s: float = 30.0
    empty: float = 0.0  # HTTP 200 with an empty body
    malformed: float = 0.0  # HTTP 200 with a body that is not JSON
    off_label: float = 0.0  # a well-formed answer whose label is not one of the task's
    truncated: float = 0.0  # the answer cut off mid-way (finish_reason "length")
    slow_s: float = 0.0  # extra latency on every call
    die_after: int | None = None  # after this many chat calls the server closes its socket for good
    echo_key_401: bool = False  # every call gets a 401 whose message repeats the key it was sent
    models: tuple[str, ...] | None = None
    seed: int = 0

    @classmethod
    def from_env(cls) -> "Faults | None":
        raw = os.environ.get("STUB_FAULTS")
        if not raw:
            return None
        d = json.loads(raw)
        if d.get("models") is not None:
            d["models"] = tuple(d["models"])
        return cls(**d)


def keyword_classifier(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """Answer with the keyword label of the sentence in the request (ChatAdapter or JSON format)."""
    text = last_user_text(messages)
    sentence = field_value(text, "description") or field_value(text, "text") or text
    label = keyword_label(sentence)
    if body.get("response_format"):
        return json.dumps({"target": label})
    return chat_answer("target", label)


@dataclass
class StubLLMServer:
    """A threaded HTTP server; ``with StubLLMServer() as s: s.base_url``."""

    responder: Responder = keyword_classifier
    latency_s: float = 0.0
    api_key: str | None = None  # when set, other keys get HTTP 401
    models: tuple[str, ...] = ("stub-small", "stub-large")
    faults: Faults | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    chat_calls: int = 0  # chat calls received (faulty or not)
    dead: bool = False  # die_after was reached: the socket is closed
    slots: int | None = None  # like llama.cpp's --parallel: at most this many chat calls at once, said by GET /props
    _rng: random.Random = field(default_factory=lambda: random.Random(0))
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slot_gate: threading.Semaphore = field(default_factory=threading.Semaphore)

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def _draw_fault(self, model: str) -> str | None:
        """Which fault (if any) this chat call gets; counts the call."""
        f = self.faults
        with self._lock:
            self.chat_calls += 1
            if f is None or (f.models is not None and model not in f.models):
                return None
            if self.chat_calls == 1:
                self._rng.seed(f.seed)
            if f.die_after is not None and self.chat_calls > f.die_after:
                return "die"
            if f.echo_key_401:
                return "echo_key_401"
            x = self._rng.random()
            for name in ("rate_limit", "server_error", "timeout", "empty", "malformed", "off_label", "truncated"):
                rate = getattr(f, name)
                if x < rate:
                    return name
                x -= rate
            return None

    def _die(self) -> None:
        """Close the listening socket from another thread: later connections are refused."""
        with self._lock:
            if self.dead or self._server is None:
                return
            self.dead = True
        server = self._server
        threading.Thread(target=lambda: (server.shutdown(), server.server_close()), daemon=True).start()

    def start(self) -> "StubLLMServer":
        self._slot_gate = threading.Semaphore(self.slots or 1)
        self._server = _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"stub": self}))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "StubLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


ERROR_FAULTS = ("rate_limit", "server_error", "timeout", "empty", "malformed")  # the call gets no answer


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:  # a client gave up (timeout test)
        pass


class _Handler(BaseHTTPRequestHandler):
    """One request to ``stub`` (set on the subclass :meth:`StubLLMServer.start` makes)."""

    protocol_version = "HTTP/1.1"
    stub: StubLLMServer

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: without this, Nagle + delayed ACK add ~40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _authorized(self) -> bool:
        if self.stub.api_key is None:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {self.stub.api_key}"

    def do_GET(self) -> None:
        stub = self.stub
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in stub.models]})
        elif self.path == "/api/tags":
            self._send(200, {"models": [{"name": m, "model": m} for m in stub.models]})
        elif self.path == "/props" and stub.slots is not None:  # llama.cpp's server properties
            self._send(200, {"total_slots": stub.slots, "model_path": f"/models/{stub.models[0]}.gguf"})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        if self.stub.slots is None or not self.path.endswith("/chat/completions"):
            self._post()
            return
        with self.stub._slot_gate:  # a call beyond the slots queues here, as at a llama.cpp server
            self._post()

    def _post(self) -> None:
        """Record the request, then refuse it (path, key, model), fail it with its drawn fault, or answer it."""
        stub = self.stub
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with stub._lock:
            stub.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        if not self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"unknown path {self.path}"}})
        if not self._authorized():
            return self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                              "code": "invalid_api_key"}})
        model = str(body.get("model", ""))
        fault = stub._draw_fault(model)
        if fault in ("die", "echo_key_401"):  # whatever the model
            return self._die() if fault == "die" else self._echo_key()
        if model not in stub.models:
            return self._send(404, {"error": {"message": f"The model `{model}` does not exist",
                                              "type": "invalid_request_error", "code": "model_not_found"}})
        if stub.latency_s or (stub.faults and stub.faults.slow_s):
            time.sleep(stub.latency_s + (stub.faults.slow_s if stub.faults else 0.0))
        if fault in ERROR_FAULTS:
            return self._fail(fault)
        self._answer(model, body, fault)

    def _die(self) -> None:
        self.stub._die()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _echo_key(self) -> None:
        presented = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self._send(401, {"error": {"message": f"Incorrect API key provided: {presented}. You can find "
                                   "your API key at https://example.invalid/keys.", "code": "invalid_api_key"}})

    def _fail(self, fault: str) -> None:
        """A call that gets no answer: 429, 500, a hang then 504, or a 200 whose body is empty or broken."""
        faults = self.stub.faults
        assert faults is not None
        if fault == "rate_limit":
            self._send(429, {"error": {"message": "Rate limit reached for requests", "type": "rate_limit_error"}},
                       headers={"Retry-After": f"{faults.retry_after_s:g}"})
        elif fault == "server_error":
            self._send(500, {"error": {"message": "The server had an error while processing your request.",
                                       "type": "server_error"}})
        elif fault == "timeout":
            time.sleep(faults.hang_s)
            self._send(504, {"error": {"message": "upstream timed out", "type": "timeout"}})
        else:
            self._send_raw(200, b"" if fault == "empty" else b'{"id": "chatcmpl-broken", "choices": [{"mess')

    def _answer(self, model: str, body: dict[str, Any], fault: str | None) -> None:
        """The responder's reply (spoilt by an off-label or truncated fault), with its token usage."""
        messages = body.get("messages", [])
        reply = self.stub.responder(model, messages, body)
        finish = "stop"
        if fault == "off_label" and isinstance(reply, str):
            reply = re.sub(r"\b(" + "|".join(LABELS) + r")\b", "UNRELATED", reply)
        elif fault == "truncated" and isinstance(reply, str):
            reply, finish = reply[: max(1, len(reply) // 3)], "length"
        if isinstance(reply, StubError):
            self._send(reply.status, {"error": {"message": reply.message, "type": "server_error"}},
                       headers=reply.headers)
            return
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
        completion_tokens = count_tokens(reply)
        n = int(body.get("n") or 1)
        self._send(200, {
            "id": f"chatcmpl-stub-{len(self.stub.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": reply}, "finish_reason": finish}
                for i in range(n)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        })


def main() -> None:  # pragma: no cover - manual use
    """Run a stub server in the foreground and print its base URL: ``python -m tests.stub_server [latency_s]``
    (faults from ``STUB_FAULTS``, a JSON object of :class:`Faults` fields)."""
    import sys

    responder = {"gepa": gepa_responder, "keyword": keyword_classifier}.get(os.environ.get("STUB_RESPONDER", ""))
    if os.environ.get("STUB_RESPONDER") == "tasks":  # the shipped tasks (and classification) - tests/stub_tasks.py
        from tests.stub_tasks import task_responder

        responder = task_responder
    responder = responder or keyword_classifier
    server = StubLLMServer(responder=responder, latency_s=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0,
                           faults=Faults.from_env()).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()




# GEPA scenario: a student that only applies the keyword rules its instruction teaches it, and a
# reflection model that teaches the rules for the labels its feedback shows were missed.

HINT = "Label as {label} when the sentence mentions: {words}."


def hint_for(label: str) -> str:
    return HINT.format(label=label, words=", ".join(KEYWORDS[label]))


def hinted_label(instruction: str, sentence: str, default: str = "BACKGROUND") -> str:
    """The student: apply only the rules whose hint is in the instruction; otherwise answer ``default``."""
    low = sentence.lower()
    for label, words in KEYWORDS.items():
        if hint_for(label) in instruction and any(w in low for w in words):
            return label
    return default


def improved_instruction(prompt: str) -> str:
    """The reflection model: the current instruction plus hints for every expected label the feedback names."""
    fields = re.findall(r"\[\[ ## current_instruction ## \]\]\n(.*?)(?=\n\[\[ ## |\Z)", prompt, re.S)
    current = fields[-1].strip() if fields else ""
    missed = [label for label in KEYWORDS if f"expected {label}" in prompt]
    hints = [hint_for(label) for label in missed if hint_for(label) not in current]
    return (current + "\n" + " ".join(hints)).strip() if hints else current or "Classify the sentence."


def is_reflection_call(messages: list[dict[str, Any]]) -> bool:
    text = "\n".join(str(m.get("content") or "") for m in messages)
    return "new_instruction" in text or "new instruction" in text.lower() or "assistant's instruction" in text.lower()


def gepa_responder(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """Serves both roles: ``stub-large`` reflects, every other model is the hinted student."""
    if model == "stub-large" or is_reflection_call(messages):
        prompt = "\n".join(str(m.get("content") or "") for m in messages)
        new = improved_instruction(prompt)
        if body.get("response_format") or "new_instruction" in prompt:
            return json.dumps({"new_instruction": new})
        return f"```\n{new}\n```"
    sentence = field_value(last_user_text(messages), "description")
    label = hinted_label(system_text(messages), sentence)
    return chat_answer("target", label)


if __name__ == "__main__":
    main()
