"""The served form of a GEPA Studio program: an MLflow pyfunc model that classifies texts with its student model.

It holds no key: the artifacts are the program (``program.json``: task, instruction, demos) and the student's
model spec (``model.json``: model string, base URL, the *name* of its key variable); the key is read from the
environment where the model is loaded (``core.models.build_lm``), as everywhere else in the studio.
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
ERROR_COLUMN = "error"  # why a text got no label (its label is then empty): a failure is never a label


def texts_from(model_input: Any, input_field: str) -> list[str]:
    """The texts to classify from what a caller sent: a DataFrame (the input field's column, or its only
    column), a dict of columns, a list of texts or of records, or one text."""
    from core.errors import ConfigError

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


class StudioProgram(mlflow.pyfunc.PythonModel):
    """``predict(texts) -> DataFrame[<output field>, error]``: one label per text, or an empty label and why."""

    def load_context(self, context: Any) -> None:
        from core.models import ModelSpec, build_lm
        from core.program import program_from_dict

        data = json.loads(Path(context.artifacts[PROGRAM_ARTIFACT]).read_text(encoding="utf-8"))
        spec = json.loads(Path(context.artifacts[SPEC_ARTIFACT]).read_text(encoding="utf-8"))
        self.program, self.task = program_from_dict(data)
        self.spec = ModelSpec.from_dict(spec)
        self.lm = build_lm(self.spec, cache=False)

    # No type hints here: MLflow would read them as the model's signature (the logged signature says it).
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import dspy

        from core.models import classify_error
        from core.secrets import scrub

        task = self.task
        labels: list[str | None] = []
        errors: list[str | None] = []
        with dspy.context(lm=self.lm):
            for text in texts_from(model_input, task.input_field):
                try:
                    labels.append(str(getattr(self.program(**{task.input_field: text}), task.output_field)))
                    errors.append(None)
                except Exception as exc:  # noqa: BLE001 - one text's failure is reported on its row
                    kind, _ = classify_error(exc)
                    logger.warning("%s: %s", self.spec.name, scrub(str(exc))[:300])
                    labels.append(None)
                    errors.append(f"{kind}: {scrub(str(exc))[:300]}")
        return pd.DataFrame({task.output_field: labels, ERROR_COLUMN: errors})
