"""Writes the corpus of awkward task files in tests/data/bad/ and says what each should give.

Run ``python -m tests.data.make_bad_files`` from the repository root to rewrite the files; the tests read
the files on disk and the expectations in :data:`CASES` (and check the two agree).

Each case is one problem: ``expect`` is "ok" (loads and samples with the default sizes), "warn" (loads, with
a warning matching ``says``) or "error" (a StudioError whose message matches ``says``). Files that should load
hold 15 rows per label so the Task page's default sample (3 train + 10 test per label) fits.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

BAD_DIR = Path(__file__).resolve().parent / "bad"
Expect = Literal["ok", "warn", "error"]
LABELS = ("positive", "negative")
N = 15  # rows per label in files that should load


@dataclass(frozen=True)
class Case:
    name: str  # file name in tests/data/bad/
    problem: str  # what is wrong with it, for the report
    expect: Expect
    says: str  # a regex the message (error) or one warning (warn) matches; "" for ok
    make: Callable[[], bytes]


def rows(labels: tuple[str, ...] = LABELS, n: int = N,
         text: str = "Review {i} of a {label} experience.") -> list[list[str]]:
    return [[text.format(i=i, label=label), label] for label in labels for i in range(n)]


def csv_bytes(table: list[list[str]], header: list[str] | None = None, sep: str = ",", encoding: str = "utf-8",
              newline: str = "\n", quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator=newline, quoting=quoting)
    writer.writerow(header or ["text", "label"])
    writer.writerows(table)
    return out.getvalue().encode(encoding)


def good(**kw) -> bytes:
    return csv_bytes(rows(), **kw)


def parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def frame(labels: tuple[str, ...] = LABELS, n: int = N) -> pd.DataFrame:
    return pd.DataFrame(rows(labels, n), columns=["text", "label"])


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("[Content_Types].xml", date_time=(2020, 1, 1, 0, 0, 0))
        z.writestr(info,
                   '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    return buf.getvalue()


def junk(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def with_labels(mapping: dict[int, str]) -> bytes:
    """The good table with some rows' labels replaced (row index -> label)."""
    table = rows()
    for i, label in mapping.items():
        table[i][1] = label
    return csv_bytes(table)


def ids(n: int = 10_000) -> bytes:
    return csv_bytes([[f"Order {i} arrived late and the box was damaged.", f"ORD-{i:06d}"] for i in range(n)],
                     header=["text", "order_id"])


def rct() -> bytes:
    labels = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
    lines = []
    for a in range(N):
        lines.append(f"###{1000 + a}")
        lines += [f"{label}\tSentence {a} about {label.lower()} in abstract {a} ." for label in labels]
        lines.append("")
    return "\n".join(lines).encode()


