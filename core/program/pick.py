"""Picking your own program on the Task page (#24): the programs the operator's folder offers, found by reading its
files' syntax (``ast``), never by running them; the rule that a program (a saved task's, a link's) lies under that
folder; and the task's fields (``TaskRef.fields``) from what a program holds and the columns picked for it, the same
JSON ``python -m core ... --program FILE.py:NAME --input-columns FIELD=COLUMN`` builds.

What a file holds is learnt from :func:`core.program.user_program.describe_isolated` (a child process): the dashboard
never loads a program file itself.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config.errors import ConfigError

if TYPE_CHECKING:
    from core.program.user_program import ProgramInfo

MAX_PROGRAM_FILES = 200  # .py files listed under the programs folder (a folder is for a few program files)
PROGRAMS_HINT = ("Set GEPA_STUDIO_PROGRAMS_DIR (environment or .streamlit/secrets.toml) to a folder of .py files "
                 "holding your DSPy programs, then restart the dashboard (docs/programs.md).")
NOT_OUTPUTS = ("reasoning",)  # a ChainOfThought's own output: no gold column holds it
_MODULE_CALLS = ("Predict", "ChainOfThought")  # ``program = dspy.Predict(...)`` at the top of a file is a program


def _folder(folder: str | Path | None) -> Path:
    if folder is None:
        raise ConfigError("No folder for your own programs is configured.", PROGRAMS_HINT)
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"The programs folder {root} is not a folder.", PROGRAMS_HINT)
    return root


def program_files(folder: str | Path | None) -> dict[str, str]:
    """The .py files under ``folder`` (the operator's GEPA_STUDIO_PROGRAMS_DIR): ``"sub/file.py"`` (as the page
    names it) -> ``"/abs/sub/file.py"``; none in hidden or ``__`` folders. ConfigError when no folder is configured
    or it is not a folder."""
    root = _folder(folder)
    files = sorted(p for p in root.rglob("*.py")
                   if not any(part.startswith((".", "__")) for part in p.relative_to(root).parts))
    return {p.relative_to(root).as_posix(): str(p.resolve()) for p in files[:MAX_PROGRAM_FILES]}


def _dotted(node: ast.expr) -> str:
    """``dspy.Module`` for an attribute chain, ``Module`` for a name, "" for anything else."""
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return node.id if isinstance(node, ast.Name) else ""


def _no_arguments(args: ast.arguments, skip: int = 0) -> bool:
    """A function (``skip``: its ``self``) callable with no arguments: every parameter has a default."""
    positional = [*args.posonlyargs, *args.args][skip:]
    return len(args.defaults) >= len(positional) and all(d is not None for d in args.kw_defaults)


def _is_signature(node: ast.ClassDef, signatures: set[str]) -> bool:
    return any(_dotted(b).rpartition(".")[2].endswith("Signature") or _dotted(b) in signatures for b in node.bases)


def _made_without_arguments(node: ast.ClassDef) -> bool:
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    return init is None or _no_arguments(init.args, skip=1)


def program_candidates(path: str | Path) -> list[str]:
    """What in ``path`` may be a program, in the file's order, read from its syntax (nothing in it runs): top-level
    public classes made with no arguments (but signatures), functions of no arguments, and names given an instance of
    such a class or of ``dspy.Predict`` / ``dspy.ChainOfThought``. Which of them really is one, only loading the file
    says (:func:`core.program.user_program.describe_isolated`). ConfigError for a file that cannot be read or parsed,
    with its line."""
    file = Path(path)
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except SyntaxError as exc:
        raise ConfigError(f"{file.name}, line {exc.lineno}: syntax error: {exc.msg}.",
                          "Fix the file; python -m py_compile FILE shows the same.") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"The program file {file} cannot be read: {exc}.", "Check the file.") from exc
    signatures: set[str] = set()
    classes: set[str] = set()
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            if _is_signature(node, signatures):
                signatures.add(node.name)
            elif not node.name.startswith("_") and _made_without_arguments(node):
                classes.add(node.name)
                found.append(node.name)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and _no_arguments(node.args):
            found.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            made = _dotted(node.value.func).rpartition(".")[2]
            if made in classes or made in _MODULE_CALLS:
                found += [t.id for t in targets if isinstance(t, ast.Name) and not t.id.startswith("_")]
    return list(dict.fromkeys(found))


def check_program(ref: str, folder: str | Path | None) -> Path:
    """The file of a program ``ref`` (``/abs/file.py:name``; relative: under ``folder``), after checking that it lies
    under the operator's programs folder (the dashboard offers no other code). ConfigError otherwise."""
    path, sep, name = str(ref).strip().rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ConfigError(f"{ref!r} does not name a program in a file.", 'Write it as "path/to/file.py:name".')
    if folder is None:
        raise ConfigError(f"The task runs your own program {ref!r}, but the dashboard may offer none.", PROGRAMS_HINT)
    root = Path(folder).expanduser().resolve()
    given = Path(path).expanduser()
    file = (given if given.is_absolute() else root / given).resolve()
    if not file.is_relative_to(root):
        raise ConfigError(f"The program {ref!r} is outside the programs folder {root}.",
                          "Move the file under that folder and pick it here, or run the task from the command line.")
    return file


def program_outputs(info: ProgramInfo) -> tuple[str, ...]:
    """The fields a program answers with: its last predictor's outputs, but a ChainOfThought's ``reasoning``."""
    return tuple(name for name in info.predictors[-1].outputs if name not in NOT_OUTPUTS) if info.predictors else ()


def program_fields(info: ProgramInfo, inputs: Mapping[str, str], outputs: Sequence[Mapping[str, Any]],
                   metric: str = "") -> dict[str, Any]:
    """``TaskRef.fields`` of a task run on the program ``info`` describes: ``inputs`` maps each of its inputs to the
    column that feeds it; ``outputs`` are the gold columns, each ``{"field", "column", "kind"}`` (and a ``metric``
    of its own, optionally); ``metric``, a function's ``/abs/file.py:fn`` or "". ConfigError for an input no column
    feeds, no gold column, a field the program does not answer, or a column both read and scored."""
    if missing := [name for name in info.inputs if not inputs.get(name)]:
        raise ConfigError(f"No column feeds the program's input(s) {', '.join(missing)}.",
                          "Pick a column for each input.")
    if not outputs:
        raise ConfigError("No gold column is picked for the program's outputs.",
                          "Pick the column that holds the right answer of at least one output.")
    answered = program_outputs(info)
    if unknown := [str(o["field"]) for o in outputs if o["field"] not in answered]:
        raise ConfigError(f"The program does not answer {', '.join(unknown)}.",
                          f"Its answers: {', '.join(answered) or 'none'}.")
    if both := sorted({str(o["column"]) for o in outputs} & {inputs[name] for name in info.inputs}):
        raise ConfigError(f"Column(s) {', '.join(both)} would be both read by the program and its gold answer.",
                          "A gold column must not be fed to the program.")
    outs = [{"column": str(o["column"]), "field": str(o["field"]), "kind": str(o.get("kind") or "text")}
            | ({"metric": str(o["metric"])} if o.get("metric") else {}) for o in outputs]
    fields: dict[str, Any] = {
        "inputs": [{"column": inputs[name], "field": name} for name in info.inputs], "outputs": outs,
        "program": f"{info.file}:{info.ref.rpartition(':')[2]}", "program_sha": info.file_sha256,
        "program_predictors": [p.name for p in info.predictors]}
    if metric:
        fields["metric"] = metric
    return fields
