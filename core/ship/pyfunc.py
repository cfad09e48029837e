"""The served form of a GEPA Studio program: an MLflow pyfunc model that classifies texts with its student model
(a task beyond classification: answers rows of its input fields with every output field).

It holds no key: the artifacts are the program (``program.json``: task, instruction, demos) and the student's
model spec (``model.json``: model string, base URL, the *name* of its key variable); the key is read from the
environment where the model is loaded (``core.lm.models.build_lm``), as everywhere else in the studio. A program of
your own (``core.program.user_program``) also carries its file, which the model runs where it is loaded. It reads each
answer exactly as the evaluation does (``core.program.metric.parse_prediction``; any other task:
``core.program.answers.read_answer``) and names a failed text with the evaluation's
:data:`core.lm.breaker.FailureKind`; a batch whose every text failed raises (an HTTP error when served).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

logger = logging.getLogger(__name__)

PROGRAM_ARTIFACT = "program"
SPEC_ARTIFACT = "model_spec"
PROGRAM_FILE_ARTIFACT = "program_file"  # a program of your own: a copy of its file
ERROR_COLUMN = "error"  # why a text got no label (its label is then empty): a failure is never a label


def model_signature(task: Any, whose: str) -> Any:
    """The served model's columns: one string per input field; one per output field, then why a row got no answer.
    ConfigError when an output is named as that last column (``whose``: the task, as the message names it)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from core.config.errors import ConfigError

    if ERROR_COLUMN in task.output_names:
        raise ConfigError(f"{whose} has an output named {ERROR_COLUMN!r}, the served model's column for why a row got "
                          "no answer.", "Rename that output column and run the task again.")
    return ModelSignature(inputs=Schema([ColSpec("string", name) for name in task.input_names]),
                          outputs=Schema([ColSpec("string", name) for name in task.output_names]
                                         + [ColSpec("string", ERROR_COLUMN)]))


def write_artifacts(root: Path, program: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
    """Write what the served model reads into ``root`` and name each file by its artifact: the program and the
    student's spec (scrubbed, though the spec names its key variable and never holds a key), and a program of your
    own's file, as the run that measured it ran it."""
    from core.config.secrets import scrub

    out = {PROGRAM_ARTIFACT: str(root / "program.json"), SPEC_ARTIFACT: str(root / "model.json")}
    task = program.get("task") or {}
    if task.get("program"):
        # The file travels as an artifact, not in MLflow's code_paths: code_paths puts its folder on sys.path, where
        # the file would be imported by its own name (and shadow, or be shadowed by, a module of that name), while
        # the studio loads a program by its path (core.scoring.user.load_from_file); an artifact hands load_context
        # the exact path of its copy, wherever the model was downloaded.
        out[PROGRAM_FILE_ARTIFACT] = str(_program_file(task))
    (root / "program.json").write_text(scrub(json.dumps(program, indent=2, default=str)), encoding="utf-8")
    (root / "model.json").write_text(scrub(json.dumps(spec, indent=2)), encoding="utf-8")
    return out


def _program_file(task: dict[str, Any]) -> Path:
    """The program's file, refused when it is gone, changed since the run (its sha256) or holds a key."""
    import hashlib

    from core.config.errors import ConfigError
    from core.config.secrets import scrub

    file = Path(str(task["program"]).rpartition(":")[0])
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"The program file {file} is gone ({exc.strerror}): the model needs a copy of it.",
                          "Put the file back as the run ran it, or run the program again and export that run.") from exc
    if task.get("program_sha") and hashlib.sha256(data).hexdigest() != task["program_sha"]:
        raise ConfigError(f"The program file {file} changed after the run: the model would not be what was measured.",
                          "Put the file back as the run ran it, or run the program again and export that run.")
    text = data.decode("utf-8", errors="replace")
    if scrub(text) != text:
        raise ConfigError(f"The program file {file} holds a key: the model would carry it to wherever it is loaded.",
                          "Read the key from the environment in the file (os.environ), run it again and export "
                          "that run.")
    return file


