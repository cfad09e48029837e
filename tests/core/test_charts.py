import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.analytics import charts, stats
from core.config.errors import ConfigError


def _runs() -> pd.DataFrame:
    rows = [
        # run_id, model, program, accuracy, n, cost_per_1k
        ("r1", "gpt-oss-20b", "original", 0.70, 50, 0.40),
        ("r2", "gpt-oss-20b", "optimized", 0.84, 50, 0.50),
        ("r3", "claude-sonnet", "original", 0.86, 50, 6.00),
        ("r4", "llama-local", "optimized", 0.76, 50, 0.0),
        ("r5", "claude-sonnet", "optimized", 0.80, 50, 7.00),
    ]
    df = pd.DataFrame(rows, columns=["run_id", "model", "program", "accuracy", "n", "cost_per_1k"])
    df["label"] = df["model"] + " · " + df["program"]
    bounds = [stats.wilson_interval(round(a * n), n) for a, n in zip(df["accuracy"], df["n"], strict=True)]
    df["ci_low"] = [lo for lo, _ in bounds]
    df["ci_high"] = [hi for _, hi in bounds]
    df["macro_f1"] = df["accuracy"] - 0.05
    df["p50_latency_s"] = 1.2
    df["input_tokens"] = 10_000
    df["output_tokens"] = 500
    df["cost_usd"] = df["cost_per_1k"] * df["n"] / 1000
    return df


def _assert_empty(fig: go.Figure, text: str = "No runs yet") -> None:
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0
    assert any(a.text == text for a in fig.layout.annotations)


def _bars(fig: go.Figure) -> dict[str, dict]:
    """label -> {y, high, low, color, pattern, line, hover, trace} over the accuracy bar traces (one per program
    kind)."""
    out = {}
    for trace in fig.data:
        if trace.type != "bar" or trace.name == "failed":
            continue
        horizontal = trace.orientation == "h"  # accuracy along x, one row per run
        y = np.asarray(trace.x if horizontal else trace.y, dtype=float)
        error = trace.error_x if horizontal else trace.error_y
        for i, label in enumerate(trace.y if horizontal else trace.x):
            out[label] = {"y": y[i], "high": y[i] + np.asarray(error.array)[i],
                          "low": y[i] - np.asarray(error.arrayminus)[i], "color": trace.marker.color[i],
                          "pattern": trace.marker.pattern.shape, "line": trace.marker.line.width[i],
                          "hover": trace.hovertext[i], "trace": trace.name}
    return out


def _first(value):
    """A trace property that is one value for all points, or a list of them: the first point's."""
    return value if isinstance(value, str) else value[0]


def _labels(fig: go.Figure) -> dict[str, tuple[float, str]]:
    """label -> (accuracy position, text) of the text trace that carries "45.0% · n=60" beside each bar."""
    trace = next(t for t in fig.data if t.name == "labels")
    return dict(zip(trace.y, zip(np.asarray(trace.x, dtype=float), trace.text, strict=True), strict=True))


def test_model_colors_are_stable_and_distinct():
    colors = charts.model_colors(["b", "a", "b", "c"])
    assert colors == charts.model_colors(["c", "a", "b"])
    assert len(set(colors.values())) == 3


# --- accuracy_bars ---


def test_accuracy_bars_sorted_with_asymmetric_error_bars():
    runs = _runs()
    before = runs.copy(deep=True)
    fig = charts.accuracy_bars(runs)
    pd.testing.assert_frame_equal(runs, before)
    expected = runs.sort_values("accuracy", ascending=False)
    assert list(fig.layout.yaxis.categoryarray) == expected["label"].tolist()
    assert fig.layout.yaxis.autorange == "reversed"  # the best at the top
    bars = _bars(fig)
    assert set(bars) == set(runs["label"])
    for row in expected.to_dict("records"):
        bar = bars[row["label"]]
        assert bar["y"] == pytest.approx(row["accuracy"] * 100)
        assert (bar["low"], bar["high"]) == pytest.approx((row["ci_low"] * 100, row["ci_high"] * 100))
    assert all(t.error_x.symmetric is False and t.orientation == "h" for t in fig.data if t.type == "bar")
    assert fig.layout.xaxis.range[0] == 0 and list(fig.layout.xaxis.tickvals)[-1] == 100
    assert "%" in fig.layout.xaxis.title.text
    # Same model, same color; the program is the pattern, with a legend entry per program.
    assert bars["claude-sonnet · original"]["color"] == bars["claude-sonnet · optimized"]["color"]
    assert bars["claude-sonnet · original"]["color"] != bars["gpt-oss-20b · original"]["color"]
    assert bars["claude-sonnet · original"]["pattern"] != bars["claude-sonnet · optimized"]["pattern"]
    legend = sorted(t.name for t in fig.data if t.type == "bar" and t.showlegend is not False)
    assert legend == ["optimized", "original"]
    assert "84.0%" in bars["gpt-oss-20b · optimized"]["hover"]


