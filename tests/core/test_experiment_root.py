"""Where experiments live (``GEPA_STUDIO_EXPERIMENT_ROOT``, or the Home page): with the root a Databricks workspace
wants (``/Shared/gepa-studio``), a baseline, an optimization run by the Ray worker's entry point and its mailbox all
land under it on a real MLflow tracking server on loopback, and the run lists show the task's runs, never the
mailbox; without a root the names are what every older store has; bad roots are refused with what to do; on a
Databricks tracking URI the experiments' workspace folder is made first (a fake SDK client: no workspace is
reachable here); the Home page saves the root; and no module but core.tracking.experiments names or makes an
experiment (the code is read)."""

from __future__ import annotations

import ast
import json
import re
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from core.config.errors import ConfigError
from core.config.settings import (
    ROOT_ENV,
    check_experiment_root,
    load_settings,
    save_experiment_root,
    saved_experiment_root,
)
from core.jobs import mailbox as mb
from core.jobs.ray_backend import RayBackend, runtime_env
from core.tracking import experiments
from core.tracking.experiments import ensure_experiment, experiment_name, mailbox_experiment
from core.tracking.store import RunStore
from tests.core.test_cli import run_cli
from tests.core.test_mlflow_server import api
from tests.core.test_optimizers import make_config, responder
from tests.ports import mlflow_server
from tests.scenario import write_csv
from tests.ui.conftest import (  # noqa: F401 - the page tests' autouse fixtures: fresh caches, navigation as served
    assert_clean,
    fresh_streamlit_caches,
    navigation_as_in_a_running_server,
    no_job_processes,
    open_page,
    texts,
)

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = "/Shared/gepa-studio"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `mlflow server` on loopback for this module (as tests/core/test_mlflow_server.py starts it); each test
    uses its own task names."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def server_experiments(url: str) -> dict[str, str]:
    """Every experiment on the server, name -> id, read over its REST API (not through the studio)."""
    found = api(url, "/api/2.0/mlflow/experiments/search", {"max_results": 1000})["experiments"]
    return {e["name"]: e["experiment_id"] for e in found}


def server_runs(url: str, experiment_id: str) -> list[dict]:
    return api(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})["runs"]


# Names ------------------------------------------------------------------------------------------------------------


def test_without_a_root_the_names_are_those_of_every_older_store(settings):
    assert settings.experiment_root == "gepa-studio"
    assert experiment_name(settings, "pubmed") == "gepa-studio/pubmed"
    assert mailbox_experiment(settings) == mailbox_experiment() == "gepa-studio-jobs"
    store = RunStore(settings)
    run_id = store.start_run("baseline", "pubmed", run_name="b")
    box = mb.open_run(store.client, "job-1")  # the Ray backend's call as older code made it: no settings
    assert box == mb.open_run(store.client, "job-1", settings) == mb.find_run(store.client, "job-1", settings)
    names = {e.name for e in store.client.search_experiments()}
    assert {"gepa-studio/pubmed", "gepa-studio-jobs"} <= names
    assert [e.name for e in store.experiments()] == ["gepa-studio/pubmed"]
    assert list(store.list_runs()["run_id"]) == [run_id]


def test_with_a_root_runs_and_the_mailbox_go_under_it_and_the_lists_leave_the_mailbox_out(settings):
    rooted = replace(settings, experiment_root="team/gepa")
    store, old = RunStore(rooted), RunStore(settings)
    mine = store.start_run("baseline", "pubmed", run_name="b")
    before = old.start_run("baseline", "pubmed", run_name="made before the root")
    box = mb.open_run(store.client, "job-2", rooted)
    assert mb.find_run(store.client, "job-2") is None  # not in the default root's mailbox
    names = {e.name for e in store.client.search_experiments()}
    assert {"team/gepa/pubmed", "team/gepa/_jobs", "gepa-studio/pubmed"} <= names
    assert store.client.get_run(box).info.experiment_id == store.client.get_experiment_by_name(
        "team/gepa/_jobs").experiment_id
    # The SQL reads (SQLite) of Compare and History: the root's task runs only.
    assert [e.name for e in store.experiments()] == ["team/gepa/pubmed"]
    assert list(store.list_runs()["run_id"]) == [mine]
    assert [r.info.run_id for r in store.search()] == [mine]
    assert list(old.list_runs()["run_id"]) == [before]
    with pytest.raises(ConfigError, match="_jobs") as taken:
        store.start_run("baseline", "_jobs", run_name="would hide in the mailbox")
    assert taken.value.hint


