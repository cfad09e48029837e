"""Field metrics: how one output field's predicted value is scored against its gold value.

:data:`FIELD_METRICS` is the one table the CLI, the Task page and the scorer read. Each metric is a pure function
``(gold, predicted, spec, param) -> (value in [0, 1], feedback sentence)``; it never raises for a bad *prediction*
(that scores 0 with feedback a reflection model can act on), only for bad *gold* data (a :class:`DataError`, as the
task itself is broken). A metric name may carry a parameter after a colon (``numeric:0.01``, ``numeric:1%``).
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from core.config.errors import ConfigError, DataError
from core.scoring.labels import normalize_label
from core.tasks import label_key
from core.tasks.fields import OutputSpec, split_labels

MetricFn = Callable[[Any, Any, OutputSpec, "float | None"], tuple[float, str]]
_SHOWN = 5  # words / labels / keys a feedback sentence names before "..."


class Tolerance(float):
    """A ``numeric`` tolerance: a float that also says whether it is relative (``numeric:1%``) or absolute."""

    relative: bool = False

    def __new__(cls, value: float, relative: bool = False) -> "Tolerance":
        obj = super().__new__(cls, value)
        obj.relative = relative
        return obj

    def __repr__(self) -> str:
        return f"Tolerance({float(self)!r}, relative={self.relative})"


# Text ----------------------------------------------------------------------------------------------------------

_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's ``normalize_answer``: lower case, no punctuation, no articles (a, an, the), single spaces."""
    return " ".join(_ARTICLES.sub(" ", str(text).lower().translate(_PUNCT)).split())


