"""A sweep through the Ray backend: four small GEPA optimizations run as Ray jobs at once on a real head, against the
stub server; the sweep settles from its children, and every result is on the tracking server, tagged with it."""

import pytest

from core.jobs import JobManager
from core.jobs import mailbox as mb
from core.jobs.sweeps import SweepGrid, submit_sweep
from core.models import ModelCatalog, openai_compatible
from core.tasks import TaskRef
from tests.core.test_optimize import PRICED, config
from tests.scenario import write_csv
from tests.stub_server import gepa_responder

pytestmark = pytest.mark.slow


def test_a_sweep_of_four_gepa_jobs_on_ray(ray_settings, tracking_server, tmp_path, stub):
    stub.responder = gepa_responder
    stub.models = set(stub.models) | {"stub-small-2"}  # a second student the stub answers for
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    students = [openai_compatible(n, n, stub.base_url, **PRICED) for n in ("stub-small", "stub-small-2")]
    teacher = openai_compatible("stub-large", "stub-large", stub.base_url, **PRICED)
    catalog = ModelCatalog(path=tmp_path / "models.json", models={m.name: m for m in (*students, teacher)})
    manager = JobManager(ray_settings)
    grid = SweepGrid(["stub-small", "stub-small-2"], ["gepa"], [0, 1], ["calls:30"])
    sweep_id = submit_sweep(manager, config(ref, students[0], teacher, cache=False), grid, catalog)
    sweep = manager.wait(sweep_id, timeout=150)
    children = [manager.get(j) for j in sweep.config["children"]]
    assert sweep.state == "succeeded", (sweep.error, [(c.state, c.error) for c in children])
    assert [c.state for c in children] == ["succeeded"] * 4
    progress = manager.progress(sweep_id)
    assert (progress["cells_done"], progress["cells_total"]) == (4, 4) and progress["metric_calls_used"] >= 4 * 30

    client = mb.client_for(tracking_server)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.`studio.sweep` = '{sweep_id}'", max_results=100)
    optimizations = [r for r in runs if "optimized_test_accuracy" in r.data.metrics]
    assert {r.info.run_id for r in optimizations} == {c.run_id for c in children}
    assert all(r.info.status == "FINISHED" and "original_test_accuracy" in r.data.metrics for r in optimizations)
    assert {r.data.tags["studio.model"] for r in optimizations} == {"stub-small", "stub-small-2"}
    assert {r["body"]["model"] for r in stub.chat_requests()} == {"stub-small", "stub-small-2", "stub-large"}
