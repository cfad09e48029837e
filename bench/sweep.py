"""A sweep on Ray against the same jobs one after another, and the cluster-wide rate limit.

Eight small GEPA optimizations (1 student x GEPA x 4 seeds x budgets calls:40 / calls:60, 20 train / 15 validation /
20 test examples, 3 threads) against a stub server with 50 ms per call (``--latency``):

1. as one sweep on local processes with one job at a time (``JobManager``, local backend, ``max_jobs=1``): the
   sequential baseline;
2. as one sweep on the Ray head (``JobManager`` with a Ray address: every cell a Ray job, at most 16 at once);
3. the same sweep on Ray with the student limited to ``--rpm`` requests per minute (``ModelSpec.rpm``): every job's
   student calls go through the one limiter of the cluster (a named Ray actor), and the stub's own request
   timestamps give the rate it saw.

All three log to the same MLflow tracking server, so they differ only in where and how many jobs run at once.
Prints both wall times and their ratio (with how busy the machine's CPUs were meanwhile: at 50 ms a call these jobs
compute more than they wait, so on 2 cores the CPUs, not the backend, cap the speed-up; ``--latency 0.5`` is closer
to a real provider), the student's request rate with and without the limit and its ratio to the limit (target 0.9
to 1.0); last line: the sweep's speed-up over sequential.

Needs a Ray head and a tracking server, named as for the tests (``.ci/run`` starts both):
``GEPA_STUDIO_TEST_RAY_ADDRESS=http://127.0.0.1:8265 GEPA_STUDIO_TEST_TRACKING_URI=http://127.0.0.1:5055``.
Run: .venv/bin/python bench/sweep.py [--rpm 600] [--latency 0.05]

``--arithmetic`` prints the arithmetic of a large sweep instead (no cluster needed; docs/distributed.md uses it):
.venv/bin/python bench/sweep.py --arithmetic --students 3 --seeds 4 --metric-calls 500,1000 --student-rpm 600
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, fields, replace
from pathlib import Path

import _common  # noqa: F401  (paths and environment)

THREADS, SEEDS, BUDGETS = 3, [0, 1, 2, 3], ["calls:40", "calls:60"]
RAY_ENV, TRACKING_ENV = "GEPA_STUDIO_TEST_RAY_ADDRESS", "GEPA_STUDIO_TEST_TRACKING_URI"


# The arithmetic of a large sweep ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """A large sweep to count (the ``--arithmetic`` options): its shape, the split sizes, tokens a call, each model's
    limits (None: none), a call's latency, threads per job and jobs at once."""

    students: int = 3
    optimizers: int = 1
    seeds: int = 3
    metric_calls: tuple[int, ...] = (500,)  # one budget per entry
    val: int = 30
    test: int = 100
    minibatch: int = 3
    student_tokens: int = 600
    reflection_tokens: int = 2500
    student_rpm: int | None = None
    student_tpm: int | None = None
    reflection_rpm: int | None = None
    reflection_tpm: int | None = None
    seconds_per_call: float = 1.0
    threads: int = 8
    at_once: int = 16


