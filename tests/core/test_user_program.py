"""Your own DSPy program, its first part (#24): a file that defines a dspy.Module is loaded, checked, described and
fingerprinted; the two shipped examples; every bad input with a clear message; a child process with a time limit
for a process that must not run the file's code."""

import os
import textwrap
import time
from pathlib import Path

import pytest

from core.config.errors import ConfigError
from core.program.user_program import check_unchanged, describe, describe_isolated
from tests.core.test_cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "programs"
PIPELINE = f"{EXAMPLES / 'extract_then_classify.py'}:make_program"


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_the_shipped_examples_describe_their_predictors_inputs_and_metric():
    info = describe(PIPELINE, metric=f"{EXAMPLES / 'extract_then_classify.py'}:metric")
    assert [(p.name, p.kind) for p in info.predictors] == [("extract.predict", "ChainOfThought"),
                                                            ("classify", "Predict")]
    assert info.predictors[1].inputs == ("sentence", "finding") and info.predictors[1].outputs == ("label",)
    assert info.inputs == ("sentence",) and info.metric and len(info.identity) == 16
    qa = describe(f"{EXAMPLES / 'context_qa.py'}:ContextQA")  # a class: made with no arguments
    assert qa.inputs == ("context", "question") and [p.outputs for p in qa.predictors] == [("reasoning", "answer")]


def test_the_identity_follows_the_file_and_a_changed_file_is_refused(tmp_path):
    src = (EXAMPLES / "context_qa.py").read_text(encoding="utf-8")
    path = tmp_path / "qa.py"
    path.write_text(src, encoding="utf-8")
    first = describe(f"{path}:ContextQA")
    assert describe(f"{path}:ContextQA").identity == first.identity
    check_unchanged(first)
    path.write_text(src.replace("a short span of the context", "one word of the context"), encoding="utf-8")
    with pytest.raises(ConfigError, match="changed after it was checked"):
        check_unchanged(first)
    assert describe(f"{path}:ContextQA").identity != first.identity
    path.unlink()
    with pytest.raises(ConfigError, match="is gone"):
        check_unchanged(first)


@pytest.mark.parametrize(("body", "ref_name", "words"), [
    ("import dspy\nx = 1\n", "program", "has no object 'program'"),
    ("import dspy\n\nclass Empty(dspy.Module):\n    def forward(self, q):\n        return q\n", "Empty",
     "has no predictor"),
    ("x = 3\n", "x", "is a int, not a DSPy program"),
    ("def make():\n    return 'not a program'\n", "make", "returned a str, not a dspy.Module"),
    ("def make():\n    raise RuntimeError('no model configured')\n", "make",
     "raised RuntimeError: no model configured"),
    ("import dspy\nprogram = dspy.Predict('q -> a'\n", "program", "syntax error"),
])
def test_a_file_that_is_no_program_says_what_is_wrong(tmp_path, body, ref_name, words):
    path = write(tmp_path, "prog.py", body)
    with pytest.raises(ConfigError) as err:
        describe(f"{path}:{ref_name}")
    assert words in err.value.message


def test_an_import_error_shows_the_users_own_traceback(tmp_path):
    path = write(tmp_path, "broken.py", """\
        import dspy

        def helper():
            return {}["missing_key"]

        VALUE = helper()
        """)
    with pytest.raises(ConfigError) as err:
        describe(f"{path}:program")
    assert "KeyError: 'missing_key'" in err.value.message
    assert 'broken.py", line 4, in helper' in err.value.message and "line 6" in err.value.message


def test_a_metric_gepa_cannot_call_is_refused(tmp_path):
    path = write(tmp_path, "metric.py", "def two(gold, pred):\n    return 1.0\n"
                                        "def five(gold, pred, trace=None, pred_name=None, pred_trace=None):\n"
                                        "    return 1.0\n")
    with pytest.raises(ConfigError, match=r"cannot be called as GEPA calls a metric"):
        describe(PIPELINE, metric=f"{path}:two")
    assert describe(PIPELINE, metric=f"{path}:five").metric == f"{path}:five"


def test_a_file_outside_the_allowed_folder_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    path = write(tmp_path, "evil.py", f"open({str(marker)!r}, 'w').close()\n")
    allowed = tmp_path / "programs"
    allowed.mkdir()
    with pytest.raises(ConfigError, match="outside the folder programs may be loaded from"):
        describe(f"{path}:program", allowed_dir=allowed)
    assert not marker.exists()


@pytest.mark.slow
def test_isolated_describe_never_runs_the_file_here_and_stops_a_file_that_hangs(tmp_path):
    marker = tmp_path / "pids"
    path = write(tmp_path, "pipeline.py", (EXAMPLES / "extract_then_classify.py").read_text(encoding="utf-8") +
                 f"\nimport os\nopen({str(marker)!r}, 'a').write(str(os.getpid()))\n")
    info = describe_isolated(f"{path}:make_program")
    assert [p.name for p in info.predictors] == ["extract.predict", "classify"]
    ran_in = marker.read_text(encoding="utf-8")
    assert ran_in and ran_in != str(os.getpid())  # the file's code ran once, in the child, never here
    path = write(tmp_path, "slow.py", "import time\ntime.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="did not finish loading within 3 s"):
        describe_isolated(f"{path}:program", timeout_s=3)
    assert time.monotonic() - started < 20
    empty = write(tmp_path, "empty.py", "import dspy\np = dspy.Module()\n")
    with pytest.raises(ConfigError, match="has no predictor"):
        describe_isolated(f"{empty}:p")


@pytest.mark.slow
def test_the_cli_describes_a_program_and_exits_2_on_a_bad_one(tmp_path):
    out = run_cli("program", "describe", PIPELINE)
    assert out.returncode == 0, out.stderr
    assert "2 predictor(s); inputs sentence" in out.stdout and "classify (Predict): sentence, finding -> label" in (
        out.stdout)
    out = run_cli("program", "describe", f"{tmp_path / 'missing.py'}:program")
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
