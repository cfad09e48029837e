"""Repeat an optimization with N seeds: N optimize jobs that differ only in the optimizer's seed (config.seed,
config.seed + 1, ...), all on one plan (the same task, splits and test examples), so their spread says how
repeatable one result is (``core.tracking.runs.seed_spread``).

A repeat of more than one seed is a group job (kind ``repeat``), as a sweep is (``core.jobs.sweeps``): it runs no
process; its state, progress (one row per seed), cancel, resume and kill follow and reach its seeds' jobs."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

import pandas as pd

from core.config.errors import ConfigError
from core.jobs.registry import JobManager
from core.jobs.sweeps import abandon, children_of, launch
from core.tracking.runs import module_name

logger = logging.getLogger(__name__)

MAX_SEEDS = 20  # each seed is a whole optimization: more is a budget mistake, not a wish


def check_repeats(config: Any, n: int) -> None:
    """Raise ConfigError when ``config`` (an OptimizeConfig) cannot be repeated ``n`` times."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEEDS:
        raise ConfigError(f"Cannot repeat an optimization {n!r} times.",
                          f"Give a whole number of seeds from 1 to {MAX_SEEDS}.")
    if n > 1 and not config.rules.seeded:
        raise ConfigError(f"{config.label} has no seed: every repeat would give the same numbers.",
                          "Repeat an optimizer that searches with seeds; run this one once.")


def repeat_seeds(config: Any, n: int) -> list[int]:
    """The seeds of an ``n``-seed repeat of ``config``: config.seed, config.seed + 1, ..."""
    check_repeats(config, n)
    return [config.seed + i for i in range(n)]


def submit_repeat(manager: JobManager, config: Any, n: int, *, plan: Any = None, started_by: str | None = None,
                  start: bool = True) -> str:
    """Queue an ``n``-seed repeat of ``config`` as one group job (kind ``repeat``, titled "<plan title> · N seeds") with
    one ``optimize`` child per seed (config.seed, config.seed + 1, ...), all on one plan (computed here unless given);
    returns the group's id. Each child carries the group's id (``sweep``, as a sweep's children do): the pickers list
    the group, not its seeds, and its runs are tagged with it. One cancel, resume or kill reaches every seed."""
    from core.optimize import plan_optimization

    seeds = repeat_seeds(config, n)
    plan = plan or plan_optimization(config, manager.settings)
    stored = {"task": plan.task.to_dict(), "splits": plan.splits.to_dict()}
    base = {"base": config.to_dict(), "seeds": seeds}
    group_id = manager.submit("repeat", f"{plan.title} · {n} seeds"[:200], {**base, "children": []}, start=False,
                              started_by=started_by)
    children: list[str] = []
    try:
        for seed in seeds:
            child = replace(config, seed=seed, sweep=group_id).to_dict()
            children.append(manager.submit("optimize", f"{plan.title} · seed {seed}"[:200], child, start=False,
                                           plan=stored, started_by=started_by))
        cell = {"student": config.student.name, "optimizer": config.optimizer, "budget": config.budget_label()}
        cells = {job: {**cell, "seed": seed} for job, seed in zip(children, seeds, strict=True)}
        manager.set_config(group_id, {**base, "children": children, "cells": cells})
    except BaseException as exc:
        abandon(manager, group_id, children, "repeat", exc)
        raise
    launch(manager, group_id)
    logger.info("queued %d seeds (%s) of %s as repeat %s: %s", n, ", ".join(map(str, seeds)), config.repeat_key(),
                group_id, ", ".join(children))
    if start:
        manager.schedule()
    return group_id


