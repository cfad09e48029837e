"""``python -m core optimize``: plan an optimization job (GEPA, MIPROv2, few-shot or your own prompt), print the plan,
then run it in the foreground or queue it; ``python -m core finish RUN_ID``: the test evaluations of a stopped (capped,
cancelled) optimization."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli.common import add_gepa_args, add_task_args, cli_user, resolve_models, sample_spec, task_ref
from core.cli.exits import EXIT_CODES, EXIT_HELP, Outcome, exit_code, worst
from core.cli.jobs import run_here
from core.config.errors import ConfigError, StudioError
from core.config.settings import load_settings
from core.jobs import MAX_SEEDS, JobManager, repeat_seeds, submit_repeats
from core.lm.models import ModelCatalog
from core.optimize import (
    BUDGETS,
    OPTIMIZERS,
    OptimizeConfig,
    Plan,
    check_finishable,
    plan_optimization,
)


def budget_kwargs(budget: str) -> dict[str, Any]:
    if budget in BUDGETS:
        return {"auto": budget}
    try:
        if budget.startswith("evals:"):
            return {"auto": None, "max_full_evals": int(budget.split(":", 1)[1])}
        return {"auto": None, "max_metric_calls": int(budget)}
    except ValueError:
        raise ConfigError(f"Unknown budget {budget!r}.", "Use light, medium, heavy, a number of metric calls, or "
                          "evals:N for N full evaluations.") from None


def _usd(v: float | None) -> str:
    return "unknown price" if v is None else f"${v:.4f}"


def describe_plan(plan: Plan) -> str:
    """The plan as the CLI prints it before running: splits, metric calls, reflection calls, cost range."""
    sizes, est = plan.splits.sizes(), plan.estimate
    role = OPTIMIZERS[plan.config.optimizer].reflection_role  # "": it calls no second model
    second = f", {est.reflection_calls_low}-{est.reflection_calls_high} {role} calls" if role else ""
    return (f"{plan.title}\n  {sizes['train']} train / {sizes['val']} validation / {sizes['test']} test examples; "
            f"{est.metric_calls:,} metric calls{second}; "
            f"estimated cost {_usd(est.cost_low_usd)} to {_usd(est.cost_high_usd)} "
            f"(then {est.test_calls:,} test calls, {_usd(est.test_cost_usd)})")


def cmd_optimize(args: argparse.Namespace) -> int:
    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    student = resolve_models([args.student], catalog, args.api_base)[0]
    reflection = resolve_models([args.reflection], catalog, args.api_base)[0] if args.reflection else None
    if args.judge:
        raise ConfigError("An optimization's judge is its reflection model.", "Drop --judge; pick it as --reflection.")
    config = OptimizeConfig(
        task_ref=task_ref(args), sample=sample_spec(args), student=student, reflection=reflection, module=args.module,
        max_cost_usd=args.max_cost, reflection_minibatch_size=args.minibatch,
        component_selector=args.component_selector, use_merge=not args.no_merge,
        threads=args.threads, seed=args.gepa_seed, feedback=args.feedback, cache=not args.no_cache,
        optimizer=args.optimizer, instruction=args.instruction or "", **budget_kwargs(args.budget),
    )
    seeds = repeat_seeds(config, args.seeds)  # refuses a bad count before planning
    plan = plan_optimization(config, settings)
    print(describe_plan(plan), file=sys.stderr)
    for note in plan.splits.notes:
        print(f"warning: {note}", file=sys.stderr)
    manager = JobManager(settings)
    if len(seeds) > 1:
        return run_repeats(manager, config, plan, len(seeds), args.background)
    job_id = manager.submit_optimization(config, start=args.background, plan=plan, started_by=cli_user())
    if args.background:
        print(f"queued job {job_id}; follow it with: python -m core jobs show {job_id}")
        return exit_code("ok")
    print(f"job {job_id}", file=sys.stderr)
    status = run_here(manager, job_id)
    print_finish_hint(manager, job_id)
    return status


def run_repeats(manager: JobManager, config: OptimizeConfig, plan: Plan, n: int, background: bool) -> int:
    """``--seeds N``: N jobs with consecutive seeds on one plan; in the foreground one after another, then the
    spread."""
    from core.tracking.runs import seed_spread, spread_sentence
    from core.tracking.store import RunStore

    print(f"{n} seeds: {', '.join(map(str, repeat_seeds(config, n)))} (the estimate above × {n})", file=sys.stderr)
    job_ids = submit_repeats(manager, config, n, plan=plan, started_by=cli_user(), start=background)
    if background:
        for job_id in job_ids:
            print(f"queued job {job_id}; follow it with: python -m core jobs show {job_id}")
        return exit_code("ok")
    codes: dict[int, Outcome] = {code: name for name, code in EXIT_CODES.items()}
    outcomes: list[Outcome] = []
    for job_id in job_ids:
        print(f"job {job_id} ({manager.get(job_id).title})", file=sys.stderr)
        outcomes.append(codes[run_here(manager, job_id)])
        print_finish_hint(manager, job_id)
        if outcomes[-1] == "interrupted":  # Ctrl-C stops the seeds still to run too
            return exit_code("interrupted")
    status = exit_code(worst(outcomes))
    spread = seed_spread(RunStore(manager.settings).list_runs(kind="optimization", task=plan.task.name))
    if config.repeat_key() in set(spread["repeat_key"]):
        print(spread_sentence(spread, config.repeat_key()))
    return status


def print_finish_hint(manager: JobManager, job_id: str) -> None:
    """A stopped run that kept its best program: say how to get its before/after test evaluations."""
    from core.tracking.store import RunStore

    job = manager.get(job_id)
    if not job.run_id or job.state in ("succeeded", "interrupted"):  # interrupted: resume it (printed already)
        return
    try:
        check_finishable(RunStore(manager.settings), job.run_id)
    except StudioError:
        return  # nothing to finish: it has results, or no best program to evaluate
    print(f"  its best program is kept; evaluate it on the test set with: python -m core finish {job.run_id}",
          file=sys.stderr)


def cmd_finish(args: argparse.Namespace) -> int:
    manager = JobManager(load_settings())
    job_id = manager.submit_finish(args.run_id, start=args.background, started_by=cli_user())
    if args.background:
        print(f"queued job {job_id}; follow it with: python -m core jobs show {job_id}")
        return exit_code("ok")
    print(f"job {job_id}", file=sys.stderr)
    return run_here(manager, job_id)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("optimize", help="optimize a student model's prompt: GEPA (default), MIPROv2, few-shot, or "
                                        "evaluate your own prompt", epilog=EXIT_HELP)
    add_task_args(p)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="gepa",
                   help="; ".join(o.summary for o in OPTIMIZERS.values()))
    p.add_argument("--instruction", help="your own instruction (with --optimizer own)")
    p.add_argument("--student", required=True, help="catalog name or provider/model[@base_url]")
    p.add_argument("--reflection", help="catalog name or provider/model[@base_url] (a strong model: GEPA's reflection "
                                           "model, MIPROv2's prompt model, few-shot's teacher)")
    p.add_argument("--budget", default="light",
                   help="light | medium | heavy | N metric calls | evals:N (few-shot: N candidate programs)")
    p.add_argument("--max-cost", type=float, help="stop when student + reflection spending reaches this many USD")
    add_gepa_args(p)
    p.add_argument("--gepa-seed", type=int, default=0, help="the optimizer's seed")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help=f"repeat with N seeds (the seed, seed+1, ...; 1 to {MAX_SEEDS}): N jobs on the same examples, "
                        "then the spread of their test accuracy")
    p.add_argument("--background", action="store_true", help="queue as a background job and return")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("finish", help="evaluate a stopped (capped, cancelled) optimization's original and best "
                                      "program on its test set", epilog=EXIT_HELP)
    p.add_argument("run_id", help="the optimization's MLflow run id (`python -m core jobs show JOB_ID` prints it)")
    p.add_argument("--background", action="store_true", help="queue as a background job and return")
    p.set_defaults(func=cmd_finish)
