"""Fake LMs through DSPy 3.4's engine contract: ``dspy.LM("fake/<name>", engine=FakeEngine(fn), cache=False)``.

``fn(system_text, user_text) -> reply text``. Usage is counted as whitespace words, like the stub server.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import dspy
from dspy.lm15 import Message, Response, Usage, response_to_events

Reply = Callable[[str, str], str]


def _text(obj: Any) -> str:
    if obj is None:
        return ""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, (tuple, list)):
        return "\n".join(_text(p) for p in obj)
    for attr in ("text", "content"):
        value = getattr(obj, attr, None)
        if isinstance(value, str):
            return value
    parts = getattr(obj, "parts", None)
    if parts is not None:
        return _text(parts)
    return str(obj)


class FakeEngine:
    def __init__(self, reply: Reply, model: str = "fake") -> None:
        self.reply, self.model = reply, model
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, request: Any) -> Response:
        system = _text(request.system)
        msgs = list(request.messages)
        system += "\n".join(_text(m) for m in msgs if str(getattr(m, "role", "")) in ("system", "developer"))
        user = _text(next((m for m in reversed(msgs) if str(getattr(m, "role", "")) == "user"), ""))
        text = self.reply(system, user)
        with self._lock:
            self.calls += 1
        inp = len((system + " " + user).split())
        out = len(text.split())
        return Response(id=None, model=self.model, message=Message.assistant(text), finish_reason="stop",
                        usage=Usage(input_tokens=inp, output_tokens=out, total_tokens=inp + out))

    def stream(self, request: Any):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def fake_lm(reply: Reply, name: str = "fake/task") -> dspy.LM:
    return dspy.LM(name, engine=FakeEngine(reply, name), cache=False)