@pytest.mark.parametrize(("root", "uri", "problem"), [
    ("gepa-studio/", "http://127.0.0.1:5000", "ends with /"),
    ("a//b", "http://127.0.0.1:5000", "has an empty, . or .. part"),
    ("/Shared/../x", "http://127.0.0.1:5000", "has an empty, . or .. part"),
    (" /Shared/x", "http://127.0.0.1:5000", "spaces"),
    ("team/it's", "http://127.0.0.1:5000", "quote"),
    ("gepa-studio", "databricks", "not a workspace folder"),
    ("/tmp/gepa-studio", "databricks://work", "not a workspace folder"),
    ("/Shared", "databricks", "not a workspace folder"),
])
def test_bad_roots_are_refused_with_what_to_do(settings, root, uri, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)) as bad:
        check_experiment_root(root, uri)
    assert ROOT_ENV in bad.value.hint and "/Shared/gepa-studio" in bad.value.hint
    where = replace(settings, tracking_uri=uri, experiment_root=root)
    with pytest.raises(ConfigError):
        experiment_name(where, "pubmed")
    with pytest.raises(ConfigError):
        mailbox_experiment(where)


def test_workspace_roots_are_taken_on_databricks_and_a_bad_root_fails_the_run_not_the_lists(settings, monkeypatch):
    for root in (WORKSPACE, "/Users/me@example.com/gepa-studio", "/Workspace/Shared/gepa"):
        assert check_experiment_root(root, "databricks") == root
    monkeypatch.setenv(ROOT_ENV, "team/")
    bad = load_settings()  # read, not checked: the dashboard opens and says what is wrong
    assert bad.experiment_root == "team/"
    store = RunStore(bad)
    assert store.experiments() == [] and store.list_runs().empty
    with pytest.raises(ConfigError, match="ends with /"):
        store.start_run("baseline", "pubmed", run_name="b")
    assert not [e for e in store.client.search_experiments() if e.name.startswith("team")]


def test_the_root_saved_on_home_is_used_and_the_environment_wins(settings, monkeypatch):
    assert save_experiment_root(settings.data_dir, " team/gepa/ ", settings.tracking_uri) == "team/gepa"
    assert saved_experiment_root(settings.data_dir) == "team/gepa" == load_settings().experiment_root
    monkeypatch.setenv(ROOT_ENV, WORKSPACE)
    assert load_settings().experiment_root == WORKSPACE
    monkeypatch.delenv(ROOT_ENV)
    with pytest.raises(ConfigError, match="not a workspace folder"):
        save_experiment_root(settings.data_dir, "gepa-team", "databricks")
    assert load_settings().experiment_root == "team/gepa"  # the refused one was not saved
    assert save_experiment_root(settings.data_dir, "", settings.tracking_uri) is None
    assert load_settings().experiment_root == "gepa-studio"


def test_a_ray_job_carries_the_root_and_the_unity_catalog_schema(settings):
    where = replace(settings, tracking_uri="http://mlflow:5000", ray_address="http://127.0.0.1:9",
                    experiment_root=WORKSPACE, uc_catalog="main", uc_schema="gepa")
    env = runtime_env(where)["env_vars"]
    assert env[ROOT_ENV] == WORKSPACE
    assert (env["GEPA_STUDIO_UC_CATALOG"], env["GEPA_STUDIO_UC_SCHEMA"]) == ("main", "gepa")
    # the default root travels too: a cluster's own GEPA_STUDIO_EXPERIMENT_ROOT must not move the dashboard's runs
    assert runtime_env(replace(where, experiment_root="gepa-studio"))["env_vars"][ROOT_ENV] == "gepa-studio"
    backend = RayBackend.for_settings(where)
    assert backend.experiment_root == WORKSPACE and mailbox_experiment(backend) == f"{WORKSPACE}/_jobs"