def arithmetic(sweep: Sweep) -> dict[str, float]:
    """What a sweep costs in calls, tokens and minutes; one budget per entry of ``sweep.metric_calls``, every cell
    counted as a GEPA run with that many metric calls.

    Per job: student calls = metric calls + 2 x test (the original and the optimized program on the test split);
    reflection calls <= ceil((metric calls - val) / (2 x minibatch)) (one per GEPA iteration, each spending a
    minibatch on the parent and one on the child: core.optimize.estimate's upper bound). Minutes are lower bounds:
    each student model's limits (its share of the calls / rpm, of the tokens / tpm; the limiter keeps one bucket
    per model and key), the one reflection model's limits, and the work itself: a job takes at least
    (student calls / threads + reflection calls) x latency, and ``at_once`` jobs run at a time."""
    per_budget = sweep.students * sweep.optimizers * sweep.seeds
    jobs = per_budget * len(sweep.metric_calls)
    student = [m + 2 * sweep.test for m in sweep.metric_calls]
    reflection = [max(1, math.ceil((m - sweep.val) / (2 * sweep.minibatch))) for m in sweep.metric_calls]
    total_student, total_reflection = per_budget * sum(student), per_budget * sum(reflection)
    job_s = [(s / sweep.threads + r) * sweep.seconds_per_call for s, r in zip(student, reflection, strict=True)]
    out = {"jobs": jobs, "student_calls": total_student, "reflection_calls": total_reflection,
           "lm_calls": total_student + total_reflection, "student_tokens": total_student * sweep.student_tokens,
           "reflection_tokens": total_reflection * sweep.reflection_tokens,
           "minutes_by_work": max(max(job_s), per_budget * sum(job_s) / sweep.at_once) / 60}
    student_share = total_student / sweep.students  # each student model has its own limits
    for name, limit, amount in (("student_rpm", sweep.student_rpm, student_share),
                                ("student_tpm", sweep.student_tpm, student_share * sweep.student_tokens),
                                ("reflection_rpm", sweep.reflection_rpm, total_reflection),
                                ("reflection_tpm", sweep.reflection_tpm, total_reflection * sweep.reflection_tokens)):
        if limit:
            out[f"minutes_by_{name}"] = amount / limit
    out["minutes_at_least"] = max(v for k, v in out.items() if k.startswith("minutes_by_"))
    return out


def print_arithmetic(a: dict[str, float], args: argparse.Namespace) -> None:
    budgets = [int(m) for m in args.metric_calls.split(",")]
    print(f"jobs = {args.students} students x {args.optimizers} optimizers x {args.seeds} seeds x {len(budgets)} "
          f"budgets = {a['jobs']:,}")
    for m in budgets:
        r = max(1, math.ceil((m - args.val) / (2 * args.minibatch)))
        print(f"a job of {m} metric calls: {m} + 2 x {args.test} test = {m + 2 * args.test:,} student calls, "
              f"<= ceil(({m} - {args.val}) / (2 x {args.minibatch})) = {r:,} reflection calls")
    print(f"LM calls in all = {a['lm_calls']:,} ({a['student_calls']:,} student, {a['reflection_calls']:,} reflection)")
    print(f"tokens in all = {a['student_tokens']:,} student ({args.student_tokens} a call) + "
          f"{a['reflection_tokens']:,} reflection ({args.reflection_tokens} a call)")
    each = f" / {args.students} student models" if args.students > 1 else ""
    for key, why in (("minutes_by_student_rpm", f"student calls{each} / {args.student_rpm} rpm"),
                     ("minutes_by_student_tpm", f"student tokens{each} / {args.student_tpm:,} tpm"
                      if args.student_tpm else ""),
                     ("minutes_by_reflection_rpm", f"reflection calls / {args.reflection_rpm} rpm"),
                     ("minutes_by_reflection_tpm", f"reflection tokens / {args.reflection_tpm:,} tpm"
                      if args.reflection_tpm else ""),
                     ("minutes_by_work", f"the work: each job's (student calls / {args.threads} threads + "
                                         f"reflection calls) x {args.seconds_per_call:g} s, summed over the jobs, / "
                                         f"{args.at_once} at once")):
        if key in a:
            print(f"minutes >= {a[key]:,.1f}  ({why})")
    print(f"the sweep takes at least {a['minutes_at_least']:,.0f} minutes ({a['minutes_at_least'] / 60:,.1f} hours)")


# The measured bench ----------------------------------------------------------------------------------------


def services() -> tuple[str, str]:
    """The Ray head and tracking server the tests use; exits with what to do when they are missing."""
    missing = []
    for var, probe in ((RAY_ENV, "/api/version"), (TRACKING_ENV, "/health")):
        value = os.environ.get(var)
        if not value:
            missing.append(f"{var} is not set")
            continue
        try:
            urllib.request.urlopen(value.rstrip("/") + probe, timeout=5).read()
        except OSError as exc:
            missing.append(f"{var}={value} does not answer: {exc}")
    if missing:
        sys.exit("bench/sweep.py needs a Ray head and an MLflow tracking server: " + "; ".join(missing) + ".\n"
                 "Start them as .ci/run does (ray start --head ...; mlflow server ...), then run e.g.\n"
                 f"  {RAY_ENV}=http://127.0.0.1:8265 {TRACKING_ENV}=http://127.0.0.1:5055 "
                 ".venv/bin/python bench/sweep.py")
    return os.environ[RAY_ENV], os.environ[TRACKING_ENV]


