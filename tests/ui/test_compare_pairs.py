"""Compare's pairs of runs under AppTest: the verdict of original vs optimized with the prompt's growth, any two runs
side by side (verdict, flipped examples filtered by label and direction, CSV, confusion matrices), runs on other
examples, and the report built on a click."""

from __future__ import annotations

import json

from core.lm.models import openai_compatible
from core.tasks import SampleSpec, TaskRef
from tests.ui.conftest import assert_clean, open_page, texts


def store():
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    return RunStore(load_settings().ensure())


def records(run_id: str):
    return store().read_csv(run_id, "records.csv")


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def flips_table(at):
    """The flipped examples as shown (plain st.dataframe elements carry no key), or None."""
    return next((f.value for f in at.dataframe if {"change", "predicted_a"} <= set(f.value.columns)), None)


def chart_titles(at) -> list[str]:
    titles = []
    for chart in at.get("plotly_chart"):
        title = json.loads(chart.proto.spec).get("layout", {}).get("title", {})
        titles.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return titles


def test_original_vs_optimized_prints_the_verdict_and_the_prompt_growth(seeded):
    from core.analytics.stats import paired_summary

    at = open_page("pages/compare.py")
    assert_clean(at)
    summary = paired_summary(records(seeded.original_id), records(seeded.optimized_id))
    assert summary["sentence"] in texts(at, "info")
    shown = metrics(at)
    assert shown["Accuracy before"] == f"{summary['accuracy_before'] * 100:.1f}%"
    if summary["p_value"] is None:  # too few discordant examples: no p-value at all
        assert "McNemar exact p" not in shown and shown["Test examples"] == f"{int(summary['n'])}"
    else:
        p = summary["p_value"]
        assert shown["McNemar exact p"] == ("< 0.001" if p < 0.001 else f"{p:.3f}")
    growth = next(c for c in texts(at, "caption") if "Prompt growth:" in c)
    before, after = (store().get_run(r).data.metrics for r in (seeded.original_id, seeded.optimized_id))
    per_call = [m["input_tokens"] / m["lm_calls"] for m in (before, after)]
    assert f"{per_call[0]:,.0f} → {per_call[1]:,.0f} input tokens per call" in growth
    assert per_call[1] > per_call[0], "the optimized instruction is longer"


def test_two_runs_side_by_side_verdict_flips_filtered_and_confusion(seeded):
    from core.analytics.flips import flipped
    from core.analytics.verdict import verdict

    at = open_page("pages/compare.py")
    assert_clean(at)
    a, b = at.selectbox(key="compare.pair.a"), at.selectbox(key="compare.pair.b")
    assert (a.value, b.value) == (seeded.original_id, seeded.optimized_id)  # the runs picked under F1 per class
    flips = flipped(records(seeded.original_id), records(seeded.optimized_id))
    assert not flips.empty and set(flips["change"]) == {"wrong → right"}, flips  # the hints only add right answers
    table = flips_table(at)
    assert list(table["idx"]) == list(flips["idx"])
    assert at.get("download_button")  # the CSV of what is shown
    # Filter by gold label: only that label's examples stay.
    label = flips["gold"].iloc[0]
    at.multiselect(key="compare.flips.labels").select(label).run()
    table = flips_table(at)
    assert set(table["gold"]) == {label} and len(table) == int((flips["gold"] == label).sum())
    at.multiselect(key="compare.flips.changes").select("right → wrong").run()
    assert flips_table(at).empty
    assert any("showing 0." in c for c in texts(at, "caption"))
    # Both confusion matrices.
    titles = chart_titles(at)
    assert [t for t in titles if t.startswith(("A: ", "B: "))] == ["A: stub-small · Predict",
                                                                  "B: stub-small · Predict · optimized"], titles

    # Another pair: the large model's baseline against the original student (the newest "stub-small · Predict").
    large = seeded.baseline_ids["stub-large"]
    at.selectbox(key="compare.pair.b").select(large).run()
    assert_clean(at)
    expected = verdict(records(seeded.original_id), records(large), "stub-small · Predict", "stub-large · Predict")
    assert expected.sentence in texts(at, "info")


def test_runs_on_other_examples_are_a_clear_message(empty, stub):
    from core.evaluation.baseline import run_baselines
    from core.tracking.store import RunStore

    runs = RunStore(empty)
    for name, seed in (("stub-small", 1), ("stub-large", 2)):
        spec = openai_compatible(name, name, stub.base_url, input_price_per_m=0.1, output_price_per_m=0.4)
        run_baselines(runs, TaskRef(), SampleSpec(3, 0, 3, seed=seed), [spec], threads=4, cache=False)
    at = open_page("pages/compare.py")
    assert_clean(at)
    assert at.selectbox(key="compare.pair.a").value != at.selectbox(key="compare.pair.b").value
    said = [i for i in texts(at, "info") if "cannot be compared example by example" in i]
    assert said and "examples" in said[0]
    assert any("same test split" in c for c in texts(at, "caption"))  # the hint
    assert flips_table(at) is None


def test_the_report_is_built_on_a_click_then_downloads(seeded, monkeypatch):
    import core.report

    built: list[list[str]] = []
    real = core.report.build_report

    def spy(run_store, run_ids, **kw):
        built.append(list(run_ids))
        return real(run_store, run_ids, **kw)

    monkeypatch.setattr(core.report, "build_report", spy)
    at = open_page("pages/compare.py")
    assert_clean(at)
    assert not built and not [b for b in at.get("download_button") if b.proto.label.startswith("Download report")]
    at.button(key="compare.report.build").click().run()
    assert_clean(at)
    # The runs in view, the optimization, and the model its break-even is against (the report shows it too).
    assert built == [[seeded.original_id, seeded.optimized_id, seeded.optimization_id,
                      seeded.baseline_ids["stub-large"]]]
    download = [b for b in at.get("download_button") if b.proto.label == "Download report (HTML)"]
    assert len(download) == 1
    at.run()  # a rerun does not build it again
    assert len(built) == 1 and [b for b in at.get("download_button") if b.proto.label == "Download report (HTML)"]


def test_the_per_label_heatmap_shows_the_runs_picked(seeded):
    at = open_page("pages/compare.py")
    assert_clean(at)
    heatmaps = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 3  # F1 per class, and the two confusion matrices
    f1 = heatmaps[0]
    assert set(f1["data"][0]["y"]) == {"stub-small · Predict", "stub-small · Predict · optimized"}
