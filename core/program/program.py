"""The classification program: signature from a task, Predict or ChainOfThought, save/load, and the exact prompt."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Literal

import dspy

from core.config.errors import ConfigError
from core.tasks import Task, default_instruction
from core.tasks.fields import OutputSpec

logger = logging.getLogger(__name__)

ModuleType = Literal["predict", "cot"]
Start = Literal["bare", "described", "own"]
PROGRAM_FORMAT = 1

# The starting program's instruction: the one table the config, the pages and the CLI read.
STARTS: dict[str, str] = {
    "bare": "DSPy's bare signature: the text field and the label field typed with the labels, under DSPy's default "
            "instruction (as the original notebook started)",
    "described": "the signature with an instruction that lists the labels and says what each means (GEPA Studio's "
                 "default)",
    "own": "the signature with your own instruction",
}


def check_start(start: str, instruction: str | None) -> None:
    """ConfigError unless ``start`` is an entry of :data:`STARTS` that fits ``instruction``."""
    if start not in STARTS:
        raise ConfigError(f"Unknown starting program {start!r}.", f"Use one of: {', '.join(STARTS)}.")
    if start == "own" and not (instruction or "").strip():
        raise ConfigError("Starting from your own instruction needs the instruction.",
                          "Write it, or start from 'bare' or 'described'.")
    if start == "bare" and (instruction or "").strip():
        raise ConfigError("A bare start uses DSPy's default instruction, so it takes no instruction.",
                          "Start from 'own' to use yours.")


def _output_type(spec: OutputSpec) -> Any:
    """The Python type DSPy's adapters parse an output of this kind into."""
    if spec.kind == "label":
        return Literal[tuple(spec.labels)]  # type: ignore[valid-type]
    if spec.kind == "labels":
        return list[Literal[tuple(spec.labels)]]  # type: ignore[valid-type]
    return {"text": str, "number": float, "json": dict[str, Any]}[spec.kind]


def _fields_signature_fields(task: Task) -> dict[str, Any]:
    fields: dict[str, Any] = {f.name: (str, dspy.InputField(desc=f.description) if f.description
                                       else dspy.InputField()) for f in task.inputs}
    for f in task.outputs:
        fields[f.name] = (_output_type(f), dspy.OutputField(desc=f.description) if f.description
                          else dspy.OutputField())
    return fields


def make_signature(task: Task, instruction: str | None = None, start: Start = "described") -> type[dspy.Signature]:
    """A signature ``<input_field> -> <output_field>`` whose output is typed ``Literal[labels]`` (a task beyond
    classification: its input fields -> its typed output fields); its instruction as :data:`STARTS` says
    (``instruction`` wins for ``"described"``, as it always has)."""
    if not task.is_classification:
        check_start(start, instruction)
        fields = _fields_signature_fields(task)
        if start == "bare":
            return dspy.Signature(fields)
        return dspy.Signature(fields, instruction or task.instruction or default_instruction(task))
    if len(task.labels) < 2:
        raise ConfigError(f"Task {task.name!r} has fewer than 2 labels.", "A classifier needs at least two labels.")
    check_start(start, instruction)
    label_type = Literal[tuple(task.labels)]  # type: ignore[valid-type]
    fields: dict[str, Any] = {
        task.input_field: (str, dspy.InputField()),
        task.output_field: (label_type, dspy.OutputField()),
    }
    if start == "bare":
        return dspy.Signature(fields)  # DSPy writes its own default instruction for these fields
    return dspy.Signature(fields, instruction or task.instruction or default_instruction(task))


def make_program(task: Task, module: ModuleType = "predict", instruction: str | None = None, *,
                 start: Start = "described") -> dspy.Module:
    """A fresh, unoptimized program for ``task``, starting as :data:`STARTS` says; a task with your own program
    (``task.program``): that program, as its file builds it (:func:`core.program.user_program.program_for_task`)."""
    if task.program:
        from core.program.user_program import program_for_task

        if (instruction or "").strip() or start == "own":
            raise ConfigError("Your own program keeps the instructions its file gives each predictor.",
                              "Drop the instruction (and the 'own' start / your-own-prompt optimizer), or edit "
                              "the program's signatures.")
        return program_for_task(task)
    sig = make_signature(task, instruction, start)
    if module == "predict":
        return dspy.Predict(sig)
    if module == "cot":
        return dspy.ChainOfThought(sig)
    raise ConfigError(f"Unknown module type {module!r}.", "Use 'predict' or 'cot'.")


def to_examples(rows: Any, task: Task) -> list[dspy.Example]:
    """DataFrame rows (text and label columns; a task beyond classification: all its columns) as ``dspy.Example``
    with the task's field names."""
    if not task.is_classification:
        specs = [(f.name, f.column) for f in task.inputs] + [(f.name, f.column) for f in task.outputs]
        names = [f.name for f in task.inputs]
        return [dspy.Example(**{name: str(row[column]) for name, column in specs}).with_inputs(*names)
                for row in rows[[c for _, c in specs]].to_dict("records")]
    examples = []
    for text, label in zip(rows[task.text_column].tolist(), rows[task.label_column].tolist(), strict=True):
        ex = dspy.Example(**{task.input_field: str(text), task.output_field: str(label)})
        examples.append(ex.with_inputs(task.input_field))
    return examples


def predictors(program: dspy.Module) -> list[tuple[str, dspy.Predict]]:
    return list(program.named_predictors())


def get_instruction(program: dspy.Module) -> str:
    """The instruction of the program's (first) predictor (:func:`instructions`: every predictor's)."""
    return predictors(program)[0][1].signature.instructions


