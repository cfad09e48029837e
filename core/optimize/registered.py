"""An evaluated program in MLflow's prompt registry: the whole program (instruction and demos), as it was measured.

A version's template is the chat the program sends (system message, every demo as a user/assistant turn, then the
text as the ``{{<input field>}}`` variable); its tags hold the demos as structured records, the instruction, the
program's fingerprint and its measured test accuracy; its response format is the label set. The alias ``best``
moves to a version only when its measured test accuracy beats the aliased one's. Its name follows the registry's rules
(:mod:`core.tracking.registry_names`: ``catalog.schema.<task>_<student>`` on Unity Catalog), checked before any MLflow
call.

A program of your own (``core.program.user_program``) sends one prompt per predictor, each with its own inputs (a later
predictor's are often an earlier one's outputs): each is registered as a prompt of its own, named
``<task>-<student>-<predictor>`` (the predictor's name made a registry name, ``extract.predict`` ->
``..._extract_predict`` on Unity Catalog), its template that predictor's chat, its tags the program's and the
predictor's, and its alias ``best`` moved as the program's measured accuracy says.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import dspy

from core.config.settings import Settings
from core.lm.models import ModelSpec
from core.program.program import (
    fingerprint,
    get_instruction,
    module_type,
    predictor_messages,
    predictors,
    program_demos,
    prompt_template,
)
from core.program.user_program import program_tags
from core.tasks import Task
from core.tracking import registry_names
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)

BEST = "best"
# Versions registered as a whole program carry this tag; older ones held only the instruction (no demos), so
# their test accuracy was not measured on what they hold.
WHOLE_PROGRAM = ("registered", "program")
PROMPT_URIS_TAG = f"{TAG}prompt_uris"  # on a program of your own's run: "<predictor>=<prompt URI>", one per predictor


def prompt_name(task_name: str, student: ModelSpec, settings: Settings) -> str:
    """The prompt-registry name for a task and student: ``<task>-<student>`` (letters, digits, - _ . only), or
    ``catalog.schema.<task>_<student>`` on Unity Catalog (ConfigError when its catalog or schema is not set)."""
    return registry_names.made_name(settings, task_name, student.name)


@dataclass(frozen=True)
class MadeBy:
    """Where a registered program comes from: the run that measured it, its job, the optimizer that made it."""

    run_id: str
    job_id: str | None = None
    optimizer: str = "GEPA"


def _tags(task: Task, student: ModelSpec, program: dspy.Module, accuracy: float | None,
          made_by: MadeBy) -> dict[str, str]:
    demos = program_demos(program)
    return {"task": task.name, "student": student.name, "run_id": made_by.run_id, "job_id": made_by.job_id or "",
            "test_accuracy": "" if accuracy is None else f"{accuracy:.6f}", "module": module_type(program),
            "fingerprint": fingerprint(program), "instruction": get_instruction(program),
            "n_demos": str(len(demos)), "demos": json.dumps(demos, ensure_ascii=False, default=str),
            "input_field": task.input_field, "output_field": task.output_field, WHOLE_PROGRAM[0]: WHOLE_PROGRAM[1]}


_JSON_TYPES = {"label": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
               "text": {"type": "string"}, "number": {"type": "number"}, "json": {"type": "object"}}


def response_format(task: Task) -> dict[str, Any]:
    """The JSON schema of the program's answer: every output field, typed by its kind (labels as enums)."""
    props: dict[str, Any] = {}
    for f in task.output_specs:
        prop = dict(_JSON_TYPES[f.kind])
        if f.kind == "label":
            prop["enum"] = list(f.labels)
        elif f.kind == "labels":
            prop["items"] = {"type": "string", "enum": list(f.labels)}
        props[f.name] = prop
    return {"type": "object", "required": list(task.output_names), "properties": props}


def _beats_best(name: str, accuracy: float | None) -> bool:
    """Whether a program measured at ``accuracy`` takes the alias ``best``: there is none yet, the aliased version
    was never measured as it is registered (an old instruction-only one), or this one scored strictly higher. A
    tie keeps the older version; an unmeasured program never takes it. Test accuracies of runs on other test
    splits are compared as they are (each version's tags name its run, whose params hold the test fingerprint)."""
    import mlflow

    if accuracy is None:
        return False
    # cache_ttl_seconds=0: an alias lookup is otherwise cached for 60 s, and a second run would read a stale best.
    best = mlflow.genai.load_prompt(f"prompts:/{name}@{BEST}", allow_missing=True, link_to_model=False,
                                    cache_ttl_seconds=0)
    if best is None or best.tags.get(WHOLE_PROGRAM[0]) != WHOLE_PROGRAM[1]:
        return True
    try:
        best_accuracy = float(best.tags.get("test_accuracy") or "nan")
    except ValueError:
        return True
    return best_accuracy != best_accuracy or accuracy > best_accuracy


