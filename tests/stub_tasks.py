"""A stub that answers every shipped task (core/tasks/shipped/) the way ``gepa_responder`` answers classification.

- The STUDENT (any model but ``stub-large``) knows each shipped row's answer but spoils it in one set way for each
  of its task's hints (:data:`TASK_HINTS`) missing from its system message; with all of them it answers right. An
  input not in the data gets a rough rule-based answer, spoilt alike. ``stub-large`` asked a task answers as if taught.
- The REFLECTION model (``stub-large`` on any other prompt, or a prompt :func:`is_reflection_call` spots) returns the
  current instruction plus ONE missing hint: the first that changes the answer to an example the prompt shows (else
  the first missing), so GEPA climbs one hint per accepted proposal.
- The JUDGE (a ``rubric`` field, a ``score`` output) scores a rewrite: half the share of the note's shorthand expanded,
  half the token F1 against the expected rewrite. Anything else (``[[ ## description ## ]]``) is ``gepa_responder``'s.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

from tests.stub_server import StubLLMServer, gepa_responder, is_reflection_call
from tests.stub_text import last_user_text, system_text

SHIPPED = Path(__file__).resolve().parents[1] / "core" / "tasks" / "shipped"

# Numbered hints per task: hint i missing from the system message spoils the answer in the way its degrade says.
TASK_HINTS: dict[str, tuple[str, ...]] = {
    "extract": (
        "Give the dose with its unit, as written (say '40 mg', not '40').",
        "Give only the condition, without the patient group before it (say 'asthma', not 'children with asthma').",
        "Name only the drug, without its form or route (say 'metformin', not 'metformin tablets').",
        "Leave a field empty when the sentence does not name it.",
    ),
    "qa": (
        "Answer with the shortest phrase of the context that answers the question, not the whole sentence.",
        "For a question about who, give the person's full name as the context writes it.",
        "For how many, how much, how long or how far questions, keep the unit with the number.",
        "For a question about when, give the whole date, with the year.",
    ),
    "arithmetic": (
        "When the problem gives a percentage, apply it to the amount it refers to.",
        "Convert units before combining quantities (minutes and hours, grams and kilograms, cents and dollars).",
        "Keep the decimals of the answer, rounded to two places; do not round to a whole number.",
    ),
    "tags": (
        "Tag refund whenever the customer wants money back; a disputed charge is billing as well.",
        "Tag shipping for delivery, parcels, couriers and tracking; a question about an order is not an account issue.",
        "Tag bug when something that should work fails or shows an error; feature_request is only for something new.",
    ),
    "rewrite": (
        "Expand every clinical abbreviation into plain words (pt: patient, c/o: complains of, h/o: a history of).",
        "Write times and frequencies in words (x2d: for two days, BID: twice a day, PRN: as needed).",
        "Add nothing the note does not say: no advice, reassurance or next steps.",
    ),
}

# The rewrite task's shorthand: clinical abbreviations (hint 0) and times and frequencies (hint 1).
CLINICAL = {
    "pt": "patient", "c/o": "complains of", "SOB": "shortness of breath", "CP": "chest pain",
    "HTN": "high blood pressure", "DM": "diabetes", "h/o": "a history of", "N/V": "nausea and vomiting",
    "abd": "abdominal", "w/": "with", "y/o": "year-old", "M": "man", "F": "woman", "s/p": "after",
    "dx": "diagnosed with", "BP": "blood pressure", "HR": "heart rate", "ED": "emergency department",
    "UTI": "urinary tract infection", "abx": "antibiotics", "PO": "by mouth", "IV": "intravenous", "d/c": "stopped",
    "Rx": "prescribed", "f/u": "follow-up", "L": "left", "R": "right", "fx": "fracture", "neg": "negative",
    "temp": "temperature", "sx": "symptoms", "COPD": "chronic obstructive pulmonary disease", "MI": "heart attack",
    "AF": "irregular heartbeat", "meds": "medicines", "wt": "weight", "GP": "family doctor", "ASA": "aspirin",
    "NKDA": "no known drug allergies", "LOC": "loss of consciousness", "HA": "headache", "URI": "cold",
    "CXR": "chest X-ray", "ECG": "heart tracing", "ROM": "range of motion", "nl": "normal", "r/o": "rule out",
    "DVT": "blood clot", "INR": "clotting test", "neuro": "neurological", "cont": "continue", "Hb": "haemoglobin",
    "2/2": "because of",
}
TIMING = {
    "x1d": "for one day", "x2d": "for two days", "x3d": "for three days", "x4d": "for four days",
    "x5d": "for five days", "x1wk": "for one week", "x2wk": "for two weeks", "x3mo": "for three months",
    "BID": "twice a day", "TID": "three times a day", "QD": "once a day", "QHS": "at bedtime", "PRN": "as needed",
    "q6h": "every six hours", "2d": "two days", "5d": "five days", "1wk": "in one week", "3mo": "in three months",
}
SHORTHAND = {**CLINICAL, **TIMING}
ADDED = "Further tests are advised."  # what a student without the rewrite's last hint makes up

Answer = dict[str, Any]


def squash(text: str) -> str:
    return " ".join(str(text).split())


def words(phrase: str) -> str:
    """``phrase`` as a pattern matching it as whole words, case aside."""
    return r"(?<![\w/])" + re.escape(phrase) + r"(?![\w/])"


def note_tokens(note: str) -> set[str]:
    return {t.strip(",.;:()") for t in note.split()}  # "c/o", "x2d", "L" as the note writes them


def number(value: float) -> str:
    """A number as a person writes it: at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def first_number(text: str) -> float:
    found = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    return float(found.group().replace(",", "")) if found else 0.0


