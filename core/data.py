"""Tasks and their data: read a table (CSV, Parquet, PubMed RCT text), check it, clean it, sample splits.

Every bad input raises :class:`core.errors.DataError` with what went wrong and how to fix it;
problems that only lose a few rows come back from :func:`validate_table` as warnings.
"""

from __future__ import annotations

import gzip
import io
import keyword
import logging
import os
import re
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd

from core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# --- the PubMed RCT task ---

PUBMED_LABELS: tuple[str, ...] = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
PUBMED_LABEL_DESCRIPTIONS: dict[str, str] = {
    "BACKGROUND": "Sets the context: what is known about the problem, why it matters, what is missing.",
    "OBJECTIVE": "States the aim of this study: the question, hypothesis or purpose it sets out to address.",
    "METHODS": "Describes how the study was done: design, participants, interventions, measurements, analysis.",
    "RESULTS": "Reports what was found: outcomes, numbers, effect sizes, statistical comparisons.",
    "CONCLUSIONS": "Interprets the findings: what they mean, their implications, recommendations or next steps.",
}
_HUB = "https://huggingface.co/datasets/ml4pubmed/pubmed-text-classification-cased/resolve/main"
PUBMED_HUB_URLS: dict[str, str] = {"train": f"{_HUB}/train.csv", "test": f"{_HUB}/test.csv"}

DEMO_DIR = Path(__file__).parent / "demo_data"
DEMO_CSV = DEMO_DIR / "demo_sentences.csv"

_LOCAL_FILE_HINT = (
    "Give a local copy instead (a CSV with columns description,target, or PubMed 20k RCT's train.txt / test.txt), "
    "or use the bundled demo task, which needs no network."
)

# Field names that would clash with dspy.Signature / pydantic attributes.
_RESERVED_FIELDS = frozenset(
    {
        "instructions",
        "signature",
        "demos",
        "fields",
        "input_fields",
        "output_fields",
        "model_config",
        "model_fields",
        "schema",
        "json",
        "dict",
        "copy",
    }
)


# --- the task ---


def _identifier(name: str, fallback: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    ident = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_name).strip("_").lower() or fallback
    if ident[0].isdigit():
        ident = f"col_{ident}"
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident) or ident in _RESERVED_FIELDS:
        ident = f"{ident}_"
    return ident


@dataclass(frozen=True)
class Task:
    """A text-classification task: which column is the text, which the label, and the allowed labels."""

    name: str
    text_column: str
    label_column: str
    labels: tuple[str, ...]
    label_descriptions: tuple[tuple[str, str], ...] = ()  # (label, description) pairs
    instruction: str = ""  # the classifier's starting instruction; "" means default_instruction(task)
    source: str = ""  # where the data came from: a path, a URL, "hub" or "demo"

    def __post_init__(self) -> None:
        # Accept lists and dicts (e.g. from JSON) but keep the dataclass hashable.
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        pairs = self.label_descriptions
        items = pairs.items() if isinstance(pairs, dict) else pairs
        object.__setattr__(self, "label_descriptions", tuple((str(k), str(v)) for k, v in items))

    @property
    def input_field(self) -> str:
        """``text_column`` as a Python identifier, the DSPy input field name."""
        return _identifier(self.text_column, "text")

    @property
    def output_field(self) -> str:
        """``label_column`` as a Python identifier, never equal to :attr:`input_field`."""
        out = _identifier(self.label_column, "label")
        return f"{out}_label" if out == self.input_field else out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "text_column": self.text_column,
            "label_column": self.label_column,
            "labels": list(self.labels),
            "label_descriptions": [list(pair) for pair in self.label_descriptions],
            "instruction": self.instruction,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def default_instruction(task: Task) -> str:
    """A plain starting instruction: the allowed labels, then one line per described label."""
    noun = "sentence" if set(task.labels) == set(PUBMED_LABELS) or "sentence" in task.text_column.lower() else "text"
    lines = [f"Classify the {noun} into one of: {', '.join(task.labels)}."]
    if task.label_descriptions:
        lines += ["", "What each label means:"]
        lines += [f"- {label}: {desc}" for label, desc in task.label_descriptions]
    return "\n".join(lines)


def pubmed_task(source: str = "") -> Task:
    """The PubMed RCT sentence-role task (columns description, target)."""
    return Task(
        name="pubmed",
        text_column="description",
        label_column="target",
        labels=PUBMED_LABELS,
        label_descriptions=tuple(PUBMED_LABEL_DESCRIPTIONS.items()),
        source=source,
    )


