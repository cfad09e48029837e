"""Reading tables: CSV/TSV, Parquet, PubMed RCT text, gzip, http(s) URLs (the hub's PubMed files cached in the
data dir), the bundled demo file. Every bad input raises :class:`core.config.errors.DataError` with the fix."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import IO, Literal

import pandas as pd

from core.config.errors import ConfigError, DataError
from core.tasks.decode import decode
from core.tasks.model import PUBMED_LABELS
from core.tasks.text import listing
from core.tasks.validate import READ_NOTES, SOURCE_NAME, _require_columns

logger = logging.getLogger(__name__)

_HUB = "https://huggingface.co/datasets/ml4pubmed/pubmed-text-classification-cased/resolve/main"
PUBMED_HUB_URLS: dict[str, str] = {"train": f"{_HUB}/train.csv", "test": f"{_HUB}/test.csv"}

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo_data"
DEMO_CSV = DEMO_DIR / "demo_sentences.csv"

_LOCAL_FILE_HINT = (
    "Give a local copy instead (a CSV with columns description,target, or PubMed 20k RCT's train.txt / test.txt), "
    "or use the bundled demo task, which needs no network."
)


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


_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def _delimiter(text: str, suffix: str) -> str:
    """The separator, counted outside double quotes (a quoted name may hold a comma): the one the header and
    the first rows use equally often, else the header's most frequent one."""
    if suffix == ".tsv":
        return "\t"
    unquoted = _QUOTED.sub('""', text[:65536])
    lines = [line for line in unquoted.splitlines() if line.strip()][:20]
    if not lines:
        return ","

    def score(sep: str) -> tuple[bool, int]:
        counts = [line.count(sep) for line in lines]
        return counts[0] > 0 and all(c == counts[0] for c in counts[1:]), counts[0]

    best = max((",", "\t", ";", "|"), key=score)  # ties keep the first: ","
    return best if score(best)[1] else ","


def _parse_csv(text: str, name: str, suffix: str) -> pd.DataFrame:
    sep = _delimiter(text, suffix)
    shown = {"\t": "tab"}.get(sep, repr(sep))
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{name} is empty.", "Give a file with a header row and at least one data row.") from err
    except (pd.errors.ParserError, ValueError, OverflowError) as err:  # pandas raises ValueError for some bad text
        detail = str(err).replace("Error tokenizing data. C error: ", "").strip()
        raise DataError(
            f"{name} is not a well-formed CSV ({shown}-separated): {detail[:300]}",
            f"Every row needs as many fields as the header; a text containing the separator ({shown}), a quote or a "
            'line break must be wrapped in double quotes, with quotes inside it doubled ("").',
        ) from err
    header = _header(text, sep)
    if len(header) == df.shape[1]:  # pandas renames repeated names itself ("label.1"): keep them for the notes
        df.columns = header
    return df


def _header(text: str, sep: str) -> list[str]:
    """The header row's names as written (an empty list if the csv module cannot read it)."""
    try:
        return next((row for row in csv.reader(io.StringIO(text[:1_000_000]), delimiter=sep) if row), [])
    except csv.Error:
        return []