def around(sentence: str, phrase: str, before: int = 0, after: int = 0) -> str:
    """``phrase`` as the sentence writes it, with ``before`` words ahead of it and ``after`` words behind it."""
    found = re.search(words(phrase), sentence, re.I) if phrase else None
    if not found:
        return phrase
    head = sentence[: found.start()].split()[-before:] if before else []
    tail = sentence[found.end():].split()[:after]
    return " ".join([*head, found.group(), *tail]).strip(",.;:")


# ---- how each task's student spoils the right answer for each missing hint (the numbers are the hints') ----

def extract_answer(inputs: dict[str, str], gold: Answer, missing: set[int]) -> Answer:
    sentence, out = inputs["sentence"], dict(gold)
    if 0 in missing:
        out["dose"] = " ".join(re.findall(r"\d+(?:\.\d+)?", gold["dose"]))
    if 1 in missing:
        out["condition"] = around(sentence, gold["condition"], before=2)
    if 2 in missing:
        out["drug"] = around(sentence, gold["drug"], after=1)
    if 3 in missing:
        out = {k: v or "not stated" for k, v in out.items()}
    return out


HOW_MUCH = re.compile(r"how (many|much|long|far|old|often|tall|wide|heavy|deep|high)\b")


def qa_answer(inputs: dict[str, str], gold: Answer, missing: set[int]) -> Answer:
    question, answer = inputs["question"].lower(), gold["answer"]
    if 1 in missing and question.startswith("who "):
        answer = answer.split()[-1]
    if 2 in missing and HOW_MUCH.match(question):
        answer = " ".join(t for t in answer.split() if re.search(r"\d", t)) or answer
    if 3 in missing and question.startswith("when "):
        answer = " ".join(t for t in answer.split() if not re.fullmatch(r"\d{4}", t)) or answer
    if 0 in missing:
        answer = next((s for s in re.split(r"(?<=[.!?])\s+", inputs["context"]) if gold["answer"] in s), answer)
    return {"answer": answer}