def test_accuracy_bars_falls_back_to_wilson_when_ci_missing():
    runs = _runs().drop(columns=["ci_low", "ci_high"])
    bar = _bars(charts.accuracy_bars(runs))["claude-sonnet · original"]
    low, high = stats.wilson_interval(43, 50)
    assert (bar["low"], bar["high"]) == pytest.approx((low * 100, high * 100))


def test_accuracy_bars_empty_and_missing_columns():
    _assert_empty(charts.accuracy_bars(pd.DataFrame()))
    with pytest.raises(ConfigError):
        charts.accuracy_bars(pd.DataFrame({"label": ["x"]}))


# --- accuracy_vs_cost ---


def test_accuracy_vs_cost_log_axis_pareto_and_free_floor():
    runs = _runs()
    before = runs.copy(deep=True)
    fig = charts.accuracy_vs_cost(runs)
    pd.testing.assert_frame_equal(runs, before)
    assert fig.layout.xaxis.type == "log"
    assert "USD" in fig.layout.xaxis.title.text
    points = [t for t in fig.data if t.name != "Pareto front"]
    assert sorted(t.name for t in points) == sorted(runs["label"])  # one legend entry per model · program
    assert all(t.type == "scatter" for t in fig.data)

    # Free run plotted a decade below the cheapest paid run's decade ($0.40 -> $0.01), on a tick that reads "free".
    local = next(t for t in points if t.name == "llama-local · optimized")
    assert np.asarray(local.x, dtype=float)[0] == pytest.approx(0.01)
    assert "free / local" in local.hovertext[0]
    assert list(fig.layout.xaxis.ticktext) == ["free", "$0.1", "$1", "$10"]
    np.testing.assert_allclose(np.asarray(local.y, dtype=float), [76.0])
    low, high = stats.wilson_interval(38, 50)
    assert np.asarray(local.error_y.array)[0] == pytest.approx(high * 100 - 76.0)
    assert np.asarray(local.error_y.arrayminus)[0] == pytest.approx(76.0 - low * 100)

    # Pareto: free llama (76%), gpt optimized (84%, $0.50), claude original (86%, $6).
    # gpt original ($0.40, 70%) is dominated by the free run; claude optimized by claude original.
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert front.line.shape == "hv"
    np.testing.assert_allclose(np.asarray(front.x, dtype=float), [0.01, 0.50, 6.00])
    np.testing.assert_allclose(np.asarray(front.y, dtype=float), [76.0, 84.0, 86.0])
    assert list(front.text) == ["llama-local · optimized", "gpt-oss-20b · optimized", "claude-sonnet · original"]


def test_accuracy_vs_cost_all_free_and_missing_cost():
    runs = _runs().assign(cost_per_1k=0.0)
    runs.loc[0, "cost_per_1k"] = np.nan
    fig = charts.accuracy_vs_cost(runs)
    xs = np.concatenate([np.asarray(t.x, dtype=float) for t in fig.data if t.name != "Pareto front"])
    assert len(xs) == 4  # the run without a cost is left out
    assert np.all(xs == charts.FREE_FLOOR_FALLBACK)
    front = next(t for t in fig.data if t.name == "Pareto front")
    np.testing.assert_allclose(np.asarray(front.y, dtype=float), [86.0])


def test_accuracy_vs_cost_empty():
    _assert_empty(charts.accuracy_vs_cost(pd.DataFrame()))


# --- per_label_bars ---


