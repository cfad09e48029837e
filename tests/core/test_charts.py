import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.analytics import charts, stats
from core.errors import ConfigError


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
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert bar.type == "bar"
    expected = runs.sort_values("accuracy", ascending=False)
    assert list(bar.x) == expected["label"].tolist()
    y = np.asarray(bar.y, dtype=float)
    np.testing.assert_allclose(y, expected["accuracy"] * 100)
    np.testing.assert_allclose(np.asarray(bar.error_y.array), expected["ci_high"] * 100 - y)
    np.testing.assert_allclose(np.asarray(bar.error_y.arrayminus), y - expected["ci_low"] * 100)
    assert bar.error_y.symmetric is False
    assert bar.text[0] == "86.0% (n=50)"
    assert list(fig.layout.yaxis.range) == [0, 100]
    assert "%" in fig.layout.yaxis.title.text
    # Same model, same color.
    colors = dict(zip(bar.x, bar.marker.color, strict=True))
    assert colors["claude-sonnet · original"] == colors["claude-sonnet · optimized"]
    assert colors["claude-sonnet · original"] != colors["gpt-oss-20b · original"]
    assert "84.0%" in " ".join(bar.hovertext)


def test_accuracy_bars_falls_back_to_wilson_when_ci_missing():
    runs = _runs().drop(columns=["ci_low", "ci_high"])
    fig = charts.accuracy_bars(runs)
    low, high = stats.wilson_interval(43, 50)
    assert np.asarray(fig.data[0].error_y.array)[0] == pytest.approx(high * 100 - 86.0)
    assert np.asarray(fig.data[0].error_y.arrayminus)[0] == pytest.approx(86.0 - low * 100)


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
    assert sorted(t.name for t in points) == ["claude-sonnet", "gpt-oss-20b", "llama-local"]
    assert all(t.type == "scatter" for t in fig.data)

    # Free run plotted at a tenth of the cheapest paid run, and says it is free.
    local = next(t for t in points if t.name == "llama-local")
    assert np.asarray(local.x, dtype=float)[0] == pytest.approx(0.40 / 10)
    assert "free / local" in local.hovertext[0]
    np.testing.assert_allclose(np.asarray(local.y, dtype=float), [76.0])
    low, high = stats.wilson_interval(38, 50)
    assert np.asarray(local.error_y.array)[0] == pytest.approx(high * 100 - 76.0)
    assert np.asarray(local.error_y.arrayminus)[0] == pytest.approx(76.0 - low * 100)

    # Pareto: free llama (76%), gpt optimized (84%, $0.50), claude original (86%, $6).
    # gpt original ($0.40, 70%) is dominated by the free run; claude optimized by claude original.
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert front.line.shape == "hv"
    np.testing.assert_allclose(np.asarray(front.x, dtype=float), [0.04, 0.50, 6.00])
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


# --- optimization_cost_split ---


def test_optimization_cost_split_stacked():
    opt = pd.DataFrame(
        {"run_label": ["light", "medium"], "student_cost_usd": [0.30, 1.20], "reflection_cost_usd": [0.10, 0.80]}
    )
    before = opt.copy(deep=True)
    fig = charts.optimization_cost_split(opt)
    pd.testing.assert_frame_equal(opt, before)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["Student", "Reflection"]
    np.testing.assert_allclose(np.asarray(fig.data[0].y, dtype=float), [0.30, 1.20])
    np.testing.assert_allclose(np.asarray(fig.data[1].y, dtype=float), [0.10, 0.80])
    assert "75%" in fig.data[0].hovertext[0]
    assert "USD" in fig.layout.yaxis.title.text
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
    assert before.name == "before" and after.name == "after (incl. optimization)"
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


def test_accuracy_bars_stack_a_hatched_failed_segment_with_counts_by_kind():
    runs = _runs_with_failures()
    before = runs.copy(deep=True)
    fig = charts.accuracy_bars(runs)
    pd.testing.assert_frame_equal(runs, before)
    assert fig.layout.barmode == "stack"
    accuracy, failed = fig.data
    assert (accuracy.name, failed.name) == ("accuracy", "failed")
    order = runs.sort_values("accuracy", ascending=False)
    assert list(failed.x) == list(accuracy.x) == order["label"].tolist()
    # Accuracy counts failures as wrong: the bar is correct / n, the failed segment sits on top of it.
    np.testing.assert_allclose(np.asarray(accuracy.y, dtype=float), order["accuracy"] * 100)
    np.testing.assert_allclose(np.asarray(failed.y, dtype=float), order["failed"].fillna(0) / order["n"] * 100)
    assert failed.marker.pattern.shape == "/"
    by_label = dict(zip(failed.x, failed.text, strict=True))
    assert by_label["claude-sonnet · original"] == "6 failed · DEGRADED"
    assert by_label["gpt-oss-20b · optimized"] == "1 failed"
    assert by_label["gpt-oss-20b · original"] == "" and by_label["claude-sonnet · optimized"] == ""
    hover = dict(zip(accuracy.x, accuracy.hovertext, strict=True))
    assert "DEGRADED" in hover["claude-sonnet · original"]
    assert "6 failed (12.0%): rate_limit 4, timeout 2" in hover["claude-sonnet · original"]
    assert "accuracy of the answered 97.7%" in hover["claude-sonnet · original"]  # 43 right of 44 answered
    assert "answered" not in hover["gpt-oss-20b · original"]
    assert "1 failed (2.0%): parse 1" in hover["gpt-oss-20b · optimized"]
    assert "no failures" in hover["gpt-oss-20b · original"]
    assert "failed" not in hover["claude-sonnet · optimized"]  # an older run: unknown, not "no failures"
    outline = dict(zip(accuracy.x, accuracy.marker.line.width, strict=True))
    assert outline["claude-sonnet · original"] > 0 and outline["gpt-oss-20b · optimized"] == 0


def test_accuracy_bars_without_failures_stay_one_plain_trace():
    runs = _runs_with_failures().assign(failed=0.0, degraded=False)
    fig = charts.accuracy_bars(runs)
    assert len(fig.data) == 1 and fig.data[0].textposition == "outside"
    assert all("no failures" in h for h in fig.data[0].hovertext)


def test_accuracy_vs_cost_says_failures_and_marks_degraded_points():
    runs = _runs_with_failures()
    fig = charts.accuracy_vs_cost(runs)
    claude = next(t for t in fig.data if t.name == "claude-sonnet")
    hover = dict(zip(claude.text, claude.hovertext, strict=True))
    assert "6 failed (12.0%): rate_limit 4, timeout 2" in hover["claude-sonnet · original"]
    assert "DEGRADED" in hover["claude-sonnet · original"] and "DEGRADED" not in hover["claude-sonnet · optimized"]
    symbols = dict(zip(claude.text, claude.marker.symbol, strict=True))
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
    assert charts.failure_text(12, 50, {"rate_limit": 7, "timeout": 5}) == "12 failed (24.0%): rate_limit 7, timeout 5"
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
