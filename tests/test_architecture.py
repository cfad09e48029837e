"""The shape of the code, checked: import-linter's layer contracts (pyproject.toml) and the size of each file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def test_layer_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment (requirements-dev.txt installs it)")
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("folder", ["core", "ui", "pages"])
def test_no_python_file_is_over_the_limit(folder):
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in (ROOT / folder).rglob("*.py")}
    assert sizes, f"no Python files under {folder}/"
    too_long = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"split these by subject (limit {MAX_LINES} lines): {too_long}"
