"""CLI commands for GEPA: ``optimize`` (foreground with a progress bar, or --background) and ``jobs``."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any, Callable

from core.settings import load_settings


def _budget_kwargs(budget: str) -> dict[str, Any]:
    if budget in ("light", "medium", "heavy"):
        return {"auto": budget}
    if budget.startswith("evals:"):
        return {"auto": None, "max_full_evals": int(budget.split(":", 1)[1])}
    try:
        return {"auto": None, "max_metric_calls": int(budget)}
    except ValueError:
        from core.errors import ConfigError

        raise ConfigError(f"Unknown budget {budget!r}.",
                          "Use light, medium, heavy, a number of metric calls, or evals:N for N full evaluations.") from None


def _follow(manager: Any, job_id: str, run: Callable[[], Any]) -> Any:
    """Run ``run()`` here while a thread draws the job's progress file as a tqdm bar."""
    from tqdm import tqdm

    done = threading.Event()

    def draw() -> None:
        bar = tqdm(total=1, desc="GEPA", unit="call", file=sys.stderr, dynamic_ncols=True)
        while not done.wait(0.5):
            p = manager.progress(job_id)
            if p.get("metric_calls_budget"):
                bar.total = p["metric_calls_budget"]
                bar.n = min(p.get("metric_calls_used", 0), bar.total)
                best = p.get("best_val_score")
                bar.set_postfix_str(f"best={best:.3f} " if best is not None else "" +
                                    f"cost=${p.get('total_cost_usd', 0):.4f} cand={p.get('candidates', 0)}")
            else:
                bar.set_description(p.get("phase", "starting"))
            bar.refresh()
        bar.close()

    t = threading.Thread(target=draw, daemon=True)
    t.start()
    try:
        return run()
    finally:
        done.set()
        t.join(2)


def _print_job(manager: Any, job_id: str) -> int:
    job = manager.get(job_id)
    p = manager.progress(job_id)
    print(f"job {job.id}: {job.state}" + (f" ({job.error})" if job.error else ""))
    if p:
        best = p.get("best_val_score")
        print(f"  metric calls {p.get('metric_calls_used', 0)}/{p.get('metric_calls_budget', '?')}, "
              f"candidates {p.get('candidates', 0)}, best validation score {best if best is None else round(best, 4)}, "
              f"cost ${p.get('total_cost_usd', 0):.4f} (student ${p.get('student_cost_usd', 0):.4f}, "
              f"reflection ${p.get('reflection_cost_usd', 0):.4f}), {p.get('elapsed_s', 0):.1f} s")
    if job.run_id:
        store_run = job.run_id
        print(f"  MLflow run {store_run}")
        try:
            from core.store import RunStore

            run = RunStore(manager.settings).get_run(store_run)
            m = run.data.metrics
            if "optimized_test_accuracy" in m:
                print(f"  test accuracy: original {m['original_test_accuracy']:.1%} -> optimized {m['optimized_test_accuracy']:.1%}")
        except Exception:  # noqa: BLE001 - the summary is best effort
            pass
    return 0 if job.state in ("succeeded", "cancelled", "running", "queued") else 1


def cmd_optimize(args: argparse.Namespace) -> int:
    from core.cli import _resolve_models, _task_ref
    from core.jobs import JobManager, execute
    from core.models import ModelCatalog
    from core.optimize import OptimizeConfig
    from core.tasks import SampleSpec

    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    student = _resolve_models([args.student], catalog, args.api_base)[0]
    reflection = _resolve_models([args.reflection], catalog, args.api_base)[0] if args.reflection else None
    config = OptimizeConfig(
        task_ref=_task_ref(args),
        sample=SampleSpec(args.train_per_label, args.val_per_label, args.test_per_label, args.seed),
        student=student, reflection=reflection, module=args.module, max_cost_usd=args.max_cost,
        reflection_minibatch_size=args.minibatch, use_merge=not args.no_merge, threads=args.threads,
        seed=args.gepa_seed, feedback=args.feedback, cache=not args.no_cache, **_budget_kwargs(args.budget),
    )
    manager = JobManager(settings)
    job_id = manager.submit_optimization(config, start=args.background)
    if args.background:
        print(f"queued job {job_id}; follow it with: python -m core jobs show {job_id}")
        return 0
    print(f"job {job_id}", file=sys.stderr)
    _follow(manager, job_id, lambda: execute(manager, job_id))
    return _print_job(manager, job_id)


def cmd_jobs(args: argparse.Namespace) -> int:
    from core.jobs import JobManager, execute

    manager = JobManager(load_settings())
    if args.action == "list":
        frame = manager.frame()
        if frame.empty:
            print("no jobs")
            return 0
        cols = ["id", "kind", "state", "metric_calls", "best_val_score", "cost_usd", "title"]
        print(frame[cols].to_string(index=False, max_colwidth=60))
        return 0
    if not args.job_id:
        print("error: give a job id", file=sys.stderr)
        return 2
    if args.action == "show":
        return _print_job(manager, args.job_id)
    if args.action == "cancel":
        job = manager.cancel(args.job_id)
        print(f"job {job.id}: {job.state}" + (" (stopping after the current iteration)" if job.state == "running" else ""))
        return 0
    if args.action == "resume":
        manager.resume(args.job_id, start=args.background)
        if args.background:
            print(f"job {args.job_id} queued again")
            return 0
        _follow(manager, args.job_id, lambda: execute(manager, args.job_id))
        return _print_job(manager, args.job_id)
    return 2


def add_parsers(sub: Any, add_task_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("optimize", help="run GEPA on a student model with a reflection model")
    add_task_args(p)
    p.add_argument("--student", required=True, help="catalog name or provider/model[@base_url]")
    p.add_argument("--reflection", help="catalog name or provider/model[@base_url] (a strong model)")
    p.add_argument("--budget", default="light", help="light | medium | heavy | N metric calls | evals:N")
    p.add_argument("--max-cost", type=float, help="stop when student + reflection spending reaches this many USD")
    p.add_argument("--minibatch", type=int, default=3, help="reflection minibatch size")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--gepa-seed", type=int, default=0)
    p.add_argument("--module", choices=["predict", "cot"], default="predict")
    p.add_argument("--feedback", choices=["rule", "judge"], default="rule")
    p.add_argument("--no-merge", action="store_true")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--background", action="store_true", help="queue as a background job and return")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("jobs", help="list, show, cancel or resume jobs")
    p.add_argument("action", nargs="?", choices=["list", "show", "cancel", "resume"], default="list")
    p.add_argument("job_id", nargs="?")
    p.add_argument("--background", action="store_true", help="resume as a background job")
    p.set_defaults(func=cmd_jobs)