def test_per_label_bars_grouped_per_run():
    gold = ["a", "a", "b", "b"]
    tables = []
    for run_label, pred in (("run 1", ["a", "b", "b", "b"]), ("run 2", ["a", "a", "b", None])):
        table = stats.per_label_metrics(gold, pred, ("a", "b"))
        table["run_label"] = run_label
        tables.append(table)
    per_label = pd.concat(tables, ignore_index=True)
    before = per_label.copy(deep=True)
    fig = charts.per_label_bars(per_label)
    pd.testing.assert_frame_equal(per_label, before)
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["run 1", "run 2"]
    assert all(t.type == "bar" for t in fig.data)
    assert list(fig.data[0].x) == ["a", "b"]
    np.testing.assert_allclose(np.asarray(fig.data[0].y, dtype=float), [2 / 3, 0.8])
    np.testing.assert_allclose(np.asarray(fig.data[1].y, dtype=float), [1.0, 2 / 3])
    assert "precision" in fig.data[0].hovertext[0]
    _assert_empty(charts.per_label_bars(pd.DataFrame(columns=["label", "run_label", "f1"])))


# --- confusion_heatmap ---


def test_confusion_heatmap_counts_annotated():
    cm = stats.confusion_matrix(["a", "a", "b"], ["a", None, "b"], ("a", "b"))
    before = cm.copy(deep=True)
    fig = charts.confusion_heatmap(cm, title="Run 1")
    pd.testing.assert_frame_equal(cm, before)
    heat = fig.data[0]
    assert heat.type == "heatmap"
    assert list(heat.x) == ["a", "b", "(unparsed)"]
    assert list(heat.y) == ["a", "b"]
    np.testing.assert_array_equal(np.asarray(heat.z, dtype=float), [[1, 0, 1], [0, 1, 0]])
    assert np.asarray(heat.text).tolist() == [["1", "0", "1"], ["0", "1", "0"]]
    assert heat.texttemplate == "%{text}"
    np.testing.assert_allclose(np.asarray(heat.customdata, dtype=float), [[50, 0, 50], [0, 100, 0]])
    assert fig.layout.title.text == "Run 1"
    _assert_empty(charts.confusion_heatmap(pd.DataFrame()))


def test_confusion_heatmap_draws_a_confusion_csv_as_the_store_returns_it(store):
    """baseline.py logs confusion.csv with the gold labels as the index; store.read_csv gives them back as a
    "gold" column (and numeric-looking labels as numbers): the chart still has gold rows and predicted columns."""
    cm = stats.confusion_matrix(["1", "1", "2", "=x"], ["1", None, "2", "=x"], ("1", "2", "=x"))
    run_id = store.start_run("evaluation", "demo", run_name="confusion")
    store.log_artifacts(run_id, {"confusion.csv": cm})
    store.end_run(run_id, "FINISHED")
    read = store.read_csv(run_id, "confusion.csv")
    assert "gold" in read.columns
    heat = charts.confusion_heatmap(read).data[0]
    assert list(heat.y) == ["1", "2", "=x"] and list(heat.x) == ["1", "2", "=x", "(unparsed)"]
    np.testing.assert_array_equal(np.asarray(heat.z, dtype=float), [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]])
    fig = charts.confusion_heatmap(read)
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"  # "1", "2" stay labels


# --- per_label_f1_heatmap ---


def test_per_label_f1_heatmap_has_runs_as_rows_and_the_f1_in_every_cell():
    from core.tracking.runs import per_label_frame

    gold = ["pos", "pos", "neg", "neg", "neutral"]
    tables = {"stub-small · Predict": stats.per_label_metrics(gold, ["pos", "neg", "neg", "neg", None],
                                                              ("pos", "neg", "neutral")),
              "Optimized stub-small · Predict": stats.per_label_metrics(gold, ["pos", "pos", "neg", "pos", "neutral"],
                                                                        ("pos", "neg", "neutral"))}
    per_label = per_label_frame(tables)
    per_label = per_label[~((per_label["run_label"] == "stub-small · Predict") & (per_label["label"] == "neutral"))]
    before = per_label.copy(deep=True)
    fig = charts.per_label_f1_heatmap(per_label)
    pd.testing.assert_frame_equal(per_label, before)
    heat = fig.data[0]
    assert heat.type == "heatmap" and (heat.zmin, heat.zmax) == (0, 1)
    assert list(heat.y) == ["stub-small · Predict", "Optimized stub-small · Predict"]
    assert list(heat.x) == ["pos", "neg", "neutral"]
    expected = [[2 / 3, 0.8, np.nan], [0.8, 2 / 3, 1.0]]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), expected)
    assert [list(r) for r in heat.text] == [["0.67", "0.80", ""], ["0.80", "0.67", "1.00"]]
    assert heat.texttemplate == "%{text}" and "support 2" in heat.hovertext[0][0]
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.height >= 260
    _assert_empty(charts.per_label_f1_heatmap(pd.DataFrame(columns=["label", "run_label", "f1"])))
    with pytest.raises(ConfigError, match="f1"):
        charts.per_label_f1_heatmap(pd.DataFrame({"run": ["r"], "label": ["a"]}))