def instructions(program: dspy.Module) -> dict[str, str]:
    """Every predictor's instruction by its name (``extract.predict``, ``classify``), in DSPy's order."""
    return {name: pred.signature.instructions for name, pred in predictors(program)}


def instructions_record(original: dspy.Module, optimized: dspy.Module) -> dict[str, Any]:
    """``instructions.json``: the (first) predictor's instruction before and after, and with several predictors,
    each one's by name with whether the optimization changed it."""
    out: dict[str, Any] = {"original": get_instruction(original), "optimized": get_instruction(optimized)}
    before, after = instructions(original), instructions(optimized)
    if len(before) > 1:
        out["predictors"] = {name: {"original": text, "optimized": after.get(name, text),
                                    "changed": after.get(name, text) != text} for name, text in before.items()}
    return out


def module_type(program: dspy.Module) -> str:
    """``"cot"``, ``"predict"`` or ``"program"`` (your own: any other dspy.Module)."""
    if isinstance(program, dspy.ChainOfThought):
        return "cot"
    return "predict" if isinstance(program, dspy.Predict) else "program"


def program_to_dict(program: dspy.Module, task: Task) -> dict[str, Any]:
    """A JSON-able description: task, module type, and DSPy's own state (instructions, demos)."""
    out = {
        "format": PROGRAM_FORMAT,
        "task": task.to_dict(),
        "module": module_type(program),
        "instruction": get_instruction(program),
        "state": program.dump_state(),
    }
    if task.program:  # your own program: every predictor's instruction and prompt, readable without its code
        out |= {"instructions": instructions(program), "prompts": predictor_prompts(program)}
    return out


def program_from_dict(data: dict[str, Any], program_file: str | Path | None = None) -> tuple[dspy.Module, Task]:
    """Rebuild a program saved by :func:`program_to_dict`. Your own program is built by its file again (this runs
    its code: a worker or a served model, never the dashboard), ``program_file`` when the file has moved (a served
    model's copy of it)."""
    try:
        task = Task.from_dict(data["task"])
        if task.program:
            from core.program.user_program import program_for_task

            program = program_for_task(task, program_file)
        else:
            program = make_program(task, data.get("module", "predict"), data.get("instruction"))
        program.load_state(data["state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Not a GEPA Studio program file: {exc}", "Save programs with save_program().") from exc
    return program, task


def save_program(program: dspy.Module, task: Task, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(program_to_dict(program, task), indent=2, default=str), encoding="utf-8")
    return path


def load_program(path: str | Path) -> tuple[dspy.Module, Task]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read program file {path}: {exc}") from exc
    return program_from_dict(data)


def fingerprint(program: dspy.Module) -> str:
    """A short hash of what the program sends (instructions, fields, demos): equal programs, equal prints."""
    blob = json.dumps(program.dump_state(), sort_keys=True, default=str)
    return hashlib.sha256(f"{module_type(program)}|{blob}".encode()).hexdigest()[:12]


def render_prompt(program: dspy.Module, example: dspy.Example | dict[str, Any],
                  adapter: Any = None) -> list[dict[str, Any]]:
    """The exact messages the LM receives for ``example`` (system and user), from the adapter."""
    adapter = adapter or dspy.settings.adapter or dspy.ChatAdapter()
    name, pred = predictors(program)[0]
    sig = pred.signature
    if isinstance(program, dspy.ChainOfThought):
        sig = program.predict.signature
    inputs_src = example.inputs() if isinstance(example, dspy.Example) and example._input_keys else example
    inputs = {k: v for k, v in dict(inputs_src).items() if k in sig.input_fields}
    demos = list(getattr(pred, "demos", []) or [])
    return adapter.format(sig, demos=demos, inputs=inputs)


def predictor_messages(pred: dspy.Predict, adapter: Any = None) -> list[dict[str, Any]]:
    """The chat one predictor sends (its instruction, fields and demos), each of its inputs a ``{{field}}``
    variable."""
    adapter = adapter or dspy.settings.adapter or dspy.ChatAdapter()
    variables = {field: "{{" + field + "}}" for field in pred.signature.input_fields}
    return adapter.format(pred.signature, demos=list(getattr(pred, "demos", []) or []), inputs=variables)


def predictor_prompts(program: dspy.Module, adapter: Any = None) -> dict[str, str]:
    """Each predictor's whole prompt (:func:`predictor_messages`) as readable text by predictor name: what your own
    program sends at each step, saved so pages can show and diff it without running the program's code."""
    return {name: prompt_text(predictor_messages(pred, adapter)) for name, pred in predictors(program)}


def prompt_template(program: dspy.Module, task: Task) -> list[dict[str, str]]:
    """The chat messages the program sends (its instruction and every demo), with each input as a
    ``{{<input field>}}`` variable of MLflow's prompt templates: the whole program, as a prompt registry holds it."""
    variables = {name: "{{" + name + "}}" for name in task.input_names}
    return [{"role": str(m.get("role")), "content": str(m.get("content"))}
            for m in render_prompt(program, variables)]


def program_demos(program: dspy.Module) -> list[dict[str, Any]]:
    """The program's demos (the worked examples it sends before the text), as plain field -> value records."""
    return [dict(demo) for _, pred in predictors(program) for demo in pred.dump_state().get("demos") or []]


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """Messages as one readable text block (for diffs and artifacts)."""
    parts = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(str(c.get("text", c)) if isinstance(c, dict) else str(c) for c in content)
        parts.append(f"=== {m.get('role', '?')} ===\n{content}")
    return "\n\n".join(parts)
