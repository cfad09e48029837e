"""Every environment variable the code reads is a row of docs/configuration.md, and every row is read somewhere.

What counts as read, found in the source's syntax tree (no import, no run):
- the name given to ``os.environ.get`` / ``os.getenv`` / ``os.environ[...]`` / ``os.environ.setdefault`` /
  ``os.environ.pop`` / ``name in os.environ`` / ``get_secret(...)``, as a string or a module constant holding one;
- any string ``GEPA_STUDIO_*`` (read through a constant, a table or ``get_secret``);
- any string naming a provider's key or gateway (``*_API_KEY``, ``*_TOKEN``, ``*_API_BASE``: the provider table).

Scanned: the app (core/, ui/, pages/, app.py) and the test harness (tests/**/conftest.py, tests/e2e/browser.py),
whose variables scripts/test sets. Not scanned: bench/ (it sets variables for the runs it times and reads only the
test services' two, which the harness reads too) and the tests themselves (they set variables to exercise the
code, or invent names to test scrubbing).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
SOURCES = ("core", "ui", "pages", "app.py", "tests/**/conftest.py", "tests/conftest.py", "tests/e2e/browser.py")
READERS = {"get", "getenv", "setdefault", "pop", "get_secret"}  # called with the variable's name first
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")
ALWAYS = re.compile(r"GEPA_STUDIO_[A-Z0-9_]+|[A-Z][A-Z0-9]*_(API_KEY|TOKEN|API_BASE)")
ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", re.MULTILINE)


def files() -> list[Path]:
    out: set[Path] = set()
    for pattern in SOURCES:
        path = ROOT / pattern
        if path.is_dir():
            out.update(path.rglob("*.py"))
        elif path.is_file():
            out.add(path)
        else:
            out.update(ROOT.glob(pattern))
    return sorted(out)


def is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def named(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The variable's name an argument spells: a string, or a module constant that holds one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        value = node.value
    elif isinstance(node, ast.Name):
        value = constants.get(node.id, "")
    else:
        return None
    return value if ENV_NAME.fullmatch(value) else None


def read_in(tree: ast.Module) -> set[str]:
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                 for t in n.targets if isinstance(t, ast.Name)}
    found: set[str] = set()
    for node in ast.walk(tree):
        arg = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Name) and func.id == "get_secret":
                arg = node.args[0]
            elif isinstance(func, ast.Attribute) and func.attr in READERS and (
                    is_environ(func.value) or func.attr in ("getenv", "get_secret")):
                arg = node.args[0]
        elif isinstance(node, ast.Subscript) and is_environ(node.value):
            arg = node.slice
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            arg = node.left
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ALWAYS.fullmatch(node.value):
            found.add(node.value)
        name = named(arg, constants) if arg is not None else None
        if name:
            found.add(name)
    return found


def read_by_code() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for path in files():
        for name in read_in(ast.parse(path.read_text(encoding="utf-8"))):
            where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return where


def documented() -> set[str]:
    return set(ROW.findall(DOC.read_text(encoding="utf-8")))


def test_the_scan_finds_the_variables_read_in_each_way():
    tree = ast.parse("import os\nfrom os import environ\nNAME_ENV = 'MY_LIMIT'\n"
                     "a = os.environ.get('A_VAR', '1'); b = os.getenv('B_VAR'); c = os.environ['C_VAR']\n"
                     "environ.setdefault('D_VAR', 'x'); e = 'E_VAR' in os.environ; f = get_secret('F_VAR')\n"
                     "g = os.environ.get(NAME_ENV); h = {'key_env': 'ACME_API_KEY'}; i = ('GEPA_STUDIO_X',)\n"
                     "j = settings.get_secret('J_VAR'); k = other.get('NOT_AN_ENV'); l = 'NOT_ONE_EITHER'\n")
    assert read_in(tree) == {"A_VAR", "B_VAR", "C_VAR", "D_VAR", "E_VAR", "F_VAR", "MY_LIMIT", "ACME_API_KEY",
                             "GEPA_STUDIO_X", "J_VAR"}


def test_every_variable_the_code_reads_is_in_the_table():
    where = read_by_code()
    assert {"GEPA_STUDIO_SECRETS", "GEPA_STUDIO_RAY_PIP", "GEPA_STUDIO_LIMITER", "GEPA_STUDIO_BREAKER_RATE",
            "GEPA_STUDIO_ALLOWED_USERS", "RAY_ADDRESS", "OPENAI_API_KEY"} <= set(where), "the scan lost its way"
    missing = {name: where[name] for name in sorted(set(where) - documented())}
    assert not missing, f"read by the code but not a row of docs/configuration.md (name, default, effect): {missing}"


def test_every_row_of_the_table_is_read_by_the_code():
    stale = sorted(documented() - set(read_by_code()))
    assert not stale, f"docs/configuration.md lists variables no code reads any more: {stale}"