# --- optimization_cost_split ---


def test_optimization_cost_split_stacked():
    opt = pd.DataFrame(
        {"run_label": ["light", "medium"], "student_cost_usd": [0.30, 1.20], "reflection_cost_usd": [0.10, 0.80]}
    )
    before = opt.copy(deep=True)
    fig = charts.optimization_cost_split(opt)
    pd.testing.assert_frame_equal(opt, before)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data[:2]] == ["Student", "Reflection"]
    assert all(t.orientation == "h" and list(t.y) == ["light", "medium"] for t in fig.data[:2])
    np.testing.assert_allclose(np.asarray(fig.data[0].x, dtype=float), [0.30, 1.20])
    np.testing.assert_allclose(np.asarray(fig.data[1].x, dtype=float), [0.10, 0.80])
    assert "75%" in fig.data[0].hovertext[0]
    assert "USD" in fig.layout.xaxis.title.text
    _assert_empty(charts.optimization_cost_split(pd.DataFrame()))


# --- progress_chart ---


def test_progress_chart_step_line_sorted():
    events = pd.DataFrame({"metric_calls": [40, 0, 20], "best_score": [0.8, 0.5, 0.7], "val_score": [0.8, 0.5, None]})
    before = events.copy(deep=True)
    fig = charts.progress_chart(events)
    pd.testing.assert_frame_equal(events, before)
    best = fig.data[0]
    assert best.line.shape == "hv"
    np.testing.assert_allclose(np.asarray(best.x, dtype=float), [0, 20, 40])
    np.testing.assert_allclose(np.asarray(best.y, dtype=float), [50, 70, 80])
    assert len(fig.data) == 2
    np.testing.assert_allclose(np.asarray(fig.data[1].x, dtype=float), [0, 40])
    assert len(charts.progress_chart(events.drop(columns="val_score")).data) == 1
    _assert_empty(charts.progress_chart(pd.DataFrame()), "No progress yet")


# --- break_even_chart ---


def test_break_even_chart_marks_break_even():
    fig = charts.break_even_chart(10.0, 2.0, 0.5)
    be = stats.break_even_predictions(10.0, 2.0, 0.5)
    assert len(fig.layout.shapes) == 1
    assert fig.layout.shapes[0].x0 == pytest.approx(be)
    assert fig.layout.shapes[0].x1 == pytest.approx(be)
    assert list(fig.layout.xaxis.range) == pytest.approx([0, 2 * be])
    before, after = fig.data
    assert before.name == "reference" and after.name == "optimized (incl. optimization)"
    x = np.asarray(before.x, dtype=float)
    np.testing.assert_allclose(x, [0, be, 2 * be])
    np.testing.assert_allclose(np.asarray(before.y, dtype=float), x * 2.0 / 1000)
    np.testing.assert_allclose(np.asarray(after.y, dtype=float), 10.0 + x * 0.5 / 1000)
    # The lines meet at the break-even point.
    assert np.asarray(before.y)[1] == pytest.approx(np.asarray(after.y)[1])
    assert "6,667" in fig.layout.title.text


def test_break_even_chart_never_and_max_predictions():
    fig = charts.break_even_chart(10.0, 1.0, 1.5)
    assert len(fig.layout.shapes) == 0
    assert list(fig.layout.xaxis.range) == [0, charts.DEFAULT_HORIZON]
    assert "Never" in fig.layout.title.text
    fig = charts.break_even_chart(10.0, 2.0, 0.5, max_predictions=1000, labels=("GPT-5", "student"))
    assert list(fig.layout.xaxis.range) == [0, 1000]
    assert [t.name for t in fig.data] == ["GPT-5", "student"]
    assert len(fig.layout.shapes) == 1  # the vline is still drawn, past the visible range


# --- label_distribution ---


