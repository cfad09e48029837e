"""``python -m core``: the parser, ``models``, ``check`` and ``baseline``; optimize and jobs add their own parsers."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from core.cli import jobs as jobs_cmd
from core.cli import optimize as optimize_cmd
from core.cli.common import add_task_args, progress_printer, resolve_models, sample_spec, task_ref
from core.errors import StudioError
from core.settings import PROVIDERS, load_settings

logger = logging.getLogger(__name__)


def _fmt_price(v: float | None) -> str:
    return f"{v:9.3f}" if v is not None else f"{'?':>9}"


def cmd_models(args: argparse.Namespace) -> int:
    from core.models import ModelCatalog, ModelSpec, detect_ollama, resolve_price
    from core.settings import get_secret

    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    if args.action == "add":
        spec = ModelSpec(name=args.name, model=args.model, provider=args.provider, api_base=args.api_base,
                         api_key_env=args.key_env or PROVIDERS[args.provider].key_env, input_price_per_m=args.price_in, output_price_per_m=args.price_out)
        catalog.add(spec)
        catalog.save()
        print(f"Saved {spec.name} to {settings.catalog_path}")
        return 0
    if args.action == "remove":
        catalog.remove(args.name)
        catalog.save()
        print(f"Removed {args.name}")
        return 0
    for spec in detect_ollama():
        catalog.models.setdefault(spec.name, spec)
    print(f"{'name':34} {'model':44} {'$/1M in':>9} {'$/1M out':>9} {'price':8} key")
    for name in catalog.names():
        spec = catalog.models[name]
        price = resolve_price(spec)
        key = "-" if not spec.api_key_env else ("set" if get_secret(spec.api_key_env) else f"missing {spec.api_key_env}")
        print(f"{name[:34]:34} {spec.model[:44]:44} {_fmt_price(price.input_per_m)} {_fmt_price(price.output_per_m)} {price.source:8} {key}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from core.models import ModelCatalog, check_connection

    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    spec = resolve_models([args.model], catalog, args.api_base)[0]
    res = check_connection(spec, timeout_s=args.timeout)
    if res.ok:
        print(f"OK {spec.name}: {res.latency_s * 1000:.0f} ms, answered {res.sample!r}")
        return 0
    print(f"FAILED {spec.name} ({res.kind}): {res.message}\n  {res.hint}", file=sys.stderr)
    return 1


def cmd_baseline(args: argparse.Namespace) -> int:
    from core.baseline import outcomes_table, run_baselines
    from core.models import ModelCatalog
    from core.store import RunStore

    settings = load_settings()
    catalog = ModelCatalog.load(settings.catalog_path)
    specs = resolve_models(args.models, catalog, args.api_base)
    sample = sample_spec(args)
    store = RunStore(settings)
    progress = progress_printer() if not args.quiet else None
    outcomes = run_baselines(store, task_ref(args), sample, specs, module=args.module, threads=args.threads,
                             cache=not args.no_cache, on_record=progress)
    table = outcomes_table(outcomes)
    shown = table.copy()
    shown["accuracy"] = [f"{a:.1%} [{lo:.1%}, {hi:.1%}]" if a == a and a is not None else "-"
                         for a, lo, hi in zip(table["accuracy"], table["ci_low"], table["ci_high"], strict=True)]
    shown["cost_per_1k_usd"] = [f"{c:.4f}" if c is not None and c == c else "-" for c in table["cost_per_1k_usd"]]
    shown["p50_latency_s"] = [f"{c:.2f}" if c is not None and c == c else "-" for c in table["p50_latency_s"]]
    shown["macro_f1"] = [f"{c:.3f}" if c is not None and c == c else "-" for c in table["macro_f1"]]
    cols = ["model", "accuracy", "macro_f1", "n", "cost_per_1k_usd", "p50_latency_s", "tokens", "run_id"]
    print(shown[cols].to_string(index=False))
    for _, row in table[table["error"].notna()].iterrows():
        print(f"ERROR {row['model']}: {row['error']}", file=sys.stderr)
    print(f"\nRuns stored in {settings.tracking_uri}\nSee them with: mlflow ui --backend-store-uri {settings.tracking_uri}")
    return 0 if table["error"].isna().all() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="GEPA Studio from the command line.")
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
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("check", help="test the connection to a model")
    p.add_argument("model")
    p.add_argument("--api-base")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("baseline", help="evaluate several models on the test split")
    add_task_args(p)
    p.add_argument("--models", nargs="+", required=True, help="catalog names or provider/model[@base_url]")
    p.add_argument("--module", choices=["predict", "cot"], default="predict")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--no-cache", action="store_true", help="call the models even for repeated requests")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_baseline)

    optimize_cmd.add_parsers(sub)
    jobs_cmd.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except StudioError as exc:
        print(f"error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
