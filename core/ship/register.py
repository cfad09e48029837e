"""Ship a program: an optimized (or any evaluated) program as a registered MLflow model, and how to use it.

:func:`export_model` logs the program as a pyfunc model (:class:`core.ship.pyfunc.StudioProgram`) in the run that
made it, registers it in MLflow's model registry and links the three ways: the model version is tagged with the
run, the optimization and the prompt-registry version; the runs are tagged with the model version. Nothing
secret is logged: the student's key is named, never held (the served model reads it from its environment); a program
of your own travels with its file (:func:`core.ship.pyfunc.write_artifacts`), its version tagged with its identity.
What is registered is what was measured: a program never evaluated on its test set is refused unless allowed, and
then tagged ``studio.tested=false`` with the reason; a tested one carries its test accuracy. Its name follows the
registry's rules (:mod:`core.tracking.registry_names`: ``catalog.schema.name`` on Unity Catalog), checked first.
"""

from __future__ import annotations

import json
import logging
import shlex
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from core.config.errors import ConfigError, StoreError
from core.config.settings import Settings
from core.lm.models import ModelSpec
from core.tracking import registry_names
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)

MODEL_URI_TAG = f"{TAG}model_uri"  # on the source run and its optimization: models:/<name>/<version>
PROMPT_URI_TAG = f"{TAG}prompt_uri"
TESTED_TAG = f"{TAG}tested"  # on a model version: "true" (measured on its test set) or "false"
UNTESTED_TAG = f"{TAG}untested_reason"  # on a model version registered untested: why it was never measured
ARTIFACT_PATH = "model"
DEFAULT_PORT = 5001
REQUIREMENTS = ("mlflow", "dspy", "litellm", "pandas")