def token_f1(gold: str, predicted: str) -> float:
    """SQuAD v1.1's ``f1_score`` over normalised tokens, except that an empty gold and an empty prediction score
    1.0 (SQuAD gives 0 when no token is shared, even then; "nothing" answered for "nothing" is right)."""
    g, p = normalize_answer(gold).split(), normalize_answer(predicted).split()
    if not g and not p:
        return 1.0
    same = sum((Counter(g) & Counter(p)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_as_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _few(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


# Numbers -------------------------------------------------------------------------------------------------------

# A sign only where it is not a hyphen inside a word or range ("2020-2021" is 2020 and 2021); "1,234" is one number.
_NUMBER = re.compile(r"(?:(?<![\w.])[-+\u2212])?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(value: Any) -> float | None:
    """The number ``value`` holds: itself when numeric, else the LAST number written in it ("$1,234.50" -> 1234.5,
    "12 %" -> 12, "The answer is 42." -> 42); None when there is none (or it is NaN, or a bool)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return None if math.isnan(value) else float(value)
    matches = _NUMBER.findall(str(value))
    if not matches:
        return None
    return float(matches[-1].replace(",", "").replace("\u2212", "-"))


def _full_number(value: Any) -> float | None:
    """A number only when ``value`` is nothing but one (so "1.0" equals "1", but "route 66" stays text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return parse_number(value)
    text = str(value).strip() if value is not None else ""
    return parse_number(text) if _NUMBER.fullmatch(text) else None


def _close(gold: float, predicted: float, tol: float | None) -> bool:
    if gold == predicted:
        return True
    limit = 1e-9
    if tol is not None:
        limit = max(limit, tol * abs(gold) if getattr(tol, "relative", False) else float(tol))
    # A hair of slack so 1.01 vs 1.00 at ±0.01 is inside, as written, despite binary floating point.
    return abs(predicted - gold) <= limit + 1e-12 * max(1.0, abs(gold))


def _tolerance_text(tol: float | None) -> str:
    if tol is None:
        return "exact"
    return f"±{float(tol) * 100:g}%" if getattr(tol, "relative", False) else f"±{float(tol):g}"


def _gold_number(gold: Any, spec: OutputSpec) -> float:
    number = parse_number(gold)
    if number is None:
        raise DataError(f"The gold value {str(gold)[:200]!r} of {spec.column!r} holds no number.",
                        "Fix the column: a number output needs a number in every row.")
    return number


# The metrics ---------------------------------------------------------------------------------------------------


def exact_metric(gold: Any, predicted: Any, spec: OutputSpec, param: float | None = None) -> tuple[float, str]:
    """Normalised exact match: a label against the label set, a number as a number, text as SQuAD normalises it;
    a label set or a JSON object only when all of it matches."""
    by_kind = {"label": _exact_label, "labels": _all_of(setf1_metric), "json": _all_of(json_metric),
               "number": numeric_metric}
    if spec.kind in by_kind:
        return by_kind[spec.kind](gold, predicted, spec)
    g_num, p_num = _full_number(gold), _full_number(predicted)
    if g_num is not None and p_num is not None:
        return (1.0, "The numbers match.") if _close(g_num, p_num, None) else (0.0, f"{p_num:g} is not {g_num:g}.")
    g, p = normalize_answer(_as_text(gold)), normalize_answer(_as_text(predicted))
    if g == p:
        return 1.0, "Matches."
    return 0.0, f"Not the same text, even ignoring case, punctuation and articles (saw {p[:120]!r})."


def _all_of(metric: MetricFn) -> Callable[[Any, Any, OutputSpec], tuple[float, str]]:
    """``metric`` made all-or-nothing: 1 only where it gives 1."""
    def exact(gold: Any, predicted: Any, spec: OutputSpec) -> tuple[float, str]:
        value, feedback = metric(gold, predicted, spec, None)
        return (1.0 if value >= 1.0 else 0.0), feedback

    return exact


def _exact_label(gold: Any, predicted: Any, spec: OutputSpec) -> tuple[float, str]:
    want, got = normalize_label(gold, spec.labels), normalize_label(_as_text(predicted), spec.labels)
    if got is None:
        return 0.0, f"The answer names none of the labels ({_few(list(spec.labels))}); answer with one label exactly."
    if want is not None and got == want:
        return 1.0, f"Correct label {want}."
    return 0.0, f"Label {got} where {want if want is not None else gold} was expected."


def f1_metric(gold: Any, predicted: Any, spec: OutputSpec, param: float | None = None) -> tuple[float, str]:
    """Token F1 as SQuAD v1.1 computes it (see :func:`token_f1`)."""
    g_text, p_text = _as_text(gold), _as_text(predicted)
    value = token_f1(g_text, p_text)
    if value >= 1.0:
        return 1.0, "All the expected words, and no others."
    g, p = Counter(normalize_answer(g_text).split()), Counter(normalize_answer(p_text).split())
    missing, extra = list((g - p).keys()), list((p - g).keys())
    parts = [f"Token F1 {value:.2f}"]
    if missing:
        parts.append(f"missing words: {_few(missing)}")
    if extra:
        parts.append(f"words not expected: {_few(extra)}")
    return value, "; ".join(parts) + "."


def numeric_metric(gold: Any, predicted: Any, spec: OutputSpec, param: float | None = None) -> tuple[float, str]:
    """1 when the last number in the answer is within the tolerance of the gold number, else 0."""
    g = _gold_number(gold, spec)
    p = parse_number(predicted)
    if p is None:
        return 0.0, "No number could be read from the answer; answer with the number alone."
    if _close(g, p, param):
        return 1.0, f"Read {p:g}, within {_tolerance_text(param)} of {g:g}."
    return 0.0, f"Read {p:g} from the answer; expected {g:g} ({_tolerance_text(param)})."


def _label_set(cell: Any, spec: OutputSpec, *, predicted: bool) -> set[str]:
    parts = list(split_labels(cell))
    if predicted and spec.labels and len(parts) == 1 and normalize_label(parts[0], spec.labels) is None:
        parts = [p.strip() for p in re.split(r"[,\n]", parts[0]) if p.strip()]  # models list labels with commas
    out: set[str] = set()
    for part in parts:
        label = normalize_label(part, spec.labels) if spec.labels else None
        out.add(label if label is not None else label_key(part))
    return out


def setf1_metric(gold: Any, predicted: Any, spec: OutputSpec, param: float | None = None) -> tuple[float, str]:
    """F1 of the predicted label set against the gold set (both empty: 1)."""
    g, p = _label_set(gold, spec, predicted=False), _label_set(predicted, spec, predicted=True)
    if not g and not p:
        return 1.0, "No labels expected, none given."
    same = len(g & p)
    value = 2 * same / (len(g) + len(p))
    if value >= 1.0:
        return 1.0, "Exactly the expected labels."
    parts = [f"Set F1 {value:.2f}"]
    if g - p:
        parts.append(f"missing: {_few(sorted(g - p))}")
    if p - g:
        parts.append(f"not expected: {_few(sorted(p - g))}")
    return value, "; ".join(parts) + "."


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _json_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    text = _as_text(value).strip()
    fenced = _FENCE.match(text)
    try:
        obj = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def same_value(gold: Any, predicted: Any) -> bool:
    """One JSON value equals another: numbers as numbers, text as SQuAD normalises it, lists and objects in depth."""
    if gold is None or predicted is None:
        return gold is None and predicted is None
    if isinstance(gold, dict) or isinstance(predicted, dict):
        return (isinstance(gold, dict) and isinstance(predicted, dict) and gold.keys() == predicted.keys()
                and all(same_value(gold[k], predicted[k]) for k in gold))
    if isinstance(gold, list) or isinstance(predicted, list):
        return (isinstance(gold, list) and isinstance(predicted, list) and len(gold) == len(predicted)
                and all(same_value(a, b) for a, b in zip(gold, predicted, strict=True)))
    g_num, p_num = _full_number(gold), _full_number(predicted)
    if g_num is not None and p_num is not None:
        return _close(g_num, p_num, None)
    return normalize_answer(str(gold)) == normalize_answer(str(predicted))


def json_metric(gold: Any, predicted: Any, spec: OutputSpec, param: float | None = None) -> tuple[float, str]:
    """The share of keys (``spec.keys``, else the gold object's) whose predicted value equals the gold one."""
    g = _json_object(gold)
    if g is None:
        raise DataError(f"The gold value {str(gold)[:200]!r} of {spec.column!r} is not a JSON object.",
                        'Fix the column: each row of a JSON output holds an object, e.g. {"name": "x", "dose": 5}.')
    p = _json_object(predicted)
    if p is None:
        return 0.0, "The answer is not a JSON object; answer with one object holding the expected keys."
    keys = list(spec.keys) or list(g)
    if not keys:
        return 1.0, "No keys expected."
    wrong = [k for k in keys if not same_value(g.get(k), p.get(k))]
    if not wrong:
        return 1.0, "Every key matches."
    missing = [k for k in wrong if k not in p]
    text = f"{len(keys) - len(wrong)} of {len(keys)} keys match; wrong: {_few(wrong)}"
    if missing:
        text += f" (missing: {_few(missing)})"
    return (len(keys) - len(wrong)) / len(keys), text + "."


# The table -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldMetric:
    """One field metric: what charts call it, one line of help, the kinds it suits, and its function."""

    name: str
    display: str
    help: str
    kinds: tuple[str, ...]
    score: MetricFn
    takes_param: bool = False

    def label(self, param: float | None = None) -> str:
        """The name charts print, with its parameter: "numeric (±0.01)"."""
        return f"{self.display} ({_tolerance_text(param)})" if param is not None else self.display


FIELD_METRICS: dict[str, FieldMetric] = {m.name: m for m in (
    FieldMetric("exact", "exact match", "1 when the answer equals the gold value once case, spacing and punctuation "
                "are ignored (a label against the label set, a number as a number).",
                ("label", "labels", "text", "number", "json"), exact_metric),
    FieldMetric("f1", "token F1", "Word overlap with the gold text, as SQuAD scores answers (partial credit).",
                ("text", "label"), f1_metric),
    FieldMetric("numeric", "numeric", "1 when the last number in the answer is within a tolerance of the gold one: "
                "numeric:0.01 (absolute) or numeric:1% (relative); exact by default.", ("number", "text"),
                numeric_metric, takes_param=True),
    FieldMetric("setf1", "set F1", "F1 of the predicted label set against the gold labels (partial credit).",
                ("labels", "label"), setf1_metric),
    FieldMetric("json", "JSON field match", "The share of the JSON object's keys whose values match.", ("json",),
                json_metric),
)}


def parse_metric(text: str) -> tuple[str, float | None]:
    """``"numeric:0.01"`` -> ``("numeric", 0.01)``; ``"numeric:1%"`` -> a relative :class:`Tolerance` of 0.01."""
    name, _, raw = str(text).strip().partition(":")
    name, raw = name.strip().lower(), raw.strip()
    if name not in FIELD_METRICS:
        raise ConfigError(f"Unknown field metric {text!r}.", f"Use one of: {', '.join(FIELD_METRICS)}.")
    if not raw:
        return name, None
    if not FIELD_METRICS[name].takes_param:
        raise ConfigError(f"The metric {name!r} takes no parameter (got {text!r}).", f"Write just {name!r}.")
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{text!r}: the tolerance {raw!r} is not a number of 0 or more.",
                          f"Write e.g. {name}:0.01 (absolute) or {name}:1% (relative).")
    return name, Tolerance(value / 100 if relative else value, relative)