def demo_task() -> Task:
    """The bundled demo task: invented clinical-trial sentences with the PubMed labels."""
    return replace(pubmed_task("demo"), name="demo")


def table_task(df: pd.DataFrame, *, text_column: str, label_column: str, name: str, source: str = "") -> Task:
    """A task for a user's table: its labels are the distinct labels left after :func:`clean_table`."""
    cleaned = clean_table(df, text_column=text_column, label_column=label_column)
    labels = tuple(sorted(cleaned[label_column].unique()))
    if len(labels) < 2:
        raise DataError(
            f"Column {label_column!r} has {len(labels)} distinct label(s) after cleaning; a classifier needs at least 2.",
            "Pick the column that holds the classes, or add rows for other labels.",
        )
    return Task(name=name, text_column=text_column, label_column=label_column, labels=labels, source=source)


# --- reading ---


def _fetch_url(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "gepa-studio"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as err:
        raise DataError(
            f"Could not download {url}: the server answered HTTP {err.code} ({err.reason}).",
            "Check the address, or download the file and give its local path.",
        ) from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"Could not reach {url} ({reason}).",
            "Check the address and the network, or download the file and give its local path.",
        ) from err


def _is_url(source: object) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def _read_source(source: str | Path | bytes | IO, name: str, timeout: float) -> tuple[bytes, str]:
    """The raw bytes of ``source`` and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "the uploaded file"
    if _is_url(source):
        assert isinstance(source, str)
        logger.info("Downloading %s", source)
        return _fetch_url(source, timeout), name or source
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        label = name or str(source)
        if not str(source).strip():
            raise DataError("No file given.", "Give the path of a CSV, Parquet or PubMed RCT .txt file, or upload one.")
        if not path.exists():
            raise DataError(
                f"File not found: {label} (looked in {path.resolve()}).",
                "Check the path (relative paths start from the folder the app runs in) or upload the file.",
            )
        if path.is_dir():
            raise DataError(f"{label} is a folder, not a file.", "Give the path of the data file inside it.")
        try:
            return path.read_bytes(), label
        except OSError as err:
            raise DataError(f"Could not read {label}: {err.strerror or err}.", "Check the file's permissions.") from err
    # A file object: Streamlit's UploadedFile has getvalue(), which ignores earlier reads.
    label = name or Path(str(getattr(source, "name", "") or "the uploaded file")).name
    if hasattr(source, "getvalue"):
        raw = source.getvalue()
    else:
        if hasattr(source, "seek") and getattr(source, "seekable", lambda: False)():
            source.seek(0)
        raw = source.read()
    return (raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)), label


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        bad = data[err.start : err.start + 1].hex().upper()
        try:
            data.decode("cp1252")
            guess = " It looks like Windows-1252 / Latin-1."
        except UnicodeDecodeError:
            guess = ""
        raise DataError(
            f"{name} is not UTF-8 text: byte 0x{bad} at offset {err.start} (line {line}) cannot be decoded.{guess}",
            "Re-save the file as UTF-8 (Excel: Save As > 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 in.csv > out.csv`).",
        ) from err


_RCT_LINE = re.compile(r"^([A-Z]+)\t")


def _looks_like_rct(text: str) -> bool:
    for line in text[:65536].splitlines():
        if line.strip():
            if line.startswith("###"):
                return True
            match = _RCT_LINE.match(line)
            return bool(match and match.group(1) in PUBMED_LABELS)
    return False


def _parse_rct(text: str, name: str) -> pd.DataFrame:
    """PubMed RCT text: ``###<id>`` lines, then ``LABEL<TAB>sentence`` lines, blank lines between abstracts."""
    rows: list[tuple[str, str, str]] = []
    abstract_id = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("###"):
            abstract_id = line[3:].strip()
            continue
        label, tab, sentence = line.partition("\t")
        if not tab:
            raise DataError(
                f"{name} line {number} is neither an abstract header (###<id>) nor LABEL<TAB>sentence: {line[:80]!r}.",
                "In the PubMed RCT text format every sentence line is a label, a tab, then the sentence.",
            )
        rows.append((sentence.strip(), label.strip(), abstract_id))
    return pd.DataFrame(rows, columns=["description", "target", "abstract_id"], dtype="str")


def _delimiter(text: str, suffix: str) -> str:
    if suffix == ".tsv":
        return "\t"
    header = next((line for line in text[:65536].splitlines() if line.strip()), "")
    counts = {sep: header.count(sep) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=lambda sep: counts[sep])  # ties keep the first: ","
    return best if counts[best] else ","


