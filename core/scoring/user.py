"""The user's own metric: a Python function in a file, ``path/to/file.py:fn``.

It is called as ``fn(example, prediction)`` with two dicts (the example's inputs and gold outputs by field name, and
the program's outputs) and returns a score in [0, 1], ``(score, feedback)`` or ``{"score": ..., "feedback": ...}``.
A function written as ``dspy.GEPA`` calls a metric, ``fn(gold, pred, trace, pred_name, pred_trace)`` (one that takes
those five arguments), is called so instead, with a ``dspy.Example`` and a ``dspy.Prediction``, and may also return
``dspy.Prediction(score=..., feedback=...)``: the metric of your own DSPy program (docs/programs.md).
Loading a file runs its code, so the dashboard only loads files under the folder the operator configures
(``allowed_dir``); a function that misbehaves on one example makes that example *failed* of kind ``"metric"``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import itertools
import json
import logging
import math
import numbers
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from core.config.errors import ConfigError
from core.scoring.base import Score

logger = logging.getLogger(__name__)

_loaded = itertools.count()  # a fresh module name per load: two files named metrics.py never share one
# Where a user's file named by its path elsewhere is on this machine: a Ray job's worker writes the copies its job
# brought (:func:`user_files`) and names them here (core.jobs.remote). Empty everywhere else.
_copies: dict[str, Path] = {}


def located(path: str | Path) -> Path:
    """``path``, or this machine's copy of it when it is not here and its job brought one."""
    given = Path(path)
    return _copies.get(str(given), given) if not given.exists() else given


def relocate(copies: dict[str, Path]) -> None:
    """Name this machine's copies of users' files (original path -> copy) for :func:`located`."""
    _copies.update({str(k): Path(v) for k, v in copies.items()})


def user_files(config: Any) -> dict[str, str]:
    """The users' files a job's config names (your program, a metric function: in any task reference's fields),
    path -> text, so that a worker sharing no disk with this machine runs the same files."""
    found: dict[str, str] = {}
    if isinstance(config, dict):
        fields = config.get("fields")
        if isinstance(fields, str) and fields.strip().startswith("{"):
            try:
                spec = json.loads(fields)
            except ValueError:
                spec = {}
            for ref in (spec.get("program"), spec.get("metric")) if isinstance(spec, dict) else ():
                path = str(ref or "").rpartition(":")[0]
                if path.lower().endswith(".py") and Path(path).is_file():
                    found[path] = Path(path).read_bytes().decode("utf-8")  # as is: its hash is checked there
        for value in config.values():
            found |= user_files(value)
    elif isinstance(config, list):
        for value in config:
            found |= user_files(value)
    return found


def _split(ref: str, what: str = "function") -> tuple[str, str]:
    path, sep, name = str(ref).strip().rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ConfigError(f"{ref!r} does not name a {what} in a file.", f'Write it as "path/to/file.py:{what}_name".')
    return path, name


def _resolve(path: str, allowed_dir: str | Path | None, what: str = "metric") -> Path:
    """The file, symlinks resolved; a relative path is under ``allowed_dir`` when one is given, else the cwd."""
    given = Path(path).expanduser()
    if allowed_dir is None:
        return located(given).resolve()
    root = Path(allowed_dir).expanduser().resolve()
    resolved = (given if given.is_absolute() else root / given).resolve()
    if not resolved.is_relative_to(root):
        things = {"metric": "metric functions"}.get(what, what + "s")
        raise ConfigError(f"The {what} file {path!r} is outside the folder {things} may be loaded from.",
                          f"Put it under {root} (the operator's {things} folder).")
    return resolved


def load_from_file(ref: str, allowed_dir: str | Path | None = None, what: str = "metric") -> tuple[Any, Path]:
    """What ``ref`` (``"path/to/file.py:name"``) names, loaded from its file as a module of its own, and the file.

    Raises ConfigError for a malformed ref, a missing file, a file outside ``allowed_dir`` (when given), a syntax
    error (with its line), an error while the file runs (with the user's own traceback) and a missing name.
    ``what`` ("metric", "program") names the file in those messages.
    """
    path, name = _split(ref, "function" if what == "metric" else what)
    file = _resolve(path, allowed_dir, what)
    if not file.is_file():
        raise ConfigError(f"The {what} file {path!r} does not exist ({file}).",
                          "Check the path; a relative path is read from " +
                          ("the operator's folder." if allowed_dir is not None else "the working directory."))
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]
    module_name = f"gepa_studio_user_{what}_{digest}_{next(_loaded)}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path!r} cannot be loaded as Python.", f"A {what} file is a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look a module up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}.",
                          "Fix the file; python -m py_compile FILE shows the same.") from exc
    except Exception as exc:  # whatever the user's file raises on import: say which file, where and why
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{path} raised while loading: {type(exc).__name__}: {exc}\n{_user_frames(exc, file)}",
                          "Run the file with python to see the whole error.") from exc
    found = getattr(module, name, None)
    if found is None:
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                         and getattr(v, "__module__", None) == module_name)
        raise ConfigError(f"{path} has no {'function' if what == 'metric' else 'object'} {name!r}.",
                          f"It defines: {', '.join(defined)}." if defined else "Define it in that file.")
    return found, file