CASES: tuple[Case, ...] = (
    # --- encodings and byte-order marks ---
    Case("utf8_bom.csv", "UTF-8 with a byte-order mark (Excel's 'CSV UTF-8')", "ok", "",
         lambda: b"\xef\xbb\xbf" + good()),
    Case("utf16_le_bom.csv", "UTF-16 LE with a BOM (Excel's 'Unicode text')", "ok", "",
         lambda: b"\xff\xfe" + good(encoding="utf-16-le")),
    Case("utf16_be_bom.csv", "UTF-16 BE with a BOM", "ok", "", lambda: b"\xfe\xff" + good(encoding="utf-16-be")),
    Case("utf32_le_bom.csv", "UTF-32 LE with a BOM", "ok", "",
         lambda: b"\xff\xfe\x00\x00" + good(encoding="utf-32-le")),
    Case("utf32_be_bom.csv", "UTF-32 BE with a BOM", "ok", "",
         lambda: b"\x00\x00\xfe\xff" + good(encoding="utf-32-be")),
    Case("utf16_le_no_bom.csv", "UTF-16 LE without a BOM", "warn", r"no byte-order mark.*UTF-16 LE",
         lambda: good(encoding="utf-16-le")),
    Case("utf16_bom_odd_length.csv", "UTF-16 BOM, then a cut-off last character", "error",
         r"UTF-16 LE byte-order mark but is not valid", lambda: b"\xff\xfe" + good(encoding="utf-16-le")[:-1]),
    Case("latin1.csv", "Latin-1 / Windows-1252 text", "error", r"not UTF-8.*Windows-1252",
         lambda: csv_bytes(rows(text="Caf\u00e9 cr\u00e8me {i}, tr\u00e8s {label}."), encoding="latin-1")),
    Case("utf8_with_one_bad_byte.csv", "UTF-8 with one stray Latin-1 byte", "error", r"not UTF-8.*line 5",
         lambda: good().replace(b"Review 3 of", b"R\xe9view 3 of", 1)),
    Case("nul_bytes_in_text.csv", "UTF-8 text with a NUL byte", "error", r"NUL bytes",
         lambda: good().replace(b"Review 2 of", b"Review\x00 2 of", 1)),
    Case("binary_junk.csv", "random bytes named .csv", "error", r"NUL bytes|not UTF-8", lambda: junk(4096, 1)),
    Case("high_bytes_junk.csv", "random bytes without NULs", "error", r"not UTF-8",
         lambda: bytes(b or 1 for b in junk(2048, 2))),
    # --- separators, quoting and line endings ---
    Case("semicolon_quoted_comma_header.csv", "';'-separated, a quoted header name holding a comma", "ok", "",
         lambda: csv_bytes(rows(), header=["review, full text", "label"], sep=";", quoting=csv.QUOTE_ALL)),
    Case("semicolon_unquoted_comma_header.csv", "';'-separated, an unquoted header name holding a comma", "ok", "",
         lambda: csv_bytes(rows(), header=["review, full text", "label"], sep=";")),
    Case("tab_separated.tsv", "tab-separated with commas in the texts", "ok", "",
         lambda: csv_bytes(rows(text="Review {i}, a {label}, experience."), sep="\t")),
    Case("pipe_separated.csv", "'|'-separated", "ok", "", lambda: good(sep="|")),
    Case("crlf_line_endings.csv", "Windows line endings", "ok", "", lambda: good(newline="\r\n")),
    Case("quoted_newlines.csv", "texts with line breaks and doubled quotes, quoted", "ok", "",
         lambda: csv_bytes(rows(text='Review {i}:\n"a {label}" experience,\nsaid the ""client"".'))),
    Case("unclosed_quote.csv", "a quote that is never closed", "error", r"not a well-formed CSV.*EOF inside string",
         lambda: good() + b'"This text never ends,positive\n'),
    Case("ragged_rows.csv", "a row with more fields than the header", "error", r"Expected 2 fields in line 5, saw 3",
         lambda: good().replace(b"3 of a positive experience.,positive\n",
                                b"3 of a positive experience.,positive,x\n")),
    Case("only_separators.csv", "nothing but commas", "error", r"Every cell of the text column",
         lambda: b",,\n,,\n,,\n"),
    # --- empty and degenerate tables ---
    Case("empty.csv", "zero bytes", "error", r"is empty", lambda: b""),
    Case("whitespace_only.csv", "only blank lines", "error", r"is empty", lambda: b"  \n\n \t\n"),
    Case("utf16_empty.csv", "a UTF-16 BOM and nothing else", "error", r"is empty", lambda: b"\xff\xfe"),
    Case("header_only.csv", "a header and no rows", "error", r"no data rows", lambda: b"text,label\n"),
    Case("one_column.csv", "a single column", "error", r"text and label columns are the same",
         lambda: b"text\n" + b"".join(f"row {i}\n".encode() for i in range(30))),
    Case("one_label.csv", "every row has the same label", "error", r"1 distinct label",
         lambda: csv_bytes(rows(("positive",), 30))),
    Case("empty_texts.csv", "the text column is blank everywhere", "error", r"Every cell of the text column",
         lambda: csv_bytes([["  ", label] for _, label in rows()])),
    Case("blank_labels.csv", "the label column is blank everywhere", "error", r"0 distinct label",
         lambda: csv_bytes([[text, " "] for text, _ in rows()])),
    # --- headers ---
    Case("duplicate_header_after_strip.csv", "'label' and 'label ' in the header", "warn",
         r"repeats the name 'label'",
         lambda: csv_bytes([r + [r[1]] for r in rows()], header=["text", "label", "label "])),
    Case("duplicate_header_exact.csv", "'label' twice in the header", "warn", r"repeats the name 'label'",
         lambda: csv_bytes([r + ["other"] for r in rows()], header=["text", "label", "label"])),
    Case("blank_header_names.csv", "header names that are empty or spaces", "ok", "",
         lambda: csv_bytes([[str(i)] + r for i, r in enumerate(rows())], header=["  ", "text", "label"])),
    # --- cells ---
    Case("huge_cell.csv", "one text of 300,000 characters", "warn", r"longer than 20,000",
         lambda: with_labels({}).replace(b"Review 0 of", b"x" * 300_000, 1)),
    Case("formula_cells.csv", "texts that are spreadsheet formulas", "ok", "",
         lambda: csv_bytes(rows(text='=HYPERLINK("http://evil.example/{i}","{label}")'))),
    Case("control_characters.csv", "bell, escape and form-feed characters in texts", "ok", "",
         lambda: csv_bytes(rows(text="Review {i}\x07 of a\x1b[31m {label}\x0c experience."))),
    Case("emoji_rtl.csv", "emoji, right-to-left and combining characters", "ok", "",
         lambda: csv_bytes(rows(text="\u05e9\u05dc\u05d5\u05dd {i} \U0001f600 cafe\u0301 {label}"))),
    # --- labels ---
    Case("label_case_collision.csv", "'Positive' / 'positive ' / 'POSITIVE'", "error", r"spelled more than one way",
         lambda: with_labels({0: "Positive", 1: "POSITIVE", 2: "positive "})),
    Case("label_zero_width_collision.csv", "'positive' and 'positive' with a zero-width space", "error",
         r"spelled more than one way.*\\u200b", lambda: with_labels({0: "posi\u200btive"})),
    Case("label_nfkc_collision.csv", "'positive' and its full-width form", "error", r"spelled more than one way",
         lambda: with_labels({0: "\uff50\uff4f\uff53\uff49\uff54\uff49\uff56\uff45"})),
    Case("label_rtl_override_collision.csv", "'negative' and a right-to-left override label shown as 'negative'",
         "error", r"spelled more than one way.*'\\u202eevitagen' shown as 'negative' \(1 row\) look alike",
         lambda: with_labels({15: "\u202eevitagen"})),
    Case("label_numeric_spellings.csv", "labels 1 / +1 / 01 / 1.0 beside 0", "warn",
         r"spelled as more than one number \(45 row\(s\) .*'1' \(20 rows\), '\+1' \(15 rows\), '01' \(15 rows\) "
         r"and '1.0' \(15 rows\) look alike",
         lambda: csv_bytes(rows(("0", "1"), 20) + rows(("1.0", "01", "+1"), text="Rated {label}: review {i}."))),
    Case("nan_like_labels.csv", "labels 'NaN', 'null', 'None', 'N/A', '-'", "warn",
         r"75 row\(s\) .* missing-value marker: 'NaN' \(15\), 'null' \(15\)",
         lambda: csv_bytes(rows(("positive", "negative", "NaN", "null", "None", "N/A", "-")))),
    Case("quoted_labels.csv", "labels holding quotes: '\"positive\"' and \"it's bad\"", "ok", "",
         lambda: csv_bytes(rows(('"positive"', "it's bad")))),
    Case("ten_thousand_labels.csv", "an id column as the label (10,000 labels)", "error", r"looks like an id", ids),
    Case("sixty_labels.csv", "60 labels", "warn", r"60 distinct labels",
         lambda: csv_bytes(rows(tuple(f"topic {k}" for k in range(60))))),
    Case("numeric_labels.csv", "labels -1 / 0 / 1", "ok", "", lambda: csv_bytes(rows(("-1", "0", "1")))),
    Case("duplicate_rows.csv", "the same rows twice", "warn", r"duplicate row",
         lambda: csv_bytes(rows() + rows()[:5])),
    Case("conflicting_labels.csv", "the same text with two labels", "warn", r"more than one label",
         lambda: csv_bytes(rows() + [["Review 0 of a positive experience.", "negative"]])),
    # --- Parquet, gzip, Excel, other formats ---
    Case("nested_columns.parquet", "Parquet with a list and a struct column", "warn", r"nested values",
         lambda: parquet(frame().assign(tags=[[1, 2]] * (2 * N), meta=[{"a": 1}] * (2 * N)))),
    Case("only_nested.parquet", "Parquet whose every column is a list", "error", r"Every column .* nested",
         lambda: parquet(pd.DataFrame({"tokens": [["a", "b"]] * 4, "labels": [[1]] * 4}))),
    Case("numeric_labels.parquet", "Parquet with float labels and a missing one", "warn", r"1 row\(s\) have no label",
         lambda: parquet(frame().assign(label=[1.0] * N + [0.0] * (N - 1) + [None]))),
    Case("categorical.parquet", "Parquet with a categorical label column", "ok", "",
         lambda: parquet(frame().astype({"label": "category"}))),
    Case("truncated.parquet", "a Parquet file cut in half", "error", r"not a readable Parquet",
         lambda: parquet(frame())[:600]),
    Case("parquet_named_csv.csv", "a Parquet file named .csv", "ok", "", lambda: parquet(frame())),
    Case("good.csv.gz", "a gzip-compressed CSV", "ok", "", lambda: gz(good())),
    Case("broken.csv.gz", "gzip magic bytes, then garbage", "error", r"gzip-compressed but cannot be unpacked",
         lambda: b"\x1f\x8b\x08\x00" + junk(200, 3)),
    Case("truncated.csv.gz", "a gzip file cut short", "error", r"gzip-compressed but cannot be unpacked",
         lambda: gz(good())[:100]),
    Case("sheet.xlsx", "an Excel workbook", "error", r"Excel or zip", xlsx),
    Case("old_excel.xls", "an old binary Excel file", "error", r"Excel or zip",
         lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + junk(512, 4)),
    Case("pdf_named_csv.csv", "a PDF file named .csv", "error", r"NUL bytes|not UTF-8",
         lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length 44 >>\nstream\n" + junk(300, 5)),
    Case("rct_ok.txt", "PubMed RCT text format", "ok", "", rct),
    Case("rct_bad_line.txt", "PubMed RCT text with a line without a tab", "error", r"neither an abstract header",
         lambda: rct().replace(b"RESULTS\tSentence 3", b"RESULTS Sentence 3", 1)),
)


def write_all(folder: Path = BAD_DIR) -> list[Path]:
    """Write every case's file into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in CASES:
        path = folder / case.name
        path.write_bytes(case.make())
        paths.append(path)
    return paths


if __name__ == "__main__":
    written = write_all()
    sys.stdout.write(f"wrote {len(written)} files to {BAD_DIR}\n")