def _parse_csv(text: str, name: str, suffix: str) -> pd.DataFrame:
    sep = _delimiter(text, suffix)
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{name} is empty.", "Give a file with a header row and at least one data row.") from err
    except pd.errors.ParserError as err:
        detail = str(err).replace("Error tokenizing data. C error: ", "").strip()
        shown = {"\t": "tab"}.get(sep, repr(sep))
        raise DataError(
            f"{name} is not a well-formed CSV ({shown}-separated): {detail}",
            f"Every row needs as many fields as the header; a text containing the separator ({shown}), a quote or a "
            'line break must be wrapped in double quotes, with quotes inside it doubled ("").',
        ) from err


def _parse_parquet(data: bytes, name: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except ImportError as err:
        raise DataError(
            f"Reading {name} needs pyarrow, which is not installed.", "pip install pyarrow, or save the table as CSV."
        ) from err
    except Exception as err:  # pyarrow raises its own types for corrupt files
        raise DataError(
            f"{name} is not a readable Parquet file ({err}).", "Re-export it, or save the table as CSV."
        ) from err


def read_table(source: str | Path | bytes | IO, *, name: str = "", timeout: float = 10.0) -> pd.DataFrame:
    """A table from a path, an http(s) URL, uploaded bytes or a file object.

    Formats: CSV/TSV (separator detected from the header), Parquet, and the PubMed RCT text
    format (columns description, target, abstract_id). Gzip-compressed files are unpacked.
    """
    data, label = _read_source(source, name, timeout)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataError(
                f"{label} looks gzip-compressed but cannot be unpacked ({err}).", "Unpack it and give the plain file."
            ) from err
    if not data.strip():
        raise DataError(f"{label} is empty.", "Give a file with a header row and at least one data row.")
    suffix = Path(label.split("?")[0].removesuffix(".gz")).suffix.lower()
    if data[:4] == b"PAR1" or suffix == ".parquet":
        df = _parse_parquet(data, label)
    elif data[:4] == b"PK\x03\x04" or suffix in (".xlsx", ".xls", ".zip"):
        raise DataError(
            f"{label} is an Excel or zip file, which cannot be read directly.",
            "Save the sheet as 'CSV UTF-8' (or unzip the archive) and give that file.",
        )
    else:
        text = _decode(data, label)
        df = _parse_rct(text, label) if _looks_like_rct(text) else _parse_csv(text, label, suffix)
    if df.empty:
        raise DataError(f"{label} has no data rows.", "Give a file with a header row and at least one data row.")
    df.columns = [str(c).strip() for c in df.columns]
    logger.info("Read %d rows x %d columns from %s", len(df), len(df.columns), label)
    return df


# --- checking and cleaning ---


def _require_columns(df: pd.DataFrame, columns: list[str], what: str = "The table") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        available = ", ".join(repr(str(c)) for c in df.columns)
        raise DataError(
            f"{what} has no column {' or '.join(repr(c) for c in missing)}. Its columns are: {available}.",
            "Pick the text and label columns from that list (names are case-sensitive).",
        )


def _texts(series: pd.Series) -> pd.Series:
    """Text cells as stripped strings; missing cells become ""."""
    return series.astype("string").str.strip().fillna("").astype(str)


def _labels(series: pd.Series) -> pd.Series:
    """Label cells as stripped strings; missing or blank cells become NA. Whole floats lose their ".0"."""
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    out = series.astype("string").str.strip()
    return out.mask(out.eq("").fillna(False)).astype(str)


def validate_table(
    df: pd.DataFrame, *, text_column: str, label_column: str, min_labels: int = 2, max_text_chars: int = 20_000
) -> list[str]:
    """Raise DataError if ``df`` cannot be a classification task; return warnings about rows that will be lost."""
    _require_columns(df, [text_column, label_column])
    if text_column == label_column:
        raise DataError(f"The text and label columns are the same ({text_column!r}).", "Pick two different columns.")
    texts, labels = _texts(df[text_column]), _labels(df[label_column])
    empty = texts == ""
    if empty.all():
        raise DataError(
            f"Every cell of the text column {text_column!r} is empty.", "Pick the column that holds the texts."
        )
    usable = labels[~empty].dropna()
    n_labels = usable.nunique()
    if n_labels < min_labels:
        found = ", ".join(repr(v) for v in sorted(usable.unique())[:5]) or "none"
        raise DataError(
            f"Column {label_column!r} has {n_labels} distinct label(s) ({found}); a classifier needs at least {min_labels}.",
            "Pick the column that holds the classes, or add rows for the other labels.",
        )

    warnings: list[str] = []
    if n_empty := int(empty.sum()):
        warnings.append(f"{n_empty} row(s) have an empty text in {text_column!r}; they will be dropped.")
    if n_missing := int(labels.isna().sum()):
        warnings.append(f"{n_missing} row(s) have no label in {label_column!r}; they will be dropped.")
    if n_huge := int((texts.str.len() > max_text_chars).sum()):
        warnings.append(
            f"{n_huge} text(s) are longer than {max_text_chars:,} characters; they are kept but cost many tokens per call."
        )
    pairs = pd.DataFrame({"t": texts, "l": labels})[~empty & labels.notna()]
    if n_dup := int(pairs.duplicated().sum()):
        warnings.append(f"{n_dup} duplicate row(s) (same text and label); the copies will be dropped.")
    conflicting = pairs.drop_duplicates().groupby("t")["l"].nunique()
    if n_conflict := int((conflicting > 1).sum()):
        warnings.append(f"{n_conflict} text(s) appear with more than one label; check the labels.")
    if n_labels > 50:
        warnings.append(f"{label_column!r} has {n_labels} distinct labels: is it really the label column?")
    return warnings


def clean_table(df: pd.DataFrame, *, text_column: str, label_column: str) -> pd.DataFrame:
    """Stripped texts and string labels; rows with an empty text, no label or a duplicate (text, label) dropped."""
    _require_columns(df, [text_column, label_column])
    out = df.copy()
    out[text_column] = _texts(df[text_column])
    out[label_column] = _labels(df[label_column])
    out = out[(out[text_column] != "") & out[label_column].notna()]
    out = out.drop_duplicates(subset=[text_column, label_column])
    out[text_column] = out[text_column].astype(str)
    out[label_column] = out[label_column].astype(str)
    return out.reset_index(drop=True)


def label_counts(df: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Rows per label: columns ``label``, ``count``, sorted by label (for a distribution chart)."""
    _require_columns(df, [label_column])
    counts = df[label_column].dropna().astype(str).value_counts()
    out = pd.DataFrame({"label": counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})
    return out.sort_values("label").reset_index(drop=True)


# --- the bundled demo and PubMed ---


def load_demo() -> pd.DataFrame:
    """The bundled demo table (columns description, target; 60 invented sentences per PubMed label)."""
    return read_table(DEMO_CSV, name="the bundled demo data")


def _pubmed_columns(df: pd.DataFrame, name: str) -> pd.DataFrame:
    _require_columns(df, ["description", "target"], what=f"The PubMed file {name}")
    out = df[["description", "target"]].copy()  # drops description_cln, abstract_id, index columns
    target = out["target"].astype("string").str.strip()
    upper = target.str.upper()
    out["target"] = upper.where(upper.isin(PUBMED_LABELS), target).astype(str)  # "background" -> "BACKGROUND"
    return out


def load_pubmed(
    split: Literal["train", "test"],
    *,
    source: str | Path | None = None,
    cache_dir: Path | None = None,
    timeout: float = 10.0,
) -> pd.DataFrame:
    """A PubMed RCT split as columns description, target.

    With no ``source``: the Hugging Face hub file for ``split``, read from ``cache_dir`` when cached
    there and written there after a download. ``source`` may instead be a local CSV/Parquet/RCT .txt
    file or a URL.
    """
    if split not in PUBMED_HUB_URLS:
        raise ConfigError(f"Unknown PubMed split {split!r}.", "Use 'train' or 'test'.")
    if source is not None and str(source).strip():
        if not _is_url(source):
            return _pubmed_columns(read_table(source), str(source))
        url, cache = str(source), None
    else:
        url = PUBMED_HUB_URLS[split]
        cache = Path(cache_dir) / f"pubmed-{split}.csv" if cache_dir else None
        if cache is not None and cache.is_file():
            logger.info("Reading PubMed %s from the cache %s", split, cache)
            return _pubmed_columns(read_table(cache), str(cache))
    try:
        data = _fetch_url(url, timeout)
    except DataError as err:
        raise DataError(f"The PubMed {split} split cannot be downloaded: {err.message}", _LOCAL_FILE_HINT) from err
    df = _pubmed_columns(read_table(data, name=url), url)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".csv.part")
        df.to_csv(partial, index=False)
        os.replace(partial, cache)  # a crash mid-write never leaves a truncated cache
        logger.info("Cached PubMed %s (%d rows) at %s", split, len(df), cache)
    return df


# --- sampling ---


def _sample(df: pd.DataFrame, label_column: str, n: int, seed: int, what: str = "") -> pd.DataFrame:
    """``n`` rows per label, keeping the original index (so callers can exclude the rows taken)."""
    _require_columns(df, [label_column])
    counts = df[label_column].value_counts()
    short = counts[counts < n]
    if len(short):
        listed = ", ".join(f"{label!r} has {int(c)} row(s)" for label, c in short.sort_index().items())
        raise DataError(
            f"Not enough rows{what}: {listed}, fewer than the {n} per label requested.",
            "Lower the per-label size, or add rows for that label.",
        )
    return df.groupby(label_column, group_keys=False).sample(n=n, random_state=seed)


def sample_per_label(df: pd.DataFrame, label_column: str, n: int, seed: int) -> pd.DataFrame:
    """``n`` random rows of each label, as the seed notebook: ``groupby(label).sample(n, random_state=seed)``."""
    return _sample(df, label_column, n, seed).reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class Splits:
    """Train, optional validation and test tables, sampled per label with ``seed``; pairwise disjoint."""

    train: pd.DataFrame
    val: pd.DataFrame | None
    test: pd.DataFrame
    seed: int

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) if self.val is not None else 0, "test": len(self.test)}


def make_splits(
    task: Task,
    train_df: pd.DataFrame,
    test_df: pd.DataFrame | None = None,
    *,
    train_per_label: int = 3,
    val_per_label: int = 0,
    test_per_label: int = 10,
    seed: int = 42,
) -> Splits:
    """Sample train and validation from ``train_df``; test from ``test_df`` or else from the rest of ``train_df``.

    Only ``task.labels`` are used. With a separate ``test_df``, rows whose text was drawn for train or
    validation are left out of the test pool.
    """
    if train_per_label < 1 or test_per_label < 1 or val_per_label < 0:
        raise ConfigError(
            "Sample sizes must be at least 1 per label for train and test (0 or more for validation).",
            f"Got train={train_per_label}, validation={val_per_label}, test={test_per_label}.",
        )
    text, lab = task.text_column, task.label_column
    _require_columns(train_df, [text, lab], what="The training table")
    pool = train_df[train_df[lab].isin(task.labels)]
    present = set(pool[lab].unique())
    missing = [label for label in task.labels if label not in present]
    if missing:
        raise DataError(
            f"The training table has no rows for label(s) {', '.join(map(repr, missing))}.",
            "Every label needs training rows: add some, or use a task without that label.",
        )
    need = train_per_label + val_per_label + (test_per_label if test_df is None else 0)
    counts = pool[lab].value_counts()
    short = counts[counts < need]
    if len(short):
        parts = f"train {train_per_label} + validation {val_per_label}" + (
            f" + test {test_per_label}" if test_df is None else ""
        )
        listed = ", ".join(f"{label!r} has {int(c)} row(s)" for label, c in short.sort_index().items())
        raise DataError(
            f"Not enough rows per label: {listed}, but {parts} = {need} are needed.",
            "Lower the per-label sizes, add rows, or give a separate test file.",
        )

    train = _sample(pool, lab, train_per_label, seed)
    rest = pool.drop(index=train.index)
    val = _sample(rest, lab, val_per_label, seed) if val_per_label else None
    if val is not None:
        rest = rest.drop(index=val.index)
    if test_df is None:
        test = _sample(rest, lab, test_per_label, seed, what=" for the test split")
    else:
        _require_columns(test_df, [text, lab], what="The test table")
        taken = set(train[text]) | (set(val[text]) if val is not None else set())
        test_pool = test_df[test_df[lab].isin(task.labels) & ~test_df[text].isin(taken)]
        if test_pool.empty:
            raise DataError(
                "The test table has no rows with the task's labels.",
                f"Its label column {lab!r} must use the same labels: {', '.join(task.labels)}.",
            )
        test = _sample(test_pool, lab, test_per_label, seed, what=" in the test table")
        if absent := sorted(set(task.labels) - set(test[lab].unique())):
            logger.warning("The test table has no rows for %s; the test split leaves them out.", absent)
    unseen = sorted(set(test[lab]) - set(train[lab]))
    if unseen:
        raise DataError(
            f"Test label(s) {', '.join(map(repr, unseen))} never appear in train.",
            "Every test label must have training rows.",
        )
    splits = Splits(
        train=train.reset_index(drop=True),
        val=val.reset_index(drop=True) if val is not None else None,
        test=test.reset_index(drop=True),
        seed=seed,
    )
    logger.info("Splits for %s: %s (seed %d)", task.name, splits.sizes(), seed)
    return splits
