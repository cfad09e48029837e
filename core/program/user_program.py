"""Your own DSPy program (#24, its first part): a Python file that defines a ``dspy.Module`` (an instance, a class of
one, or a function that returns one) and optionally a metric; loaded, checked, described and fingerprinted here.

Loading a file runs its code. :func:`describe` loads it in this process (the CLI, a job's worker);
:func:`describe_isolated` loads it in a child process (``python -m core program describe --json``) with a time
limit, so a process that must never run users' code (the dashboard's) can still say what a file holds, and a file
that hangs on import costs only the limit. A file's errors come back as the user's own traceback lines.

A program's **identity** is a hash of its file and of every predictor's name, instruction and fields: a run can
record it, and :func:`check_unchanged` refuses a file changed since.

A task that names a program (``Task.program``, with the file's sha256 when the run was planned) is run on it:
:func:`program_for_task` builds it in the worker, refusing a file changed since, and checks that the task's columns
feed every input of its ``forward``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import dspy
from dspy.utils.callback import BaseCallback

from core.config.errors import ConfigError
from core.lm.call import CURRENT_PREDICTOR
from core.scoring.user import GEPA_METRIC_ARGS, load_from_file, located

DESCRIBE_TIMEOUT_S = 30.0  # loading a program file in a child process: long enough for DSPy's import, no more


@dataclass(frozen=True)
class PredictorInfo:
    """One predictor of a program: its name (``extract.predict``), kind, fields and instruction."""

    name: str
    kind: str  # "ChainOfThought" or "Predict"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    instruction: str


@dataclass(frozen=True)
class ProgramInfo:
    """What a program file holds, as a run records it (JSON-able; never the file's code)."""

    ref: str  # "path/to/file.py:name" as given
    file: str  # the resolved file
    file_sha256: str
    identity: str  # 16 hex: the file and every predictor's name, instruction and fields
    inputs: tuple[str, ...]  # the program's own inputs (its forward's parameters)
    predictors: tuple[PredictorInfo, ...] = ()
    metric: str | None = None  # "path/to/file.py:fn", when one was given and checked
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProgramInfo":
        preds = tuple(PredictorInfo(**{**p, "inputs": tuple(p["inputs"]), "outputs": tuple(p["outputs"])})
                      for p in data.get("predictors", ()))
        return cls(**{**data, "inputs": tuple(data.get("inputs", ())), "predictors": preds})


_here = threading.local()


def refuse_programs_in_this_thread() -> None:
    """From now on this thread loads no program file (ConfigError instead): the dashboard's script thread calls it
    on every run, so no page can run a user's code by mistake (what a file holds comes from
    :func:`describe_isolated`; a program runs in its job's worker)."""
    _here.refuse = True


def load_user_program(ref: str, allowed_dir: str | Path | None = None) -> tuple[dspy.Module, Path]:
    """The program ``ref`` names and its file: a ``dspy.Module`` instance, a Module class (made with no arguments)
    or a function of no arguments that returns one. ConfigError for anything else, or a module with no predictor."""
    if getattr(_here, "refuse", False):
        raise ConfigError(f"{ref}: the dashboard never runs a program's code; its jobs do.",
                          "This view should read what the run saved: please report it as a bug.")
    found, file = load_from_file(ref, allowed_dir, "program")
    name = ref.rpartition(":")[2]
    if not isinstance(found, dspy.Module):
        if not callable(found):
            raise ConfigError(f"{ref} is a {type(found).__name__}, not a DSPy program.",
                              "Name a dspy.Module, a class of one, or a function that returns one.")
        try:
            found = found()
        except Exception as exc:  # the user's constructor or factory failed: their words, their line
            raise ConfigError(f"{ref}: calling {name}() raised {type(exc).__name__}: {exc}",
                              "It is called with no arguments; give defaults, or wrap it in a function.") from exc
        if not isinstance(found, dspy.Module):
            raise ConfigError(f"{ref}: {name}() returned a {type(found).__name__}, not a dspy.Module.",
                              "Return the program: an instance of your dspy.Module.")
    if not list(found.named_predictors()):
        raise ConfigError(f"{ref} has no predictor: there is no prompt to optimize.",
                          "Give it at least one dspy.Predict or dspy.ChainOfThought as an attribute.")
    return found, file


def load_user_metric(ref: str, allowed_dir: str | Path | None = None) -> Callable[..., Any]:
    """A metric function as ``dspy.GEPA`` calls it: ``metric(gold, pred, trace, pred_name, pred_trace)``, returning a
    score or ``dspy.Prediction(score=..., feedback=...)``. ConfigError when it cannot take those five arguments."""
    fn, _ = load_from_file(ref, allowed_dir, "metric")
    if not callable(fn):
        raise ConfigError(f"{ref} is a {type(fn).__name__}, not a function.", "Name the metric function.")
    try:
        inspect.signature(fn).bind(*GEPA_METRIC_ARGS)
    except TypeError as exc:
        raise ConfigError(f"{ref} cannot be called as GEPA calls a metric, metric({', '.join(GEPA_METRIC_ARGS)}): "
                          f"{exc}.", "Write it as def metric(gold, pred, trace=None, pred_name=None, "
                                     "pred_trace=None).") from exc
    except ValueError:  # a builtin without a signature: GEPA will find out
        pass
    return fn


def _kind(program: dspy.Module, name: str) -> str:
    owner: Any = program
    for part in name.removesuffix(".predict").split(".") if name.endswith(".predict") else ():
        owner = getattr(owner, part, None)
    return "ChainOfThought" if isinstance(owner, dspy.ChainOfThought) else "Predict"


def predictor_infos(program: dspy.Module) -> tuple[PredictorInfo, ...]:
    """Every predictor of ``program`` in DSPy's order, with its fields and instruction."""
    return tuple(PredictorInfo(name=name, kind=_kind(program, name), inputs=tuple(p.signature.input_fields),
                               outputs=tuple(p.signature.output_fields), instruction=p.signature.instructions)
                 for name, p in program.named_predictors())


def program_inputs(program: dspy.Module) -> tuple[str, ...]:
    """The program's own inputs: its ``forward``'s named parameters (else its first predictor's inputs)."""
    try:  # read off the class: DSPy warns when an instance's forward is touched
        params = list(inspect.signature(type(program).forward).parameters.values())[1:]  # after self
    except (TypeError, ValueError, AttributeError):
        params = []
    named = tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return named or predictor_infos(program)[0].inputs


def identity(file_bytes: bytes, predictors: tuple[PredictorInfo, ...]) -> str:
    """16 hex of the file and every predictor's name, instruction and fields."""
    blob = json.dumps([asdict(p) for p in predictors], sort_keys=True).encode()
    return hashlib.sha256(file_bytes + b"\0" + blob).hexdigest()[:16]


def describe(ref: str, metric: str | None = None, allowed_dir: str | Path | None = None) -> ProgramInfo:
    """Load ``ref`` (and ``metric``) in this process and say what it holds."""
    program, file = load_user_program(ref, allowed_dir)
    if metric:
        load_user_metric(metric, allowed_dir)
    data = file.read_bytes()
    preds = predictor_infos(program)
    return ProgramInfo(ref=ref, file=str(file), file_sha256=hashlib.sha256(data).hexdigest(),
                       identity=identity(data, preds), inputs=program_inputs(program), predictors=preds,
                       metric=metric)


def describe_isolated(ref: str, metric: str | None = None, allowed_dir: str | Path | None = None,
                      timeout_s: float = DESCRIBE_TIMEOUT_S) -> ProgramInfo:
    """:func:`describe` in a child process with a time limit: this process never runs the file's code."""
    command = [sys.executable, "-m", "core", "program", "describe", _absolute(ref, allowed_dir), "--json"]
    command += ["--metric", _absolute(metric, allowed_dir)] if metric else []
    command += ["--allowed-dir", str(Path(allowed_dir).resolve())] if allowed_dir is not None else []
    try:  # run from where core is (python -m core), the paths made absolute first
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"{ref} did not finish loading within {timeout_s:.0f} s.",
                          "Loading the file must not wait or compute much: build the program in a function.") from exc
    if done.returncode != 0:
        said = done.stderr.strip().removeprefix("error: ")
        message, _, hint = said.partition("\n  hint: ")
        raise ConfigError(message or f"{ref}: loading it failed (exit {done.returncode}).", hint)
    return ProgramInfo.from_dict(json.loads(done.stdout))


