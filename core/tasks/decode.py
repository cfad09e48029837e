"""Bytes to text for task files: UTF-8 (with or without a BOM), UTF-16 / UTF-32 by their byte-order mark,
BOM-less UTF-16 by its NUL bytes; anything else is a DataError that names the likely encoding."""

from __future__ import annotations

import logging

from core.config.errors import DataError

logger = logging.getLogger(__name__)

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
BOMS: tuple[tuple[bytes, str, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32 BE"),
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32 LE"),
    (b"\xef\xbb\xbf", "utf-8", "UTF-8"),
    (b"\xfe\xff", "utf-16-be", "UTF-16 BE"),
    (b"\xff\xfe", "utf-16-le", "UTF-16 LE"),
)
_RESAVE = "Re-save the file as UTF-8 (Excel: Save As > 'CSV UTF-8'; LibreOffice: Character set 'Unicode (UTF-8)')."
_CONTROL = frozenset(range(32)) - {9, 10, 13}


def _with_bom(data: bytes, name: str) -> str | None:
    for bom, codec, title in BOMS:
        if data.startswith(bom):
            body = data[len(bom):]
            try:
                text = body.decode(codec)
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{name} starts with a {title} byte-order mark but is not valid {title}: bytes at offset "
                    f"{err.start + len(bom)} cannot be decoded.",
                    f"The file may be damaged or mislabelled. {_RESAVE}",
                ) from err
            if codec != "utf-8":
                logger.info("Read %s as %s (byte-order mark)", name, title)
            return text
    return None


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """(codec, title) when the NUL bytes sit where UTF-16 puts them for mostly-ASCII text."""
    sample = data[:8192]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    nul_even, nul_odd = even.count(0) / len(even), odd.count(0) / max(len(odd), 1)
    if nul_odd > 0.3 and nul_even < 0.05:
        return "utf-16-le", "UTF-16 LE"
    if nul_even > 0.3 and nul_odd < 0.05:
        return "utf-16-be", "UTF-16 BE"
    return None


def decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """The text of ``data`` and notes for the user (e.g. an encoding guessed without a byte-order mark)."""
    text = _with_bom(data, name)
    if text is not None:
        return text, []
    if b"\x00" in data:
        guess = _utf16_without_bom(data)
        if guess is not None and len(data) % 2 == 0:
            codec, title = guess
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                text = None
            if text is not None and "\x00" not in text:
                return text, [f"{name} has no byte-order mark, but its NUL bytes show it is {title} text; it was read "
                              f"as {title}. Check the preview; re-saving it as UTF-8 avoids the guess."]
        at = data.index(b"\x00")
        raise DataError(
            f"{name} is not a text table: it contains NUL bytes (first at offset {at}), as binary files do"
            + (" and as UTF-16 text without a byte-order mark does." if guess else "."),
            "Give a CSV / TSV file (UTF-8), a Parquet file or a PubMed RCT .txt file. " + _RESAVE,
        )
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        bad = data[err.start : err.start + 1].hex().upper()
        hint = _RESAVE
        try:
            legacy = data.decode("cp1252")
        except UnicodeDecodeError:
            legacy = None
        if legacy is not None and sum(ord(c) in _CONTROL for c in legacy[:65536]) <= len(legacy[:65536]) // 100:
            guess = " It looks like Windows-1252 / Latin-1."
            hint += " From a shell: `iconv -f cp1252 -t utf-8 in.csv > out.csv`."
        else:
            guess = " It does not look like text in any common encoding (a binary file?)."
        raise DataError(
            f"{name} is not UTF-8 text: byte 0x{bad} at offset {err.start} (line {line}) cannot be decoded.{guess}",
            hint,
        ) from err
