"""GEPA's search record: recorded from a real small GEPA run (fake LMs, then the stub server over HTTP), checked
against GEPA's own detailed results and cost metrics; its builders and charts on real, synthetic and empty records."""

import json
import math
import threading

import pandas as pd
import plotly.graph_objects as go
import pytest

from core.analytics import charts
from core.analytics import search as views
from core.lm.models import ModelSpec, Price
from core.optimize import CostMeter, run_optimization
from core.optimize.search import SearchRecorder
from core.optimize.search_record import FEEDBACK_ROWS, load_record
from core.tasks import SampleSpec, TaskRef
from tests.core.test_optimize import PRICED, config, fake_factory, http_config, reflection_reply
from tests.scenario import write_csv
from tests.stub_server import chat_answer, gepa_responder


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


SMALL_TEST = SampleSpec(3, 2, 1, seed=3)  # one test example per label: the test evaluations are not what is tested here


def models():
    return (ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED),
            ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED))


def teacher(bad_every: int = 2):
    """The reflection model: every ``bad_every``-th proposal is an instruction that makes the student worse (GEPA
    rejects it on its minibatch); it also answers as the LLM judge."""
    proposals = [0]

    def reply(system, user):
        if "rationale" in system:  # core.program.metric's JudgeFeedback signature
            return chat_answer("rationale", "The sentence names the study's aim, so the label is OBJECTIVE.")
        proposals[0] += 1
        if proposals[0] % bad_every == 0:
            return json.dumps({"new_instruction": "Always answer BACKGROUND."})
        return reflection_reply(system, user)

    return reply


def sum_roles(record, *roles, key="cost_usd"):
    return sum(record["roles"][r][key] for r in roles)