def _parse_parquet(data: bytes, name: str) -> tuple[pd.DataFrame, list[str]]:
    """The flat columns of a Parquet file; nested ones (lists, structs, maps) are left out with a note."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise DataError(
            f"Reading {name} needs pyarrow, which is not installed.", "pip install pyarrow, or save the table as CSV."
        ) from err
    try:
        table = pq.read_table(io.BytesIO(data))
        nested = [(i, f) for i, f in enumerate(table.schema) if pa.types.is_nested(f.type)]
        flat = [i for i in range(table.num_columns) if i not in {i for i, _ in nested}]
        df = table.select(flat).to_pandas() if flat else pd.DataFrame()
    except Exception as err:  # pyarrow raises its own types for corrupt files
        raise DataError(
            f"{name} is not a readable Parquet file ({str(err)[:300]}).", "Re-export it, or save the table as CSV."
        ) from err
    if not nested:
        return df, []
    left_out = listing((f"{f.name!r} ({f.type})" for _, f in nested), quote=False)
    if not flat:
        raise DataError(
            f"Every column of {name} holds nested values (lists, structs or maps): {left_out}.",
            "A task needs one plain text column and one plain label column; flatten the table and save it again.",
        )
    return df, [f"Left out {len(nested)} column(s) of {name} holding nested values (lists, structs or maps), which "
                f"cannot be a text or a label: {left_out}."]


def _unique_columns(df: pd.DataFrame) -> list[str]:
    """Strip the header's names and rename repeats (``label``, ``label `` -> ``label``, ``label.1``), with notes."""
    names: list[str] = []
    renamed: dict[str, list[str]] = {}
    raw = [str(c) for c in df.columns]
    taken = {n.strip() for n in raw}
    for i, original in enumerate(raw):
        name = original.strip() or f"column {i + 1}"
        if name in names:
            k = 1
            while f"{name}.{k}" in taken or f"{name}.{k}" in names:
                k += 1
            renamed.setdefault(name, [name]).append(f"{name}.{k}")
            name = f"{name}.{k}"
        names.append(name)
    df.columns = names
    return [f"The header repeats the name {base!r} ({len(new)} columns, counting names that differ only in "
            f"surrounding spaces); they are called {listing(new)} here." for base, new in list(renamed.items())[:5]]


def read_table(source: str | Path | bytes | IO, *, name: str = "", timeout: float = 10.0) -> pd.DataFrame:
    """A table from a path, an http(s) URL, uploaded bytes or a file object.

    Formats: CSV/TSV (separator detected from the header), Parquet, and the PubMed RCT text
    format (columns description, target, abstract_id). Gzip-compressed files are unpacked.
    """
    data, label = _read_source(source, name, timeout)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{label} looks gzip-compressed but cannot be unpacked ({err}).", "Unpack it and give the plain file."
            ) from err
    if not data.strip():
        raise DataError(f"{label} is empty.", "Give a file with a header row and at least one data row.")
    suffix = Path(label.split("?")[0].removesuffix(".gz")).suffix.lower()
    notes: list[str] = []
    if data[:4] == b"PAR1" or suffix == ".parquet":
        df, notes = _parse_parquet(data, label)
    elif data[:4] == b"PK\x03\x04" or data[:4] == b"\xd0\xcf\x11\xe0" or suffix in (".xlsx", ".xls", ".zip"):
        raise DataError(
            f"{label} is an Excel or zip file, which cannot be read directly.",
            "Save the sheet as 'CSV UTF-8' (or unzip the archive) and give that file.",
        )
    else:
        text, notes = decode(data, label)
        if not text.strip():
            raise DataError(f"{label} is empty.", "Give a file with a header row and at least one data row.")
        df = _parse_rct(text, label) if _looks_like_rct(text) else _parse_csv(text, label, suffix)
    if df.empty:
        raise DataError(f"{label} has no data rows.", "Give a file with a header row and at least one data row.")
    notes += _unique_columns(df)
    df.attrs[READ_NOTES] = notes
    df.attrs[SOURCE_NAME] = label
    logger.info("Read %d rows x %d columns from %s", len(df), len(df.columns), label)
    return df


def load_demo() -> pd.DataFrame:
    """The bundled demo table (columns description, target; 60 invented sentences per PubMed label)."""
    return read_table(DEMO_CSV, name="the bundled demo data")


def _pubmed_columns(df: pd.DataFrame, name: str) -> pd.DataFrame:
    _require_columns(df, ["description", "target"], what=f"The PubMed file {name}")
    out = df[["description", "target"]].copy()  # drops description_cln, abstract_id, index columns
    out.attrs = {SOURCE_NAME: name}
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

