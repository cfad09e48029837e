"""The shareable HTML report over real runs in a tmp store: an optimization with fake LMs, two baselines against the
stub server on the same test examples; what the page says, that user text stays inert, that nothing links out."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.analytics.verdict import verdict
from core.lm.models import ModelSpec, openai_compatible
from core.optimize import OptimizeConfig, run_optimization
from core.report import build_report, write_report
from core.tasks import SampleSpec, TaskRef
from core.tracking.store import RunStore
from tests.fake_lm import fake_lm
from tests.scenario import make_table
from tests.stub_server import (
    StubLLMServer,
    chat_answer,
    field_value,
    hinted_label,
    improved_instruction,
    keyword_classifier,
    keyword_label,
    last_user_text,
)

SCRIPT = "<script>window.pwned=1</script>"
SAMPLE = SampleSpec(3, 2, 4, seed=3)


def student_reply(system, user):
    return chat_answer("target", hinted_label(system, field_value(user, "description")))


def reflection_reply(system, user):
    return json.dumps({"new_instruction": improved_instruction(system + "\n" + user)})


def half_right(model, messages, body):
    """stub-small misses every RESULTS sentence; stub-large gets all right."""
    if model == "stub-small" and keyword_label(field_value(last_user_text(messages), "description")) == "RESULTS":
        return chat_answer("target", "BACKGROUND")
    return keyword_classifier(model, messages, body)


def write_task(path: Path) -> TaskRef:
    """The scenario's sentences, each ending in a script tag (a hostile task file: the page must keep it text)."""
    table = make_table(12)
    table["description"] = table["description"] + " " + SCRIPT
    table.to_csv(path, index=False)
    return TaskRef(kind="file", source=str(path), name="scenario")


HAND_RECORD = {  # a search record as interfaces.md fixes it, with a rejected proposal whose text is markup
    "version": 1, "components": ["self"], "val_ids": [0, 1, 2], "val_texts": [f"a {SCRIPT}", "b", "c"],
    "candidates": [
        {"idx": 0, "parents": [], "kind": "seed", "instructions": {"self": "Classify."}, "val_score": 0.33,
         "val_scores": [1.0, 0.0, 1.0], "metric_calls": 3, "iteration": 0},
        {"idx": 1, "parents": [0], "kind": "reflection", "instructions": {"self": "Classify. Label as RESULTS."},
         "val_score": 0.67, "val_scores": [1.0, 1.0, 0.0], "metric_calls": 12, "iteration": 1}],
    "best_idx": 1, "pareto_front": [1],
    "proposals": [{"iteration": 2, "kind": "reflection", "parents": [1], "minibatch_ids": [4, 7, 9],
                   "parent_scores": [1.0, 1.0, 0.0], "new_scores": [0.0, 1.0, 0.0], "accepted": False, "new_idx": None,
                   "reason": "not better on the minibatch", "instructions": {"self": "Worse <b>idea</b>"},
                   "feedback": [{"text": "t", "gold": "RESULTS", "predicted": "BACKGROUND",
                                 "feedback": "expected RESULTS"}]}],
    "roles": {"student_train": {"calls": 9, "metric_calls": 9, "input_tokens": 900, "output_tokens": 90,
                                "cost_usd": 0.001},
              "reflection": {"calls": 2, "metric_calls": 0, "input_tokens": 400, "output_tokens": 40,
                             "cost_usd": 0.002}}}


