"""A stub that answers the example programs (examples/programs/) the way ``gepa_responder`` answers classification.

- ``extract_then_classify.py``: its EXTRACT step (input ``sentence``, outputs ``reasoning`` and ``finding``) quotes
  the sentence's first clause, whatever its instruction says. Its CLASSIFY step (inputs ``sentence`` and
  ``finding``, output ``label``) is the hinted student: it applies only the keyword rules whose hint
  (``hint_for``) is in its system message, and answers BACKGROUND otherwise; ``stub-large`` answers it as if taught.
- A REFLECTION on either step (a prompt :func:`is_reflection_call` spots, or ``stub-large`` not asked a step) whose
  examples show a ``finding`` field returns the current instruction plus the hints for every label its feedback
  says was expected ("expected METHODS"). The extract step gets those hints too, where they change nothing: GEPA's
  acceptance throws that candidate out.
- Anything else (``context_qa.py``'s ``qa`` calls, the shipped tasks, judges, classification) is ``task_responder``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from tests.stub_server import StubLLMServer, gepa_responder, hint_for, hinted_label, is_reflection_call
from tests.stub_tasks import chat_reply, field_names, output_names, sections, task_responder
from tests.stub_text import LABELS, last_user_text, system_text

TAUGHT = "\n".join(hint_for(label) for label in LABELS)  # every hint: how stub-large answers a step


def first_clause(sentence: str) -> str:
    """The sentence up to its first comma, semicolon or colon (the whole sentence when it has none)."""
    return re.split(r"[,;:]\s", sentence, maxsplit=1)[0].strip() or sentence


def extract_step(inputs: dict[str, str], instruction: str) -> dict[str, str]:
    return {"finding": first_clause(inputs["sentence"])}


def classify_step(inputs: dict[str, str], instruction: str) -> dict[str, str]:
    return {"label": hinted_label(instruction, inputs["sentence"])}


@dataclass(frozen=True)
class Step:
    """One predictor of an example program as the stub sees it: the inputs its user message shows, an output its
    system message asks for, and its answer given the inputs and the instruction."""

    name: str
    inputs: tuple[str, ...]
    output: str
    answer: Callable[[dict[str, str], str], dict[str, str]]

    def asked(self, system: str, user: str) -> bool:
        return self.output in output_names(system) and all(f"[[ ## {n} ## ]]" in user for n in self.inputs)


STEPS: tuple[Step, ...] = (
    Step("extract", ("sentence",), "finding", extract_step),
    Step("classify", ("sentence", "finding"), "label", classify_step),
)


def program_responder(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """Answer a step of an example program, or a reflection on one; anything else goes to ``task_responder``."""
    user, system = last_user_text(messages), system_text(messages)
    step = None if is_reflection_call(messages) else next((s for s in STEPS if s.asked(system, user)), None)
    if step is None:
        prompt = "\n".join(str(m.get("content") or "") for m in messages)
        reflecting = is_reflection_call(messages) or model == "stub-large"
        if reflecting and "finding" in field_names(prompt):
            return gepa_responder("stub-large", messages, body)  # improved_instruction, as JSON or in a ``` block
        return task_responder(model, messages, body)
    inputs = {name: (sections(user, name) or [""])[-1] for name in step.inputs}
    values = step.answer(inputs, TAUGHT if model == "stub-large" else system)
    return chat_reply(values, set(output_names(system)), body)


def program_stub(latency_s: float = 0.0) -> StubLLMServer:
    """A stub server (not started) that answers the example programs and every shipped task: ``with program_stub()``."""
    return StubLLMServer(responder=program_responder, latency_s=latency_s)
