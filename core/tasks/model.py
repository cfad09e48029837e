"""What a task is: the Task (text column, label column, labels), its splits, and the plain-data recipe
(TaskRef + SampleSpec) a background process rebuilds it from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from core.config.errors import ConfigError, DataError
from core.tasks.fields import InputSpec, JudgeSpec, OutputSpec, identifier, input_from, output_from
from core.tasks.text import label_key, listing
from core.tasks.validate import MERGE_HINT, clean_table

# --- the PubMed RCT task ---

PUBMED_LABELS: tuple[str, ...] = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
PUBMED_LABEL_DESCRIPTIONS: dict[str, str] = {
    "BACKGROUND": "Sets the context: what is known about the problem, why it matters, what is missing.",
    "OBJECTIVE": "States the aim of this study: the question, hypothesis or purpose it sets out to address.",
    "METHODS": "Describes how the study was done: design, participants, interventions, measurements, analysis.",
    "RESULTS": "Reports what was found: outcomes, numbers, effect sizes, statistical comparisons.",
    "CONCLUSIONS": "Interprets the findings: what they mean, their implications, recommendations or next steps.",
}


@dataclass(frozen=True)
class Task:
    """A task: which columns the program reads and writes, and how its answers are scored.

    A classification task (the form every run before several fields used) is a text column, a label column and the
    allowed labels, scored by exact match. Any other task gives ``inputs`` (one or more columns), ``outputs`` (typed
    columns, see :mod:`core.tasks.fields`) and optionally a task-wide ``metric`` ("" = each output's own; a field
    metric name for every output; ``"judge"`` with ``judge``; ``"file.py:fn"``, the user's function). A task given
    as fields that is just classification (one plain input, one label output, exact match) is kept in the classic
    form, so it saves, prints and pairs exactly as before.
    """

    name: str
    text_column: str = ""
    label_column: str = ""
    labels: tuple[str, ...] = ()
    label_descriptions: tuple[tuple[str, str], ...] = ()  # (label, description) pairs
    instruction: str = ""  # the classifier's starting instruction; "" means default_instruction(task)
    source: str = ""  # where the data came from: a path, a URL, "hub" or "demo"
    inputs: tuple[InputSpec, ...] = ()  # several inputs / typed outputs: a task beyond classification
    outputs: tuple[OutputSpec, ...] = ()
    metric: str = ""
    judge: JudgeSpec | None = None
    description: str = ""  # what the task is, for the Task page
    # Your own DSPy program (core.program.user_program): "path/to/file.py:name", and the sha256 of that file when the
    # run was planned (a file changed since is refused). The inputs feed its forward; the outputs hold the gold values.
    program: str = ""
    program_sha: str = ""
    program_predictors: tuple[str, ...] = ()  # its predictors' names, as checked when planned (estimates read them)

    def __post_init__(self) -> None:
        # Accept lists and dicts (e.g. from JSON) but keep the dataclass hashable.
        object.__setattr__(self, "inputs", tuple(input_from(v) for v in self.inputs))
        object.__setattr__(self, "outputs", tuple(output_from(v) for v in self.outputs))
        if isinstance(self.judge, dict):
            object.__setattr__(self, "judge", JudgeSpec.from_dict(self.judge))
        if self.outputs:
            self._from_fields()
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        object.__setattr__(self, "program_predictors", tuple(str(p) for p in self.program_predictors))
        if self.program and not self.outputs:
            raise ConfigError(f"Task {self.name!r} names a program but no input and output columns.",
                              "Give the columns that feed the program's inputs and hold the gold outputs.")
        pairs = self.label_descriptions
        items = pairs.items() if isinstance(pairs, dict) else pairs
        object.__setattr__(self, "label_descriptions", tuple((str(k), str(v)) for k, v in items))
        first: dict[str, str] = {}
        clashes = []
        for label in self.labels:
            seen = first.setdefault(label_key(label), label)
            if seen != label:
                clashes.append(f"{seen!r} / {label!r}")
        if clashes:
            raise DataError(
                f"Task {self.name!r} has labels that differ only in case, spaces or invisible characters (such as "
                f"right-to-left controls): {listing(clashes, 3, sep='; ', quote=False)}.",
                f"An answer naming one could not be told from the other: rename them, or {MERGE_HINT}.",
            )

    def _from_fields(self) -> None:
        """Check the fields; fill text/label column and labels from the first input, output and label output;
        fold a task that is plain classification back into the classic form."""
        if not self.inputs:
            raise ConfigError(f"Task {self.name!r} has outputs but no input column.", "Pick at least one input.")
        names = [f.name for f in self.inputs] + [f.name for f in self.outputs]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ConfigError(f"Task {self.name!r}: columns {listing(dupes)} would be the same field twice.",
                              "Give each input and output its own column (names differ after lower-casing).")
        if unlisted := [o.column for o in self.outputs if o.kind in ("label", "labels") and not o.labels]:
            raise ConfigError(f"Task {self.name!r}: label output(s) {listing(unlisted)} have no label set.",
                              "List the labels, or build the task from its table (fields_task reads them).")
        label_out = next((o for o in self.outputs if o.kind == "label"), None)
        set_ = object.__setattr__
        set_(self, "text_column", self.text_column or self.inputs[0].column)
        set_(self, "label_column", self.label_column or self.outputs[0].column)
        if label_out is not None and not self.labels:
            set_(self, "labels", label_out.labels)
        only_in, only_out = self.inputs[0], self.outputs[0]
        if (len(self.inputs) == 1 and len(self.outputs) == 1 and only_out.kind == "label"
                and not only_in.description and not only_out.description and only_out.weight == 1.0
                and only_out.metric in ("", "exact") and self.metric in ("", "exact") and self.judge is None
                and only_out.labels == self.labels and not self.program
                and only_in.name == identifier(only_in.column, "text")
                and only_out.name == identifier(only_out.column, "answer")):
            set_(self, "text_column", only_in.column)
            set_(self, "label_column", only_out.column)
            set_(self, "inputs", ())
            set_(self, "outputs", ())
            set_(self, "metric", "")

    @property
    def num_predictors(self) -> int:
        """How many predictors the program has: your own program's as planned, else the studio's one."""
        return len(self.program_predictors) or 1

    @property
    def is_classification(self) -> bool:
        """One text column, one label column, exact match: every view and statistic of a label task applies."""
        return not self.outputs

    @property
    def input_specs(self) -> tuple[InputSpec, ...]:
        return self.inputs or (InputSpec(self.text_column),)

    @property
    def output_specs(self) -> tuple[OutputSpec, ...]:
        """The typed outputs (a classification task: its one label output)."""
        return self.outputs or (OutputSpec(self.label_column, "label", self.labels),)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.inputs) if self.inputs else (self.input_field,)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.outputs) if self.outputs else (self.output_field,)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the task reads, inputs first."""
        if not self.outputs:
            return (self.text_column, self.label_column)
        return tuple(f.column for f in self.inputs) + tuple(f.column for f in self.outputs)

    @property
    def label_output(self) -> OutputSpec | None:
        """The output sampling goes per label by: the first label output (None: sample at random)."""
        return next((o for o in self.output_specs if o.kind == "label"), None)

    @property
    def input_field(self) -> str:
        """``text_column`` as a Python identifier, the DSPy input field name."""
        if self.inputs:
            return self.inputs[0].name
        return identifier(self.text_column, "text")

    @property
    def output_field(self) -> str:
        """``label_column`` as a Python identifier, never equal to :attr:`input_field`."""
        if self.outputs:
            return self.outputs[0].name
        out = identifier(self.label_column, "label")
        return f"{out}_label" if out == self.input_field else out

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "text_column": self.text_column,
            "label_column": self.label_column,
            "labels": list(self.labels),
            "label_descriptions": [list(pair) for pair in self.label_descriptions],
            "instruction": self.instruction,
            "source": self.source,
        }
        if self.outputs:  # only a task beyond classification writes its fields (old files stay byte for byte)
            out |= {"inputs": [f.to_dict() for f in self.inputs], "outputs": [f.to_dict() for f in self.outputs],
                    "metric": self.metric, "judge": self.judge.to_dict() if self.judge else None,
                    "description": self.description}
        if self.program:
            out |= {"program": self.program, "program_sha": self.program_sha,
                    "program_predictors": list(self.program_predictors)}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def default_instruction(task: Task) -> str:
    """A plain starting instruction: the allowed labels, then one line per described label (classification); for
    any other task, what each input and output field is."""
    if not task.is_classification:
        return fields_instruction(task)
    noun = "sentence" if set(task.labels) == set(PUBMED_LABELS) or "sentence" in task.text_column.lower() else "text"
    lines = [f"Classify the {noun} into one of: {', '.join(task.labels)}."]
    if task.label_descriptions:
        lines += ["", "What each label means:"]
        lines += [f"- {label}: {desc}" for label, desc in task.label_descriptions]
    return "\n".join(lines)


