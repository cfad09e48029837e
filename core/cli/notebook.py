"""``python -m core reproduce-notebook``: the original notebook's experiment (``core.presets.notebook.PRESET``) with its
Databricks models or yours, then what this run measured beside what the notebook reported."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from typing import Any

import pandas as pd

from core.cli.common import cli_user, resolve_models
from core.cli.exits import EXIT_HELP, exit_code
from core.cli.optimize import budget_kwargs, describe_plan
from core.config.settings import load_settings
from core.jobs import JobManager
from core.jobs.worker import execute
from core.lm.models import ModelCatalog
from core.presets import notebook
from core.presets.notebook import PRESET, NotebookModels
from core.presets.reproduce import NotebookHooks, NotebookRun, job_optimization, run_notebook
from core.tasks import TaskRef
from core.tracking.store import RunStore


def _pct(v: float) -> str:
    return "-" if v != v else f"{v:.1%}"


def _points(v: float) -> str:
    return "-" if v != v else f"{v * 100:+.1f}"


def report_text(run: NotebookRun, models: NotebookModels) -> str:
    """What this run measured (accuracy with its interval per side), then the notebook's claims beside it."""
    names = {"student_original": models.student.name, "student_optimized": models.student.name,
             "large": models.large.name, "frontier": models.frontier.name}
    measured = notebook.measured_frame(run.records, names)
    shown = pd.DataFrame({
        "what": measured["what"], "model": measured["model"],
        "accuracy [95% CI]": [f"{_pct(a)} [{_pct(lo)}, {_pct(hi)}]" if n else "-"
                              for a, lo, hi, n in zip(measured["accuracy"], measured["ci_low"], measured["ci_high"],
                                                      measured["n"], strict=True)],
        "n": measured["n"], "failed": measured["failed"],
        "run": [run.run_ids.get(side, "-") for side in measured["side"]]})
    claims = notebook.claims_frame(run.records)
    said = pd.DataFrame({
        "the notebook reported": claims["text"], "reported": claims["reported"],
        "measured, points [95% CI]": [f"{_points(d)} [{_points(lo)}, {_points(hi)}]" if n else "-"
                                      for d, lo, hi, n in zip(claims["diff"], claims["ci_low"], claims["ci_high"],
                                                              claims["n"], strict=True)],
        "verdict": [v + ("" if inside is None else ", reported size inside" if inside else ", reported size outside")
                    for v, inside in zip(claims["verdict"], claims["size_in_interval"], strict=True)]})
    return (f"Measured on the same test examples\n{shown.to_string(index=False)}\n\n"
            f"The notebook's claims (its models: GPT-OSS 20B, GPT-OSS 120B, Claude Sonnet 4) beside this run\n"
            f"{said.to_string(index=False)}\n"
            "holds / reversed: the interval lies above / below 0; unresolved: it spans 0 (more test examples "
            "would tell).")


def cmd_reproduce(args: argparse.Namespace) -> int:
    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    pick = lambda name: resolve_models([name], catalog, args.api_base)[0] if name else None  # noqa: E731
    models = PRESET.models(student=pick(args.student), large=pick(args.large), frontier=pick(args.frontier),
                           reflection=pick(args.reflection), notebook_settings=args.model_settings == "notebook")
    config = PRESET.config(
        models, task_ref=TaskRef(kind="pubmed", source=args.data or "", test_source=args.test_data or ""),
        sample=replace(PRESET.sample, train_per_label=args.train_per_label, test_per_label=args.test_per_label),
        reflection_minibatch_size=args.minibatch, threads=args.threads, max_cost_usd=args.max_cost,
        **budget_kwargs(args.budget))
    plan = notebook.plan(config, settings)
    print(describe_plan(plan), file=sys.stderr)
    costs = notebook.evaluation_costs(plan, models)
    print("  test evaluations besides GEPA: " + "; ".join(
        f"{name} {'unknown price' if usd is None else f'${usd:.4f}'}" for name, usd in costs.items()), file=sys.stderr)
    changed = PRESET.differences(config, models)
    print("  as the notebook" if not changed else "  differs from the notebook in: " + "; ".join(changed),
          file=sys.stderr)
    for note in plan.splits.notes:
        print(f"warning: {note}", file=sys.stderr)
    if args.dry_run:
        return exit_code("ok")
    store = RunStore(settings, started_by=cli_user())
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    with contextlib.redirect_stdout(sys.stderr):  # DSPy's progress bars: stdout is the report
        manager = JobManager(settings)  # the optimization runs here, as a job: its progress and artifacts as usual
        optimize = job_optimization(manager, plan, execute=lambda job_id: execute(manager, job_id),
                                    started_by=store.started_by)
        run = run_notebook(plan, models, store, NotebookHooks(optimize=optimize, on_status=say))
    print(report_text(run, models))
    for part, error in run.errors.items():
        print(f"ERROR {part}: {error}", file=sys.stderr)
    print(f"\nOptimization job {run.job_id} (run {run.optimization_run_id}); runs stored in {settings.tracking_uri}")
    return exit_code("ok" if run.ok else "failed")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "reproduce-notebook", help="rerun the original notebook's experiment and compare with what it reported",
        description="The original notebook's experiment: PubMed sentence roles, 3 train and 10 test sentences per "
                    "label (its per-label draw, seed 1), DSPy's bare signature, GPT-OSS 20B / 120B and Claude Sonnet 4 "
                    "evaluated, then GEPA (auto light, minibatch 15, 16 threads, seed 1, LLM-judge feedback) on 20B "
                    "with Claude Sonnet 4 reflecting, then 20B again. Models default to the notebook's Databricks "
                    "ones: swap any with the flags below and keep everything else.",
        epilog=EXIT_HELP + " Here a part that failed or was stopped is a failure; Ctrl-C stops every part (a notebook "
                          "job is not resumable: run it again).")
    for role, default in notebook.NOTEBOOK_MODELS.items():
        p.add_argument(f"--{role}", help=f"catalog name or provider/model[@base_url] (default {default})")
    p.add_argument("--api-base", help="base URL for inline provider/model names (an OpenAI-compatible server)")
    p.add_argument("--model-settings", choices=["notebook", "own"], default="notebook",
                   help="notebook: every model gets the notebook's max_tokens=25000 (and reasoning_effort=medium for "
                        "the classifiers); own: a swapped model keeps its own settings (for models that reject those)")
    p.add_argument("--data", help="a local copy of the PubMed train CSV (default: the Hugging Face file it read)")
    p.add_argument("--test-data", help="a local copy of the PubMed test CSV (default: the Hugging Face file)")
    p.add_argument("--train-per-label", type=int, default=PRESET.sample.train_per_label)
    p.add_argument("--test-per-label", type=int, default=PRESET.sample.test_per_label)
    p.add_argument("--budget", default=PRESET.auto, help="light | medium | heavy | N metric calls | evals:N")
    p.add_argument("--minibatch", type=int, default=PRESET.reflection_minibatch_size, help="reflection minibatch size")
    p.add_argument("--threads", type=int, default=PRESET.threads)
    p.add_argument("--max-cost", type=float, help="stop GEPA when student + reflection spending reaches this many USD")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the estimate; run nothing")
    p.set_defaults(func=cmd_reproduce)