@dataclass(frozen=True)
class Source:
    """What an export ships: the program, the student that runs it, and the runs it came from."""

    run_id: str  # the run whose program is shipped (the model is logged there)
    kind: str
    task: str
    program: dict[str, Any]  # core.program.program.program_to_dict
    student: ModelSpec
    optimization_run_id: str | None
    prompt_uri: str | None
    untested: str | None = None  # why the program was never (fully) evaluated on its test set; None: it was
    test_accuracy: float | None = None  # what its test evaluation measured

    def __post_init__(self) -> None:
        if not self.program.get("task") or "state" not in self.program:
            raise ConfigError(f"Run {self.run_id} has no complete program to ship.",
                              "Ship an optimization that finished, or one of its evaluation runs.")

    @property
    def fields(self) -> tuple[str, str]:
        """The program's (input, output) field names: the served model's column names."""
        return self.task_of.input_field, self.task_of.output_field

    @property
    def task_of(self) -> Any:
        """The program's :class:`core.tasks.Task`."""
        from core.tasks import Task

        return Task.from_dict(self.program["task"])

    @property
    def all_fields(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Every input and output field name of a task beyond classification; ((), ()) for classification."""
        return _all_fields(self.task_of)


@dataclass(frozen=True)
class Shipped:
    """A registered model version and how to use it."""

    name: str
    version: str
    run_id: str
    optimization_run_id: str | None
    prompt_uri: str | None
    input_field: str
    output_field: str
    untested: str | None = None  # registered although never evaluated on its test set: why (tagged on the version)
    # A task beyond classification: every input and output field (the served columns); empty for classification.
    input_fields: tuple[str, ...] = ()
    output_fields: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns a request sends (classification: the one text field)."""
        return self.input_fields or (self.input_field,)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The columns an answer holds beside ``error`` (classification: the one label field)."""
        return self.output_fields or (self.output_field,)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "version": self.version, "uri": self.uri, "run_id": self.run_id,
               "optimization_run_id": self.optimization_run_id, "prompt_uri": self.prompt_uri,
               "input_field": self.input_field, "output_field": self.output_field, "untested": self.untested}
        if self.input_fields or self.output_fields:
            out |= {"input_fields": list(self.input_fields), "output_fields": list(self.output_fields)}
        return out


def model_name(task: str, student: str, program: str, settings: Settings) -> str:
    """The registry name for a task, student and program kind: ``<task>-<student>-<program>`` (letters, digits,
    - _ . only), or ``catalog.schema.<task>_<student>_<program>`` on Unity Catalog."""
    return registry_names.made_name(settings, task, student, program)


def _spec_from_params(params: dict[str, str]) -> ModelSpec:
    """A baseline's student, from its params (they name the model, never hold its key)."""
    from core.config.settings import PROVIDERS

    provider = params.get("provider") or "openai"
    def num(key: str) -> float | None:
        value = params.get(key)
        return float(value) if value not in (None, "", "None") else None

    retries = num("num_retries")
    return ModelSpec(name=params.get("model_name") or params["model"], model=params["model"], provider=provider,
                     api_base=params.get("api_base") or None,
                     api_key_env=PROVIDERS[provider].key_env if provider in PROVIDERS else None,
                     temperature=num("temperature"), max_tokens=int(num("max_tokens") or 0) or None,
                     reasoning_effort=params.get("reasoning_effort") or None, timeout_s=num("timeout_s") or 120.0,
                     num_retries=int(retries) if retries is not None else 2)


def _student_of(store: RunStore, run_id: str, run: Any) -> ModelSpec:
    """An evaluation's student: as its resume file kept it (with its key variable's name), else its
    optimization's, else from its params (the provider's usual key variable)."""
    from core.evaluation.baseline import RESUME_FILE, run_dir

    path = run_dir(store, run_id) / RESUME_FILE
    if path.is_file():
        return ModelSpec.from_dict(json.loads(path.read_text(encoding="utf-8"))["spec"])
    parent = run.data.tags.get("mlflow.parentRunId")
    if parent and "config.json" in store.list_artifacts(parent):  # an optimization's student
        return ModelSpec.from_dict(store.read_json(parent, "config.json")["student"])
    return _spec_from_params(run.data.params)


def _verdict(run: Any) -> tuple[str | None, float | None]:
    """(Why the run's program was never evaluated on its whole test set, or None; the test accuracy measured)."""
    from core.optimize.finish import RESULT_METRICS
    from core.tracking.store import run_status

    tags, metrics, rid = run.data.tags, run.data.metrics, run.info.run_id
    status = run_status(run.info.status, tags)
    why = tags.get(f"{TAG}error") or tags.get(f"{TAG}stop_reason") or ""
    detail = f" ({why[:300]})" if why else ""
    if tags.get(f"{TAG}kind") == "optimization":
        if all(m in metrics for m in RESULT_METRICS):
            return None, metrics["optimized_test_accuracy"]
        how = ("failed" if status == "FAILED" else "stopped at its spending cap" if why.startswith("spending cap")
               else "was cancelled" if status in ("KILLED", "INTERRUPTED") else "is still running"
               if status == "RUNNING" else "ended")
        return f"optimization {rid} {how}{detail} and its program was never evaluated on the test set", None
    if status == "FINISHED" and metrics.get("complete", 1.0) == 1.0 and "accuracy" in metrics:
        return None, metrics["accuracy"]
    how = "failed" if status == "FAILED" else "is still running" if status == "RUNNING" else "stopped before its end"
    return f"the evaluation run {rid} {how}{detail}: its program was not measured on its whole test set", None


def untested_reason(store: RunStore, run_id: str) -> str | None:
    """Why ``run_id``'s program was never evaluated on its whole test set (a cancelled, failed or capped
    optimization; a stopped evaluation), or None when it was: what :func:`export_model` warns about."""
    return _verdict(store.get_run(run_id))[0]


def _untested_hint(src: Source) -> str:
    how = (f"evaluate it on the test set first (python -m core finish {src.run_id}, or Compare → Finish)"
           if src.kind == "optimization" else "complete its evaluation first (python -m core baseline --resume "
           f"{src.run_id})" if src.kind == "baseline" else "finish its optimization's test evaluation first")
    return f"A registered model should be what was measured: {how}; or export it anyway with --allow-untested " \
           "(the dashboard asks you to confirm), recorded on the model version as untested."


def source_of(store: RunStore, run_id: str) -> Source:
    """The program a run ships: an optimization's optimized program, or an evaluation's/baseline's program."""
    run = store.get_run(run_id)
    tags, kind = run.data.tags, run.data.tags.get(f"{TAG}kind", "")
    parent = tags.get("mlflow.parentRunId") or None
    untested, accuracy = _verdict(run)
    try:
        if kind == "optimization":
            program = store.read_json(run_id, "optimized_program.json")
            config = store.read_json(run_id, "config.json")
            return Source(run_id, kind, tags.get(f"{TAG}task", ""), program, ModelSpec.from_dict(config["student"]),
                          run_id, tags.get(PROMPT_URI_TAG), untested, accuracy)
        if kind in ("evaluation", "baseline"):
            program = store.read_json(run_id, "program.json")
            optimized = parent is not None and tags.get(f"{TAG}program") == "optimized"  # its optimization's prompt
            prompt = store.get_run(parent).data.tags.get(PROMPT_URI_TAG) if optimized and parent else None
            return Source(run_id, kind, tags.get(f"{TAG}task", ""), program, _student_of(store, run_id, run),
                          parent, prompt, untested, accuracy)
    except StoreError as exc:
        raise ConfigError(f"Run {run_id} has no program to ship: {exc}",
                          "An optimization ships once it has finished (or been finished); pick one that has.") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Run {run_id}'s program or model cannot be read: {exc}",
                          "Ship a run made by this version of GEPA Studio.") from exc
    raise ConfigError(f"Run {run_id} is a {kind or 'foreign'} run, not a program.",
                      "Ship an optimization, an evaluation or a baseline (History lists their ids).")


