"""Parse one Öppna jämförelser page (HTML or plain-text extract) into findings.

Layouts, chosen per section or region of the page (issue 22), from `LAYOUTS`:

1. `_split_sections` walks the whole page first, exactly as before the other layouts
   existed: a "... resultat visar att:" heading or a heading relative to the nation
   ("... ligger bättre till än medlet i riket gällande:") opens a section, which runs to
   the next heading or end marker. A section with bullets claims its lines and is read
   by the first layout that detects itself in it: the statement-and-answer pairs
   (parsers/layouts/pairs.py) or the relative lists (parsers/layouts/relative.py).
2. Every maximal run of lines no such section claims is a region (a page with no results
   heading is one region). Each region is offered to the same modules in order; the pairs
   and relative lists never detect themselves there, so result tables, then county cards
   read it. So a Kalmar page gives byte for byte what it gave before, and a page the
   pairs do not read gets its tables or cards.

What stays here is the page's: decoding, lines, title, dates, municipality, the section
walk, and the survey years of the pairs' and relative sections (one section's heading
dates the next, so they are decided for the page at once, `section_years`).

A new municipality's layout is one module in parsers/layouts/ (a `detect` and a `parse`
over the line form of parsers/lines.py, returning `Finding`/`Reject` records), one line
in `LAYOUTS`, and its fixtures. The number grammar (parsers/numbers.py), year rules
(parsers/years.py) and status rules (parsers/status.py) stay shared.
Deliberately not: two layouts in one region (the first that detects itself reads it),
and the page-level year fallbacks of `section_years` for a table or card: their year is
the column header's or the paragraph's, or none.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from operator import attrgetter
from typing import Protocol

from parsers.decode import PageError, check_text, decode_page, looks_like_html
from parsers.layouts import END_MARKER, PageContext, cards, pairs, relative, tables
from parsers.layouts.pairs import NAME as _NAME
from parsers.layouts.pairs import is_section_heading
from parsers.layouts.relative import relative_heading
from parsers.lines import Line, html_lines_checked, html_title, normalize_space, text_lines
from parsers.municipalities import MUNICIPALITIES, canonical_name, municipality_from_host
from parsers.numbers import folded
from parsers.records import Finding, ParsedPage, Reject
from parsers.years import PageDates, SectionEvidence, section_years

_YEAR = r"(?:19|20)\d\d"

# --- page dates ---------------------------------------------------------------------------

_MONTHS = {
    "januari": 1, "februari": 2, "mars": 3, "april": 4, "maj": 5, "juni": 6, "juli": 7,
    "augusti": 8, "september": 9, "oktober": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "okt": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_DATE = (
    r"(?:<[^>]*>\s*)*(?:(?P<day>\d{1,2})\s+(?P<month>[a-zåäö]+)\.?\s+(?P<year>\d{4})"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}))"
)
# "Senast uppdaterad: 2 juli 2020", "Publicerad: 3 juli 2017"; in HTML tags may sit
# between the label and the date ("Publicerad <time datetime=...>3 juli 2017</time>").
_UPDATED = re.compile(
    r"(?:Senast\s+(?:uppdaterad|ändrad|granskad)|Sidan\s+uppdaterades|Uppdaterad)\s*:?\s*" + _DATE,
    re.IGNORECASE,
)
_PUBLISHED = re.compile(r"(?:Publicerad|Skapad)\s*:?\s*" + _DATE, re.IGNORECASE)
# Lower-case tails of the labels above, for a fast first look (any capitalisation).
_UPDATED_KEYWORDS = ("ppdater", "PPDATER", "ndrad", "NDRAD", "ranskad", "RANSKAD")
_PUBLISHED_KEYWORDS = ("ublicerad", "UBLICERAD", "kapad", "KAPAD")


def _find_date(pattern: re.Pattern[str], keywords: tuple[str, ...], *texts: str) -> date | None:
    for text in texts:
        # A plain substring search finds where a label can start far faster than the
        # case-insensitive regex scanning a whole 100 KB page.
        starts = [at for at in (text.find(keyword) for keyword in keywords) if at >= 0]
        if not starts:
            continue
        for match in pattern.finditer(text, max(0, min(starts) - 12)):
            try:
                if match.group("iso"):
                    return date.fromisoformat(match.group("iso"))
                month = _MONTHS.get(folded(match.group("month")))
                if month:
                    return date(int(match.group("year")), month, int(match.group("day")))
            except ValueError:
                continue  # "31 juni": not a date; try the next mention
    return None


# --- findings dated and numbered -----------------------------------------------------------

_FINDING_FIELDS = tuple(field.name for field in fields(Finding))
_finding_values = attrgetter(*_FINDING_FIELDS)
_FIELD_INDEX = {name: index for index, name in enumerate(_FINDING_FIELDS)}
# The slots' own setters: a frozen dataclass's __init__ sets every field through
# object.__setattr__ from Python code, and `dataclasses.replace` first walks the fields'
# metadata; every finding of a page is rebuilt once or twice (its survey year, its
# position), and `replace` took ~6 % of a page's parse (half of it with these).
_FIELD_SETTERS = tuple(getattr(Finding, name).__set__ for name in _FINDING_FIELDS)


# A finding a layout has just built (each builds new ones on every call, none is cached)
# is held by nothing but this page's parse until `parse_page` returns it: its survey year
# and position are set in its slots here, before anything else sees it, instead of
# copying all of its fields into a new one (`_with` was ~4 % of a page's parse). What
# `parse_page` returns stays frozen.
_SET_SURVEY_YEAR = Finding.survey_year.__set__  # type: ignore[attr-defined]
_SET_SURVEY_YEAR_BASIS = Finding.survey_year_basis.__set__  # type: ignore[attr-defined]
_SET_POSITION = Finding.position.__set__  # type: ignore[attr-defined]


def _with(finding: Finding, **changes: object) -> Finding:
    """`dataclasses.replace(finding, **changes)` for a `Finding` (which has no
    __post_init__ to run), in half the time."""
    values = list(_finding_values(finding))
    for name, value in changes.items():
        values[_FIELD_INDEX[name]] = value
    new = object.__new__(Finding)
    for setter, value in zip(_FIELD_SETTERS, values, strict=True):
        setter(new, value)
    return new


# --- local answers ------------------------------------------------------------------------

# Names that follow "I ..." in answers but are not the municipality.
_NOT_A_MUNICIPALITY = frozenset(
    [
        "Sverige",
        "Riket",
        "Landet",
        "Länet",
        "Kommunen",
        "Kommunerna",
        "Det",
        "Den",
        "De",
        "Vi",
        "Handläggarna",
        "Andelen",
        "Antalet",
        "Socialtjänsten",
        "Verksamheten",
        "Dag",
        "År",
        "Under",
        "Genom",
        "Samband",
        "Arbetet",
    ]
)
_LOCAL_NAME_PATTERNS = (
    # "I Kalmar finns ...", also glued to the statement: "... 36 procent 2019I Kalmar har"
    re.compile(rf"(?:^|[.!?]\s+|(?<=[\da-zåäö]))I ({_NAME})\b"),
    re.compile(rf"\bi ({_NAME})\b"),  # "... var i Kalmar 0,9 (riket 2,2)"
    re.compile(
        rf"(?:^|[.!?]\s+)({_NAME}) (?:har|saknar|använder|bedriver|arbetar|erbjuder|tillämpar"
        r"|genomför|följer)\b"
    ),  # "Kalmar saknar rutin ..."
    re.compile(rf"(?:^|[.!?]\s+)Under {_YEAR} (?:har|hade|var|är) ({_NAME})\b"),  # "Under 2020
    # har Kalmar tagit fram en plan."
)
_TITLE_MUNICIPALITY = re.compile(rf"\b({_NAME}?)s? kommun\b")


def _infer_municipality(lines: list[Line]) -> str | None:
    """The name local answers use ("I Kalmar ...", "Kalmar saknar ..."), most common first.

    A name must recur, unless it is one of the 290 municipalities: a page whose one
    answer names it ("Under 2020 har Kalmar tagit fram en plan.") is that municipality's
    (a page that resolves to none gets no local answers at all, see `parse_page`)."""
    counts: Counter[str] = Counter()
    for line in lines:
        for pattern in _LOCAL_NAME_PATTERNS:
            for name in pattern.findall(line.text):
                if name.split()[0] not in _NOT_A_MUNICIPALITY:
                    counts[name] += 1
    if not counts:
        return None
    (name, count), *_ = counts.most_common(1)
    return name if count >= 2 or canonical_name(name) in MUNICIPALITIES else None


@dataclass
class _Section:
    start: int  # index of its heading in the page's lines
    end: int  # one past its last line
    filled: bool = False  # a bullet with text: the section claims its lines


def _split_sections(
    lines: list[Line],
) -> tuple[list[_Section], list[tuple[int, Reject]], list[bool]]:
    """Walk the lines: the results sections ("... resultat visar att:" and relative
    headings) with the lines each owns, the bullets that fit no section (by line index),
    and per line whether a section with bullets claims it (see `_unclaimed_regions`).

    A section runs from its heading to the next heading or end marker; a relative
    section also ends after the first paragraph that follows its bullets (prose after
    relative results comments on them)."""
    sections: list[_Section] = []
    relative_sections: set[int] = set()
    rejects: list[tuple[int, Reject]] = []
    empty_bullets: list[tuple[int, Reject, int]] = []
    owners: list[int | None] = [None] * len(lines)
    current: int | None = None
    for index, line in enumerate(lines):
        text_ = line.text
        # The line belongs to the section open when it is read (a heading: its own
        # section); lines read while no section with bullets is open stay unclaimed.
        owners[index] = current
        if not line.is_bullet and len(text_) <= 120 and is_section_heading(text_):
            current = len(sections)
            sections.append(_Section(index, index + 1))
            owners[index] = current
            continue
        if not line.is_bullet and END_MARKER.match(text_):
            current = None
            continue
        comparison = (
            None
            if line.is_bullet
            else relative_heading(
                text_, before_bullets=index + 1 < len(lines) and lines[index + 1].is_bullet
            )
        )
        if comparison is not None:
            current = len(sections)
            relative_sections.add(current)
            sections.append(_Section(index, index + 1))
            owners[index] = current
            continue
        if current is not None:
            sections[current].end = index + 1
        if line.is_bullet:
            if not text_:
                if current is not None:
                    heading = lines[sections[current].start].text
                    reject = Reject("empty_bullet", text_, heading, line.number)
                    empty_bullets.append((index, reject, current))
                continue
            if current is None:
                # Menus in text extracts are bullets too; keep only what reads like data.
                if re.search(r"\d|kommun", text_, re.IGNORECASE):
                    rejects.append(
                        (index, Reject("bullet_outside_section", text_, None, line.number))
                    )
                continue
            sections[current].filled = True
            continue
        if current is None or not sections[current].filled:
            continue  # intro text, banners, navigation: not findings
        if current in relative_sections:
            current = None
    # A section with bullets reports its own empty bullets (its layout's parse); one
    # without keeps none, so they are the page's.
    rejects.extend((i, r) for i, r, owner in empty_bullets if not sections[owner].filled)
    claimed = [owner is not None and sections[owner].filled for owner in owners]
    return sections, rejects, claimed


def _title_lines(lines: list[Line]) -> tuple[list[str], str | None]:
    """Title-like lines of a text extract before the results (short, capitalised, no
    closing punctuation, not an alert banner, a breadcrumb or the site's name), and the
    municipality the site's name gives ("Växjö kommun" heading the extract)."""
    out = []
    site = None
    for line in lines:
        text = line.text
        if (
            line.is_bullet
            or is_section_heading(text)
            or END_MARKER.match(text)
            or relative_heading(text)
        ):
            break
        if (
            len(text) <= 90
            and len(text.split()) <= 10
            and text[:1].isupper()
            and not re.search(r"[.!?:;]$", text)
            and not _ALERT.search(text)
            and not re.search(r"\s[/>›»|]\s", text)  # "Start / Omsorg / Äldreomsorg"
        ):
            site_name = _SITE_NAME.fullmatch(text)  # "Växjö kommun"
            if site_name is None:
                out.append(text)
            elif site is None and site_name.group("name"):
                site = canonical_name(site_name.group("name"))
    return out, site


def _area_from_text(titles: list[str]) -> str | None:
    """The page title in a text extract: the last title-like line before the results.

    Extracts open with site chrome (alert banners like "Begränsa smittspridningen av
    covid-19", breadcrumbs), then the title, then a lead such as "Öppna jämförelser
    barn- och ungdomsvården" and the intro. The lead is the title only when there is
    no other ("Öppna jämförelser äldreomsorg 2019").
    """
    plain = [text for text in titles if not text.lower().startswith("öppna jämförelser")]
    return (plain or titles or [None])[-1]


# The site's own name heading an extract: a municipality's, or a national body's.
_SITE_NAME = re.compile(
    rf"(?P<name>{_NAME}?)s? (?:kommun|stad)|Region {_NAME}|Sveriges Kommuner och Regioner|SKR"
    r"|Socialstyrelsen|Länsstyrelsen.*"
)
_ALERT = re.compile(
    r"covid|corona|smittspridning|pandemi|viktig(?:t)? (?:information|meddelande)|driftstörning"
    r"|cookies|kakor|störning",
    re.IGNORECASE,
)


# --- other layouts: result tables, county cards --------------------------------------------


class Layout(Protocol):
    """What a layout module offers (parsers/layouts/): a detector and a parser over a
    region of the page's lines."""

    def detect(self, lines: Sequence[Line], *, entity: str | None = None) -> bool: ...

    def parse(
        self,
        lines: Sequence[Line],
        *,
        context: PageContext | None = None,
        directions: Mapping[str, str] | None = None,
    ) -> tuple[tuple[Finding, ...], tuple[Reject, ...]]: ...


#: The layouts tried, in this order, on each section and region of a page; the first that
#: detects itself reads it. The pairs and the relative lists say yes only to a section
#: `_split_sections` lets claim its lines, so they keep their precedence over the others.
#: A new layout is a module with `detect`/`parse` in parsers/layouts/, one line here, and
#: its fixtures.
LAYOUTS: tuple[Layout, ...] = (pairs, relative, tables, cards)  # type: ignore[assignment]

# Layouts that report a county's (or region's) figures, not a municipality's.
_COUNTY_LAYOUTS = frozenset({cards})
# "Öppna jämförelser i Kronobergs län", "Region Kronoberg": the county a card page is of.
_COUNTY_NAME = re.compile(
    r"\b(?:[A-ZÅÄÖ][a-zåäö]+(?:[- ][A-ZÅÄÖ][a-zåäö]+)? län|Region [A-ZÅÄÖ][a-zåäö]+)\b"
)


def _county_name(title_text: str | None, configured: str | None) -> str | None:
    """The county or region a page's cards are of: named in its title ("Öppna jämförelser
    i Granåsens län"), or the configured entity when that is a county or region."""
    for text in (title_text, configured):
        match = _COUNTY_NAME.search(text) if text else None
        if match:
            return match.group(0)
    return None


def _unclaimed_regions(lines: list[Line], claimed: list[bool]) -> list[list[Line]]:
    """Maximal runs of lines no section with bullets claims: where a page prints results
    in another layout (a page with no "... resultat visar att:" heading is one region)."""
    regions: list[list[Line]] = []
    run: list[Line] = []
    for line, taken in zip(lines, claimed, strict=True):
        if taken:
            if run:
                regions.append(run)
                run = []
        else:
            run.append(line)
    if run:
        regions.append(run)
    return regions


def _read_region(
    region: list[Line],
    context: PageContext,
    county: str | None,
    directions: Mapping[str, str] | None,
) -> tuple[tuple[Finding, ...], tuple[Reject, ...]]:
    """The first layout of `LAYOUTS` that detects itself in the region reads it."""
    for layout in LAYOUTS:
        if layout in _COUNTY_LAYOUTS:
            own = PageContext(context.url, county, context.area, context.page_updated,
                              context.page_published)  # fmt: skip
            if layout.detect(region, entity=county):
                return layout.parse(region, context=own, directions=directions)
        elif layout.detect(region, entity=context.municipality):
            return layout.parse(region, context=context, directions=directions)
    return (), ()


def _read_section(
    section: list[Line], context: PageContext
) -> tuple[Layout, tuple[Finding, ...], tuple[Reject, ...]]:
    """The first layout of `LAYOUTS` that detects itself in a section with bullets reads
    it (`_split_sections` claims only what the pairs or the relative lists read)."""
    layout = next(layout for layout in LAYOUTS if layout.detect(section))
    found, kept = layout.parse(section, context=context)
    return layout, found, kept


_TOO_DEEP_TEXT = "HTML nested deeper than 256 levels: the content inside was lost"


def parse_page(
    content: bytes | str,
    *,
    url: str | None = None,
    municipality: str | None = None,
    captured_at: date | datetime | None = None,
    charset: str | None = None,
    directions: Mapping[str, str] | None = None,
) -> ParsedPage:
    """Parse one page snapshot, HTML or plain-text extract (detected from the content).

    `content` may be bytes (decoded with `charset` if given, else detected) or text.
    `municipality` overrides the name inferred from the page; `captured_at` is the
    fallback for a survey year when the page has no other evidence. `directions` maps
    an indicator's normalised label (`parsers.layouts.normalize_label`) to
    "higher_is_better" / "lower_is_better": a table's or card's higher/lower then also
    reads as better/worse in `national_comparison` (the pipeline passes none and judges
    in flows/history instead, see docs/parsing.md). Raises PageError
    for empty or binary input; a readable page with no results is returned with rejects.
    """
    if isinstance(content, bytes):
        text, used_charset = decode_page(content, charset)
    else:
        text, used_charset = content, None
    check_text(text)
    if isinstance(captured_at, datetime):
        captured_at = captured_at.date()

    h1 = title = None
    too_deep = False
    if looks_like_html(text):
        input_format = "html"
        lines, h1, too_deep = html_lines_checked(text)
        if not any(is_section_heading(line.text) for line in lines):
            # the cut missed the content
            lines, h1, too_deep_whole = html_lines_checked(text, whole_page=True)
            too_deep = too_deep or too_deep_whole
        title = html_title(text)
        dated_texts = ["\n".join(line.text for line in lines), text]
    else:
        input_format = "text"
        lines = text_lines(text)
        dated_texts = [text]

    page_updated = _find_date(_UPDATED, _UPDATED_KEYWORDS, *dated_texts)
    page_published = _find_date(_PUBLISHED, _PUBLISHED_KEYWORDS, *dated_texts)
    if input_format == "html":
        area = h1 or (re.split(r"\s+[-|–]\s+", title)[0] if title else None)
        title_text = " ".join(text for text in (h1, title) if text)
    else:
        titles, site_municipality = _title_lines(lines)
        area = _area_from_text(titles)
        title_text = " ".join(titles)
        municipality = municipality or site_municipality
    if not municipality:
        from_title = _TITLE_MUNICIPALITY.search(title) if title else None
        municipality = (
            canonical_name(from_title.group(1))
            if from_title
            else _infer_municipality(lines) or municipality_from_host(url)
        )
    context = PageContext(url, municipality, area, page_updated, page_published)

    sections, page_rejects, claimed = _split_sections(lines)
    # Each section with bullets goes to the first layout that detects itself in it (the
    # pairs or the relative lists); their rejects keep the page's line order.
    read: list[tuple[Layout, tuple[Finding, ...]]] = []
    ordered: list[tuple[int, tuple[Reject, ...]]] = [(i, (r,)) for i, r in page_rejects]
    for section in sections:
        if section.filled:
            layout, found, kept = _read_section(lines[section.start : section.end], context)
            read.append((layout, found))
            ordered.append((section.start, kept))
    ordered.sort(key=lambda item: item[0])
    rejects = [reject for _, kept in ordered for reject in kept]
    if too_deep:
        rejects.insert(0, Reject("nesting_too_deep", _TOO_DEEP_TEXT, None, None))
    for section in sections:
        if not section.filled:
            heading = lines[section.start].text
            rejects.append(Reject("empty_section", heading, heading, None))
    # The survey year is the page's decision: one section's heading dates the next
    # ("Förra årets resultat"), and the page's dates speak for all of them.
    years = section_years(
        [
            SectionEvidence(
                found[0].section,
                tuple(f.national_statement for f in found),
                relative=layout is relative,
            )
            for layout, found in read
        ],
        PageDates(page_updated, page_published, captured_at, title_text or None),
    )
    findings: list[Finding] = []
    for (_layout, found), years_of_section in zip(read, years, strict=True):
        for finding, (year, basis) in zip(found, years_of_section, strict=True):
            _SET_SURVEY_YEAR(finding, year)
            _SET_SURVEY_YEAR_BASIS(finding, basis)
            _SET_POSITION(finding, len(findings) + 1)
            findings.append(finding)
    county = _county_name(title_text, municipality)
    n_layout_regions = 0
    for region in _unclaimed_regions(lines, claimed):
        layout_findings, layout_rejects = _read_region(region, context, county, directions)
        if layout_findings or layout_rejects:
            n_layout_regions += 1
        for finding in layout_findings:  # numbered on after the pairs: one page, one count
            _SET_POSITION(finding, len(findings) + 1)
            findings.append(finding)
        rejects.extend(layout_rejects)
    if input_format == "text" and not sections and n_layout_regions:
        # With no results heading to stop at, the title lines of a text extract run to the
        # end of the page ("Placering bland landets kommuner plats 41 plats 23" would be
        # the title): the title is read before the first table or card instead.
        first = (
            next((i for i, line in enumerate(lines) if line.text == findings[0].section), None)
            if findings
            else None
        )
        if first is not None:
            area = _area_from_text(_title_lines(lines[:first])[0])
            findings = [_with(finding, area=area) for finding in findings]
    if not sections and not n_layout_regions:
        rejects.append(
            Reject("no_results_section", "no '... resultat visar att:' heading found", None, None)
        )
    return ParsedPage(
        url=url,
        municipality=municipality,
        area=area,
        page_updated=page_updated,
        page_published=page_published,
        input_format=input_format,
        charset=used_charset,
        findings=tuple(findings),
        rejects=tuple(rejects),
        n_sections=len(sections) + n_layout_regions,
    )


__all__ = ["PageError", "parse_page", "relative_heading", "normalize_space"]
