"""GEPA's search over a program with several predictors (#24): which predictor each candidate changed, in the lineage
table and on its chart, from a record in the format a run of examples/programs/extract_then_classify.py saves
(``search.json``: its components, each candidate's instruction per component, each proposal's rewritten ones); a
record with one component draws exactly as before."""

import json

import pytest

from core.analytics import charts
from core.analytics import search as views
from core.analytics.charts.search import KIND_STYLE
from tests.core.test_search import synthetic_record

EXTRACT, CLASSIFY = "extract.predict", "classify"
E0 = "Quote the part of the sentence that carries its finding or claim."
E1 = E0 + "\nQuote the whole clause that carries the result."
E2 = E1 + " Never quote the methods."
C0 = "Label the sentence with its role in a randomized controlled trial's abstract."
C1 = C0 + "\nLabel as METHODS when the sentence mentions: randomized, randomised, were assigned, participants."
C2 = C1 + "\nLabel as RESULTS when the sentence mentions: significant, p <, increased, decreased, compared with, %."


def program_record() -> dict:
    """Five candidates of a two-predictor program: #1 rewrote classify, #2 extract.predict, #3 merged #1 and #2
    (taking #2's extract.predict), #4 rewrote both (an "all" proposal); two rejected proposals."""
    def cand(idx, parents, kind, extract, classify, score):
        return {"idx": idx, "parents": parents, "kind": kind, "instructions": {EXTRACT: extract, CLASSIFY: classify},
                "val_score": score, "val_scores": [score, score], "metric_calls": 20 * idx, "iteration": 2 * idx}

    def proposal(iteration, parents, instructions):
        return {"iteration": iteration, "kind": "reflection", "parents": parents, "minibatch_ids": [1, 2],
                "parent_scores": [1.0, 0.0], "new_scores": [1.0, 0.0], "accepted": False, "new_idx": None,
                "reason": "New subsample score 1.0 not better than old score 1.0", "instructions": instructions,
                "feedback": [{"text": "We randomised 40 patients.", "gold": "METHODS", "predicted": "BACKGROUND",
                              "feedback": "Wrong: expected METHODS, got 'BACKGROUND'."}]}

    return {
        "version": 1, "components": [EXTRACT, CLASSIFY], "val_ids": [0, 1], "val_texts": ["one", "two"],
        "candidates": [cand(0, [], "seed", E0, C0, 0.2), cand(1, [0], "reflection", E0, C1, 0.3),
                       cand(2, [0], "reflection", E1, C0, 0.25), cand(3, [1, 2], "merge", E1, C1, 0.4),
                       cand(4, [1], "reflection", E2, C2, 0.5)],
        "best_idx": 4, "pareto_front": [3, 4],
        "proposals": [proposal(3, [1], {EXTRACT: E0 + " Label it too."}),
                      proposal(9, [4], {EXTRACT: E2 + " And more.", CLASSIFY: C2 + " And more."})],
        "roles": {}, "errors": [],
    }


def marker_traces(fig) -> dict:
    return {t.name: t for t in fig.data if t.mode == "markers+text"}