def _requirements() -> list[str]:
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def _log_model(store: RunStore, src: Source) -> None:
    """Save ``src``'s program as a pyfunc model and log it into its run (under ``model``)."""
    import mlflow

    import core

    with warnings.catch_warnings():  # MLflow asks for type hints on predict: the signature below says it all
        warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
        from core.ship.pyfunc import StudioProgram, model_signature, write_artifacts

    signature = model_signature(src.task_of, f"Run {src.run_id}'s task")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        artifacts = write_artifacts(root, src.program, src.student.to_dict())
        local = root / ARTIFACT_PATH
        # Saved, then logged into the existing run: a fluent log_model would reopen the run and change its status.
        with warnings.catch_warnings():  # the signature is given; an input example would call the LM at export
            warnings.filterwarnings("ignore", message=".*(type hints|input example).*", category=UserWarning)
            mlflow.pyfunc.save_model(
                str(local), python_model=StudioProgram(), signature=signature, pip_requirements=_requirements(),
                artifacts=artifacts, code_paths=[str(Path(core.__file__).parent)],
                metadata={"task": src.task, "student": src.student.name, "source_run_id": src.run_id,
                          "optimization_run_id": src.optimization_run_id or "", "prompt_uri": src.prompt_uri or ""})
        store.client.log_artifacts(src.run_id, str(local), ARTIFACT_PATH)


