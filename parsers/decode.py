"""Bytes to text: charset detection for municipal pages, and input-format detection."""

from __future__ import annotations

import codecs
import re

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_HTML_MARKER = re.compile(
    r"<(?:!doctype\s+html|html|head|body|div|p|ul|ol|li|h[1-6]|main|article|section|br)\b",
    re.IGNORECASE,
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class PageError(ValueError):
    """Input that is not a readable page (empty, binary, undecodable)."""


def _codec_name(label: str | None) -> str | None:
    """A Python codec for a declared charset label, or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    # WHATWG: browsers decode pages labelled ISO-8859-1 / latin1 / ascii as windows-1252,
    # and older Swedish municipal pages do contain 0x80-0x9F bytes (e.g. "–" as 0x96).
    if label in {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"}:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_page(data: bytes, declared_charset: str | None = None) -> tuple[str, str]:
    """Decode page bytes; returns (text, charset used).

    Order: byte-order mark, the charset declared by the server (e.g. a Content-Type
    header), a `<meta charset>` in the first 4 KB, then UTF-8 if the bytes are valid
    UTF-8, else windows-1252 (the WHATWG fallback for Swedish pages with no charset).
    Raises PageError for empty or binary input.
    """
    if not data or data.isspace():  # isspace: no stripped copy of a 100 KB page
        raise PageError("empty file")
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data.decode(name, errors="replace"), name
    head = data[:4096]
    if b"\x00" in head:
        raise PageError("binary content (NUL bytes), not a text or HTML page")
    candidates: list[str] = []
    for label in (declared_charset, _meta_charset(head)):
        codec = _codec_name(label)
        if codec and codec not in candidates:
            candidates.append(codec)
    for codec in candidates:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue  # a wrong declaration is common; fall through to detection
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("cp1252", errors="replace")
    if _looks_binary(text):
        raise PageError("binary content, not a text or HTML page")
    return text, "cp1252"


def _meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


# C0 controls but tab, line feed, form feed and carriage return; and DEL.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])


def _looks_binary(text: str) -> bool:
    sample = text[:4096]
    # Counted on the UTF-8 bytes, where deleting them is ~20x faster than a regex
    # findall: the controls are ASCII, and no multi-byte UTF-8 sequence holds an ASCII
    # byte, so the count is exact.
    encoded = sample.encode("utf-8", "surrogatepass")
    controls = len(encoded) - len(encoded.translate(None, _CONTROL_BYTES))
    return controls > len(sample) * 0.01


def check_text(text: str) -> None:
    """Raise PageError for text that is empty or binary."""
    if not text or text.isspace():  # isspace: no stripped copy of a 100 KB page
        raise PageError("empty file")
    if text.find("\x00", 0, 4096) >= 0 or _looks_binary(text):
        raise PageError("binary content, not a text or HTML page")


def looks_like_html(text: str) -> bool:
    """True when the content is HTML (decided from the content, never the file name)."""
    return _HTML_MARKER.search(text, 0, 8192) is not None
