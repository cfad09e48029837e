"""Your own program ships whole: a baseline of ``examples/programs/context_qa.py`` on the shipped qa task, run and
exported through the CLI, then loaded in a fresh process outside the repository after the program's file is gone (the
model carries a copy of it, and core), answering as the evaluation did and over HTTP; each predictor of a program
registered as a prompt of its own; a program file that changed or holds a key never travels."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.config.errors import ConfigError
from core.tracking.store import RunStore
from tests.ports import free_port, invoke_served
from tests.stub_tasks import task_stub

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "programs"
SECRET = "sk-planted-program-secret-4b3a2c"
PREDICT = """
import json, sys
import mlflow
import pandas as pd

mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
out = model.predict(pd.DataFrame(json.loads(sys.argv[3])))
print(json.dumps({"inputs": model.metadata.get_input_schema().input_names(),
                  "outputs": model.metadata.get_output_schema().input_names(),
                  "answers": out.to_dict("records"), "core": sys.modules["core"].__file__}))
"""


def studio_env(root: Path) -> dict[str, str]:
    """A data dir and store of the module's own, no secrets file, traces off, a planted key in the environment
    (the scrub's to hide) and no path back to the repository."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env | {"GEPA_STUDIO_DATA_DIR": str(root / "studio"), "MLFLOW_TRACKING_URI":
                  f"sqlite:///{root / 'studio' / 'mlflow.db'}", "GEPA_STUDIO_SECRETS": str(root / "no-secrets.toml"),
                  "GEPA_STUDIO_TRACES": "off", "DSPY_CACHEDIR": str(root / "dspy-cache"), "OPENAI_API_KEY": SECRET}