def test_lineage_says_which_component_each_candidate_changed():
    record = program_record()
    lin = views.lineage(record)
    old = ["idx", "parents", "kind", "val_score", "depth", "is_best", "on_front", "instruction", "metric_calls",
           "iteration"]
    assert list(lin.columns[:len(old)]) == old and lin.attrs["components"] == [EXTRACT, CLASSIFY]
    assert lin["changed"].tolist() == [[], [CLASSIFY], [EXTRACT], [EXTRACT], [EXTRACT, CLASSIFY]]
    assert lin["depth"].tolist() == [0, 1, 1, 2, 2] and lin["is_best"].tolist() == [False] * 4 + [True]
    assert lin["instructions"].iloc[3] == {EXTRACT: E1, CLASSIFY: C1}
    assert lin["instruction"].iloc[0] == f"{EXTRACT}: {E0}\n\n{CLASSIFY}: {C0}"  # as before: one text, by name
    changes = views.component_changes(record)
    assert list(changes.columns) == views.CHANGES_COLUMNS
    assert changes.to_dict("records") == [
        {"idx": 1, "parent": 0, "component": CLASSIFY, "kind": "reflection"},
        {"idx": 2, "parent": 0, "component": EXTRACT, "kind": "reflection"},
        {"idx": 3, "parent": 1, "component": EXTRACT, "kind": "merge"},
        {"idx": 4, "parent": 1, "component": views.SEVERAL, "kind": "reflection"}]
    rejected = views.rejected_proposals(record)
    assert rejected["components"].tolist() == [[EXTRACT], [EXTRACT, CLASSIFY]]
    assert views.changed_components({"a": "x"}, {"a": "x", "b": "y"}) == ["b"]  # one only a side has: changed
    no_names = {k: v for k, v in record.items() if k != "components"}  # an older record: from the candidates
    assert views.lineage(no_names).attrs["components"] == [EXTRACT, CLASSIFY]


def test_the_chart_colors_candidates_by_the_component_they_changed():
    fig = charts.lineage_chart(views.lineage(program_record()))
    names = [t.name for t in fig.data]
    assert names == ["parent → child", "merge parents → child", "seed", f"changed {EXTRACT}", f"changed {CLASSIFY}",
                     "changed several", "reflection (symbol)", "merge (symbol)", "best"]
    traces = marker_traces(fig)
    extract, classify, several = (traces[f"changed {n}"] for n in (EXTRACT, CLASSIFY, "several"))
    assert list(extract.x) == [2, 3] and list(extract.marker.symbol) == ["circle", "diamond"]  # the kind: its symbol
    assert list(classify.x) == [1] and list(several.x) == [4]
    colors = {t.marker.color for t in (traces["seed"], extract, classify, several)}
    assert len(colors) == 4 and traces["seed"].marker.color == KIND_STYLE["seed"][2]
    assert "changed: classify" in classify.hovertext[0]
    assert "METHODS when the sentence" in classify.hovertext[0] and "Quote" not in classify.hovertext[0]
    assert "merge" in extract.hovertext[1] and f"changed: {EXTRACT}" in extract.hovertext[1]
    assert f"changed: {EXTRACT}, {CLASSIFY}" in several.hovertext[0]
    assert "changed:" not in traces["seed"].hovertext[0]
    key = next(t for t in fig.data if t.name == "merge (symbol)")
    assert key.marker.symbol == "diamond" and list(key.x) == [None]
    assert "Candidate #4 is best" in fig.layout.title.text
    plain = charts.lineage_chart(views.lineage(program_record()), components=[EXTRACT])  # told one: colored by kind
    assert [t.name for t in plain.data if t.mode == "markers+text"] == ["seed", "reflection", "merge"]


def test_one_component_draws_as_before():
    record = synthetic_record()
    lin = views.lineage(record)
    assert lin["changed"].tolist() == [[], ["self"], ["self"], ["self"]]
    fig = charts.lineage_chart(lin)
    assert [t.name for t in fig.data] == ["parent → child", "merge parents → child", "seed", "reflection", "merge",
                                          "best"]
    for trace in marker_traces(fig).values():
        assert trace.marker.color == KIND_STYLE[trace.name][2] and trace.marker.symbol == KIND_STYLE[trace.name][1]
        assert not any("changed:" in h for h in trace.hovertext)
    before = lin.drop(columns=["changed", "instructions"])  # the frame as it was: the same figure
    before.attrs = {}
    assert json.loads(fig.to_json()) == json.loads(charts.lineage_chart(before).to_json())
    assert fig.layout.height == 460 + 22


@pytest.mark.parametrize("record", [None, {}, {"components": [EXTRACT, CLASSIFY], "candidates": []}])
def test_no_candidates_no_changes(record):
    assert views.lineage(record).empty and views.component_changes(record).empty
    assert list(views.component_changes(record).columns) == views.CHANGES_COLUMNS