UNITS = ((r"minutes?", r"hours?", 60), (r"seconds?", r"minutes?", 60), (r"grams?", r"kilograms?", 1000),
         (r"cents?", r"dollars?", 100), (r"millilitres?", r"litres?", 1000), (r"centimetres?", r"metres?", 100))


def conversion(problem: str) -> float:
    """The factor between two units of one kind the problem mentions (1 when it needs no conversion)."""
    low = problem.lower()
    return next((f for small, big, f in UNITS if re.search(rf"\b{small}\b", low) and re.search(rf"\b{big}\b", low)), 1)


def arithmetic_answer(inputs: dict[str, str], gold: Answer, missing: set[int]) -> Answer:
    problem, value = inputs["problem"], float(gold["answer"])
    if 1 in missing:
        value *= conversion(problem)
    if 0 in missing and re.search(r"%|percent", problem):
        value = first_number(problem)  # the percentage ignored
    if 2 in missing:
        value = float(int(value))
    return {"answer": round(value, 2)}


SWAPS = (("refund", "billing"), ("shipping", "account"), ("bug", "feature_request"))  # hint i unknown: a -> b


def tags_answer(inputs: dict[str, str], gold: Answer, missing: set[int]) -> Answer:
    tags = list(gold["tags"])
    for i, (src, dst) in enumerate(SWAPS):
        if i in missing:
            tags = [dst if t == src else t for t in tags]
    return {"tags": list(dict.fromkeys(tags))}


def rewrite_answer(inputs: dict[str, str], gold: Answer, missing: set[int]) -> Answer:
    text, tokens = gold["reference"], note_tokens(inputs["note"])
    for i, table in enumerate((CLINICAL, TIMING)):
        if i in missing:  # put the note's shorthand back where the reference spells it out
            for short, plain in sorted(table.items(), key=lambda kv: -len(kv[1])):
                if short in tokens:
                    text = re.sub(words(plain), lambda _, short=short: short, text, flags=re.I)
    return {"reference": f"{text} {ADDED}" if 2 in missing else text}


# ---- rough answers to inputs the shipped data does not hold ----

TAG_WORDS = {"billing": ("charge", "invoice", "price", "pay"), "refund": ("refund", "money back"),
             "shipping": ("deliver", "parcel", "courier", "tracking"), "account": ("account", "password", "sign in"),
             "bug": ("crash", "error", "broken", "freez"), "feature_request": ("please add", "could you add")}


def guess(task: str, inputs: dict[str, str]) -> Answer:
    text = " ".join(inputs.values())
    if task == "extract":
        dose = re.search(r"\d+(?:\.\d+)? ?(?:mg/kg|mg|mcg|g|ml|IU|units)\b", text)
        return {"drug": "", "dose": dose.group() if dose else "", "condition": ""}
    if task == "qa":
        asked = set(inputs["question"].lower().split())  # the context's sentence sharing most words with it
        sentences = re.split(r"(?<=[.!?])\s+", inputs["context"])
        return {"answer": max(sentences, key=lambda s: len(asked & set(s.lower().split())))}
    if task == "arithmetic":
        numbers = re.findall(r"\d+(?:\.\d+)?", text.replace(",", ""))
        return {"answer": float(numbers[-1]) if numbers else 0.0}
    if task == "tags":
        return {"tags": [t for t, ws in TAG_WORDS.items() if any(w in text.lower() for w in ws)] or ["bug"]}
    plain = " ".join(SHORTHAND.get(t.strip(",.;:"), t) for t in text.split())
    return {"reference": plain[:1].upper() + plain[1:] + "."}