_KIND_WORDS = {"text": "text", "number": "a number", "json": "a JSON object", "label": "one of: {labels}",
               "labels": "any of: {labels}"}


def fields_instruction(task: Task) -> str:
    """"Given <inputs>, give <outputs>." and one line per field saying what it is and what it holds."""
    ins = ", ".join(f"`{f.name}`" for f in task.inputs)
    outs = ", ".join(f"`{f.name}`" for f in task.outputs)
    lines = [task.description.strip()] if task.description.strip() else []
    lines += [f"Given {ins}, give {outs}.", "", "The fields:"]
    lines += [f"- {f.name}: {f.description or f.column}" for f in task.inputs]
    for f in task.outputs:
        kind = _KIND_WORDS[f.kind].format(labels=", ".join(f.labels))
        if f.kind == "json" and f.keys:
            kind += f" with the keys {', '.join(f.keys)}"
        lines.append(f"- {f.name} ({kind}): {f.description or f.column}")
    return "\n".join(lines)


def pubmed_task(source: str = "") -> Task:
    """The PubMed RCT sentence-role task (columns description, target)."""
    return Task(
        name="pubmed",
        text_column="description",
        label_column="target",
        labels=PUBMED_LABELS,
        label_descriptions=tuple(PUBMED_LABEL_DESCRIPTIONS.items()),
        source=source,
    )