def test_record_agrees_with_gepa_and_the_cost_metrics_across_a_resume(settings, store, ref):
    student, reflection = models()
    log_dir = settings.jobs_dir / "search" / "gepa"
    cfg = config(ref, student, reflection, max_metric_calls=60, feedback="judge", sample=SMALL_TEST)
    stop, reflect = threading.Event(), teacher()  # one teacher: its count of proposals goes on in the second attempt
    first = run_optimization(cfg, store, log_dir=log_dir, should_stop=stop.is_set, lm_factory=fake_factory(reflect),
                             progress=lambda p: stop.set() if p.get("iteration", 0) >= 2 else None)
    assert first.status == "cancelled"
    before = store.read_json(first.run_id, "search.json")
    assert before["proposals"] and len(before["candidates"]) == 2
    assert load_record(log_dir / "search.json") == before  # the resumable copy is the logged one
    res = run_optimization(cfg, store, log_dir=log_dir, run_id=first.run_id, previous=first.progress,
                           lm_factory=fake_factory(reflect))  # new LMs, as a resumed job's new process has
    assert res.status == "succeeded", res.error
    record, details = store.read_json(res.run_id, "search.json"), store.read_json(res.run_id, "detailed_results.json")
    # The resumed run's record goes on from the first attempt's.
    assert record["proposals"][:len(before["proposals"])] == before["proposals"]
    assert len(record["proposals"]) > len(before["proposals"])
    assert record["candidates"][:2] == before["candidates"]
    # Candidates agree with GEPA's own detailed results.
    cands = record["candidates"]
    assert [c["idx"] for c in cands] == list(range(len(details["candidates"]))) and len(cands) >= 3
    assert [c["parents"] for c in cands] == [[p for p in ps if p is not None] for ps in details["parents"]]
    assert [c["val_score"] for c in cands] == pytest.approx(details["val_aggregate_scores"])
    assert [c["metric_calls"] for c in cands] == details["discovery_eval_counts"]
    assert [c["instructions"] for c in cands] == details["candidates"]
    for c, subscores in zip(cands, details["val_subscores"], strict=True):
        assert c["val_scores"] == [subscores[str(i)] for i in record["val_ids"]]
    assert record["best_idx"] == details["best_idx"]
    best = details["per_val_instance_best_candidates"]
    assert record["pareto_front"] == sorted({i for v in best.values() for i in v})
    assert len(record["val_texts"]) == len(record["val_ids"]) and all(record["val_texts"])
    # Proposals: the accepted ones made the candidates; a rejected one carries the scores and feedback that decided it.
    accepted = [p for p in record["proposals"] if p["accepted"]]
    assert sorted(p["new_idx"] for p in accepted) == [c["idx"] for c in cands if c["kind"] != "seed"]
    for p in accepted:
        assert p["instructions"] == cands[p["new_idx"]]["instructions"]
    rejected = [p for p in record["proposals"] if not p["accepted"]]
    assert rejected, record["proposals"]
    for p in rejected:
        assert len(p["minibatch_ids"]) == len(p["parent_scores"]) == len(p["new_scores"]) == 3
        assert sum(p["new_scores"]) <= sum(p["parent_scores"]) and "not better" in p["reason"]
        assert p["instructions"] == {"self": "Always answer BACKGROUND."}
        assert 0 < len(p["feedback"]) <= FEEDBACK_ROWS
        for row in p["feedback"]:
            assert row["text"] and row["gold"] in row["feedback"] and row["predicted"]
        assert any("Judge:" in row["feedback"] for row in p["feedback"])  # what the reflection model read
    # Cost by role adds up to the run's metrics over both attempts; the judge's calls are split from reflection's.
    metrics, progress = store.get_run(res.run_id).data.metrics, res.progress
    assert abs(sum_roles(record, "student_train", "student_val") - metrics["student_cost_usd"]) < 1e-9
    assert abs(sum_roles(record, "reflection", "judge") - metrics["reflection_cost_usd"]) < 1e-9
    test_calls = sum(store.get_run(r).data.metrics["lm_calls"]
                     for r in (res.original_eval_run_id, res.optimized_eval_run_id))
    assert sum_roles(record, "student_train", "student_val", key="calls") == progress["student_calls"] - test_calls
    assert sum_roles(record, "reflection", "judge", key="calls") == progress["reflection_calls"]
    assert record["roles"]["reflection"]["calls"] == len(record["proposals"])  # one call per proposal
    assert record["roles"]["judge"]["calls"] > 0 and record["roles"]["judge"]["cost_usd"] > 0
    assert sum_roles(record, *record["roles"], key="metric_calls") == metrics["metric_calls_used"]
    # Train minibatches: 3 calls for each iteration's parent and 3 for each proposal; the rest is validation.
    iterations = int(metrics["iterations"])
    assert record["roles"]["student_train"]["metric_calls"] == 3 * (iterations + len(record["proposals"]))
    assert record["roles"]["student_val"]["metric_calls"] == len(record["val_ids"]) * len(cands)


def test_a_run_that_fails_still_logs_its_record(settings, store, ref):
    student, reflection = models()
    seen, created = [], []

    def should_stop():  # GEPA asks between iterations: the third time, something systemic breaks
        seen.append(1)
        if len(seen) == 3:
            raise RuntimeError("the job's state file vanished")
        return False

    with pytest.raises(RuntimeError):
        run_optimization(config(ref, student, reflection, max_metric_calls=60, sample=SMALL_TEST), store,
                         log_dir=settings.jobs_dir / "fails", should_stop=should_stop,
                         lm_factory=fake_factory(teacher()), on_run_created=created.append)
    run_id = created[0]
    assert store.get_run(run_id).info.status == "FAILED"
    record = store.read_json(run_id, "search.json")
    assert record["candidates"][0]["kind"] == "seed" and record["roles"]["student_val"]["calls"] > 0


@pytest.mark.slow
def test_over_http_the_record_gives_every_view(settings, store, ref, stub):
    stub.responder = gepa_responder
    res = run_optimization(http_config(ref, stub, max_metric_calls=40, sample=SMALL_TEST), store,
                           log_dir=settings.jobs_dir / "http")
    assert res.status == "succeeded", res.error
    record = store.read_json(res.run_id, "search.json")
    curve, lin, grid = views.score_curve(record), views.lineage(record), views.pareto_grid(record)
    assert len(curve) == len(lin) == grid.shape[1] >= 2 and curve["best_so_far"].is_monotonic_increasing
    assert grid.shape[0] == len(record["val_ids"]) and lin["is_best"].sum() == 1
    assert "Label as" in lin.loc[lin["is_best"], "instruction"].iloc[0]
    roles = views.cost_by_role(record)
    assert {"student on train minibatches", "student on validation", "reflection"} <= set(roles["role"])
    assert roles["cost_usd"].sum() == pytest.approx(store.get_run(res.run_id).data.metrics["optimization_cost_usd"])
    reflected = sum(1 for r in stub.chat_requests() if r["body"]["model"] == "stub-large")
    assert reflected == record["roles"]["reflection"]["calls"]
    assert all(t.endswith(".") for t in record["val_texts"])  # the examples' own sentences