def _absolute(ref: str, allowed_dir: str | Path | None) -> str:
    """``ref`` with its file's path absolute (relative: to ``allowed_dir`` when given, else this process's cwd)."""
    path, sep, name = ref.rpartition(":")
    if not sep or Path(path).is_absolute():
        return ref
    return f"{(Path(allowed_dir) if allowed_dir is not None else Path.cwd()).resolve() / path}:{name}"


def check_unchanged(info: ProgramInfo) -> None:
    """ConfigError when the file ``info`` was made from has changed (or gone) since."""
    try:
        now = hashlib.sha256(Path(info.file).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"The program file {info.file} is gone: {exc.strerror}.",
                          "Put it back, or start again with the file as it is now.") from exc
    if now != info.file_sha256:
        raise ConfigError(f"The program file {info.file} changed after it was checked (identity {info.identity}).",
                          "Start again with the file as it is now, so the run records what it ran.")


def _sha256(file: Path) -> str:
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"The program file {file} cannot be read: {exc.strerror}.",
                          "Put it back, or start again with the file as it is now.") from exc


def program_for_task(task: Any, program_file: str | Path | None = None) -> dspy.Module:
    """``task.program`` built from its file (``program_file``: a copy of it elsewhere, e.g. a served model's), after
    checking the file is the one the run was planned with (``task.program_sha``) and that the task's inputs feed
    every input of the program's ``forward``. Runs the file's code."""
    path, _, name = str(task.program).rpartition(":")
    file = Path(program_file) if program_file is not None else located(path)
    if task.program_sha and _sha256(file) != task.program_sha:
        raise ConfigError(f"The program file {file} changed after the run was planned.",
                          "Start the run again with the file as it is now, so the run records what it ran.")
    program, _ = load_user_program(f"{file}:{name}")
    name_predictors(program)
    needed = program_inputs(program)
    if missing := [n for n in needed if n not in task.input_names]:
        raise ConfigError(f"{file.name}:{name} takes {', '.join(missing)}, which no column of the task feeds "
                          f"(its inputs: {', '.join(task.input_names)}).",
                          "Map a column to each input: --input-columns FIELD=COLUMN, or the Task page's program "
                          "fields.")
    return program