def cpu_jiffies() -> tuple[int, int]:
    """The whole machine's (busy, total) CPU time from /proc/stat (0, 0 where there is none)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return sum(fields) - fields[3] - fields[4], sum(fields)  # all but idle and iowait


class Arrivals:
    """The stub's responder, wrapped: the time and model of every chat call it answers."""

    def __init__(self, stub) -> None:
        self.inner, self.calls, self.lock = stub.responder, [], threading.Lock()
        stub.responder = self

    def __call__(self, model, messages, body):
        with self.lock:
            self.calls.append((time.time(), model))
        return self.inner(model, messages, body)

    def student(self, since: float) -> list[float]:
        with self.lock:
            return [t for t, m in self.calls if m == "stub-small" and t >= since]


def setup(tmp: Path, url: str, rpm: int | None):
    from core.lm.models import ModelCatalog, openai_compatible
    from core.optimize import OptimizeConfig
    from core.tasks import SampleSpec, TaskRef
    from tests.scenario import write_csv

    ref = TaskRef(kind="file", source=str(write_csv(tmp / "scenario.csv", 20)), name="bench-sweep")
    student = openai_compatible("stub-small", "stub-small", url, input_price_per_m=0.07, output_price_per_m=0.3)
    if rpm:
        student = replace(student, rpm=rpm)
    reflection = openai_compatible("stub-large", "stub-large", url, input_price_per_m=3, output_price_per_m=15)
    base = OptimizeConfig(task_ref=ref, sample=SampleSpec(4, 3, 4, seed=1), auto=None, max_metric_calls=40,
                          threads=THREADS, student=student, reflection=reflection, cache=False, use_merge=False,
                          reflection_minibatch_size=3)
    return base, ModelCatalog(path=tmp / "models.json", models={student.name: student, reflection.name: reflection})


def run_sweep(name: str, settings, url: str, rpm: int | None = None) -> float:
    """Submit the grid as one sweep and wait for it; its wall seconds. Exits on a failed cell: a failed sweep has
    no timing."""
    from core.jobs import JobManager
    from core.jobs.sweeps import SweepGrid, submit_sweep, sweep_progress

    base, catalog = setup(settings.data_dir, url, rpm)
    manager = JobManager(settings)
    grid = SweepGrid(students=["stub-small"], optimizers=["gepa"], seeds=SEEDS, budgets=BUDGETS)
    start, cpu = time.perf_counter(), cpu_jiffies()
    sweep_id = submit_sweep(manager, base, grid, catalog, title=f"bench/sweep.py: {name}")
    job = manager.wait(sweep_id, timeout=900, poll=0.5)
    wall = time.perf_counter() - start
    busy, total = (after - before for after, before in zip(cpu_jiffies(), cpu, strict=True))
    cores = f"; the machine's {os.cpu_count()} CPUs {busy / total:.0%} busy (all its processes)" if total else ""
    progress = sweep_progress(manager, sweep_id)
    if job.state != "succeeded":
        for cell in progress["cells"]:
            if cell["state"] != "succeeded":
                print(f"  {cell['job_id']}: {cell['state']}: {cell['error']}\n{manager.log_tail(cell['job_id'], 20)}")
        sys.exit(f"{name}: the sweep ended {job.state} ({job.error}); no timing from a failed sweep.")
    from core.tracking.store import RunStore

    store = RunStore(settings)
    accuracies = [store.get_run(c["run_id"]).data.metrics.get("optimized_test_accuracy") for c in progress["cells"]]
    measured = [a for a in accuracies if a is not None]
    print(f"{name}: {progress['cells_done']}/{progress['cells_total']} cells succeeded in {wall:.1f} s; "
          f"{progress['metric_calls_used']} metric calls; {len(measured)} runs on the tracking server with an "
          f"optimized test accuracy (mean {sum(measured) / max(len(measured), 1):.2f}){cores}")
    if len(measured) != progress["cells_total"]:
        sys.exit(f"{name}: only {len(measured)} of {progress['cells_total']} runs have their test accuracy.")
    return wall


