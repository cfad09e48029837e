"""Repeat with N seeds under AppTest: the Optimize page queues N jobs with consecutive seeds (the estimate × N), and
Compare shows the seed spread (chart and one sentence per repeat) and says in the verdict that the selected
optimization is one of N seeds."""

from __future__ import annotations

import json
from unittest import mock

import pandas as pd

from core.jobs import JobManager
from tests.ui.conftest import assert_clean, open_page, texts

ROLES = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"}
N = 50  # test examples of each seed's paired evaluation


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_optimize_page_repeats_with_consecutive_seeds(empty):
    at = open_page("pages/optimize.py", ROLES)
    assert_clean(at)
    single = int(metrics(at)["Metric calls"].replace(",", ""))
    at.number_input(key="optimize.seed").set_value(4).run()
    at.number_input(key="optimize.seeds").set_value(3).run()
    assert_clean(at)
    shown = metrics(at)
    assert int(shown["Metric calls × 3"].replace(",", "")) == 3 * single
    assert "Estimated cost × 3" in shown and "Metric calls" not in shown
    assert any("seeds 4, 5, 6" in c for c in texts(at, "caption")), texts(at, "caption")
    assert at.button(key="optimize.start").label == "Start 3 optimizations"
    real = JobManager.submit
    with mock.patch.object(JobManager, "submit", autospec=True, side_effect=real) as submit:
        at.button(key="optimize.start").click().run()
    assert_clean(at)
    calls = [c.args for c in submit.call_args_list]
    assert [c[1] for c in calls] == ["repeat", "optimize", "optimize", "optimize"]  # one group over the seeds
    group_title, calls = calls[0][2], calls[1:]
    assert group_title.endswith(" · 3 seeds")
    assert [c[3]["seed"] for c in calls] == [4, 5, 6]
    assert [c[2].rsplit(" · ", 1)[1] for c in calls] == ["seed 4", "seed 5", "seed 6"]
    assert len({json.dumps({k: v for k, v in c[3].items() if k != "seed"}, sort_keys=True) for c in calls}) == 1
    everything = JobManager(empty).list()
    jobs = sorted((j for j in everything if j.kind == "optimize"), key=lambda j: j.config["seed"])
    assert [(j.state, j.config["seed"]) for j in jobs] == [("queued", 4), ("queued", 5), ("queued", 6)]
    [group] = [j for j in everything if j.kind == "repeat"]
    assert at.session_state["optimize.job_id"] == group.id and {j.config["sweep"] for j in jobs} == {group.id}
    assert any(m.startswith(f"**{group.title}**") for m in texts(at, "markdown"))  # one card for the three seeds


def test_own_prompt_has_no_seeds_to_repeat(empty):
    at = open_page("pages/optimize.py", ROLES)
    at.segmented_control(key="optimize.optimizer").set_value("own").run()
    at.text_area(key="optimize.own_instruction").input("Label each sentence by its role.").run()
    assert_clean(at)
    assert not [n for n in at.number_input if n.key == "optimize.seeds"]
    assert at.button(key="optimize.start").label == "Evaluate my prompt"  # own prompt: no search to start


