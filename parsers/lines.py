"""Turn a page, HTML or plain-text extract, into one list of text lines.

Both input forms meet here, so the rest of the parser sees one shape and the two
forms give the same findings by construction. A line is a paragraph-sized piece of
visible text and whether it is a bullet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from html import unescape as html_unescape

import lxml.html

# Soft hyphen and zero-width joiners: removed. Zero-width space and BOM: spaces, though
# str.isspace (hence str.split) does not count them; every other space is isspace.
_INVISIBLE = re.compile(r"[\u00ad\u200c\u200d\u2060]")
# "•", "·", "▪", "◦", "●", "‣", "*" or a dash used as a bullet at the start of a line.
_BULLET_START = re.compile(r"^\s*(?:[•·▪◦●‣∙*]|[-–—](?=\s))\s*")
# Several bullets run together in one paragraph: "... att: • 35 procent ... • 15 procent".
_INLINE_BULLET = re.compile(r"\s+(?=[•▪●]\s*\S)")
_HAS_BULLET = re.compile(r"[•▪●]")
_SENTENCE_END = re.compile(r"[.!?:;)]\s*$")


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    is_bullet: bool
    number: int  # 1-based line number in the text form (for reject messages)


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace (incl. no-break and zero-width spaces) to one space."""
    # str.split() is many times faster than a regex substitution; the rare characters it
    # does not cover are looked for first with substring tests (a chain of `in`: no
    # generator, this runs for every paragraph of every page).
    if "\u00ad" in text or "\u200c" in text or "\u200d" in text or "\u2060" in text:
        text = _INVISIBLE.sub("", text)
    if "\u200b" in text or "\ufeff" in text:
        text = text.replace("\u200b", " ").replace("\ufeff", " ")
    return " ".join(text.split())


def _split_bullet(text: str) -> tuple[str, bool]:
    match = _BULLET_START.match(text)
    if match:
        return text[match.end() :].strip(), True
    return text, False


# --- plain-text extracts ----------------------------------------------------------------


def text_lines(text: str) -> list[Line]:
    """Lines of a plain-text extract.

    Seeds put each paragraph on one line, with the local answer on the line after its
    bullet (indented or not, with or without a blank line between). Extracts made by
    other tools wrap long paragraphs: a line that starts in lower case right after a
    line with no closing punctuation continues it.
    """
    lines: list[Line] = []
    previous_blank = True
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = normalize_space(raw)
        if not stripped:
            previous_blank = True
            continue
        pieces = _INLINE_BULLET.split(stripped)
        for index, piece in enumerate(pieces):
            body, is_bullet = _split_bullet(piece)
            if not body and not is_bullet:
                continue
            if (
                index == 0
                and not is_bullet
                and not previous_blank
                and lines
                and body[:1].islower()
                and not _SENTENCE_END.search(lines[-1].text)
            ):
                last = lines[-1]
                lines[-1] = Line(f"{last.text} {body}", last.is_bullet, last.number)
                continue
            lines.append(Line(body, is_bullet, number))
        previous_blank = False
    return lines


# --- HTML ---------------------------------------------------------------------------------