def export_model(store: RunStore, run_id: str, *, name: str | None = None, allow_untested: bool = False) -> Shipped:
    """Log ``run_id``'s program as a pyfunc model in that run and register it (a new version of ``name``,
    by default ``<task>-<student>-<program>``, in the catalog and schema on Unity Catalog); link model version, runs
    and prompt version by tags.

    A program never evaluated on its test set (:func:`untested_reason`) is refused with a ConfigError unless
    ``allow_untested``; then it is registered with the tags ``studio.tested=false`` and
    ``studio.untested_reason`` and a description that starts with UNTESTED."""
    given = registry_names.checked_first(store.settings, name)  # the registry's naming rules, before any MLflow call
    import mlflow

    src = source_of(store, run_id)
    if src.untested and not allow_untested:
        raise ConfigError(f"Not exported: {src.untested}.", _untested_hint(src))
    if src.untested:
        logger.warning("exporting an untested program: %s", src.untested)
    program_kind = store.get_run(run_id).data.tags.get(f"{TAG}program") or "program"
    name = given or model_name(src.task, src.student.name, program_kind, store.settings)
    mlflow.set_tracking_uri(store.settings.tracking_uri)
    _log_model(store, src)
    try:
        version = mlflow.register_model(
            f"runs:/{run_id}/{ARTIFACT_PATH}", name,
            tags={f"{TAG}run_id": run_id, f"{TAG}optimization_run_id": src.optimization_run_id or "",
                  f"{TAG}prompt_uri": src.prompt_uri or "", f"{TAG}task": src.task,
                  f"{TAG}student": src.student.name, f"{TAG}program": program_kind, **_version_tags(store, src)})
    except Exception as exc:
        raise StoreError(f"MLflow could not register the model {name!r}: {str(exc)[:300]}",
                         "Check that the tracking store has a model registry (a SQLite or server store).") from exc
    shipped = Shipped(name, str(version.version), run_id, src.optimization_run_id, src.prompt_uri, *src.fields,
                      src.untested, *src.all_fields)
    store.client.update_model_version(name, version.version, description=_description(src, program_kind))
    for rid in {run_id, src.optimization_run_id} - {None}:
        store.set_tags(str(rid), {MODEL_URI_TAG: shipped.uri})
    logger.info("registered %s from run %s", shipped.uri, run_id)
    return shipped


def _version_tags(store: RunStore, src: Source) -> dict[str, str]:
    """Whether the program was measured (with its test accuracy); a program of your own's ``studio.module=program``,
    reference, file hash and predictors as its task saved them, and its identity as the run that measured it recorded
    it (an optimization: its optimized program's evaluation): never by running its code, as the dashboard exports."""
    from core.tracking.runs import OPTIMIZED_TAG

    accuracy = "" if src.test_accuracy is None else f"{src.test_accuracy:.6f}"
    tags = ({TESTED_TAG: "false", UNTESTED_TAG: src.untested[:5000]} if src.untested
            else {TESTED_TAG: "true", f"{TAG}test_accuracy": accuracy})
    if not (task := src.task_of).program:
        return tags
    measured = store.get_run(src.run_id).data.tags.get(OPTIMIZED_TAG) if src.kind == "optimization" else src.run_id
    recorded = store.get_run(measured).data.tags if measured else {}
    return {**tags, f"{TAG}module": "program", f"{TAG}program_ref": task.program, f"{TAG}program_sha": task.program_sha,
            f"{TAG}program_identity": recorded.get(f"{TAG}program_identity", ""),
            f"{TAG}predictors": ", ".join(src.program.get("instructions") or task.program_predictors)}


def _description(src: Source, program_kind: str) -> str:
    links = [f"run {src.run_id}"]
    if src.optimization_run_id and src.optimization_run_id != src.run_id:
        links.append(f"optimization {src.optimization_run_id}")
    if src.prompt_uri:
        links.append(f"prompt {src.prompt_uri}")
    text = f"GEPA Studio {program_kind} program for {src.task} on {src.student.name} ({', '.join(links)})."
    return f"UNTESTED: {src.untested}. {text}" if src.untested else text


def shipped_of(store: RunStore, run_id: str) -> Shipped | None:
    """The model version last exported from ``run_id`` (by its tag), or None."""
    uri = store.get_run(run_id).data.tags.get(MODEL_URI_TAG)
    if not uri:
        return None
    name, _, version = uri.removeprefix("models:/").rpartition("/")
    try:
        mv = store.client.get_model_version(name, version)
    except Exception:  # noqa: BLE001 - deleted from the registry since: nothing shipped
        return None
    src = source_of(store, mv.tags.get(f"{TAG}run_id") or run_id)
    return Shipped(name, version, src.run_id, src.optimization_run_id, src.prompt_uri, *src.fields,
                   mv.tags.get(UNTESTED_TAG) or None, *src.all_fields)


