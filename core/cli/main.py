"""``python -m core``: the parser, ``models``, ``check`` and ``baseline``; optimize (with ``finish``) and jobs add their
own parsers."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from core.cli import jobs as jobs_cmd
from core.cli import notebook as notebook_cmd
from core.cli import optimize as optimize_cmd
from core.cli import program as program_cmd
from core.cli import report as report_cmd
from core.cli import ship as ship_cmd
from core.cli import sweep as sweep_cmd
from core.cli.common import add_task_args, cli_user, progress_printer, resolve_models, sample_spec, task_ref
from core.cli.exits import EXIT_HELP, baseline_outcome, exit_code, worst
from core.config.errors import ConfigError, ProviderError, StudioError
from core.config.settings import PROVIDERS, load_settings, secrets_problem

logger = logging.getLogger(__name__)


def _fmt_price(v: float | None) -> str:
    return f"{v:9.3f}" if v is not None else f"{'?':>9}"


def cmd_models(args: argparse.Namespace) -> int:
    from core.config.errors import ModelError
    from core.lm.models import ModelCatalog, ModelSpec, detect_ollama, key_present, resolve_price

    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    if args.action == "add":
        if not args.name or not args.model:
            raise ModelError("`models add` needs a name and a model.",
                             "E.g. python -m core models add my-llama openai/llama3.1 "
                             "--api-base http://127.0.0.1:11434/v1 --timeout 60 --retries 2")
        limits = {k: v for k, v in (("timeout_s", args.timeout), ("num_retries", args.retries), ("rpm", args.rpm),
                                    ("tpm", args.tpm)) if v is not None}
        spec = ModelSpec(name=args.name, model=args.model, provider=args.provider, api_base=args.api_base,
                         api_key_env=args.key_env or PROVIDERS[args.provider].key_env, input_price_per_m=args.price_in,
                         output_price_per_m=args.price_out, **limits)
        catalog.add(spec, replace=args.replace)
        catalog.save()
        print(f"Saved {spec.name} to {settings.catalog_path} (timeout {spec.timeout_s:g} s, "
              f"{spec.num_retries} retries)")
        return exit_code("ok")
    if args.action == "remove":
        catalog.remove(args.name)
        catalog.save()
        print(f"Removed {args.name}")
        return exit_code("ok")
    for spec in detect_ollama():
        catalog.models.setdefault(spec.name, spec)
    print(f"{'name':34} {'model':44} {'$/1M in':>9} {'$/1M out':>9} {'price':8} key")
    for name in catalog.names():
        spec = catalog.models[name]
        price = resolve_price(spec)
        key = "-" if not spec.api_key_env else (
            "set" if key_present(spec) else f"missing {spec.api_key_env}")
        print(f"{name[:34]:34} {spec.model[:44]:44} {_fmt_price(price.input_per_m)} {_fmt_price(price.output_per_m)} "
              f"{price.source:8} {key}")
    return exit_code("ok")


def cmd_check(args: argparse.Namespace) -> int:
    from core.lm.models import ModelCatalog, check_connection

    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    spec = resolve_models([args.model], catalog, args.api_base)[0]
    res = check_connection(spec, timeout_s=args.timeout)
    if res.ok:
        print(f"OK {spec.name}: {res.latency_s * 1000:.0f} ms, answered {res.sample!r}")
        return exit_code("ok")
    print(f"FAILED {spec.name} ({res.kind}): {res.message}\n  {res.hint}", file=sys.stderr)
    return exit_code("failed")


def cmd_baseline(args: argparse.Namespace) -> int:
    from core.evaluation.baseline import outcomes_table, resume_baselines, run_baselines
    from core.lm.models import ModelCatalog
    from core.tasks import check_task
    from core.tracking.store import RunStore

    if not args.models and not args.resume:
        raise ConfigError("Name the models to evaluate (--models), or the runs to complete (--resume RUN_ID).")
    settings = load_settings()
    store = RunStore(settings, started_by=cli_user())
    progress = progress_printer() if not args.quiet else None
    started: list[str] = list(args.resume or [])
    try:
        if args.resume:
            outcomes = resume_baselines(store, args.resume, threads=args.threads_given, on_record=progress)
        else:
            catalog = ModelCatalog.load(settings.catalog_path)
            specs = resolve_models(args.models, catalog, args.api_base)
            ref = task_ref(args)
            for warning in check_task(ref, settings):
                print(f"warning: {warning}", file=sys.stderr)
            judge = resolve_models([args.judge], catalog, args.api_base)[0] if args.judge else None
            outcomes = run_baselines(store, ref, sample_spec(args), specs, module=args.module,
                                     threads=args.threads_given or 8, cache=not args.no_cache, on_record=progress,
                                     on_run_created=lambda _spec, run_id: started.append(run_id), judge=judge)
    except KeyboardInterrupt:
        return interrupted_baselines(started)
    table = outcomes_table(outcomes)
    kinds = {store.get_run(o.run_id).data.tags.get("studio.task_kind") for o in outcomes if o.run_id}
    print(baseline_text(table, scored=bool(kinds - {"classification", None})))
    for row in table.to_dict("records"):
        if row["error"]:
            model, error = str(row["model"]), str(row["error"])
            print(f"ERROR {error if error.startswith(model) else f'{model}: {error}'}", file=sys.stderr)
            if row["run_id"]:
                print(f"  {row['n']} examples recorded and kept; finish with: python -m core baseline --resume "
                      f"{row['run_id']}", file=sys.stderr)
        elif row["degraded"]:
            print(f"DEGRADED {row['model']}: {row['failed']} of {row['n']} examples failed "
                  f"({_kinds(row['failed_by_kind'])}); its accuracy counts them as wrong.", file=sys.stderr)
    print(f"\nRuns stored in {settings.tracking_uri}\nSee them with: mlflow ui --backend-store-uri "
          f"{settings.tracking_uri}")
    return exit_code(worst([baseline_outcome(bool(row["error"]), bool(row["degraded"]))
                            for row in table.to_dict("records")]))


def interrupted_baselines(run_ids: list[str]) -> int:
    """Ctrl-C during a baseline: its runs ended KILLED, tagged interrupted, with their records kept; say how to
    complete them (models not reached yet have no run: name them again with --models)."""
    if run_ids:
        print(f"interrupted (Ctrl-C): the records so far are kept; complete the run(s) with: "
              f"python -m core baseline --resume {' '.join(dict.fromkeys(run_ids))}", file=sys.stderr)
    else:
        print("interrupted (Ctrl-C) before a run started: nothing to resume", file=sys.stderr)
    return exit_code("interrupted")


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])) or "-"


def baseline_text(table: Any, scored: bool = False) -> str:
    """The baseline table as printed: accuracy over all examples with its interval (a task beyond classification: its
    mean score and interval), failures (count, rate, by kind), a DEGRADED marker, then macro-F1 (labels only), n,
    cost, latency, tokens and run id."""
    def num(v: Any, fmt: str) -> str:
        return format(v, fmt) if v is not None and v == v else "-"

    shown = table.copy()
    shown["accuracy"] = [f"{a:.1%} [{lo:.1%}, {hi:.1%}]" if a is not None and a == a else "-"
                         for a, lo, hi in zip(table["accuracy"], table["ci_low"], table["ci_high"], strict=True)]
    if scored:  # a task beyond classification: its mean score (every example counts, failures as 0), not accuracy
        shown["score"] = [f"{s[0]:.3f} [{s[1]:.3f}, {s[2]:.3f}]" if s is not None and s[0] is not None else "-"
                          for s in table["score"]]
    shown["failed"] = [f"{f} ({num(r, '.1%')}: {_kinds(k)})" if f else "0"
                       for f, r, k in zip(table["failed"], table["failure_rate"], table["failed_by_kind"], strict=True)]
    shown["status"] = ["STOPPED" if e else ("DEGRADED" if d else ("ok" if c else "PARTIAL"))
                       for e, d, c in zip(table["error"], table["degraded"], table["complete"], strict=True)]
    shown["cost_per_1k_usd"] = [num(c, ".4f") for c in table["cost_per_1k_usd"]]
    shown["p50_latency_s"] = [num(c, ".2f") for c in table["p50_latency_s"]]
    shown["macro_f1"] = [num(c, ".3f") for c in table["macro_f1"]]
    cols = ["model", "score" if scored else "accuracy", "failed", "status", *([] if scored else ["macro_f1"]), "n",
            "cost_per_1k_usd", "p50_latency_s", "tokens", "run_id"]
    return shown[cols].to_string(index=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="GEPA Studio from the command line.",
                                     epilog=EXIT_HELP)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list models and prices; add or remove a custom model")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("model", nargs="?", help="provider/model, e.g. openai/llama3.1")
    p.add_argument("--provider", default="openai-compatible", choices=list(PROVIDERS))
    p.add_argument("--api-base")
    p.add_argument("--key-env", help="name of the environment variable holding the key")
    p.add_argument("--price-in", type=float, help="USD per 1M input tokens")
    p.add_argument("--price-out", type=float, help="USD per 1M output tokens")
    p.add_argument("--timeout", type=float, help="seconds one call may take (default 120)")
    p.add_argument("--retries", type=int,
                   help="retries of a call that failed transiently: 429, 5xx, timeout (default 2)")
    p.add_argument("--rpm", type=int, help="the provider's requests per minute for this key, shared by every job")
    p.add_argument("--tpm", type=int, help="the provider's tokens per minute for this key, shared by every job")
    p.add_argument("--replace", action="store_true", help="overwrite a model of the same name (otherwise refused)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("check", help="test the connection to a model")
    p.add_argument("model")
    p.add_argument("--api-base")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("baseline", help="evaluate several models on the test split",
                       epilog=EXIT_HELP + " A model that failed (its provider given up on) or a Ctrl-C keeps its run: "
                                          "complete it with --resume.")
    add_task_args(p)
    p.add_argument("--models", nargs="+", help="catalog names or provider/model[@base_url]")
    p.add_argument("--resume", nargs="+", metavar="RUN_ID",
                   help="complete these interrupted or stopped baseline runs, reusing their finished records")
    p.add_argument("--module", choices=["predict", "cot"], default="predict")
    p.add_argument("--threads", type=int, dest="threads_given", help="parallel calls per model (default 8)")
    p.add_argument("--no-cache", action="store_true", help="call the models even for repeated requests")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_baseline)

    optimize_cmd.add_parsers(sub)
    jobs_cmd.add_parsers(sub)
    notebook_cmd.add_parsers(sub)
    report_cmd.add_parsers(sub)
    ship_cmd.add_parsers(sub)
    sweep_cmd.add_parsers(sub)
    program_cmd.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # MLflow logs its store's creation at INFO with a handler of its own, after our tables
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    try:
        if secrets_error := secrets_problem():  # a malformed secrets file must not read as one without keys
            raise secrets_error
        return int(args.func(args) or 0)
    except StudioError as exc:  # a provider that failed is a failure; anything else, input to change
        print(f"error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return exit_code("failed" if isinstance(exc, ProviderError) else "usage")
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return exit_code("interrupted")