def predictor_template(predictor: dspy.Predict) -> list[dict[str, str]]:
    """The chat messages one predictor sends (its instruction and demos), each of its inputs a ``{{<field>}}``
    variable."""
    return [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in predictor_messages(predictor)]


def _predictor_format(task: Task, predictor: dspy.Predict) -> dict[str, Any]:
    """The JSON schema of one predictor's answer: a task's output typed by its kind, any other output (``reasoning``,
    a step's own) a string."""
    typed = response_format(task)["properties"]
    names = list(predictor.signature.output_fields)
    return {"type": "object", "required": names, "properties": {n: typed.get(n, {"type": "string"}) for n in names}}


def _prompts(task: Task, student: ModelSpec, program: dspy.Module, accuracy: float | None, made_by: MadeBy,
             settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    """(predictor, registry name, register_prompt's keywords) of each prompt to register: the studio's own program is
    one prompt (predictor ""); a program of your own, one per predictor. ConfigError when a name cannot be made."""
    base = _tags(task, student, program, accuracy, made_by)
    if not task.program:
        return [("", prompt_name(task.name, student, settings),
                 {"template": prompt_template(program, task), "tags": base, "response_format": response_format(task)})]
    base |= program_tags(task, program)
    out = []
    for name, pred in predictors(program):
        demos = [dict(demo) for demo in pred.dump_state().get("demos") or []]
        tags = base | {"predictor": name, "instruction": pred.signature.instructions, "n_demos": str(len(demos)),
                       "demos": json.dumps(demos, ensure_ascii=False, default=str),
                       "input_field": ", ".join(pred.signature.input_fields),
                       "output_field": ", ".join(pred.signature.output_fields)}
        out.append((name, registry_names.made_name(settings, task.name, student.name, name),
                    {"template": predictor_template(pred), "tags": tags,
                     "response_format": _predictor_format(task, pred)}))
    return out


def register_prompt(store: RunStore, task: Task, student: ModelSpec, program: dspy.Module, accuracy: float | None,
                    made_by: MadeBy) -> str | None:
    """Register ``program`` (measured at test ``accuracy`` by the run ``made_by.run_id``) as a new prompt version,
    demos included; move the alias ``best`` when it beats the aliased version. Its URI (also tagged on the run), or
    None if the registry refused, or its name could not be made (logged: the run's artifacts keep the program).

    A program of your own: each predictor's prompt as a new version of a prompt of its own; the first one's URI (the
    run's ``studio.prompt_uri``), every one's in the run's ``studio.prompt_uris``."""
    try:
        # The names first: on Unity Catalog without a catalog and schema (a ConfigError), no MLflow call is made.
        prompts = _prompts(task, student, program, accuracy, made_by, store.settings)
        import mlflow

        mlflow.set_tracking_uri(store.settings.tracking_uri)
        model: dict[str, Any] = {"model_name": student.model, "provider": student.provider}
        model.update({k: v for k, v in (("temperature", student.temperature), ("max_tokens", student.max_tokens))
                      if v is not None})
        uris = []
        for _, name, keywords in prompts:
            move = _beats_best(name, accuracy)  # before registering: "best" is the one measured so far
            version = mlflow.genai.register_prompt(
                name=name, commit_message=f"{made_by.optimizer} job {made_by.job_id}", model_config=model, **keywords)
            if move:
                mlflow.genai.set_prompt_alias(name, alias=BEST, version=version.version)
            uris.append(f"prompts:/{name}/{version.version}")
        tags = {f"{TAG}prompt_uri": uris[0]}
        if task.program:
            tags[PROMPT_URIS_TAG] = ", ".join(f"{pred}={uri}" for (pred, _, _), uri in zip(prompts, uris, strict=True))
        store.set_tags(made_by.run_id, tags)
        return uris[0]
    except Exception as exc:  # noqa: BLE001 - the registry is an extra; the run's artifacts have the program
        logger.warning("could not register the prompt: %s", exc)
        return None