def shipped_from_uri(uri: str, run_id: str, program: dict[str, Any], *, optimization_run_id: str | None = None,
                     prompt_uri: str | None = None) -> Shipped:
    """A :class:`Shipped` from a run's ``studio.model_uri`` tag and its program (no store call: for pages)."""
    from core.tasks import Task

    name, _, version = uri.removeprefix("models:/").rpartition("/")
    if not name or not version:
        raise ConfigError(f"{uri!r} is not a registered model version.", "Export the program again.")
    task = Task.from_dict(program["task"])
    return Shipped(name, version, run_id, optimization_run_id, prompt_uri, task.input_field, task.output_field,
                   None, *_all_fields(task))


def _all_fields(task: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return ((), ()) if task.is_classification else (task.input_names, task.output_names)


def prompt_snippet(prompt_uri: str, program: dict[str, Any]) -> str:
    """Python that loads a registered prompt version (the whole program: instruction and demos) as chat messages."""
    from core.tasks import Task

    task = Task.from_dict(program["task"])
    values, what = f'{task.input_field}="A sentence to classify."', "the text"
    if not task.is_classification:
        values, what = ", ".join(f'{name}="{_example(name)}"' for name in task.input_names), "the inputs"
    return (f'import json\nimport mlflow\n\nprompt = mlflow.genai.load_prompt("{prompt_uri}")\n'
            f'messages = prompt.format({values})  # system, every demo, then {what}\n'
            'demos = json.loads(prompt.tags["demos"])  # the worked examples, as records\n')


def _example(name: str) -> str:
    """A placeholder value for an input field in a snippet."""
    return f"Your {name.replace('_', ' ')} here."


def load_snippet(shipped: Shipped, tracking_uri: str) -> str:
    """Python that loads the registered model and classifies one text (a task beyond classification: answers one
    row with every input field)."""
    if shipped.input_fields:
        row = ", ".join(f'"{name}": "{_example(name)}"' for name in shipped.inputs)
        return (f'import mlflow\nimport pandas as pd\n\nmlflow.set_tracking_uri("{tracking_uri}")\n'
                f'model = mlflow.pyfunc.load_model("{shipped.uri}")\n'
                f'rows = pd.DataFrame([{{{row}}}])\n'
                f'print(model.predict(rows))  # columns {", ".join(shipped.outputs)} and error (why a row got no '
                'answer);\n# a batch whose every row failed raises an MlflowException (served: an HTTP error '
                'status)\n')
    return (f'import mlflow\nimport pandas as pd\n\nmlflow.set_tracking_uri("{tracking_uri}")\n'
            f'model = mlflow.pyfunc.load_model("{shipped.uri}")\n'
            f'texts = pd.DataFrame({{"{shipped.input_field}": ["A sentence to classify."]}})\n'
            f'print(model.predict(texts))  # columns {shipped.output_field} and error (why a text got no label);\n'
            '# a batch whose every text failed raises an MlflowException (served: an HTTP error status)\n')


def serve_command(shipped: Shipped, tracking_uri: str, port: int = DEFAULT_PORT) -> str:
    """The shell commands that serve the model on this machine and post one request to it."""
    record = ({name: _example(name) for name in shipped.inputs} if shipped.input_fields
              else {shipped.input_field: "A sentence to classify."})
    body = json.dumps({"dataframe_records": [record]})
    return ("# in GEPA Studio's virtual environment (mlflow and uvicorn on the PATH), with the model's key variable "
            "set\n"
            f"MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)} mlflow models serve -m {shlex.quote(shipped.uri)} "
            f"--env-manager local -h 127.0.0.1 -p {port}\n\n"
            f"curl -s http://127.0.0.1:{port}/invocations -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}\n")