def test_label_distribution_single_and_split():
    counts = pd.DataFrame({"label": ["pos", "neg"], "count": [30, 10]})
    fig = charts.label_distribution(counts, title="Train")
    assert len(fig.data) == 1 and fig.data[0].type == "bar"
    np.testing.assert_allclose(np.asarray(fig.data[0].y, dtype=float), [30, 10])
    assert "75.0%" in fig.data[0].hovertext[0]
    assert fig.layout.title.text == "Train"

    split = pd.DataFrame(
        {"label": ["pos", "neg", "pos", "neg"], "count": [30, 10, 5, 5], "split": ["train", "train", "val", "val"]}
    )
    before = split.copy(deep=True)
    fig = charts.label_distribution(split)
    pd.testing.assert_frame_equal(split, before)
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["train", "val"]
    np.testing.assert_allclose(np.asarray(fig.data[1].y, dtype=float), [5, 5])
    _assert_empty(charts.label_distribution(pd.DataFrame()), "No examples yet")


# --- failures and degraded runs ---


def _runs_with_failures() -> pd.DataFrame:
    """r3 had 6 of 50 examples fail (4 rate-limited, 2 timed out) and is degraded; r1 had none; r5 is an older run."""
    runs = _runs()
    runs["failed"] = [0.0, 1.0, 6.0, 0.0, np.nan]
    runs["failure_rate"] = runs["failed"] / runs["n"]
    runs["degraded"] = [False, False, True, False, False]
    for kind in ("rate_limit", "server_error", "timeout", "unreachable", "auth", "not_found", "config", "parse",
                 "other"):
        runs[f"failed_{kind}"] = [0.0, 0.0, 0.0, 0.0, np.nan]
    runs.loc[2, ["failed_rate_limit", "failed_timeout"]] = [4.0, 2.0]
    runs.loc[1, "failed_parse"] = 1.0
    runs["accuracy_answered"] = (runs["accuracy"] * runs["n"]).round() / (runs["n"] - runs["failed"])
    return runs


def test_accuracy_bars_draw_failed_runs_at_their_accuracy_with_a_cross_and_the_count():
    runs = _runs_with_failures()
    before = runs.copy(deep=True)
    fig = charts.accuracy_bars(runs)
    pd.testing.assert_frame_equal(runs, before)
    assert not any(t.type == "bar" and t.name == "failed" for t in fig.data)  # no bar of failures on the axis
    order = runs.sort_values("accuracy", ascending=False)
    bars = _bars(fig)
    np.testing.assert_allclose([bars[lab]["y"] for lab in order["label"]], order["accuracy"] * 100)
    cross = next(t for t in fig.data if t.name == "failed")
    assert list(cross.y) == ["claude-sonnet · original"] and list(cross.x) == [86.0]  # the degraded run only
    texts = {lab: text for lab, (_, text) in _labels(fig).items()}
    assert texts["claude-sonnet · original"].endswith("<br>\u26a0 6 failed · DEGRADED")
    assert texts["gpt-oss-20b · optimized"].endswith("<br>1 failed")
    assert "failed" not in texts["gpt-oss-20b · original"] + texts["claude-sonnet · optimized"]
    hover = {lab: bar["hover"] for lab, bar in bars.items()}
    assert "DEGRADED" in hover["claude-sonnet · original"]
    assert "6 failed (12.0%): 4 rate-limited, 2 timed out" in hover["claude-sonnet · original"]
    assert "accuracy of the answered 97.7%" in hover["claude-sonnet · original"]  # 43 right of 44 answered
    assert "answered" not in hover["gpt-oss-20b · original"]
    assert "1 failed (2.0%): 1 not a label" in hover["gpt-oss-20b · optimized"]
    assert "no failures" in hover["gpt-oss-20b · original"]
    assert "failed" not in hover["claude-sonnet · optimized"]  # an older run: unknown, not "no failures"
    assert bars["claude-sonnet · original"]["line"] > 0 and bars["gpt-oss-20b · optimized"]["line"] == 0


def test_accuracy_bars_without_failures_have_no_failed_segment():
    runs = _runs_with_failures().assign(failed=0.0, degraded=False)
    fig = charts.accuracy_bars(runs)
    assert "failed" not in [t.name for t in fig.data]
    assert all("no failures" in b["hover"] for b in _bars(fig).values())