def build_runs(store: RunStore, tmp: Path, base_url: str) -> dict[str, str]:
    """An optimization (fake LMs) and two baselines (HTTP) on one task's identical test split: their run ids."""
    from core.evaluation.baseline import run_baselines

    ref = write_task(tmp / "scenario.csv")
    priced = dict(input_price_per_m=1.0, output_price_per_m=4.0)
    student = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1", **priced)
    teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1", **priced)
    lms = {"pupil": fake_lm(student_reply, "fake/pupil"), "teacher": fake_lm(reflection_reply, "fake/teacher")}
    config = OptimizeConfig(task_ref=ref, sample=SAMPLE, student=student, reflection=teacher, auto=None,
                            max_metric_calls=40, threads=2, reflection_minibatch_size=3)
    result = run_optimization(config, store, log_dir=tmp / "gepa", lm_factory=lambda spec: lms[spec.name])
    assert result.status == "succeeded", result.error
    assert "search.json" in store.list_artifacts(result.run_id)
    specs = [openai_compatible(name, name, base_url, **priced) for name in ("stub-small", "stub-large")]
    outcomes = run_baselines(store, ref, SAMPLE, specs, threads=4)
    return {"optimization": result.run_id, "original": result.original_eval_run_id,
            "optimized": result.optimized_eval_run_id, **{o.spec.name: o.run_id for o in outcomes}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data dir with the runs, shared by this file's tests (an optimization takes seconds)."""
    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp, StubLLMServer() as stub:
        mp.setenv("GEPA_STUDIO_DATA_DIR", str(tmp / "studio"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'studio' / 'mlflow.db'}")
        mp.setenv("GEPA_STUDIO_SECRETS", str(tmp / "no-secrets.toml"))
        mp.setenv("GEPA_STUDIO_TRACES", "off")  # the report reads no traces; tracing would only slow the runs
        stub.responder = half_right
        from core.config.settings import load_settings

        store = RunStore(load_settings().ensure())
        ids = build_runs(store, tmp, stub.base_url)
        html = build_report(store, [ids["optimization"], ids["stub-small"], ids["stub-large"]])
        yield {"store": store, "ids": ids, "html": html, "tmp": tmp}


class Links(HTMLParser):
    """Every src/href of the page's tags (script bodies are not tags: plotly's code is not read as links)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]


def test_the_report_says_what_the_runs_found(world):
    store, ids, html = world["store"], world["ids"], world["html"]
    for key in ("optimization", "stub-small", "stub-large"):
        assert ids[key] in html
    before, after = (store.read_csv(ids[k], "records.csv") for k in ("original", "optimized"))
    sentence = verdict(before, after, "the original pupil · Predict", "Optimized pupil · Predict").sentence
    assert f'<p class="verdict">{_esc(sentence)}</p>' in html
    small, large = (store.read_csv(ids[k], "records.csv") for k in ("stub-small", "stub-large"))
    pair = verdict(small, large, "stub-small · Predict", "stub-large · Predict").sentence
    assert _esc(pair) in html  # the more accurate run is B: "stub-large … better than stub-small"
    for key in ("original", "optimized"):  # both prompts, whole
        assert f'<pre class="prompt">{_esc(store.read_text(ids[key], "prompt.txt"))}</pre>' in html
    assert "<ins>" in html  # the word diff shows what GEPA added
    flips = (~before["correct"].astype(bool) & after["correct"].astype(bool)).sum()
    assert f"{flips} went wrong → right" in html
    for heading in ("GEPA's search</h3>", "Rejected proposals", "Calls and spend by role", "Prompt growth",
                    "Confusion matrices", "F1 per label", "Pairs of runs on the same examples"):
        assert heading in html, heading
    assert "test evaluation</td>" in html and "reflection</td>" in html  # cost by role, test evaluation included


def test_the_page_is_self_contained_and_user_text_stays_inert(world):
    html = world["html"]
    links = Links()
    links.feed(html)
    assert [u for u in links.urls if re.match(r"\s*(https?:)?//", u)] == []
    assert html.count("* plotly.js v") == 1  # plotly's JavaScript, embedded once
    figures = int(re.search(r'name="gepa-studio-figures" content="(\d+)"', html).group(1))
    assert figures >= 8 and html.count('class="plotly-graph-div"') == figures
    assert SCRIPT not in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


def test_optimizations_without_a_search_record_or_test_results_say_so(world):
    store = world["store"]
    bare, recorded = (store.start_run("optimization", "scenario", run_name=f"GEPA · {name}",
                                      tags={"studio.model": "pupil"}) for name in ("old", "stopped"))
    store.log_artifacts(recorded, {"search.json": HAND_RECORD})
    for run_id in (bare, recorded):
        store.end_run(run_id, "KILLED")
    html = build_report(store, [bare, recorded])
    old, new = html.split(f'id="run-{recorded}"')
    assert "no record of GEPA&#x27;s search" in old and f"python -m core finish {bare}" in old
    assert "no record of GEPA" not in new and f"python -m core finish {recorded}" in new
    assert ("Candidate #1, the one GEPA returned, is best (ties included) on 2 of 3 validation examples; on 1 "
            "another candidate does better (#0 on 1)") in new
    assert "Worse &lt;b&gt;idea&lt;/b&gt;" in new and "not better on the minibatch" in new
    assert "expected RESULTS" in new  # the feedback the reflection model read
    assert "student on train minibatches</td>" in new and "test evaluation</td>" not in new  # none to count
    assert re.search(r'name="gepa-studio-figures" content="4"', html)  # score curve, lineage, grid, cost by role


def test_cli_writes_the_file_and_an_unknown_run_is_exit_2(world, capsys):
    from core.cli.main import main

    out = world["tmp"] / "out" / "report.html"
    assert main(["report", world["ids"]["stub-small"], world["ids"]["stub-large"], "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    page = out.read_text(encoding="utf-8")
    assert "stub-large" in page and "Evaluations" in page
    assert main(["report", "no-such-run"]) == 2
    err = capsys.readouterr().err
    assert "no-such-run" in err and "hint:" in err
    folder = world["tmp"] / "reports"
    folder.mkdir()
    written = write_report(world["store"], [world["ids"]["stub-small"]], folder)  # a folder: the default name in it
    assert written.parent == folder.resolve() and re.fullmatch(r"gepa-studio-report-[\d-]+\.html", written.name)


def _esc(text: str) -> str:
    import html

    return html.escape(text, quote=True)