def submit_repeats(manager: JobManager, config: Any, n: int, *, plan: Any = None, started_by: str | None = None,
                   start: bool = True) -> list[str]:
    """The seeds' optimize job ids, in seed order, of an ``n``-seed repeat (:func:`submit_repeat`: one group job over
    them when ``n`` > 1; one optimize job, titled with its seed, when ``n`` is 1). They share ``studio.repeat_key``."""
    if n == 1:
        from core.optimize import plan_optimization

        check_repeats(config, n)
        plan = plan or plan_optimization(config, manager.settings)
        return [manager.submit("optimize", f"{plan.title} · seed {config.seed}", config.to_dict(), start=start,
                               plan={"task": plan.task.to_dict(), "splits": plan.splits.to_dict()},
                               started_by=started_by)]
    group = manager.get(submit_repeat(manager, config, n, plan=plan, started_by=started_by, start=start))
    return list(group.config["children"])


def repeat_children(manager: JobManager, group_id: str) -> list[Any]:
    """The seeds' jobs of a repeat group (JobInfo), in seed order."""
    jobs = manager.list(reap=False)
    return children_of(next(j for j in jobs if j.id == group_id), jobs)


# Pickers: a repeat is one entry that opens to its seeds ------------------------------------------

GROUP = "seeds:"  # a picker key "seeds:<repeat_key>" stands for every seed of one repeat
RESULT = re.compile(r" · (?:[\d.]+%→[\d.]+%|no test results)(?: · \w+)?$")


def _repeats(opts: pd.DataFrame) -> pd.Series:
    """Each run's repeat key where two or more seeds share it (else None)."""
    keys = opts["repeat_key"].where(opts["repeat_key"].notna() & opts["seed"].notna())
    seeds = opts.groupby(keys)["seed"].transform("nunique")
    return keys.where(seeds >= 2)


def optimization_choices(opts: pd.DataFrame) -> dict[str, str]:
    """Picker entries of an optimization frame (``core.tracking.runs.optimization_frame``), in its order: run id ->
    its label and short id, except that a repeat's runs (one ``repeat_key``, two or more seeds) are one entry,
    "<setup> · N seeds · <before>→<after min–max>", keyed ``seeds:<repeat_key>``, where its first run stood."""
    if opts.empty:
        return {}
    groups = _repeats(opts)
    out: dict[str, str] = {}
    for row, key in zip(opts.to_dict("records"), groups, strict=True):
        if not isinstance(key, str):
            out[str(row["run_id"])] = (f"{row['run_label']} · {module_name(row.get('module'))} · "
                                       f"{str(row['run_id'])[:8]}")
        elif GROUP + key not in out:
            out[GROUP + key] = _group_label(opts[groups == key])
    return out


def _group_label(runs: pd.DataFrame) -> str:
    setup = RESULT.sub("", str(runs["run_label"].iloc[0]))
    done = runs[runs["has_results"].astype(bool)]
    label = f"{setup} · {runs['seed'].nunique()} seeds"
    if done.empty:
        return label + " · no test results"
    after = done["optimized_test_accuracy"].astype(float)
    spread = f"{after.min() * 100:.1f}%" if after.min() == after.max() else \
        f"{after.min() * 100:.1f}–{after.max() * 100:.1f}%"
    return label + f" · {done['original_test_accuracy'].astype(float).median() * 100:.1f}%→{spread}"


def seed_choices(opts: pd.DataFrame, entry: str) -> dict[str, str]:
    """The runs behind a picker entry, run id -> "seed N · <before>→<after> · <short id>" (by seed; a plain run
    alone)."""
    if not entry.startswith(GROUP):
        return {entry: entry}
    runs = opts[_repeats(opts) == entry[len(GROUP):]].sort_values("seed", kind="stable")
    return {str(r["run_id"]): f"seed {int(r['seed'])} · {_result(r)} · {str(r['run_id'])[:8]}"
            for r in runs.to_dict("records")}


def _result(row: dict[str, Any]) -> str:
    found = RESULT.search(str(row["run_label"]))
    return found.group(0)[3:] if found else "no test results"


def entry_of(opts: pd.DataFrame, run_id: str | None) -> str | None:
    """The picker entry that holds ``run_id`` (its repeat's, else its own); None when no run has that id."""
    row = opts.index[opts["run_id"].astype(str) == str(run_id)]
    if len(row) == 0:
        return None
    key = _repeats(opts).loc[row[0]]
    return GROUP + key if isinstance(key, str) else str(run_id)