@dataclass(frozen=True)
class StubTask:
    """One shipped task as the stub sees it: its field names, a field that must be there too, and how it spoils."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    answer: Callable[[dict[str, str], Answer, set[int]], Answer]
    marker: str = ""  # an output name that must be present too ("text" alone is too common an input name)

    def matches(self, names: set[str]) -> bool:
        return set(self.inputs) <= names and (not self.marker or self.marker in names)


TASKS: dict[str, StubTask] = {t.name: t for t in (
    StubTask("qa", ("context", "question"), ("answer",), qa_answer),
    StubTask("extract", ("sentence",), ("drug", "dose", "condition"), extract_answer),
    StubTask("arithmetic", ("problem",), ("answer",), arithmetic_answer),
    StubTask("rewrite", ("note",), ("reference",), rewrite_answer),
    StubTask("tags", ("text",), ("tags",), tags_answer, marker="tags"),
)}


@cache
def shipped_rows(task: str) -> dict[tuple[str, ...], Answer]:
    """The task's data.csv as {inputs (squashed): expected answer}."""
    spec, table = TASKS[task], {}
    with open(SHIPPED / task / "data.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            gold: Answer = {k: row[k] for k in spec.outputs}
            if task == "tags":
                gold["tags"] = [t.strip() for t in row["tags"].split(";") if t.strip()]
            elif task == "arithmetic":
                gold["answer"] = float(row["answer"])
            table[tuple(squash(row[k]) for k in spec.inputs)] = gold
    return table


def student_answer(task: str, inputs: dict[str, str], instruction: str) -> Answer:
    """What the student answers to ``inputs`` when its instruction (system message) is ``instruction``."""
    hints, told = TASK_HINTS[task], squash(instruction)
    missing = {i for i, h in enumerate(hints) if squash(h) not in told}
    gold = shipped_rows(task).get(tuple(squash(inputs.get(k, "")) for k in TASKS[task].inputs))
    return TASKS[task].answer(inputs, gold if gold is not None else guess(task, inputs), missing)


# ---- reading and writing DSPy's formats ----

RESPOND = "\n\nRespond with "  # ChatAdapter's closing line, after the last input


def field_names(text: str) -> set[str]:
    """Field names a prompt shows: ``[[ ## name ## ]]`` markers, markdown headers (GEPA's template), `name`, and
    JSON keys (DSPy's proposer shows its examples as JSON)."""
    return {*re.findall(r"\[\[ ## (\w+) ## \]\]", text), *re.findall(r"^#{1,6} (\w+)[ \t]*$", text, re.M),
            *re.findall(r"`(\w+)`", text), *re.findall(r'"(\w+)": ', text)}


def sections(text: str, name: str) -> list[str]:
    """Every value shown for ``name``, in order: after its ``[[ ## name ## ]]`` marker, under its markdown header, or
    as a JSON string under its key."""
    marked = re.findall(rf"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\n\[\[ ## |{RESPOND}|\Z)", text, re.S)
    headed = re.findall(rf"^#{{1,6}} {name}[ \t]*\n(.*?)(?=\n\n|\n#|\Z)", text, re.S | re.M)
    keyed = [json.loads(v) for v in re.findall(rf'"{name}": ("(?:[^"\\]|\\.)*")', text)]
    return [str(v).strip() for v in [*marked, *headed, *keyed]]


def chat_reply(values: Answer, names: set[str], body: dict[str, Any]) -> str:
    """``values`` in ChatAdapter's format, or as a JSON object when the request asked for one."""
    if "reasoning" in names:
        values = {"reasoning": "I followed the rules in my instructions.", **values}
    if body.get("response_format"):
        return json.dumps(values)
    shown = {k: json.dumps(v) if isinstance(v, list) else number(v) if isinstance(v, float) else v
             for k, v in values.items()}
    return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in shown.items()) + "[[ ## completed ## ]]"


def current_instruction(prompt: str) -> str:
    """The instruction a reflection prompt shows: its ``current_instruction`` field, else its first ``` block."""
    marked, block = sections(prompt, "current_instruction"), re.search(r"```[^\n]*\n(.*?)```", prompt, re.S)
    return marked[-1] if marked else block.group(1).strip() if block else ""