PROGRAM_MODULES = "gepa_studio_user_program_"  # the module names load_from_file gives program files


def program_failure(exc: BaseException) -> str | None:
    """Where your own program's code raised ``exc`` ("extract_then_classify.py, line 31, in forward"), or None when
    no frame of a program file is in its traceback (the call's own failure, e.g. the provider's)."""
    tb, where = exc.__traceback__, None
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(PROGRAM_MODULES):
            code = tb.tb_frame.f_code
            where = f"{Path(code.co_filename).name}, line {tb.tb_lineno}, in {code.co_name}"
        tb = tb.tb_next
    return where


def _user_frames(exc: BaseException, file: Path) -> str:
    """The traceback's lines in the user's own file (where their code failed), last 5."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == file]
    return "".join(traceback.format_list(frames[-5:])).rstrip()


def load_function(ref: str, allowed_dir: str | Path | None = None) -> Callable[..., Any]:
    """The function ``ref`` (``"path/to/file.py:fn"``) names, loaded from its file as a module of its own
    (:func:`load_from_file`'s errors, and a ConfigError for a name that is not callable)."""
    fn, _ = load_from_file(ref, allowed_dir, "metric")
    path = str(ref).strip().rpartition(":")[0]
    name = str(ref).strip().rpartition(":")[2]
    if not callable(fn):
        raise ConfigError(f"{path}:{name} is a {type(fn).__name__}, not a function.",
                          "Name a function: def fn(example, prediction) -> float.")
    return fn


GEPA_METRIC_ARGS = ("gold", "pred", "trace", "pred_name", "pred_trace")  # how dspy.GEPA calls a metric


def takes_gepa_args(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be called as ``dspy.GEPA`` calls a metric, with its five arguments."""
    try:
        inspect.signature(fn).bind(*GEPA_METRIC_ARGS)
    except (TypeError, ValueError):
        return False
    return True


def _unpack(result: Any) -> tuple[Any, str]:
    """``(value, feedback)`` from what a user's function returned; TypeError for a shape it may not take."""
    if hasattr(result, "score") and not isinstance(result, (numbers.Real, Mapping, tuple)):  # dspy.Prediction
        return result.score, str(getattr(result, "feedback", "") or "")
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], str):
            raise TypeError(f"a tuple must be (score, feedback text), got {result!r}"[:300])
        return result[0], result[1]
    if isinstance(result, Mapping):
        if "score" not in result:
            raise TypeError(f"a dict must hold 'score' (and may hold 'feedback'), got keys {sorted(map(str, result))}")
        return result["score"], str(result.get("feedback") or "")
    return result, ""


class FunctionScorer:
    """A :class:`core.scoring.base.Scorer` over a user's function (thread-safe as far as the function is)."""

    def __init__(self, fn: Callable[..., Any], ref: str) -> None:
        self.fn = fn
        self.fn_name = ref.rpartition(":")[2] or getattr(fn, "__name__", "metric")  # the name the user wrote
        self.name = f"{self.fn_name} (your function)"
        self.gepa_style = takes_gepa_args(fn)

    def _call(self, inputs: Mapping[str, Any], gold: Mapping[str, Any], predicted: Mapping[str, Any]) -> Any:
        if not self.gepa_style:
            return self.fn({**inputs, **gold}, dict(predicted))
        import dspy  # a GEPA-style metric reads DSPy's objects

        example = dspy.Example(**inputs, **gold).with_inputs(*inputs)
        return self.fn(example, dspy.Prediction(**predicted), None, None, None)

    def __call__(self, inputs: Mapping[str, Any], gold: Mapping[str, Any], predicted: Mapping[str, Any]) -> Score:
        return self.called(self._call, inputs, gold, predicted)

    def as_gepa(self, gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Score:
        """A GEPA-style function called as GEPA called the metric: with the predictor GEPA asks about and its trace,
        so the function can give each predictor its own feedback."""
        return self.called(self.fn, gold, pred, trace, pred_name, pred_trace)

    def called(self, call: Callable[..., Any], *args: Any) -> Score:
        """The score of ``call(*args)``: failed (kind ``"metric"``) when it raises or returns what is not a score."""
        try:
            result = call(*args)
        except Exception as exc:  # noqa: BLE001 - the user's function failing on one example fails that example
            return self._failed("raised", f"{type(exc).__name__}: {exc}")
        try:
            value, feedback = _unpack(result)
        except TypeError as exc:
            return self._failed("returned the wrong shape", str(exc))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return self._failed("returned the wrong type", f"a score is a number in [0, 1], got {value!r}"[:300])
        if math.isnan(value):
            return self._failed("returned NaN", "a score is a number in [0, 1]")
        if not 0.0 <= value <= 1.0:
            return self._failed("returned a score outside [0, 1]", repr(value))
        return Score.of(float(value), feedback or f"{self.fn_name} scored {float(value):.2f}.")

    def _failed(self, what: str, message: str) -> Score:
        logger.debug("%s %s: %s", self.fn_name, what, message)
        return Score.failed("metric", f"{self.fn_name} {what}: {message}")
