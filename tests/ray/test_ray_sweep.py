"""A sweep through the Ray backend: four small GEPA optimizations run as Ray jobs at once on a real head, against the
stub server; the sweep settles from its children, every result is on the tracking server, tagged with it, and the
four jobs together hold the student's requests-per-minute limit (the cluster's limiter, a named Ray actor)."""

import threading
import time

import pytest

from core.jobs import JobManager
from core.jobs import mailbox as mb
from core.jobs.sweeps import SweepGrid, submit_sweep
from core.lm.limits import achieved_rate
from core.lm.models import ModelCatalog, openai_compatible
from core.tasks import TaskRef
from tests.core.test_optimize import PRICED, config
from tests.scenario import write_csv
from tests.stub_server import gepa_responder

pytestmark = pytest.mark.slow


RPM = 480  # the student's limit: 8 calls a second for the four jobs together (a loaded CI machine keeps up)


def test_a_sweep_of_four_gepa_jobs_on_ray(ray_settings, tracking_server, tmp_path, stub):
    student_times: list[float] = []
    lock = threading.Lock()

    def responder(model, messages, body):
        if model == "stub-small":
            with lock:
                student_times.append(time.time())
        return gepa_responder(model, messages, body)

    stub.responder = responder
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    student = openai_compatible("stub-small", "stub-small", stub.base_url, rpm=RPM, **PRICED)
    teacher = openai_compatible("stub-large", "stub-large", stub.base_url, **PRICED)
    catalog = ModelCatalog(path=tmp_path / "models.json", models={m.name: m for m in (student, teacher)})
    manager = JobManager(ray_settings)
    grid = SweepGrid(["stub-small"], ["gepa"], [0, 1, 2, 3], ["calls:30"])
    sweep_id = submit_sweep(manager, config(ref, student, teacher, cache=False), grid, catalog)
    sweep = manager.wait(sweep_id, timeout=240)
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
    assert {r.data.params.get("seed") for r in optimizations} == {"0", "1", "2", "3"}
    assert {r["body"]["model"] for r in stub.chat_requests()} == {"stub-small", "stub-large"}

    # One limit across the four jobs: the student's calls, as the stub saw them, over the middle half of the sweep's
    # calls (its ends are one job starting or finishing alone), come at the set rate, within 10 %.
    times = sorted(student_times)
    first, last = times[0], times[-1]
    rate = achieved_rate(times, first + (last - first) / 4, last - (last - first) / 4)
    assert 0.9 * RPM <= rate <= 1.1 * RPM, (rate, len(times), last - first)