def bench(rpm: int, latency: float) -> None:
    from core.config.settings import Settings
    from core.jobs.ray_backend import require_ray
    from core.lm.limits import achieved_rate
    from tests.stub_server import StubLLMServer, gepa_responder

    ray_address, tracking = services()
    require_ray()  # imports Ray's job client, which logs "Package ... already exists, skipping upload" at INFO for
    logging.getLogger("ray.dashboard.modules.dashboard_sdk").setLevel(logging.WARNING)  # every submission: quiet
    with StubLLMServer(responder=gepa_responder, latency_s=latency) as stub, tempfile.TemporaryDirectory() as tmp:
        arrivals = Arrivals(stub)

        def settings(name: str, **kw) -> Settings:
            data = Path(tmp) / name
            return Settings(data_dir=data, tracking_uri=tracking, artifact_root=data / "mlartifacts", **kw).ensure()

        cells = len(SEEDS) * len(BUDGETS)
        print(f"{cells} GEPA jobs (budgets {', '.join(BUDGETS)} x {len(SEEDS)} seeds, {THREADS} threads), stub server "
              f"{latency * 1000:.0f} ms per call; Ray head {ray_address}, tracking server {tracking}")
        before = os.environ.get("GEPA_STUDIO_MAX_JOBS")
        os.environ["GEPA_STUDIO_MAX_JOBS"] = "1"  # the workers' own schedule() hands the slot on: one at a time
        try:
            sequential = run_sweep("sequential, local processes (max_jobs=1)", settings("local", max_jobs=1),
                                   stub.base_url)
        finally:
            os.environ.pop("GEPA_STUDIO_MAX_JOBS")
            if before is not None:
                os.environ["GEPA_STUDIO_MAX_JOBS"] = before
        since = time.time()
        on_ray = run_sweep("one sweep on the Ray head", settings("ray", ray_address=ray_address), stub.base_url)
        free = achieved_rate(arrivals.student(since))
        since = time.time()
        run_sweep(f"one sweep on the Ray head, student limited to {rpm} rpm",
                  settings("ray-limited", ray_address=ray_address), stub.base_url, rpm=rpm)
        limited = arrivals.student(since)
        rate = achieved_rate(limited)
        print(f"wall time sequential: {sequential:.1f} s; as one Ray sweep: {on_ray:.1f} s; "
              f"ratio Ray / sequential: {on_ray / sequential:.2f}")
        print(f"student requests per minute without a limit: {free:.0f}; with the limit at {rpm}: {rate:.1f} over "
              f"{len(limited)} calls in {limited[-1] - limited[0]:.1f} s (the stub's timestamps)")
        print(f"achieved rate / limit: {rate / rpm:.3f} (target 0.9 to 1.0)")
        print(f"sweep speed-up over sequential: x{sequential / on_ray:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpm", type=int, default=600, help="the student's limit in the third sweep (requests/min)")
    parser.add_argument("--latency", type=float, default=0.05, help="the stub's seconds per call (0.05)")
    parser.add_argument("--arithmetic", action="store_true", help="print a large sweep's arithmetic and stop")
    for name, default in (("students", 3), ("optimizers", 1), ("seeds", 3), ("val", 30), ("test", 100),
                          ("minibatch", 3), ("student-tokens", 600), ("reflection-tokens", 2500), ("student-rpm", None),
                          ("student-tpm", None), ("reflection-rpm", None), ("reflection-tpm", None), ("threads", 8),
                          ("at-once", 16)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--metric-calls", default="500", help="metric calls per job, one per budget: 500,1000")
    parser.add_argument("--seconds-per-call", type=float, default=1.0)
    args = parser.parse_args()
    if not args.arithmetic:
        bench(args.rpm, args.latency)
        return
    sweep = Sweep(**{f.name: getattr(args, f.name) for f in fields(Sweep) if f.name != "metric_calls"},
                  metric_calls=tuple(int(m) for m in args.metric_calls.split(",")))
    print_arithmetic(arithmetic(sweep), args)


if __name__ == "__main__":
    main()
