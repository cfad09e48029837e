import math

import numpy as np
import pandas as pd
import pytest

from core.analytics import stats
from core.config.errors import ConfigError

# --- Wilson interval ---


def test_wilson_8_of_10_matches_published_value():
    low, high = stats.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=5e-4)
    assert high == pytest.approx(0.9433, abs=5e-4)


def test_wilson_edges():
    low, high = stats.wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=5e-4)
    low, high = stats.wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=5e-4)
    assert high == 1.0
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_wider_at_higher_confidence():
    low95, high95 = stats.wilson_interval(30, 50)
    low99, high99 = stats.wilson_interval(30, 50, confidence=0.99)
    assert low99 < low95 < 0.6 < high95 < high99


@pytest.mark.parametrize("args", [(11, 10), (-1, 10), (1, -1)])
def test_wilson_rejects_impossible_counts(args):
    with pytest.raises(ConfigError):
        stats.wilson_interval(*args)


def test_wilson_rejects_bad_confidence():
    with pytest.raises(ConfigError):
        stats.wilson_interval(5, 10, confidence=95)


# --- McNemar ---


def test_mcnemar_hand_case():
    # 5 examples only b gets right, 1 only a gets right, 4 both right, 2 both wrong.
    a = [False] * 5 + [True] + [True] * 4 + [False] * 2
    b = [True] * 5 + [False] + [True] * 4 + [False] * 2
    out = stats.mcnemar_exact(a, b)
    assert out["b_only"] == 5 and out["a_only"] == 1
    # 2 * P(X <= 1), X ~ Binomial(6, 1/2) = 2 * (1 + 6) / 64
    assert out["p_value"] == pytest.approx(14 / 64)


def test_mcnemar_no_disagreement_and_cap():
    assert stats.mcnemar_exact([True, False], [True, False])["p_value"] == 1.0
    # balanced disagreement: 2 * P(X <= 2), X ~ Bin(4, 1/2) = 2 * 11/16 > 1 -> capped
    out = stats.mcnemar_exact([True, True, False, False], [False, False, True, True])
    assert out["p_value"] == 1.0


# --- per-label metrics, macro-F1, confusion ---

LABELS = ("pos", "neg", "neu")
GOLD = ["pos", "pos", "pos", "neg", "neg", "neu"]
PRED = ["pos", "pos", "neg", "neg", None, "pos"]


def test_per_label_metrics_hand_case():
    table = stats.per_label_metrics(GOLD, PRED, LABELS)
    assert list(table.columns) == ["label", "precision", "recall", "f1", "support"]
    rows = table.set_index("label")
    # pos: tp 2, predicted 3, support 3
    assert rows.loc["pos", "precision"] == pytest.approx(2 / 3)
    assert rows.loc["pos", "recall"] == pytest.approx(2 / 3)
    assert rows.loc["pos", "f1"] == pytest.approx(2 / 3)
    # neg: tp 1, predicted 2, support 2
    assert rows.loc["neg", "precision"] == pytest.approx(0.5)
    assert rows.loc["neg", "recall"] == pytest.approx(0.5)
    # neu: never predicted -> zero division gives 0.0
    assert rows.loc["neu", ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]
    assert rows["support"].tolist() == [3, 2, 1]


def test_macro_f1_hand_case():
    assert stats.macro_f1(GOLD, PRED, LABELS) == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert stats.macro_f1(["a", "b"], ["a", "b"], ("a", "b")) == 1.0
    with pytest.raises(ConfigError):
        stats.macro_f1(["a"], [], ("a",))


def test_confusion_matrix_with_unparsed():
    cm = stats.confusion_matrix(GOLD, PRED, LABELS)
    assert list(cm.index) == list(LABELS)
    assert list(cm.columns) == [*LABELS, "(unparsed)"]
    assert cm.loc["pos"].tolist() == [2, 1, 0, 0]
    assert cm.loc["neg"].tolist() == [0, 1, 0, 1]
    assert cm.loc["neu"].tolist() == [1, 0, 0, 0]
    assert int(cm.to_numpy().sum()) == len(GOLD)


def test_confusion_matrix_without_unparsed_and_free_text():
    cm = stats.confusion_matrix(["a", "b"], ["a", "a"], ("a", "b"))
    assert list(cm.columns) == ["a", "b"]
    cm = stats.confusion_matrix(["a", "b"], ["a", "maybe b?"], ("a", "b"))
    assert cm.loc["b", "(unparsed)"] == 1


# --- percentile ---


def test_percentile_nan_safe():
    assert stats.percentile([1.0, 2.0, 3.0, float("nan"), None], 50) == 2.0
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert math.isnan(stats.percentile([], 50))
    assert math.isnan(stats.percentile([float("nan")], 95))


# --- Pareto front ---


def test_pareto_front_hand_case_with_ties():
    df = pd.DataFrame(
        {
            "cost": [0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 5.0, np.nan],
            "acc": [0.5, 0.7, 0.6, 0.7, 0.9, 0.9, 0.8, 0.99],
        },
        index=list("abcdefgh"),
    )
    front = stats.pareto_front(df, "cost", "acc")
    assert front.index.tolist() == df.index.tolist()
    # a: cheapest; b: better than c at same cost; d: same acc as b but dearer -> dominated;
    # e/f identical -> both kept; g dominated by e; h has no cost -> never on the front.
    assert front.to_dict() == {
        "a": True, "b": True, "c": False, "d": False, "e": True, "f": True, "g": False, "h": False,
    }