def test_accuracy_vs_cost_says_failures_and_marks_degraded_points():
    runs = _runs_with_failures()
    fig = charts.accuracy_vs_cost(runs)
    claude = [t for t in fig.data if t.name.startswith("claude-sonnet")]
    hover = {t.name: t.hovertext[0] for t in claude}
    assert "6 failed (12.0%): 4 rate-limited, 2 timed out" in hover["claude-sonnet · original"]
    assert "DEGRADED" in hover["claude-sonnet · original"] and "DEGRADED" not in hover["claude-sonnet · optimized"]
    symbols = {t.name: _first(t.marker.symbol) for t in claude}
    assert symbols == {"claude-sonnet · original": "circle-x-open", "claude-sonnet · optimized": "circle"}


def test_with_failures_takes_columns_by_run_id_and_marks_older_runs_unknown():
    runs = _runs_with_failures()
    frame = _runs().iloc[[2, 0]].reset_index(drop=True)  # a chart frame without the failure columns
    out = charts.with_failures(frame, runs)
    assert "failed" not in frame.columns
    assert out["failed"].tolist() == [6.0, 0.0] and out["failed_timeout"].tolist() == [2.0, 0.0]
    assert out["degraded"].tolist() == [True, False]
    older = charts.with_failures(frame, _runs())
    assert older["failed"].isna().all() and older["degraded"].tolist() == [False, False]
    tags = pd.DataFrame({"run_id": ["r1", "r3"], "degraded": ["false", "true"]})
    assert charts.degraded_flags(tags).tolist() == [False, True]


def test_failure_text():
    assert charts.failure_text(12, 50, {"rate_limit": 7, "timeout": 5}) == (
        "12 failed (24.0%): 7 rate-limited, 5 timed out")
    assert charts.failure_text(3.0) == "3 failed"
    assert charts.failure_text(0, 50) == "no failures"
    assert charts.failure_text(np.nan, 50) == ""
    row = {"failed_unreachable": 95.0, "failed_parse": 0.0, "failed_timeout": np.nan}
    assert charts.failure_counts(row) == {"unreachable": 95}


def test_optimization_cost_split_hover_says_failed_calls_and_degraded():
    opt = pd.DataFrame({"run_label": ["a", "b"], "student_cost_usd": [0.3, 0.3], "reflection_cost_usd": [0.0, 0.1],
                        "failed_student_calls": [0.0, 2.0], "failed_reflection_calls": [4.0, 0.0],
                        "failed_proposals": [4.0, 0.0], "degraded": [True, False]})
    fig = charts.optimization_cost_split(opt)
    first, second = fig.data[1].hovertext
    assert "DEGRADED · 4 failed reflection calls · 4 failed proposals" in first
    assert "2 failed student calls" in second and "DEGRADED" not in second


# --- reading at a glance: ticks, markers, labels, single points, honest headlines ---


def _programs() -> pd.DataFrame:
    """One model's Predict and CoT programs, original and optimized, labelled as core.tracking.runs.chart_frame does."""
    rows = [("p0", "predict", "original", 0.62, 0.004), ("p1", "predict", "optimized", 0.70, 0.005),
            ("c0", "cot", "original", 0.0, 0.02), ("c1", "cot", "optimized", 0.55, 0.03)]
    df = pd.DataFrame(rows, columns=["run_id", "module", "program", "accuracy", "cost_per_1k"]).assign(
        model="stub-large", n=60)
    names = {"predict": "Predict", "cot": "CoT"}
    df["label"] = [f"stub-large · {names[m]}" + (" · optimized" if p == "optimized" else "")
                   for m, p in zip(df["module"], df["program"], strict=True)]
    return df