def demo_task() -> Task:
    """The bundled demo task: invented clinical-trial sentences with the PubMed labels."""
    return replace(pubmed_task("demo"), name="demo")


def table_task(df: pd.DataFrame, *, text_column: str, label_column: str, name: str, source: str = "",
               merge_similar_labels: bool = False, drop_missing_labels: bool = False) -> Task:
    """A task for a user's table: its labels are the distinct labels left after :func:`clean_table`."""
    cleaned = clean_table(df, text_column=text_column, label_column=label_column,
                          merge_similar_labels=merge_similar_labels, drop_missing_labels=drop_missing_labels)
    labels = tuple(sorted(cleaned[label_column].unique()))
    if len(labels) < 2:
        raise DataError(
            f"Column {label_column!r} has {len(labels)} distinct label(s) after cleaning; a classifier needs at "
            "least 2.",
            "Pick the column that holds the classes, or add rows for other labels.",
        )
    return Task(name=name, text_column=text_column, label_column=label_column, labels=labels, source=source)


@dataclass(frozen=True, eq=False)
class Splits:
    """Train, optional validation and test tables, sampled per label with ``seed``; pairwise disjoint.

    ``notes`` says what sampling left out that a person should know (e.g. test rows whose label is not in train).
    """

    train: pd.DataFrame
    val: pd.DataFrame | None
    test: pd.DataFrame
    seed: int
    notes: tuple[str, ...] = ()

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) if self.val is not None else 0, "test": len(self.test)}

    def to_dict(self) -> dict[str, Any]:
        """The sampled rows as JSON-ready records (a job stores exactly what it was planned with)."""
        return {"train": self.train.to_dict("records"), "test": self.test.to_dict("records"), "seed": self.seed,
                "val": self.val.to_dict("records") if self.val is not None else None, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Splits":
        frame = lambda rows: pd.DataFrame(rows).astype(str)  # noqa: E731
        return cls(train=frame(d["train"]), val=frame(d["val"]) if d.get("val") is not None else None,
                   test=frame(d["test"]), seed=int(d["seed"]), notes=tuple(d.get("notes") or ()))



TaskKind = str  # an entry of core.tasks.sources.SOURCES: "pubmed", "demo", "file", "taskfile" or a shipped task

@dataclass(frozen=True)
class TaskRef:
    """How to load a task: the PubMed set (hub or a local copy), the bundled demo, or a user file."""

    kind: TaskKind = "demo"
    source: str = ""  # pubmed: optional local path/URL of the train file; file: the path
    test_source: str = ""  # optional separate test file (pubmed: its test split)
    text_column: str = "description"
    label_column: str = "target"
    name: str = ""
    # The label options (core.tasks.labels.LABEL_OPTIONS: the Task page's checkboxes, --merge-labels, --drop-missing).
    # lookalike labels (case, spaces, invisible or bidi characters, 1 / 1.0 / 01): merge
    merge_similar_labels: bool = False
    drop_missing_labels: bool = False  # drop rows labelled "NaN", "null", "N/A"... (default: keep them, with a warning)
    # A file read through typed fields (beyond classification): JSON of {"inputs", "outputs", "metric", "judge"}
    # (a string, so a reference stays flat for URLs and job plans; core.tasks.sources.ref_fields reads it).
    fields: str = ""

    @property
    def task_name(self) -> str:
        if self.name:
            return self.name
        if self.kind == "file":
            return Path(self.source).stem or "custom"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskRef":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


SampleMethod = Literal["one_stream", "seed_per_label"]
# How the rows of each label are drawn: the one table the sampler, the pages and the CLI read.
SAMPLE_METHODS: dict[str, str] = {
    "one_stream": "groupby(label).sample(n, random_state=seed): one random stream draws every label's rows in turn, "
                  "so which rows a label gets depends on the labels drawn before it.",
    "seed_per_label": "Each label's rows drawn with random_state=seed afresh, as the original notebook did "
                      "(pd.concat([g.sample(n, random_state=seed) for _, g in df.groupby(label)])): a label's rows "
                      "depend only on that label's rows.",
}


@dataclass(frozen=True)
class SampleSpec:
    """Per-label sample sizes, the seed and the draw (sizes as the original notebook: 3 train, 10 test per label).

    The notebook drew with ``method="seed_per_label"`` and seed 1; the defaults stay ``"one_stream"`` and 42 so that
    a split recorded before the method existed (a baseline, a stored plan, a spec without ``method``) is drawn
    again row for row, and runs keep pairing on the same test examples.
    """

    train_per_label: int = 3
    val_per_label: int = 0
    test_per_label: int = 10
    seed: int = 42
    method: SampleMethod = "one_stream"
    # A task with no label output has no labels to sample by: the sizes above are then rows in all, drawn at random
    # with ``seed`` (stratified by this column when given: each of its values keeps its share of the rows).
    stratify: str = ""

    def __post_init__(self) -> None:
        if self.method not in SAMPLE_METHODS:
            raise ConfigError(f"Unknown sampling method {self.method!r}.", f"Use one of: {', '.join(SAMPLE_METHODS)}.")
        if self.train_per_label < 1 or self.test_per_label < 1 or self.val_per_label < 0:
            raise ConfigError(
                "Sample sizes must be at least 1 per label for train and test (0 or more for validation).",
                f"Got train={self.train_per_label}, validation={self.val_per_label}, test={self.test_per_label}.",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampleSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