def test_pareto_front_matches_the_definition_on_random_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        xs = rng.integers(0, 5, 40).astype(float)
        ys = rng.integers(0, 5, 40).astype(float)
        xs[rng.integers(0, 40, 3)] = np.nan
        df = pd.DataFrame({"x": xs, "y": ys})
        dominated = [any(xj <= xi and yj >= yi and (xj < xi or yj > yi) for xj, yj in zip(xs, ys, strict=True))
                     for xi, yi in zip(xs, ys, strict=True)]
        expected = [not d and not np.isnan(x) for d, x in zip(dominated, xs, strict=True)]
        assert stats.pareto_front(df, "x", "y").tolist() == expected


def test_pareto_front_missing_column_and_empty():
    with pytest.raises(ConfigError):
        stats.pareto_front(pd.DataFrame({"x": [1]}), "x", "y")
    assert stats.pareto_front(pd.DataFrame({"x": [], "y": []}), "x", "y").empty


# --- break-even ---


def test_break_even_numbers():
    # $10 optimization, $2.00 -> $0.50 per 1k: saves $0.0015 per prediction -> 6,667 predictions.
    assert stats.break_even_predictions(10.0, 2.0, 0.5) == pytest.approx(10 / 0.0015)
    assert stats.break_even_predictions(0.0, 2.0, 0.5) == 0.0


def test_break_even_never():
    assert stats.break_even_predictions(10.0, 1.0, 1.0) is None
    assert stats.break_even_predictions(10.0, 1.0, 2.0) is None
    with pytest.raises(ConfigError):
        stats.break_even_predictions(-1.0, 2.0, 1.0)


# --- trade-off of an optimized student against a reference ---


def _records(correct: list[int], start: int = 0, texts: str = "example {i}") -> pd.DataFrame:
    """Records of one evaluation over 60 examples; ``correct`` lists the indexes it got right."""
    idx = list(range(start, start + 60))
    return pd.DataFrame({"idx": idx, "text": [texts.format(i=i) for i in idx], "gold": ["A"] * 60,
                         "correct": [i in correct for i in idx]})


def test_newcombe_interval_matches_published_example():
    # Newcombe (1998), method 10: 56/70 vs 48/80 -> difference 0.2, interval 0.0524 to 0.3339.
    low, high = stats.newcombe_diff_interval(48, 80, 56, 70)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=5e-4)


def test_trade_off_paired_and_significantly_worse():
    reference = _records(list(range(27)))  # 45.0%
    optimized = _records(list(range(19))).sample(frac=1, random_state=1)  # 31.7%, rows shuffled: matched by idx
    out = stats.trade_off(reference, optimized)
    assert out["paired"] is True and out["worse"] is True and out["n"] == 60
    assert (out["accuracy_reference"], out["accuracy_optimized"]) == pytest.approx((0.45, 19 / 60))
    assert out["diff"] == pytest.approx(19 / 60 - 0.45)
    assert out["ci_low"] <= out["diff"] <= out["ci_high"] < 0
    assert out["p_mcnemar"] == pytest.approx(2 / 2**8)  # 8 examples only the reference gets right, none the other way
    assert out["p_value"] == out["p_mcnemar"] and out["significant"] is True
    # Newcombe's paired interval (method 10) for both 19, reference only 8, optimized only 0, neither 33.
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(stats.newcombe_paired_interval(19, 8, 0, 33))


def test_trade_off_paired_not_significant():
    # Only the reference gets examples 0, 1, 2 right, only the optimized student example 40.
    out = stats.trade_off(_records(list(range(27))), _records([*range(3, 27), 40]))
    assert out["paired"] is True and out["worse"] is False
    assert out["diff"] == pytest.approx(-2 / 60) and out["ci_low"] < 0 < out["ci_high"]
    assert out["p_mcnemar"] == pytest.approx(2 * 5 / 16)
    assert out["p_value"] is None and out["significant"] is False  # 4 discordant examples: too few to test


def test_trade_off_on_different_examples_is_unpaired_and_never_worse():
    reference = _records(list(range(27)))
    for optimized in (_records(list(range(60, 79)), start=60),  # other indexes
                      _records(list(range(19)), texts="another sentence {i}"),  # same indexes, other examples
                      _records(list(range(19))).head(50)):  # fewer examples
        out = stats.trade_off(reference, optimized)
        assert out["paired"] is False and out["worse"] is False and math.isnan(out["p_mcnemar"])
        low, high = stats.newcombe_diff_interval(27, 60, 19, len(optimized))
        assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))
    no_idx = stats.trade_off(reference.drop(columns=["idx"]), _records(list(range(19))).drop(columns=["idx"]))
    assert no_idx["paired"] is True and no_idx["worse"] is True  # row order pairs them


def test_trade_off_needs_records():
    with pytest.raises(ConfigError, match="records"):
        stats.trade_off(_records([1]), pd.DataFrame())
    with pytest.raises(ConfigError, match="records"):
        stats.trade_off(pd.DataFrame({"idx": [0]}), _records([1]))