def reflect(task: str, prompt: str) -> str:
    """The current instruction plus one missing hint: the first one that changes an answer the prompt shows."""
    current, hints = current_instruction(prompt), TASK_HINTS[task]
    missing = [h for h in hints if squash(h) not in squash(current)]
    if not missing:
        return current
    values = [sections(prompt, name) for name in TASKS[task].inputs]
    shown = [dict(zip(TASKS[task].inputs, row, strict=True)) for row in zip(*values, strict=False)]

    def helps(hint: str) -> bool:
        return any(student_answer(task, x, current) != student_answer(task, x, f"{current}\n{hint}") for x in shown)

    return f"{current}\n{next((h for h in missing if helps(h)), missing[0])}".strip()


# The output fields of MIPROv2's prompt-model calls (DSPy's grounded proposer: data summary, program and module
# descriptions, the instruction).
PROPOSER_FIELDS = {"proposed_instruction", "observations", "summary", "program_description", "module_description"}


def output_names(system: str) -> list[str]:
    """The output fields a ChatAdapter system message asks for ("Your output fields are: 1. `x` ...")."""
    part = system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    return re.findall(r"^\d+\. `(\w+)`", part, re.M)


def proposer_reply(messages: list[dict[str, Any]], body: dict[str, Any], outputs: list[str]) -> str:
    """MIPROv2's prompt model (dataset summary, program description, instruction proposal): a proposed instruction
    teaches every hint of the task the prompt is about; any other field gets a short note."""
    prompt = "\n".join(str(m.get("content") or "") for m in messages)
    task = next((t for t in TASKS.values() if t.matches(field_names(prompt))), None)
    hints = "\n".join(TASK_HINTS[task.name]) if task is not None else ""
    values = {f: (f"Answer every field as the examples do.\n{hints}".strip() if f == "proposed_instruction"
                  else "A short note.") for f in outputs}
    if body.get("response_format"):
        return json.dumps(values)
    return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items()) + "[[ ## completed ## ]]"


def reflection_reply(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """GEPA's reflection on a shipped task: its current instruction plus one missing hint (others: gepa_responder)."""
    prompt = "\n".join(str(m.get("content") or "") for m in messages)
    task = next((t for t in TASKS.values() if t.matches(field_names(prompt))), None)
    if task is None:
        return gepa_responder(model, messages, body)
    new = reflect(task.name, prompt)
    if body.get("response_format") or "new_instruction" in prompt:
        return json.dumps({"new_instruction": new})
    return f"```\n{new}\n```"


def task_responder(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """Answer a shipped task's student, reflection, judge or MIPROv2 proposer call; anything else goes to
    ``gepa_responder``."""
    user, system = last_user_text(messages), system_text(messages)
    names = field_names(system) | field_names(user)
    if "rubric" in field_names(user) and "score" in names:
        from tests.stub_judge import judge_reply  # its module reads this one's helpers

        return judge_reply(messages, body)
    if PROPOSER_FIELDS & set(outputs := output_names(system)):
        return proposer_reply(messages, body, outputs)
    task = next((t for t in TASKS.values() if t.matches(names)), None)
    asked = task is not None and all(f"[[ ## {name} ## ]]" in user for name in task.inputs)
    if is_reflection_call(messages) or (model == "stub-large" and not asked):
        return reflection_reply(model, messages, body)
    if task is None or not asked:
        return gepa_responder(model, messages, body)
    inputs = {name: (sections(user, name) or [""])[-1] for name in task.inputs}
    told = "\n".join(TASK_HINTS[task.name]) if model == "stub-large" else system
    return chat_reply(student_answer(task.name, inputs, told), names, body)


def task_stub(latency_s: float = 0.0) -> StubLLMServer:
    """A stub server (not started) that answers every shipped task and classification: ``with task_stub() as s``."""
    return StubLLMServer(responder=task_responder, latency_s=latency_s)