def test_cost_axis_ticks_are_labelled_powers_of_ten_and_2_5_within_two_decades():
    runs = _runs().assign(cost_per_1k=[0.002, 0.03, 0.4, 2.5, 3.0])
    axis = charts.accuracy_vs_cost(runs).layout.xaxis
    assert axis.tickmode == "array"
    assert list(axis.ticktext) == ["$0.001", "$0.01", "$0.1", "$1", "$10"]
    np.testing.assert_allclose(np.log10(np.asarray(axis.tickvals, dtype=float)), [-3, -2, -1, 0, 1])
    # Every point lies inside the range, between two labelled ticks.
    assert axis.range[0] <= np.log10(0.002) and axis.range[1] >= np.log10(3.0)
    one = charts.accuracy_vs_cost(runs.iloc[[3]]).layout.xaxis
    assert list(one.ticktext) == ["$1", "$2", "$5", "$10"] and one.range[0] <= np.log10(2.5) <= one.range[1]
    assert list(one.tickvals) == [1.0, 2.0, 5.0, 10.0]  # no unlabelled minor ticks between them
    exact = charts.accuracy_vs_cost(runs.iloc[[3]].assign(cost_per_1k=1.0)).layout.xaxis
    assert list(exact.ticktext) == ["$0.1", "$0.2", "$0.5", "$1", "$2", "$5", "$10"]
    cents = charts.accuracy_vs_cost(runs.iloc[[0, 1]].assign(cost_per_1k=[0.02, 0.06])).layout.xaxis
    assert list(cents.ticktext) == ["$0.01", "$0.02", "$0.05", "$0.1"]


def test_programs_and_modules_have_their_own_marker_pattern_and_legend_entry():
    runs = _programs()
    scatter = charts.accuracy_vs_cost(runs)
    symbols = {t.name: _first(t.marker.symbol) for t in scatter.data if t.name != "Pareto front"}
    assert symbols == {"stub-large · Predict": "circle-open", "stub-large · Predict · optimized": "circle",
                       "stub-large · CoT": "diamond-open", "stub-large · CoT · optimized": "diamond"}
    assert len({t.marker.color for t in scatter.data if t.name != "Pareto front"}) == 1  # colour is the model
    assert all(t.showlegend is not False for t in scatter.data)
    bars = charts.accuracy_bars(runs)
    by_label = _bars(bars)
    assert len({b["pattern"] for b in by_label.values()}) == 4
    assert {b["trace"] for b in by_label.values()} == {"original · Predict", "optimized · Predict",
                                                       "original · CoT", "optimized · CoT"}
    assert by_label["stub-large · CoT"]["y"] == 0  # a 0 % CoT run is its own bar, not a replacement of Predict's
    # Pages may add to a label (" · capped"): the module is still read from it.
    marked = runs.assign(label=runs["label"] + [" · capped", "", "", ""])
    assert _bars(charts.accuracy_bars(marked))["stub-large · Predict · capped"]["trace"] == "original · Predict"


def test_bar_labels_sit_above_the_whisker_tops():
    runs = _programs().assign(accuracy=[1.0, 0.45, 0.0, 0.55])
    fig = charts.accuracy_bars(runs)
    bars, labels = _bars(fig), _labels(fig)
    text = next(t for t in fig.data if t.name == "labels")
    assert text.mode == "text" and text.textposition == "middle right"  # on the bar's own row: never overlapping
    for label, (x, words) in labels.items():
        assert x >= bars[label]["high"] - 1e-9 and x >= bars[label]["y"]
        assert words.startswith(f"{bars[label]['y']:.1f}%") and "n=60" in words
    assert all(t.text is None for t in fig.data if t.type == "bar")  # no text on the bars or whiskers
    assert fig.layout.xaxis.range[1] > 100  # room for the label beside a 100 % bar


def test_single_point_gets_sensible_axes():
    one = _programs().iloc[[1]]
    fig = charts.accuracy_vs_cost(one)
    low, high = fig.layout.yaxis.range
    bar = _bars(charts.accuracy_bars(one))["stub-large · Predict · optimized"]
    assert 0 <= low <= bar["low"] and bar["high"] <= high <= 100 and high - low >= 20
    point = charts.progress_chart(pd.DataFrame({"metric_calls": [0], "best_score": [0.5]}))
    assert list(point.layout.xaxis.range) == [0, 10] and list(point.layout.yaxis.range) == [0, 100]


def test_progress_chart_spans_the_budget():
    events = pd.DataFrame({"metric_calls": [0, 12, 26], "best_score": [0.4, 0.5, 0.6]})
    fig = charts.progress_chart(events, budget=60)
    assert list(fig.layout.xaxis.range) == [0, 60]
    assert fig.layout.shapes[0].x0 == 60 and "budget 60" in fig.layout.annotations[0].text
    over = charts.progress_chart(events.assign(metric_calls=[0, 30, 62]), budget=60)
    assert list(over.layout.xaxis.range) == [0, 62]  # GEPA may overshoot its budget a little
    assert list(charts.progress_chart(events).layout.xaxis.range) == [0, 26]
    with pytest.raises(ConfigError, match="budget"):
        charts.progress_chart(events, budget=0)