def run_cli(env, *args):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env | {"PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, template_db):
    """A baseline of a copy of context_qa.py through the CLI, exported through the CLI; then the copy deleted."""
    root = tmp_path_factory.mktemp("ship-program")
    env = studio_env(root)
    (root / "studio").mkdir()
    shutil.copy(template_db, root / "studio" / "mlflow.db")  # migrated already (tests/conftest.py)
    copy = root / "mine" / "context_qa.py"
    copy.parent.mkdir()
    shutil.copy(EXAMPLES / "context_qa.py", copy)
    with task_stub() as stub:
        base = run_cli(env, "baseline", "--task", "qa", "--program", f"{copy}:ContextQA", "--models",
                       f"openai/stub-small@{stub.base_url}", "--test-per-label", "4", "-q")
        assert base.returncode == 0, base.stderr[-3000:]
        run_id = re.findall(r"\b[0-9a-f]{32}\b", base.stdout)[0]
        out = run_cli(env, "export", run_id)  # a finished baseline was measured: no --allow-untested
        assert out.returncode == 0, out.stderr[-3000:]
        uri = re.search(r"^Registered (models:/\S+) ", out.stdout, re.M).group(1)
        assert f"It carries your program's file ({copy})" in out.stdout
        copy.unlink()
        elsewhere = root / "elsewhere"
        elsewhere.mkdir()
        yield {"env": env, "run_id": run_id, "uri": uri, "copy": copy, "stub": stub, "cwd": elsewhere}


@pytest.fixture
def studio(shipped, monkeypatch):
    """The module's store, in this process."""
    from core.config.settings import load_settings

    for name in ("GEPA_STUDIO_DATA_DIR", "MLFLOW_TRACKING_URI", "GEPA_STUDIO_SECRETS", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, shipped["env"][name])
    return RunStore(load_settings())


@pytest.mark.slow
def test_the_exported_program_answers_in_a_fresh_process_after_its_file_is_gone(shipped, studio, tmp_path):
    records = studio.read_csv(shipped["run_id"], "records.csv")
    rows = [json.loads(text) for text in records["text"]]
    assert not shipped["copy"].exists() and set(rows[0]) == {"context", "question"}
    done = subprocess.run([sys.executable, "-c", PREDICT, shipped["env"]["MLFLOW_TRACKING_URI"], shipped["uri"],
                           json.dumps(rows)], cwd=shipped["cwd"], env=shipped["env"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["inputs"] == ["context", "question"] and out["outputs"] == ["answer", "error"]
    # core came with the model (the process runs outside the repository, without PYTHONPATH)
    assert not out["core"].startswith(str(ROOT)) and "/code/core/" in out["core"]
    answers = [row["answer"] for row in out["answers"]]
    assert all(answers) and all(row["error"] is None for row in out["answers"])
    assert answers == [str(p) for p in records["predicted"]]  # as the baseline's evaluation read them

    name, _, version = shipped["uri"].removeprefix("models:/").rpartition("/")
    tags = studio.client.get_model_version(name, version).tags
    run_tags = studio.get_run(shipped["run_id"]).data.tags
    sha = hashlib.sha256((EXAMPLES / "context_qa.py").read_bytes()).hexdigest()
    assert tags["studio.module"] == "program" and tags["studio.program_ref"] == f"{shipped['copy']}:ContextQA"
    assert tags["studio.program_sha"] == sha and tags["studio.predictors"] == "answer.predict"
    assert re.fullmatch(r"[0-9a-f]{16}", tags["studio.program_identity"])
    assert tags["studio.program_identity"] == run_tags["studio.program_identity"]

    studio.download(shipped["run_id"], "model", tmp_path)
    files = [p for p in (tmp_path / "model").rglob("*") if p.is_file()]
    carried = tmp_path / "model" / "artifacts" / "context_qa.py"
    assert carried.read_bytes() == (EXAMPLES / "context_qa.py").read_bytes()
    assert not [p for p in files if SECRET.encode() in p.read_bytes()]
    with pytest.raises(ConfigError, match="is gone") as gone:  # exported again without its file: refused
        from core.ship.register import export_model

        export_model(studio, shipped["run_id"])
    assert "Put the file back" in gone.value.hint


@pytest.mark.slow
def test_the_exported_program_serves_over_http(shipped):
    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(sys.executable))
    if mlflow_cli is None:
        pytest.skip("the mlflow command is not installed beside this Python")
    port = free_port()
    env = shipped["env"] | {"PATH": os.pathsep.join([os.path.dirname(mlflow_cli), os.environ.get("PATH", "")])}
    proc = subprocess.Popen([mlflow_cli, "models", "serve", "-m", shipped["uri"], "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=shipped["cwd"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        row = {"context": "The tram line was reopened in 2019. Its driver since then has been Ada Brennan.",
               "question": "Who has driven the tram since it reopened?"}
        answer = invoke_served(port, proc, [row], 60)
        [prediction] = answer["predictions"]
        assert prediction["answer"] and prediction["error"] is None
        assert any("Ada Brennan" in str(r["body"]) for r in shipped["stub"].chat_requests())  # the stub answered it
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_each_predictor_of_a_program_is_a_prompt_of_its_own(store):
    import mlflow

    from core.lm.models import openai_compatible
    from core.optimize.registered import PROMPT_URIS_TAG, MadeBy, register_prompt
    from core.program.user_program import program_for_task
    from core.tasks import Task

    file = EXAMPLES / "extract_then_classify.py"
    task = Task(name="rct", inputs=[{"column": "sentence"}], program=f"{file}:make_program",
                outputs=[{"column": "label", "kind": "label", "labels": ["BACKGROUND", "METHODS"]}],
                program_sha=hashlib.sha256(file.read_bytes()).hexdigest())
    program = program_for_task(task)
    student = openai_compatible("stub-small", "stub-small", "http://127.0.0.1:9/v1")
    run_id = store.start_run("evaluation", "rct", run_name="the program's evaluation")
    uri = register_prompt(store, task, student, program, 0.8, MadeBy(run_id))
    assert uri == "prompts:/rct-stub-small-extract.predict/1"
    listed = store.get_run(run_id).data.tags[PROMPT_URIS_TAG]
    assert listed == f"extract.predict={uri}, classify=prompts:/rct-stub-small-classify/1"
    assert store.get_run(run_id).data.tags["studio.prompt_uri"] == uri

    mlflow.set_tracking_uri(store.settings.tracking_uri)
    for name, inputs, outputs in (("extract.predict", {"sentence"}, ["reasoning", "finding"]),
                                  ("classify", {"sentence", "finding"}, ["label"])):
        prompt = mlflow.genai.load_prompt(f"prompts:/rct-stub-small-{name}@best", link_to_model=False,
                                          cache_ttl_seconds=0)
        pred = dict(program.named_predictors())[name]
        assert prompt.version == 1 and prompt.tags["predictor"] == name and prompt.tags["module"] == "program"
        assert prompt.tags["instruction"] == pred.signature.instructions
        assert " ".join(pred.signature.instructions.split()) in " ".join(prompt.template[0]["content"].split())
        assert set(prompt.variables) == inputs
        assert prompt.response_format["required"] == outputs
        assert prompt.tags["program_ref"] == task.program and prompt.tags["predictors"] == "extract.predict, classify"
    assert prompt.response_format["properties"]["label"]["enum"] == ["BACKGROUND", "METHODS"]

    assert register_prompt(store, task, student, program, 0.5, MadeBy(run_id)).endswith("/2")  # lower: best stays
    assert mlflow.genai.load_prompt("prompts:/rct-stub-small-classify@best", link_to_model=False,
                                   cache_ttl_seconds=0).version == 1


def test_a_program_file_that_changed_or_holds_a_key_does_not_travel(tmp_path, monkeypatch):
    from core.ship.pyfunc import PROGRAM_FILE_ARTIFACT, write_artifacts

    file = tmp_path / "mine.py"
    file.write_text((EXAMPLES / "context_qa.py").read_text(encoding="utf-8"), encoding="utf-8")
    task = {"name": "qa", "program": f"{file}:ContextQA", "program_sha": hashlib.sha256(file.read_bytes()).hexdigest()}
    (tmp_path / "out").mkdir()
    artifacts = write_artifacts(tmp_path / "out", {"task": task, "state": {}}, {"name": "m"})
    assert artifacts[PROGRAM_FILE_ARTIFACT] == str(file)

    file.write_text(file.read_text(encoding="utf-8") + "\nKEY = 'sk-in-the-file-0123456789abcdef'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="changed after the run"):
        write_artifacts(tmp_path / "out", {"task": task, "state": {}}, {"name": "m"})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-in-the-file-0123456789abcdef")
    task["program_sha"] = hashlib.sha256(file.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match="holds a key") as held:
        write_artifacts(tmp_path / "out", {"task": task, "state": {}}, {"name": "m"})
    assert "os.environ" in held.value.hint and "sk-in-the" not in str(held.value)
