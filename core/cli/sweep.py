"""``python -m core sweep``: a grid of optimizations (students × optimizers × seeds × budgets) queued as one sweep job;
``python -m core jobs show SWEEP_ID`` prints its aggregate (:func:`sweep_text`)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

from core.cli.common import add_gepa_args, add_task_args, cli_user, resolve_models, sample_spec, task_ref
from core.cli.exits import EXIT_HELP, exit_code, job_outcome
from core.config.errors import ConfigError
from core.config.settings import load_settings
from core.jobs import JobManager
from core.jobs.sweeps import BUDGET_HELP, SweepGrid, budget_fields, cell_label, plan_sweep, submit_sweep
from core.lm.models import ModelCatalog
from core.optimize import OPTIMIZERS, OptimizeConfig


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _usd(v: float | None) -> str:
    return "unknown price" if v is None else f"${v:,.4f}"


def plan_text(planned: list[tuple[dict[str, Any], Any]], max_jobs: int) -> str:
    """The grid's arithmetic: each cell's metric calls and cost range, then the totals and how many run at once."""
    lines, calls, refl, low, high, unknown = [], 0, 0, 0.0, 0.0, False
    for cell, plan in planned:
        est = plan.estimate
        calls, refl = calls + est.metric_calls + est.test_calls, refl + est.reflection_calls_high
        if est.cost_low_usd is None or est.cost_high_usd is None:
            unknown = True
        else:
            test = est.test_cost_usd or 0.0
            low, high = low + est.cost_low_usd + test, high + est.cost_high_usd + test
        lines.append(f"  {cell_label(cell)}: {est.metric_calls:,} metric calls + {est.test_calls:,} test calls, "
                     f"{_usd(est.cost_low_usd)} to {_usd(est.cost_high_usd)}")
    cost = "unknown (a model has no price)" if unknown else f"{_usd(low)} to {_usd(high)}"
    lines.append(f"{len(planned)} cells: {calls:,} student calls (search and test) and up to {refl:,} reflection-model "
                 f"calls; estimated cost {cost}; runs {min(max_jobs, len(planned))} at once")
    return "\n".join(lines)


def sweep_text(progress: dict[str, Any]) -> str:
    """A sweep's progress as the CLI prints it: cells done, by state, calls, cost, the best cell, then each cell."""
    states = ", ".join(f"{n} {s}" for s, n in sorted(progress.get("by_state", {}).items()))
    lines = [f"  cells {progress.get('cells_done', 0)}/{progress.get('cells_total', 0)} done ({states}); "
             f"metric calls {progress.get('metric_calls_used', 0):,}; spend ${progress.get('total_cost_usd', 0.0):.4f}"]
    best = progress.get("best")
    if best:
        lines.append(f"  best so far: {cell_label(best)} (validation score {best['best_val_score']:.3f})")
    for c in progress.get("cells", []):
        score = "" if c.get("best_val_score") is None else f", best {c['best_val_score']:.3f}"
        lines.append(f"    {c['job_id']}  {c['state']:<11} {cell_label(c)}: {c.get('metric_calls') or 0} calls{score}"
                     + (f" ({' '.join(c['error'].split())[:80]})" if c.get("error") else ""))
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    students = resolve_models(_split(args.students), catalog, args.api_base)
    for spec in students:  # inline provider/model names join this run's catalog (not saved)
        catalog.models.setdefault(spec.name, spec)
    reflection = resolve_models([args.reflection], catalog, args.api_base)[0] if args.reflection else None
    optimizers, budgets = _split(args.optimizers), _split(args.budgets)
    if args.seeds < 1:
        raise ConfigError(f"Cannot run {args.seeds} seeds.", "Give --seeds 1 or more.")
    grid = SweepGrid([s.name for s in students], optimizers, [args.gepa_seed + i for i in range(args.seeds)], budgets)
    try:
        base = OptimizeConfig(
            task_ref=task_ref(args), sample=sample_spec(args), student=students[0], reflection=reflection,
            module=args.module, max_cost_usd=args.max_cost, reflection_minibatch_size=args.minibatch,
        component_selector=args.component_selector,
            use_merge=not args.no_merge, threads=args.threads, seed=args.gepa_seed, feedback=args.feedback,
            cache=not args.no_cache, optimizer=optimizers[0] if optimizers[0] in OPTIMIZERS else "gepa",
            instruction=args.instruction or "", **budget_fields(budgets[0]))
    except ConfigError as exc:
        raise ConfigError(f"Sweep cell {cell_label(grid.cells()[0])}: {exc.message}", exc.hint) from None
    manager = JobManager(settings)
    planned = plan_sweep(manager, base, grid, catalog)
    print(f"{grid.shape()} = {grid.size} cells on {planned[0][1].task.name}", file=sys.stderr)
    print(plan_text(planned, getattr(manager.backend, "max_jobs", None) or settings.max_jobs), file=sys.stderr)
    sweep_id = submit_sweep(manager, replace(base, student=students[0]), grid, catalog, started_by=cli_user(),
                            planned=planned)
    print(f"sweep {sweep_id}")
    for child in manager.get(sweep_id).config["children"]:
        print(f"  {child}  {cell_label(manager.get(sweep_id).config['cells'][child])}")
    if not args.wait:
        print(f"follow it with: python -m core jobs show {sweep_id}", file=sys.stderr)
        return exit_code("ok")
    try:
        while (job := manager.get(sweep_id)).state in ("queued", "running"):
            time.sleep(2.0)
    except KeyboardInterrupt:  # only the waiting stops: the cells run as background jobs
        print(f"interrupted (Ctrl-C) while waiting; sweep {sweep_id} goes on in the background: follow it with "
              f"python -m core jobs show {sweep_id}, or stop it with python -m core jobs cancel {sweep_id}",
              file=sys.stderr)
        return exit_code("interrupted")
    print(f"sweep {job.id}: {job.state}" + (f" ({job.error})" if job.error else ""))
    print(sweep_text(manager.progress(sweep_id)))
    return exit_code(job_outcome(job.state, job.error))


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("sweep", help="a grid of optimizations (students × optimizers × seeds × budgets) as one job",
                       epilog=EXIT_HELP + " With --wait, the sweep's outcome; without, 0 once it is queued.")
    add_task_args(p)
    p.add_argument("--students", required=True, help="comma-separated catalog names (or provider/model[@base_url])")
    p.add_argument("--optimizers", default="gepa", help=f"comma-separated: {', '.join(OPTIMIZERS)}")
    p.add_argument("--budgets", default="light", help="comma-separated. " + BUDGET_HELP)
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="N seeds per cell: --gepa-seed, +1, ...")
    p.add_argument("--gepa-seed", type=int, default=0, help="the first seed")
    p.add_argument("--reflection", help="catalog name or provider/model[@base_url]: the reflection model / teacher")
    p.add_argument("--instruction", help="your own instruction (for the optimizer own)")
    p.add_argument("--max-cost", type=float, help="each cell stops when its spending reaches this many USD")
    add_gepa_args(p)
    p.add_argument("--wait", action="store_true", help="wait for the sweep to end and print its cells")
    p.set_defaults(func=cmd_sweep)