def seed_repeats(settings) -> dict[int, str]:
    """Three seeds of one GEPA setup (optimized 58 / 62 / 66 % against 20 %), the newest with its paired evaluations;
    and one unrepeated optimization. Returns seed → optimization run id."""
    from core.tracking.store import TAG, RunStore

    store = RunStore(settings)
    ids = {}
    for seed, after in ((0, 0.58), (1, 0.62), (2, 0.66)):
        run_id = store.start_run("optimization", "demo", run_name="GEPA · small ← big",
                                 params={"budget": "light", "seed": seed},
                                 tags={f"{TAG}model": "small", f"{TAG}program": "gepa", f"{TAG}reflection_model": "big",
                                       f"{TAG}repeat_key": "abc123"})
        store.log_metrics(run_id, {"original_test_accuracy": 0.2, "optimized_test_accuracy": after,
                                   "optimization_cost_usd": 0.02, "student_cost_usd": 0.01,
                                   "reflection_cost_usd": 0.01})
        ids[seed] = run_id
        store.end_run(run_id)
    evals = {}
    for program, right in (("original", 10), ("optimized", 33)):
        records = pd.DataFrame({"idx": range(N), "text": [f"sentence {i}" for i in range(N)], "gold": "A",
                                "predicted": ["A" if i < right else "B" for i in range(N)],
                                "correct": [i < right for i in range(N)]})
        eval_id = store.start_run("evaluation", "demo", run_name=f"small · {program}", parent_run_id=ids[2],
                                  tags={f"{TAG}model": "small", f"{TAG}program": program})
        confusion = pd.DataFrame({"A": [right], "B": [N - right]}, index=pd.Index(["A"], name="gold"))
        store.log_artifacts(eval_id, {"records.csv": records, "confusion.csv": confusion})
        store.log_metrics(eval_id, {"accuracy": right / N, "n": N, "cost_usd": 0.001, "cost_per_1k": 0.02,
                                    "input_tokens": 100.0 * N, "output_tokens": 5.0 * N})
        store.end_run(eval_id)
        evals[program] = eval_id
    store.set_tags(ids[2], {f"{TAG}original_eval_run_id": evals["original"],
                            f"{TAG}optimized_eval_run_id": evals["optimized"]})
    lone = store.start_run("optimization", "demo", run_name="GEPA · small ← big", params={"budget": "heavy", "seed": 0},
                           tags={f"{TAG}model": "small", f"{TAG}program": "gepa", f"{TAG}repeat_key": "other"})
    store.log_metrics(lone, {"original_test_accuracy": 0.2, "optimized_test_accuracy": 0.7})
    store.end_run(lone)
    return ids


def test_compare_shows_the_seed_spread_and_the_verdict_says_one_of_three(empty):
    from core.config.settings import load_settings

    ids = seed_repeats(load_settings().ensure())
    at = open_page("pages/compare.py")
    at.selectbox(key="compare.opt").set_value("seeds:abc123").run()  # the repeat: one entry, opened to its seeds
    at.selectbox(key="compare.seed").set_value(ids[2]).run()
    assert_clean(at)
    assert "Seed spread" in texts(at, "subheader")
    sentence = ("GEPA · small ← big · light, 3 seeds: optimized 58.0–66.0 % (median 62.0 %) against 20.0 % before; "
                "every seed gained at least 38.0 points of accuracy.")
    assert any(sentence in m for m in texts(at, "markdown")), texts(at, "markdown")
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if "over 3 seeds" in json.dumps(json.loads(c.proto.spec).get("layout", {}).get("title", "")))
    assert "58.0–66.0 %" in spec["layout"]["title"]["text"]
    assert {t["name"] for t in spec["data"]} == {"Range (optimized)", "Original (each seed)", "Optimized (each seed)",
                                                 "Median (optimized)"}
    warnings = texts(at, "warning")
    assert any("one of 3 seeds" in w and "this seed 66.0 %, the best of them" in w for w in warnings), warnings


def test_compare_without_repeats_has_no_spread(empty):
    from core.config.settings import load_settings
    from core.tracking.store import TAG, RunStore

    store = RunStore(load_settings().ensure())
    run_id = store.start_run("optimization", "demo", run_name="GEPA", params={"seed": 0},
                             tags={f"{TAG}model": "small", f"{TAG}program": "gepa", f"{TAG}repeat_key": "k"})
    store.log_metrics(run_id, {"original_test_accuracy": 0.2, "optimized_test_accuracy": 0.6})
    store.end_run(run_id)
    at = open_page("pages/compare.py")
    assert_clean(at)
    assert "Seed spread" not in texts(at, "subheader")