class PredictorNames(BaseCallback):
    """Names the predictor that is calling (:data:`core.lm.call.CURRENT_PREDICTOR`) while one of your program's
    predictors runs, so each LM call's trace says which predictor made it. One per predictor, attached to it: GEPA's
    copies of the program keep it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tokens: dict[str, Any] = {}

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._tokens[call_id] = CURRENT_PREDICTOR.set(self.name)

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        token = self._tokens.pop(call_id, None)
        if token is not None:
            try:
                CURRENT_PREDICTOR.reset(token)
            except ValueError:  # ended in another context than it started: leave that context's value
                pass

    def __deepcopy__(self, memo: dict[int, Any]) -> "PredictorNames":
        return PredictorNames(self.name)  # a copy starts with no call in flight


def name_predictors(program: dspy.Module) -> dspy.Module:
    """``program`` with each predictor naming itself on its calls (:class:`PredictorNames`); returned as given."""
    for name, pred in program.named_predictors():
        own = [c for c in (getattr(pred, "callbacks", None) or []) if not isinstance(c, PredictorNames)]
        pred.callbacks = [*own, PredictorNames(name)]
    return program


def program_tags(task: Any, program: dspy.Module) -> dict[str, str]:
    """What a run's tags say of your own program (their names without the store's prefix): its reference, file hash,
    identity and predictors ({} for the studio's own program)."""
    if not getattr(task, "program", ""):
        return {}
    file = Path(str(task.program).rpartition(":")[0])
    data = file.read_bytes() if file.is_file() else b""
    return {"program_ref": str(task.program), "program_sha": hashlib.sha256(data).hexdigest(),
            "program_identity": identity(data, predictor_infos(program)),
            "predictors": ", ".join(name for name, _ in program.named_predictors())}