# The recorder on its own: events GEPA fires in a merge, an error and a broken event ---------------------------


class History:
    def __init__(self):
        self.history = []

    def call(self, n_in=10, n_out=2):
        self.history.append({"uuid": str(len(self.history)),
                             "usage": {"prompt_tokens": n_in, "completion_tokens": n_out}})


def test_recorder_records_a_merge_survives_bad_events_and_saves_atomically(tmp_path):
    student, refl = History(), History()
    price = Price(1.0, 2.0, "user")
    rec = SearchRecorder((CostMeter(student, price), CostMeter(refl, price)), tmp_path,
                         valset=[{"text": "a"}, {"text": "b"}])
    rec.on_optimization_start({"seed_candidate": {"self": "seed"}})
    student.call(), student.call()
    rec.on_valset_evaluated({"iteration": 0, "candidate_idx": 0, "candidate": {"self": "seed"}, "parent_ids": [],
                             "scores_by_val_id": {0: 1.0, 1: 0.0}, "num_examples_evaluated": 2})
    for idx, scores in ((1, {0: 0.0, 1: 1.0}), (2, {0: 1.0, 1: 0.0})):
        rec.on_budget_updated({"metric_calls_used": 2 * idx + 2, "metric_calls_delta": 2})
        rec.on_valset_evaluated({"iteration": idx, "candidate_idx": idx, "candidate": {"self": f"c{idx}"},
                                 "parent_ids": [0], "scores_by_val_id": scores})
    rec.on_evaluation_start({"iteration": 3, "candidate_idx": None, "capture_traces": False, "parent_ids": [1, 2],
                             "inputs": [{"text": "b"}]})
    student.call()
    rec.on_evaluation_end({"iteration": 3, "candidate_idx": None, "parent_ids": [1, 2], "scores": [1.0]})
    rec.on_merge_attempted({"iteration": 3, "parent_ids": [1, 2], "merged_candidate": {"self": "merged"}})
    rec.on_merge_rejected({"iteration": 3, "parent_ids": [1, 2], "reason": "Merged score 1.0 worse than both"})
    rec.on_candidate_accepted({"iteration": 3})  # malformed (no new_candidate_idx): logged, not raised
    rec.on_iteration_end({"iteration": 3, "state": None})
    rec.on_candidate_selected({"iteration": 4, "candidate_idx": 0})
    rec.on_proposal_start({"iteration": 4, "reflective_dataset": {"self": [{"Inputs": {"text": "a"},
                                                                              "Generated Outputs": {"y": "N"},
                                                                              "Feedback": "x" * 5000}]}})
    refl.call()
    rec.on_error({"iteration": 4, "exception": RuntimeError("secret-key-123 leaked")})
    saved = load_record(tmp_path / "search.json")
    record = rec.record()
    assert saved is not None and saved["proposals"] == record["proposals"][:1]
    merge, failed = record["proposals"]
    assert merge["kind"] == "merge" and merge["minibatch_ids"] == [1] and merge["parent_scores"] == [1.0]
    assert merge["new_scores"] == [1.0] and not merge["accepted"] and merge["instructions"] == {"self": "merged"}
    assert failed["reason"] == "the iteration failed (RuntimeError)" and "secret" not in json.dumps(record)
    assert len(failed["feedback"][0]["feedback"]) == 2000
    assert [c["metric_calls"] for c in record["candidates"]] == [0, 2, 4]
    assert record["val_texts"] == ["a", "b"] and record["best_idx"] == 0 and record["components"] == ["self"]
    assert record["roles"]["student_val"]["calls"] == 3 and record["roles"]["reflection"]["calls"] == 1
    assert record["roles"]["reflection"]["cost_usd"] == pytest.approx(14e-6)
    assert not list(tmp_path.glob("*.tmp"))


