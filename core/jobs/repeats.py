"""Repeat an optimization with N seeds: N optimize jobs that differ only in the optimizer's seed (config.seed,
config.seed + 1, ...), all on one plan (the same task, splits and test examples), so their spread says how
repeatable one result is (``core.tracking.runs.seed_spread``)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from core.config.errors import ConfigError
from core.jobs.registry import JobManager

logger = logging.getLogger(__name__)

MAX_SEEDS = 20  # each seed is a whole optimization: more is a budget mistake, not a wish


def check_repeats(config: Any, n: int) -> None:
    """Raise ConfigError when ``config`` (an OptimizeConfig) cannot be repeated ``n`` times."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEEDS:
        raise ConfigError(f"Cannot repeat an optimization {n!r} times.",
                          f"Give a whole number of seeds from 1 to {MAX_SEEDS}.")
    if n > 1 and config.optimizer == "own":
        raise ConfigError("Your own prompt has no seed: every repeat would give the same numbers.",
                          "Repeat GEPA, MIPROv2 or few-shot with seeds; evaluate your own prompt once.")


def repeat_seeds(config: Any, n: int) -> list[int]:
    """The seeds of an ``n``-seed repeat of ``config``: config.seed, config.seed + 1, ..."""
    check_repeats(config, n)
    return [config.seed + i for i in range(n)]


def submit_repeats(manager: JobManager, config: Any, n: int, *, plan: Any = None, started_by: str | None = None,
                   start: bool = True) -> list[str]:
    """Queue ``n`` optimize jobs of ``config`` with consecutive seeds, on one plan (computed here unless given),
    each titled with its seed; returns their job ids in seed order. They share the tag ``studio.repeat_key``."""
    from core.optimize import plan_optimization

    seeds = repeat_seeds(config, n)
    plan = plan or plan_optimization(config, manager.settings)
    stored = {"task": plan.task.to_dict(), "splits": plan.splits.to_dict()}
    job_ids = [manager.submit("optimize", f"{plan.title} · seed {seed}", replace(config, seed=seed).to_dict(),
                              start=False, plan=stored, started_by=started_by) for seed in seeds]
    logger.info("queued %d seeds (%s) of %s: %s", n, ", ".join(map(str, seeds)), config.repeat_key(), ", ".join(job_ids))
    if start:
        manager.schedule()
    return job_ids
