"""What several commands share: resolving model names, the task arguments, a progress bar per model."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, Callable, Sequence

from core.models import ModelCatalog, ModelSpec, openai_compatible
from core.settings import PROVIDERS
from core.tasks import SOURCES, SampleSpec, TaskRef


def resolve_models(names: Sequence[str], catalog: ModelCatalog, api_base: str | None) -> list[ModelSpec]:
    """Catalog names, or inline ``provider/model`` strings (``@URL`` or --api-base makes them OpenAI-compatible)."""
    specs = []
    for raw in names:
        name, _, base = raw.partition("@")
        if name in catalog.models or any(s.model == name for s in catalog.models.values()):
            spec = catalog.get(name)
        elif "/" in name:
            url = base or api_base
            model_id = name.split("/", 1)[1]
            if url:
                spec = openai_compatible(model_id, model_id, url)
            else:
                provider = PROVIDERS.get(name.split("/", 1)[0])
                known = provider is not None and provider.key_env is not None
                spec = ModelSpec(name=name, model=name, provider=provider.name if known else "openai-compatible",
                                 api_key_env=provider.key_env if known else None)
        else:
            spec = catalog.get(name)  # raises with the list of known models
        specs.append(spec)
    return specs


def cli_user() -> str:
    """Who runs the command line (tagged on its runs and jobs as ``studio.started_by``)."""
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):  # no user name in this environment (some containers)
        return "cli"


def task_ref(args: argparse.Namespace) -> TaskRef:
    if args.task in SOURCES and args.task != "file":
        return TaskRef(kind=args.task, source=args.data or "", test_source=args.test_data or "")
    return TaskRef(kind="file", source=args.task, test_source=args.test_data or "",
                   text_column=args.text_column, label_column=args.label_column)


def sample_spec(args: argparse.Namespace) -> SampleSpec:
    return SampleSpec(args.train_per_label, args.val_per_label, args.test_per_label, args.seed)


def add_task_args(p: argparse.ArgumentParser) -> None:
    named = "; ".join(f"'{s.kind}': {s.cli_help}" for s in SOURCES.values() if s.kind != "file")
    p.add_argument("--task", default="demo", help=f"{named}; or a path: {SOURCES['file'].cli_help}")
    p.add_argument("--data", help="local file or URL for the pubmed task's train split")
    p.add_argument("--test-data", help="separate test file (otherwise test is sampled from the rest)")
    p.add_argument("--text-column", default="description")
    p.add_argument("--label-column", default="target")
    p.add_argument("--train-per-label", type=int, default=3)
    p.add_argument("--val-per-label", type=int, default=0)
    p.add_argument("--test-per-label", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--api-base", help="base URL for inline provider/model names (an OpenAI-compatible server)")


def progress_printer() -> Callable[[ModelSpec, int, int, Any], None]:
    """A tqdm bar per model, for ``on_record`` callbacks."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_record(spec: ModelSpec, done: int, total: int, rec: Any) -> None:
        bar = bars.get(spec.name)
        if bar is None:
            bar = bars[spec.name] = tqdm(total=total, desc=spec.name[:30], file=sys.stderr, leave=True)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return on_record


def add_gepa_args(p: Any) -> None:
    """How an optimization runs, the same for ``optimize`` and every cell of a ``sweep``."""
    p.add_argument("--minibatch", type=int, default=3, help="reflection minibatch size")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--module", choices=["predict", "cot"], default="predict")
    p.add_argument("--feedback", choices=["rule", "judge"], default="rule")
    p.add_argument("--no-merge", action="store_true")
    p.add_argument("--no-cache", action="store_true")
