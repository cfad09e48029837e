"""Picking your own program on the Task page (#24), its pure part: the programs a folder's files offer, read from their
syntax without running them; a program outside the folder refused; and the task's fields from a described program
and the columns picked for it, the same JSON the command line's --program builds, loadable as a task."""

import json
import shutil
from pathlib import Path

import pytest

from core.cli.main import build_parser
from core.cli.task_args import task_ref
from core.config.errors import ConfigError
from core.program.pick import check_program, program_candidates, program_fields, program_files, program_outputs
from core.program.user_program import describe
from core.tasks import TaskRef, load_tables

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "programs" / "extract_then_classify.py"
DEMO = ROOT / "core" / "demo_data" / "demo_sentences.csv"


@pytest.fixture
def folder(tmp_path) -> Path:
    """The operator's programs folder: a copy of the example pipeline, and files a listing must not run or list."""
    root = tmp_path / "programs"
    (root / "sub").mkdir(parents=True)
    (root / "__pycache__").mkdir()
    (root / ".hidden").mkdir()
    shutil.copy(EXAMPLE, root / "pipeline.py")
    ran = tmp_path / "ran.txt"
    (root / "sub" / "mixed.py").write_text(
        f"import dspy\nopen({str(ran)!r}, 'w').write('ran')\n\n"
        "class Base(dspy.Signature):\n    '''q -> a'''\n\n"
        "class Derived(Base):\n    pass\n\n"
        "class NeedsArgs(dspy.Module):\n    def __init__(self, lm):\n        super().__init__()\n\n"
        "class WithDefaults(dspy.Module):\n    def __init__(self, k=3, *, n=1):\n        super().__init__()\n\n"
        "class _Private(dspy.Module):\n    pass\n\n"
        "def build(size=2):\n    return WithDefaults(size)\n\n"
        "def needs(x):\n    return x\n\n"
        "async def later():\n    return None\n\n"
        "program = WithDefaults()\n"
        "qa: dspy.Module = dspy.ChainOfThought('question -> answer')\n"
        "LIMIT = int('3')\n", encoding="utf-8")
    (root / "__pycache__" / "cached.py").write_text("def make():\n    return 1\n", encoding="utf-8")
    (root / ".hidden" / "secret.py").write_text("def make():\n    return 1\n", encoding="utf-8")
    (root / "broken.py").write_text("def make(:\n    pass\n", encoding="utf-8")
    return root


def test_a_folders_program_files_and_their_candidates_are_read_without_running_them(folder, tmp_path):
    files = program_files(folder)
    assert list(files) == ["broken.py", "pipeline.py", "sub/mixed.py"]
    assert files["sub/mixed.py"] == str((folder / "sub" / "mixed.py").resolve())
    # The example: its Module class and its factory; not its two signatures, not its metric (it takes arguments).
    assert program_candidates(files["pipeline.py"]) == ["ExtractThenClassify", "make_program"]
    assert program_candidates(files["sub/mixed.py"]) == ["WithDefaults", "build", "program", "qa"]
    assert not (tmp_path / "ran.txt").exists()  # listing never runs a file
    with pytest.raises(ConfigError, match=r"broken.py, line 1: syntax error"):
        program_candidates(files["broken.py"])


def test_no_folder_or_a_missing_one_says_how_to_set_it(tmp_path):
    with pytest.raises(ConfigError) as caught:
        program_files(None)
    assert "GEPA_STUDIO_PROGRAMS_DIR" in caught.value.hint and "docs/programs.md" in caught.value.hint
    with pytest.raises(ConfigError, match="is not a folder"):
        program_files(tmp_path / "absent")


def test_a_program_outside_the_folder_is_refused(folder, tmp_path):
    inside = f"{folder / 'pipeline.py'}:make_program"
    assert check_program(inside, folder) == (folder / "pipeline.py").resolve()
    assert check_program("sub/mixed.py:program", folder) == (folder / "sub" / "mixed.py").resolve()
    outside = tmp_path / "elsewhere.py"
    shutil.copy(EXAMPLE, outside)
    for ref in (f"{outside}:make_program", "../elsewhere.py:make_program", f"{folder}/sub/../../elsewhere.py:x"):
        with pytest.raises(ConfigError, match="outside the programs folder"):
            check_program(ref, folder)
    (folder / "link.py").symlink_to(outside)  # a link inside that leads out is outside
    with pytest.raises(ConfigError, match="outside the programs folder"):
        check_program(f"{folder / 'link.py'}:make_program", folder)
    with pytest.raises(ConfigError, match="may offer none"):
        check_program(inside, None)
    with pytest.raises(ConfigError, match="does not name a program"):
        check_program(str(folder / "pipeline.py"), folder)


def test_the_fields_are_the_command_lines_and_load_as_a_program_task(folder, settings):
    ref, metric = f"{folder / 'pipeline.py'}:make_program", f"{folder / 'pipeline.py'}:metric"
    info = describe(ref, metric, allowed_dir=folder)
    assert program_outputs(info) == ("label",)  # the last predictor's, without reasoning
    fields = program_fields(info, {"sentence": "description"},
                            [{"field": "label", "column": "target", "kind": "label", "metric": ""}], metric)
    cli = build_parser().parse_args(["optimize", "--task", str(DEMO), "--program", ref, "--metric", metric,
                                     "--input-columns", "sentence=description",
                                     "--output-columns", "label=target:label", "--student", "x"])
    assert fields == json.loads(task_ref(cli).fields)
    assert fields["program"] == f"{(folder / 'pipeline.py').resolve()}:make_program"
    assert fields["program_sha"] == info.file_sha256 and len(fields["program_sha"]) == 64
    assert fields["program_predictors"] == ["extract.predict", "classify"]

    task, table, _ = load_tables(TaskRef(kind="file", source=str(DEMO), fields=json.dumps(fields)), settings)
    assert task.program == fields["program"] and task.num_predictors == 2 and not task.is_classification
    assert [(f.name, f.column) for f in task.inputs] == [("sentence", "description")]
    assert [(f.name, f.column, f.kind) for f in task.outputs] == [("label", "target", "label")]
    assert set(task.labels) == set(table["target"])

    own = program_fields(info, {"sentence": "description"},
                         [{"field": "label", "column": "target", "kind": "text", "metric": "f1"}])
    assert "metric" not in own and own["outputs"] == [{"column": "target", "field": "label", "kind": "text",
                                                       "metric": "f1"}]


def test_a_mapping_that_cannot_run_says_what_to_pick(folder):
    info = describe(f"{folder / 'pipeline.py'}:make_program", allowed_dir=folder)
    gold = [{"field": "label", "column": "target", "kind": "label"}]
    cases = [({}, gold, "No column feeds the program's input\\(s\\) sentence"),
             ({"sentence": "description"}, [], "No gold column"),
             ({"sentence": "description"}, [{"field": "finding", "column": "target"}], "does not answer finding"),
             ({"sentence": "target"}, gold, "both read by the program and its gold answer")]
    for inputs, outputs, message in cases:
        with pytest.raises(ConfigError, match=message):
            program_fields(info, inputs, outputs)