def test_optimization_cost_split_labels_bars_by_run_and_marks_capped_and_cancelled():
    label = "GEPA · stub-small ← stub-large · 60 calls · 45.0%→61.7%"
    opt = pd.DataFrame({
        "run_id": ["aaaaaaaa1", "bbbbbbbb2", "cccccccc3", "dddddddd4"],
        "run_label": [label, label, "GEPA · stub-small ← stub-large · 60 calls · no test results · capped",
                      "GEPA · stub-small · 2026-11-02 10:00"],  # an older frame: no result, no outcome in the label
        "outcome": ["finished", "finished", "capped", "cancelled"],
        "stop_reason": ["", "", "spending cap $0.05 reached", ""],
        "student_cost_usd": [0.02, 0.03, 0.04, 0.01], "reflection_cost_usd": [0.01, 0.01, 0.01, 0.0]})
    fig = charts.optimization_cost_split(opt)
    student = fig.data[0]
    assert list(student.y) == [f"{label} · aaaaaaaa", f"{label} · bbbbbbbb", opt["run_label"][2],
                               "GEPA · stub-small · 2026-11-02 10:00 · cancelled"]
    assert list(student.marker.pattern.shape) == ["", "", "/", "/"]
    totals = next(t for t in fig.data if t.name == "total").text
    assert totals[2].endswith("CAPPED") and totals[3].endswith("CANCELLED") and "CAPPED" not in totals[0]
    assert "stopped: spending cap $0.05 reached" in student.hovertext[2]
    assert fig.layout.yaxis.autorange == "reversed"  # the frame's first run on top


def _trade(reference_right: int, optimized_right: list[int]) -> dict:
    def records(right) -> pd.DataFrame:
        return pd.DataFrame({"idx": range(60), "gold": "A", "correct": [i in right for i in range(60)]})
    return stats.trade_off(records(range(reference_right)), records(optimized_right))


def test_break_even_headline_claims_pay_back_only_when_not_significantly_worse():
    worse = _trade(27, list(range(19)))  # 45.0% -> 31.7%, paired and significant
    fig = charts.break_even_chart(0.5, 2.0, 0.2, labels=("stub-large · Predict", "stub-small · optimized"),
                                  trade_off=worse)
    title = fig.layout.title.text
    assert "Pays back" not in title and "pays back" not in title
    assert "13.3 points less accurate (significant)" in title and "not a replacement" in title
    assert "45.0%" in fig.layout.title.subtitle.text and "31.7%" in fig.layout.title.subtitle.text
    assert "recovered" not in fig.layout.annotations[0].text

    fine = _trade(27, [*range(3, 27), 40])  # 45.0% -> 41.7%, not significant
    fig = charts.break_even_chart(0.5, 2.0, 0.2, trade_off=fine)
    be = stats.break_even_predictions(0.5, 2.0, 0.2)
    assert fig.layout.title.text == (f"Pays back after {be:,.0f} predictions, at 3.3 points lower accuracy (not "
                                     "significant)")
    assert "paired 95% interval" in fig.layout.title.subtitle.text

    better = _trade(19, list(range(27)))
    assert "13.3 points higher accuracy (significant)" in charts.break_even_chart(
        0.5, 2.0, 0.2, trade_off=better).layout.title.text
    never = charts.break_even_chart(0.5, 1.0, 2.0, trade_off=fine).layout.title.text
    assert never.startswith("Never pays back") and "3.3 points lower accuracy" in never


def test_break_even_headline_on_different_examples_says_unpaired():
    reference = pd.DataFrame({"idx": range(60), "gold": "A", "correct": [i < 27 for i in range(60)]})
    optimized = pd.DataFrame({"idx": range(100, 160), "gold": "A", "correct": [i < 119 for i in range(100, 160)]})
    unpaired = stats.trade_off(reference, optimized)
    fig = charts.break_even_chart(0.5, 2.0, 0.2, trade_off=unpaired)
    assert fig.layout.title.text.startswith("Pays back after")
    assert "13.3 points lower accuracy (on different examples, not a paired test)" in fig.layout.title.text
    assert "unpaired 95% interval" in fig.layout.title.subtitle.text