def texts_from(model_input: Any, input_field: str) -> list[str]:
    """The texts to classify from what a caller sent: a DataFrame (the input field's column, or its only
    column), a dict of columns, a list of texts or of records, or one text."""
    from core.config.errors import ConfigError

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input if not isinstance(model_input.get(input_field), str)
                                   else [model_input])
    if isinstance(model_input, list):
        model_input = (pd.DataFrame(model_input) if model_input and isinstance(model_input[0], dict)
                       else pd.DataFrame({input_field: model_input}))
    if isinstance(model_input, pd.Series):
        return model_input.astype(str).tolist()
    if isinstance(model_input, pd.DataFrame):
        if input_field in model_input.columns:
            return model_input[input_field].astype(str).tolist()
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].astype(str).tolist()
        raise ConfigError(f"The input has columns {list(model_input.columns)} but no {input_field!r} column.",
                          f"Send one column named {input_field!r} with the texts to classify.")
    raise ConfigError(f"Cannot read texts from a {type(model_input).__name__}.",
                      f"Send a table with a {input_field!r} column, or a list of texts.")


def records_from(model_input: Any, names: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows to answer, each a record of the input fields ``names``, from what a caller sent: a DataFrame with
    those columns, a dict of columns or one record, a list of records (one input field: anything
    :func:`texts_from` reads)."""
    from core.config.errors import ConfigError

    if len(names) == 1:
        return [{names[0]: text} for text in texts_from(model_input, names[0])]
    if isinstance(model_input, dict):
        one = not any(isinstance(v, (list, tuple, pd.Series)) for v in model_input.values())
        model_input = pd.DataFrame([model_input] if one else model_input)
    if isinstance(model_input, list) and all(isinstance(row, dict) for row in model_input):
        model_input = pd.DataFrame(model_input, columns=list(names) if not model_input else None)
    if not isinstance(model_input, pd.DataFrame):
        raise ConfigError(f"Cannot read rows from a {type(model_input).__name__}.",
                          f"Send a table (or records) with the columns {', '.join(names)}.")
    if missing := [n for n in names if n not in model_input.columns]:
        raise ConfigError(f"The input has columns {list(model_input.columns)} but not {missing}.",
                          f"Send one column per input field: {', '.join(names)}.")
    rows = model_input[list(names)].astype(object).where(model_input[list(names)].notna(), "")
    return [{n: str(v) for n, v in row.items()} for row in rows.to_dict("records")]


# How a batch whose every text failed answers over HTTP (``mlflow models serve``), by the most common kind: the
# provider's passing trouble is 429/503/504; a refused key, an unknown model, an unreadable answer are the server's
# own fault (500). Never a 200 with nothing but errors.
_BATCH_ERROR_CODES = {"rate_limit": "REQUEST_LIMIT_EXCEEDED", "timeout": "DEADLINE_EXCEEDED",
                      "server_error": "TEMPORARILY_UNAVAILABLE", "unreachable": "TEMPORARILY_UNAVAILABLE"}


def batch_failure(kinds: list[str], errors: list[str], who: str, what: str = "texts") -> Exception:
    """The error a batch whose every text (``what``: or row) failed raises: how many, of which kinds, the first
    reason and a hint."""
    from collections import Counter

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ErrorCode

    from core.lm.breaker import HINTS

    counts = Counter(kinds)
    kind = counts.most_common(1)[0][0]
    by_kind = ", ".join(f"{k} {n}" for k, n in counts.most_common())
    hint = HINTS.get(kind, "The model's answers name none of the labels: check the model and its program.")
    return MlflowException(f"{who}: all {len(kinds)} {what} failed ({by_kind}); first: {errors[0]}. {hint}",
                           # MLflow takes the code's number: its name alone would read as INTERNAL_ERROR (500)
                           error_code=ErrorCode.Value(_BATCH_ERROR_CODES.get(kind, "INTERNAL_ERROR")))


class StudioProgram(mlflow.pyfunc.PythonModel):
    """``predict(texts) -> DataFrame[<output field>, error]``: one label per text, or an empty label and why (its
    :data:`core.lm.breaker.FailureKind`, as the evaluation names it). Every text failed: an MlflowException.

    A task beyond classification: ``predict(rows of its input fields) -> DataFrame[<every output field>, error]``,
    each value as the records show it (``core.program.answers.shown``); a row not answered: empty outputs and why."""

    def load_context(self, context: Any) -> None:
        from core.lm.models import ModelSpec, build_lm
        from core.program.program import program_from_dict

        data = json.loads(Path(context.artifacts[PROGRAM_ARTIFACT]).read_text(encoding="utf-8"))
        spec = json.loads(Path(context.artifacts[SPEC_ARTIFACT]).read_text(encoding="utf-8"))
        # A program of your own is built by the copy of its file the model carries (checked against the run's sha256;
        # this runs its code), never by the file where the run found it.
        self.program, self.task = program_from_dict(data, context.artifacts.get(PROGRAM_FILE_ARTIFACT))
        self.spec = ModelSpec.from_dict(spec)
        self.lm = build_lm(self.spec, cache=False)

    def _one(self, text: str) -> tuple[str | None, str | None, str | None]:
        """(label, failure kind, error) of one text, read exactly as the evaluation reads it."""
        from core.lm.models import redact
        from core.program.metric import parse_prediction

        task = self.task
        try:
            parsed = parse_prediction(self.program, {task.input_field: text}, task.output_field, task.labels)
        except Exception as exc:  # noqa: BLE001 - one text's failure is reported on its row
            return (None, *self._failure(exc))
        if parsed.label is None:
            wrote = redact(str(parsed.raw), self.spec)[:200]
            return None, parsed.kind, f"{parsed.error} (the model wrote {wrote!r})"
        return parsed.label, None, None

    def _failure(self, exc: Exception) -> tuple[str, str]:
        """(failure kind, message without a key) of a call that raised, logged."""
        from core.lm.breaker import classify_failure
        from core.lm.models import redact

        kind = classify_failure(exc)
        message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self.spec)[:300]
        logger.warning("%s: %s: %s", self.spec.name, kind, message)
        return kind, message

    def _answer(self, inputs: dict[str, str]) -> tuple[dict[str, str], str | None, str | None]:
        """(every output field's shown value, failure kind, error) of one row, read as the evaluation reads it."""
        from core.lm.models import redact
        from core.program.answers import read_answer, shown

        try:
            answer = read_answer(self.program, inputs, self.task)
        except Exception as exc:  # noqa: BLE001 - one row's failure is reported on its row
            return ({}, *self._failure(exc))
        if answer.error:
            wrote = redact(str(answer.raw), self.spec)[:200]
            return {}, answer.kind, f"{answer.error} (the model wrote {wrote!r})"
        return {name: shown(answer.values.get(name)) for name in self.task.output_names}, None, None

    def _predict_fields(self, model_input: Any) -> pd.DataFrame:
        """Every output field of each row (a task beyond classification); every row failed: an MlflowException."""
        import dspy

        names = self.task.output_names
        outputs: dict[str, list[str | None]] = {name: [] for name in names}
        errors: list[str | None] = []
        kinds: list[str] = []
        with dspy.context(lm=self.lm):
            for inputs in records_from(model_input, self.task.input_names):
                values, kind, error = self._answer(inputs)
                for name in names:
                    outputs[name].append(None if kind else values.get(name, ""))
                errors.append(f"{kind}: {error}" if kind else None)
                if kind:
                    kinds.append(kind)
        if errors and len(kinds) == len(errors):
            raise batch_failure(kinds, [e for e in errors if e], self.spec.name, "rows")
        return pd.DataFrame({**outputs, ERROR_COLUMN: errors})

    # No type hints here: MLflow would read them as the model's signature (the logged signature says it).
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import dspy

        if not self.task.is_classification:
            return self._predict_fields(model_input)
        labels: list[str | None] = []
        errors: list[str | None] = []
        kinds: list[str] = []
        with dspy.context(lm=self.lm):
            for text in texts_from(model_input, self.task.input_field):
                label, kind, error = self._one(text)
                labels.append(label)
                errors.append(f"{kind}: {error}" if kind else None)
                if kind:
                    kinds.append(kind)
        if labels and len(kinds) == len(labels):
            raise batch_failure(kinds, [e for e in errors if e], self.spec.name)
        return pd.DataFrame({self.task.output_field: labels, ERROR_COLUMN: errors})