# Builders and charts ---------------------------------------------------------------------------------------------


def synthetic_record():
    cand = lambda idx, parents, kind, scores: {  # noqa: E731
        "idx": idx, "parents": parents, "kind": kind, "instructions": {"self": f"<b>rule {idx}</b> " + "y" * 300},
        "val_score": sum(scores) / len(scores), "val_scores": scores, "metric_calls": 10 * idx, "iteration": idx}
    return {
        "version": 1, "components": ["self"], "val_ids": [0, 1, 2], "val_texts": ["first text", "second", "third"],
        "candidates": [cand(0, [], "seed", [0.0, 1.0, 0.0]), cand(1, [0], "reflection", [1.0, 0.0, 1.0]),
                       cand(2, [0], "reflection", [0.0, 1.0, 1.0]), cand(3, [1, 2], "merge", [1.0, 1.0, 0.5])],
        "best_idx": 3, "pareto_front": [1, 2, 3],
        "proposals": [{"iteration": 2, "kind": "reflection", "parents": [1], "minibatch_ids": [4, 5],
                       "parent_scores": [1.0, 0.0], "new_scores": [0.0, 0.0], "accepted": False, "new_idx": None,
                       "reason": "New subsample score 0.0 not better than old score 1.0",
                       "instructions": {"self": "worse"},
                       "feedback": [{"text": "t", "gold": "A", "predicted": "B", "feedback": "Wrong."}]},
                      {"iteration": 3, "kind": "reflection", "parents": [0], "minibatch_ids": [], "parent_scores": [],
                       "new_scores": [], "accepted": False, "new_idx": None, "reason": "", "instructions": {},
                       "feedback": []}],
        "roles": {"student_train": {"calls": 30, "metric_calls": 30, "input_tokens": 900, "output_tokens": 30,
                                    "cost_usd": 0.002},
                  "student_val": {"calls": 12, "metric_calls": 12, "input_tokens": 300, "output_tokens": 12,
                                  "cost_usd": 0.001},
                  "reflection": {"calls": 3, "metric_calls": 0, "input_tokens": 800, "output_tokens": 90,
                                 "cost_usd": 0.004},
                  "judge": {"calls": 0, "metric_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}},
    }


def test_builders_read_a_record():
    record = synthetic_record()
    lin = views.lineage(record)
    assert lin["depth"].tolist() == [0, 1, 1, 2] and lin["is_best"].tolist() == [False, False, False, True]
    assert lin["on_front"].tolist() == [False, True, True, True] and lin["parents"].iloc[3] == [1, 2]
    curve = views.score_curve(record)
    assert curve["best_so_far"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2.5 / 3])
    grid = views.pareto_grid(record)
    assert list(grid.columns) == [0, 1, 2, 3] and grid.loc[2, 3] == 0.5
    assert views.best_candidates(grid).tolist() == [[1, 3], [0, 2, 3], [1, 2]]
    rejected = views.rejected_proposals(record)
    assert rejected["parent_score"].tolist()[0] == 1.0 and rejected["new_score"].tolist()[0] == 0.0
    assert "gold A" in rejected["feedback"].iloc[0] and rejected["reason"].iloc[1] == views.NO_INSTRUCTION
    assert math.isnan(rejected["new_score"].iloc[1])
    roles = views.cost_by_role(record, {"calls": 20, "input_tokens": 500, "output_tokens": 20, "cost_usd": 0.0005})
    assert roles["role"].tolist() == ["student on train minibatches", "student on validation", "reflection",
                                      "test evaluation"]  # the judge spent nothing: left out
    assert roles["cost_usd"].sum() == pytest.approx(0.0075)


@pytest.mark.parametrize("record", [None, {}, {"version": 0}, {"candidates": "garbage", "val_ids": [0]},
                                    {"candidates": [{"idx": 0, "val_scores": None}], "proposals": [None]}])
def test_builders_and_charts_on_empty_or_old_records(record):
    frames = (views.score_curve(record), views.lineage(record), views.rejected_proposals(record),
              views.cost_by_role(record))
    assert list(frames[0].columns) == views.CURVE_COLUMNS and list(frames[3].columns) == views.COST_COLUMNS
    assert frames[2].empty and frames[3].empty
    grid = views.pareto_grid(record)
    assert grid.empty and views.best_candidates(grid).empty
    for fig in (charts.pareto_grid_chart(grid), charts.cost_by_role_chart(frames[3])):
        assert isinstance(fig, go.Figure) and not fig.data and fig.layout.annotations
    score, lineage = charts.search_score_chart(frames[0]), charts.lineage_chart(frames[1])
    assert bool(score.data) == bool(lineage.data) == (not frames[0].empty)


def test_charts_draw_the_search():
    record = synthetic_record()
    score = charts.search_score_chart(views.score_curve(record))
    assert [t.name for t in score.data] == ["best so far", "seed", "reflection", "merge"]
    assert score.data[0].line.shape == "hv" and "83%" in score.layout.title.text
    lineage = charts.lineage_chart(views.lineage(record))
    names = [t.name for t in lineage.data]
    assert names == ["parent → child", "merge parents → child", "seed", "reflection", "merge", "best"]
    assert lineage.data[1].line.dash == "dash" and list(lineage.data[1].x) == [1, 3, None, 2, 3, None]
    assert list(lineage.data[-1].x) == [3] and "Candidate #3 is best" in lineage.layout.title.text
    hover = lineage.data[2].hovertext[0]
    assert "&lt;b&gt;rule 0" in hover and "y" * 200 not in hover  # escaped, the first ~200 characters
    grid = views.pareto_grid(record)
    heat = charts.pareto_grid_chart(grid, record["val_texts"])
    assert isinstance(heat.data[0], go.Heatmap) and heat.data[0].customdata[0][0][0] == "first text"
    stars = heat.data[1]  # where another candidate beats the winner (#3): #2 on example 2
    assert list(zip(stars.x, stars.y, strict=True)) == [("2", "#1"), ("2", "#2")]
    assert heat.layout.title.text.startswith("Candidate #3 is best on 2 of 3 validation examples (others beat it on 1)")
    cost = charts.cost_by_role_chart(views.cost_by_role(record))
    assert list(cost.data[0].y) == ["student on train minibatches", "student on validation", "reflection"]
    assert "3 calls" in cost.data[0].text[2] and cost.layout.title.text.startswith("Reflection cost most")
    free = views.cost_by_role(record).assign(cost_usd=0.0)
    assert charts.cost_by_role_chart(free).layout.xaxis.title.text == "Calls (count)"


def test_a_grid_with_unevaluated_cells():
    record = synthetic_record()
    record["candidates"][2]["val_scores"] = [None, 1.0]  # a short, partial row
    grid = views.pareto_grid(record)
    assert grid[2].isna().tolist() == [True, False, True]
    assert views.best_candidates(pd.DataFrame({0: [float("nan")]})).tolist() == [[]]


def test_a_tie_at_nothing_is_no_win():
    """Where every candidate is wrong, the winner is not "best or tied": the sentence counts those apart."""
    record = {"val_ids": [0, 1, 2, 3], "best_idx": 1, "candidates": [
        {"idx": 0, "parents": [], "kind": "seed", "val_scores": [0.0, 0.0, 1.0, 0.0]},
        {"idx": 1, "parents": [0], "kind": "reflection", "val_scores": [0.0, 1.0, 0.0, 1.0]}]}
    grid = views.pareto_grid(record)
    assert views.grid_summary(grid, 1) == {"n": 4, "wins": 2, "none": 1, "beaten": 1, "beaten_by": {0: 1}}
    sentence = views.grid_sentence(grid, 1)
    assert "best (ties included) on 2 of 4" in sentence and "no candidate scores above 0 on 1 of them" in sentence
    assert "#0 on 1" in sentence
    assert charts.pareto_grid_chart(grid).layout.title.text == (
        "Candidate #1 is best on 2 of 4 validation examples (none scores above 0 on 1; others beat it on 1)")