# On a tracking server -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_baseline_lands_under_the_root_on_a_tracking_server(stub, tmp_path, monkeypatch, server):
    monkeypatch.setenv("GEPA_STUDIO_DATA_DIR", str(tmp_path / "studio"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv(ROOT_ENV, WORKSPACE)
    csv = write_csv(tmp_path / "baseline-task.csv", 8)
    out = run_cli("baseline", "--task", str(csv), "--models", f"openai/stub-small@{stub.base_url}",
                  "--train-per-label", "2", "--test-per-label", "3", "-q")
    assert out.returncode == 0, out.stderr[-3000:]
    names = server_experiments(server)
    assert f"{WORKSPACE}/baseline-task" in names and "gepa-studio/baseline-task" not in names
    runs = server_runs(server, names[f"{WORKSPACE}/baseline-task"])
    assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED" and runs[0]["info"]["run_id"] in out.stdout
    store = RunStore(load_settings())  # the tracking server's search path of the run lists
    assert runs[0]["info"]["run_id"] in set(store.list_runs(task="baseline-task")["run_id"])


@pytest.mark.slow
def test_an_optimization_by_the_ray_workers_entry_lands_under_the_root_beside_its_mailbox(
        stub, tmp_path, monkeypatch, server):
    """The dashboard's side opens the job's mailbox (RayBackend, as ``start`` does); the worker's side
    (``core.jobs.remote.run``, the Ray job's entry point) runs the optimization in this process with exactly the
    variables the Ray job's runtime env carries (the cluster-wide limiter aside)."""
    from core.jobs import remote
    from core.tasks import TaskRef

    stub.responder = responder
    monkeypatch.setenv("GEPA_STUDIO_DATA_DIR", str(tmp_path / "studio"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.delenv(ROOT_ENV, raising=False)
    save_experiment_root(tmp_path / "studio", WORKSPACE, server)  # the dashboard's root, saved on Home
    settings = replace(load_settings().ensure(), ray_address="http://127.0.0.1:9")
    assert settings.experiment_root == WORKSPACE
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "opt-task.csv", 12)), name="opt-task")
    config = make_config(ref, stub.base_url, "fewshot", teacher=False)
    backend = RayBackend.for_settings(settings)
    box = backend.mailbox("ray-job-1", create=True)
    box.write_json("spec.json", {"job_id": "ray-job-1", "kind": "optimize", "config": config.to_dict(),
                                 "attempts": 1})

    for name, value in runtime_env(settings)["env_vars"].items():
        if name != "GEPA_STUDIO_LIMITER":  # the Ray actor needs a cluster; the per-process limiter does here
            monkeypatch.setenv(name, value)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        state = remote.run(box.run_id, server, tmp_path / "node")
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert state == "succeeded", box.tags().get(mb.ERROR)

    names = server_experiments(server)
    assert {f"{WORKSPACE}/opt-task", f"{WORKSPACE}/_jobs"} <= set(names)
    assert not [n for n in names if n.startswith("gepa-studio")]
    assert mb.client_for(server).get_run(box.run_id).info.experiment_id == names[f"{WORKSPACE}/_jobs"]
    runs = {r["info"]["run_id"]: r for r in server_runs(server, names[f"{WORKSPACE}/opt-task"])}
    optimization = box.tags()[mb.RUN_ID]
    assert optimization in runs and len(runs) == 3  # the optimization and its two test evaluations

    store = RunStore(settings)  # Compare and History read these: the task's runs, not the mailbox run
    listed = store.list_runs()
    assert set(runs) <= set(listed["run_id"]) and box.run_id not in set(listed["run_id"])
    assert {e.name for e in store.experiments()} >= {f"{WORKSPACE}/opt-task"}
    assert f"{WORKSPACE}/_jobs" not in {e.name for e in store.experiments()}
    assert set(listed[listed["task"] == "opt-task"]["kind"]) == {"optimization", "evaluation"}


# Databricks: the experiments' workspace folder ------------------------------------------------------------------


class FakeWorkspace:
    def __init__(self, fail: Exception | None = None) -> None:
        self.made: list[str] = []
        self.fail = fail
        self.workspace = self

    def mkdirs(self, path: str) -> None:
        if self.fail:
            raise self.fail
        self.made.append(path)


class FakeMlflow:
    """The three calls ensure_experiment makes of an MlflowClient."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def get_experiment_by_name(self, name):
        return None

    def create_experiment(self, name, artifact_location=None):
        self.created.append(name)
        return str(len(self.created))


def test_on_databricks_the_workspace_folder_is_made_before_the_experiment(settings, monkeypatch):
    fake, clients = FakeWorkspace(), []
    monkeypatch.setattr(experiments, "_MADE", set())
    monkeypatch.setattr(experiments, "workspace_client", lambda uri: clients.append(uri) or fake)
    where = replace(settings, tracking_uri="databricks", experiment_root="/Users/me@example.com/gepa-studio")
    mlflow = FakeMlflow()
    for task in ("pubmed", "pubmed-2"):
        ensure_experiment(mlflow, where, experiment_name(where, task))
    ensure_experiment(mlflow, where, mailbox_experiment(where))
    assert mlflow.created == ["/Users/me@example.com/gepa-studio/pubmed", "/Users/me@example.com/gepa-studio/pubmed-2",
                              "/Users/me@example.com/gepa-studio/_jobs"]
    assert fake.made == ["/Users/me@example.com/gepa-studio"]  # once per folder and process
    # Nothing of the kind on any other store.
    ensure_experiment(FakeMlflow(), replace(where, tracking_uri="http://127.0.0.1:5000"), "/Shared/other/t")
    assert fake.made == ["/Users/me@example.com/gepa-studio"] and clients == ["databricks"]


def test_a_workspace_folder_that_cannot_be_made_is_a_config_error_and_no_experiment(settings, monkeypatch):
    monkeypatch.setattr(experiments, "_MADE", set())
    monkeypatch.setattr(experiments, "workspace_client",
                        lambda uri: FakeWorkspace(PermissionError("PERMISSION_DENIED: no write on /Shared/x")))
    where = replace(settings, tracking_uri="databricks://work", experiment_root="/Shared/x")
    mlflow = FakeMlflow()
    with pytest.raises(ConfigError, match="folder /Shared/x .* could not be created: PERMISSION_DENIED") as refused:
        ensure_experiment(mlflow, where, experiment_name(where, "pubmed"))
    assert "/Shared/x" in refused.value.hint and ROOT_ENV in refused.value.hint
    assert mlflow.created == []


def test_the_sdk_client_is_asked_for_the_tracking_uris_profile(monkeypatch):
    import databricks.sdk

    made = []
    monkeypatch.setattr(databricks.sdk, "WorkspaceClient", lambda **kw: made.append(kw) or object())
    experiments.workspace_client("databricks://work-profile")
    experiments.workspace_client("databricks")
    assert made == [{"profile": "work-profile"}, {}]


# No other module names an experiment ------------------------------------------------------------------------------

SOURCES = ("core", "ui", "pages", "app.py")
OWNER = "core/tracking/experiments.py"
MAKERS = {"create_experiment", "set_experiment"}  # only the owner makes an experiment
LOOKUPS = {"get_experiment_by_name", "search_experiments", "set_experiment", "create_experiment"}


def docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def spelled(node: ast.AST) -> bool:
    """Does this argument spell a name in the code (a string, an f-string, a sum with a string in it)?"""
    return any(isinstance(n, (ast.JoinedStr,)) or (isinstance(n, ast.Constant) and isinstance(n.value, str))
               for n in ast.walk(node))


def naming_problems(source: str) -> list[str]:
    """Where ``source`` names or makes an experiment itself: a ``gepa-studio/`` or ``gepa-studio-jobs`` string
    (docstrings aside), a create/set call, or a look-up or search by a name spelled in place."""
    tree, docs, out = ast.parse(source), None, []
    docs = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs and (
                "gepa-studio/" in node.value or "gepa-studio-jobs" in node.value):
            out.append(f"line {node.lineno}: the string {node.value!r}")
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in MAKERS:
                out.append(f"line {node.lineno}: {name}()")
            elif name in LOOKUPS and (any(spelled(a) for a in node.args)
                                      or any(k.arg in ("name", "filter_string") for k in node.keywords)):
                out.append(f"line {node.lineno}: {name}() with a name of its own")
    return sorted(out, key=lambda found: int(found.split(":")[0].removeprefix("line ")))


def test_the_scan_finds_every_way_of_naming_an_experiment():
    found = naming_problems('"""About gepa-studio/<task>: a docstring is no name."""\n'
                            'a = "gepa-studio/" + task\nb = f"gepa-studio/{task}"\nc = "gepa-studio-jobs"\n'
                            'client.create_experiment(name)\nmlflow.set_experiment("x")\n'
                            'client.get_experiment_by_name(f"{root}/jobs")\n'
                            'client.search_experiments(filter_string="name LIKE \'x%\'")\n'
                            'client.get_experiment_by_name(experiment_name(settings, task))\n'
                            'client.search_experiments(max_results=1)\n')
    assert [f.split(":")[0] for f in found] == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"]


def test_no_module_but_the_experiments_module_names_or_makes_an_experiment():
    files = [p for pattern in SOURCES for p in ((ROOT / pattern).rglob("*.py") if (ROOT / pattern).is_dir()
                                                 else [ROOT / pattern])]
    assert len(files) > 100 and (ROOT / OWNER) in files
    problems = {str(p.relative_to(ROOT)): found for p in files
                if str(p.relative_to(ROOT)) != OWNER and (found := naming_problems(p.read_text(encoding="utf-8")))}
    assert not problems, f"name experiments through core.tracking.experiments: {json.dumps(problems, indent=1)}"
    owner = naming_problems((ROOT / OWNER).read_text(encoding="utf-8"))
    assert owner, "the scan no longer sees the experiments module make experiments"


# The Home page ------------------------------------------------------------------------------------------------------


def save_root_on_home(at, value: str):
    at.text_input(key="home_experiment_root").input(value)
    save = next(b for b in at.button if b.proto.form_id == "experiment_root")
    return save.click().run()


def test_the_home_page_saves_the_root_refuses_a_bad_one_and_says_when_the_environment_wins(settings, monkeypatch):
    at = open_page("pages/home.py")
    assert_clean(at)
    assert "Each task's runs are the MLflow experiment `gepa-studio/<task>`" in " ".join(texts(at, "markdown"))
    at = save_root_on_home(at, "/Shared/gepa-studio/")
    assert_clean(at)
    assert saved_experiment_root(settings.data_dir) == WORKSPACE == load_settings().experiment_root
    assert f"`{WORKSPACE}/<task>`" in " ".join(texts(at, "markdown"))
    at = save_root_on_home(at, "team//gepa")
    assert "has an empty, . or .. part" in " ".join(texts(at, "error"))
    assert saved_experiment_root(settings.data_dir) == WORKSPACE  # the bad one was not saved
    monkeypatch.setenv(ROOT_ENV, "/Shared/other")
    at = open_page("pages/home.py")
    assert f"`{ROOT_ENV}` is set" in " ".join(texts(at, "caption"))
    assert not [w for w in at.text_input if w.key == "home_experiment_root"]