_SKIP_TAGS = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "nav",
        "footer",
        "form",
        "button",
        "iframe",
        "select",
        "option",
        "head",
        "title",
        "meta",
        "link",
        "object",
        "embed",
        "canvas",
    ]
)
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "html",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
# Site chrome that sometimes sits inside the content column (Sitevision alert and cookie
# banners such as "Begränsa smittspridningen av covid-19", breadcrumbs, share buttons).
_CHROME = re.compile(
    r"cookie|consent|breadcrumb|skip-?link|\bshare|social-?(?:media|links|icons|share)|"
    r"\balert|(?:alert|info|warning|notice|crisis)-?banner|\bmenu|navigation|sv-print",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def _is_chrome(attributes: str) -> bool:
    """Do the class, id and role of an element mark it as site chrome? The same few
    strings recur on every page of a site, and the case-insensitive search of the long
    alternation above costs ~10 µs each time."""
    return _CHROME.search(attributes) is not None


_CUT_AWAY = re.compile(
    r"<(script|style|noscript|template|svg)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL
)
_MAIN_START = re.compile(r"<main\b", re.IGNORECASE)
_H1_START = re.compile(r"<h1\b", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def content_region(html: str) -> str:
    """The part of the page that holds the content, cut out before any tree building.

    Municipal pages are ~100 KB of menus, scripts and footer around a few KB of text.
    `<main>` when the page has one; else from the first `<h1>` to the end. Callers fall
    back to the whole page when the cut holds no results (see `html_lines`).
    """
    start = _MAIN_START.search(html)
    if start:
        # The last </main>, so a nested <main> (invalid but seen) stays inside.
        end = max(html.rfind("</main", start.end()), html.rfind("</MAIN", start.end()))
        return html[start.start() : end if end >= 0 else len(html)] + "</main>"
    h1 = _H1_START.search(html)
    return html[h1.start() :] if h1 else html


# `Line(text, is_bullet, number)` without the frozen dataclass's __init__, which sets each
# field through object.__setattr__ from Python code: a page makes a line per paragraph,
# and the slots' own setters take half the time.
_SET_TEXT = Line.text.__set__  # type: ignore[attr-defined]
_SET_IS_BULLET = Line.is_bullet.__set__  # type: ignore[attr-defined]
_SET_NUMBER = Line.number.__set__  # type: ignore[attr-defined]
_new_object = object.__new__


def _line(text: str, is_bullet: bool, number: int) -> Line:
    line = _new_object(Line)
    _SET_TEXT(line, text)
    _SET_IS_BULLET(line, is_bullet)
    _SET_NUMBER(line, number)
    return line


# What `_BULLET_START` can match first: a glyph, a dash or whitespace. A piece that opens
# with anything else is no bullet, without the regex.
_BULLET_FIRST = frozenset("•·▪◦●‣∙*-–—")


class _LineCollector:
    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.buffer: list[str] = []
        self.bullet_pending = False
        self.h1: str | None = None

    def add(self, text: str | None) -> None:
        if text:
            self.buffer.append(text)

    def flush(self) -> str:
        if not self.buffer:  # block after block: nothing collected in between
            return ""
        text = normalize_space("".join(self.buffer))
        self.buffer.clear()
        if not text:
            return ""
        pieces = _INLINE_BULLET.split(text) if _HAS_BULLET.search(text, 1) else (text,)
        lines = self.lines
        for piece in pieces:
            if piece and piece[0] not in _BULLET_FIRST and not piece[0].isspace():
                body, glyph = piece, False
            else:
                body, glyph = _split_bullet(piece)
            is_bullet = glyph or self.bullet_pending
            self.bullet_pending = False
            if body or is_bullet:
                lines.append(_line(body, is_bullet, len(lines) + 1))
        return text


def _walk(element: lxml.html.HtmlElement, out: _LineCollector) -> None:
    # `out.add` inlined (`buffer` is the collector's own list: `flush` clears it in
    # place): the walk visits every element of the content region.
    buffer = out.buffer
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        if tail := element.tail:
            buffer.append(tail)
        return
    tag = tag.lower()
    if tag in _SKIP_TAGS:
        if tail := element.tail:
            buffer.append(tail)
        return
    # Only class, id and role can mark chrome: with none of them ("  "), no match.
    get = element.get
    css, id_, role = get("class"), get("id"), get("role")
    if (css is not None or id_ is not None or role is not None) and _is_chrome(
        f"{css or ''} {id_ or ''} {role or ''}"
    ):
        if tail := element.tail:
            buffer.append(tail)
        return
    if tag == "br":
        out.flush()
        if tail := element.tail:
            buffer.append(tail)
        return
    block = tag in _BLOCK_TAGS
    if block:
        out.flush()
    if tag == "li":
        out.bullet_pending = True
    if text := element.text:
        buffer.append(text)
    for child in element:
        _walk(child, out)
    if block:
        flushed = out.flush()
        if tag == "h1" and out.h1 is None and flushed:
            out.h1 = flushed
    if tag == "li":
        out.bullet_pending = False
    if tail := element.tail:
        buffer.append(tail)


def html_lines(html: str, *, whole_page: bool = False) -> tuple[list[Line], str | None]:
    """Lines of the page's content region, and the text of its first `<h1>`."""
    lines, h1, _ = html_lines_checked(html, whole_page=whole_page)
    return lines, h1


def html_lines_checked(
    html: str, *, whole_page: bool = False
) -> tuple[list[Line], str | None, bool]:
    """`html_lines`, and whether content was lost to nesting depth.

    libxml2 stops building the tree at 256 levels of nesting ("Excessive depth in
    document: 256, use XML_PARSE_HUGE option") and drops whatever sits deeper without
    raising: a page of 100,000 nested `<div>`s around its bullets gave no findings and
    no sign why. The parser's error log says so; a tree deeper than Python's recursion
    limit (a libxml2 built without the limit) is the same loss.
    """
    region = html if whole_page else content_region(html)
    region = _CUT_AWAY.sub(" ", region)
    if not region.strip():
        return [], None, False
    # A plain etree parser: the same libxml2 parse as lxml.html's, without its Python-level
    # element class lookup on every node (~5 % of the walk). Its own error log: parsers may
    # run on many threads.
    parser = lxml.etree.HTMLParser()
    try:
        root = _fragment_root(region, parser)
    except (ValueError, lxml.etree.ParserError):
        return [], None, _too_deep(parser)
    out = _LineCollector()
    try:
        _walk(root, out)
    except RecursionError:
        return out.lines, out.h1, True
    out.flush()
    return out.lines, out.h1, _too_deep(parser)


_XHTML_BODY = "{http://www.w3.org/1999/xhtml}body"


def _fragment_root(region: str, parser: lxml.etree.HTMLParser) -> lxml.etree._Element:
    """The element `lxml.html.fromstring(region)` walks from, on a plain etree tree.

    The same element, tag renaming aside: fromstring renames a fragment's <body> to <div>
    or <span>, and walking either gives the same lines as walking <body> (nothing is
    buffered before it, and the final flush ends it). Several <body> or <head> elements
    are merged by fromstring in ways only it reproduces: those rare pages take its path.
    """
    root = lxml.etree.fromstring(region, parser)
    if root is None:
        raise lxml.etree.ParserError("Document is empty")  # as lxml.html.fromstring raises
    if lxml.html._looks_like_full_html_unicode(region):
        return root
    # The root's children by tag, in one pass (as `findall("body")` and `findall("head")`
    # find them; ElementPath's three searches were ~1 % of a page's parse).
    bodies, heads, xhtml_body = [], [], False
    for child in root:
        tag = child.tag
        if tag == "body":
            bodies.append(child)
        elif tag == "head":
            heads.append(child)
        elif tag == _XHTML_BODY:
            xhtml_body = True
    if len(bodies) > 1 or len(heads) > 1 or xhtml_body:
        # the parser's error log is the same: this parse reads the same region
        return lxml.html.fromstring(region, parser=lxml.html.HTMLParser())
    if heads or not bodies:
        return root
    body = bodies[0]
    if (
        len(body) == 1
        and (not body.text or not body.text.strip())
        and (not body[-1].tail or not body[-1].tail.strip())
    ):
        return body[0]
    return body


def _too_deep(parser: lxml.html.HTMLParser) -> bool:
    return any(
        entry.type_name == "ERR_RESOURCE_LIMIT" and "depth" in entry.message.lower()
        for entry in parser.error_log
    )


def html_title(html: str) -> str | None:
    match = _TITLE.search(html, 0, 20000)
    if not match:
        return None
    return normalize_space(html_unescape(_TAG.sub(" ", match.group(1)))) or None
