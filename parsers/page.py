"""Parse one Öppna jämförelser page (HTML or plain-text extract) into findings.

Layouts, chosen per region of the page (issue 22):

1. Kalmar's statement-and-answer pairs under "... resultat visar att:" and the lists
   relative to the nation ("... ligger bättre till än medlet i riket gällande:") read the
   whole page first, exactly as before the other layouts existed. A section with bullets
   claims its lines: its heading, bullets, answers and the paragraphs it keeps back, to
   the next heading or end marker.
2. Every maximal run of lines no such section claims is a region (a page with no results
   heading is one region). Each region is offered to the modules of `LAYOUTS` in order
   (result tables, then county cards, parsers/layouts/); the first whose `detect()` says
   yes reads the region with its `parse()`. So a Kalmar page gives byte for byte what it
   gave before, and a page the pairs do not read gets its tables or cards.

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
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Protocol

from parsers.decode import PageError, check_text, decode_page, looks_like_html
from parsers.layouts import PageContext, cards, tables
from parsers.lines import Line, html_lines_checked, html_title, normalize_space, text_lines
from parsers.municipalities import MUNICIPALITIES, canonical_name, municipality_from_host
from parsers.numbers import NationalReading, local_value, national_reading
from parsers.records import Finding, ParsedPage, Reject
from parsers.status import local_status
from parsers.years import PageDates, SectionEvidence, section_years

# --- section headings ---------------------------------------------------------------------

# The "... resultat visar att:" family: "Årets resultat visar att:", "2019 års resultat visar
# att:", "Årets resultat visar bland annat att:", "Resultatet för 2021 visar att", stray and
# no-break spaces (already collapsed by normalize_space).
# Also "Resultaten från 2019 års undersökning visar att:" and "Öppna jämförelser 2021 visar
# att:". A sentence that goes on after "att" is a statement, not a heading.
_SECTION_HEADING = re.compile(
    r"^(?P<lead>[^.!?]{0,80}?)\b(?:resultat(?:en|et)?|öppna jämförelser(?:na)?)\b"
    r"[^.!?:]{0,50}?\s+(?:visar|visade)(?:\s+bland\s+annat|\s+bl\.\s?a\.?)?"
    r"(?:\s+(?:att|på))?\s*:?\s*$",
    re.IGNORECASE,
)


def _is_section_heading(text: str) -> bool:
    """Does the line head a results section (`_SECTION_HEADING`)?"""
    # Every heading holds "resultat" or "öppna jämförelser": a substring test on the
    # lowered line rules out most lines ~10x faster than the regex. The pieces tested
    # hold no "s" or "i": under re.IGNORECASE "ſ" matches "s" and "ı" matches "i",
    # which str.lower() does not turn into them.
    lowered = text.lower()
    if "ultat" not in lowered and "öppna jämföre" not in lowered:
        return False
    return _SECTION_HEADING.match(text) is not None


_YEAR = r"(?:19|20)\d\d"

# Lines that end the results part of a page: related-page navigation and page footers.
_END_MARKER = re.compile(
    r"^(?:Fler sidor inom|Senast uppdaterad|Sidan uppdaterades|Publicerad\b|Övriga länkar"
    r"|Relaterade sidor|Relaterad information|Dela sidan|Dela på|Kontakta oss|Sidansvarig"
    r"|Hittade du det du sökte|Skriv ut|Lyssna\b)",
    re.IGNORECASE,
)

# --- per-statement readings, cached -------------------------------------------------------

# A national statement is the nation's result: every municipality's page of a survey
# prints the same text ("Andelen kommuner som har en rutin ... har ökat till 36 procent"),
# and recaptures repeat a page's answers word for word. The readings are pure functions of
# the text with frozen results, so one reading serves every page that prints it (about a
# quarter of the parse went to reading the same statements again). Bounded: a few MB.


@lru_cache(maxsize=8192)
def _national_reading(statement: str) -> NationalReading:
    return national_reading(statement)


@lru_cache(maxsize=8192)
def _local_reading(answer: str | None) -> tuple[float | None, str | None]:
    """The local answer's figure and status (`local_value`, `local_status`)."""
    value = local_value(answer)
    return value, local_status(answer, value)


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
                month = _MONTHS.get(match.group("month").lower())
                if month:
                    return date(int(match.group("year")), month, int(match.group("day")))
            except ValueError:
                continue  # "31 juni": not a date; try the next mention
    return None


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
_NAME = r"[A-ZÅÄÖ][a-zåäöéü]+(?:[- ][A-ZÅÄÖ][a-zåäöéü]+)?"
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
_VERBS = r"(?:har|hade|finns|fanns|saknar|saknas|är|var|används|använder|erbjuds|erbjuder|görs)"
_GENERIC_OPENER = rf"I (?!Sverige\b|[Rr]iket\b|[Ll]andet\b|[Ll]änet\b){_NAME} {_VERBS}\b"
_NATIONAL_MARKER = re.compile(
    r"\bkommuner(?:na)?\b|\bprocent av\b|\briket\b|\bi landet\b", re.IGNORECASE
)


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


@lru_cache(maxsize=1024)  # one pattern per municipality: compiling it is costly
def _answer_opener(municipality: str | None) -> re.Pattern[str]:
    """How a local answer starts: "I Kalmar", "Kalmar saknar", "Under 2020 har Kalmar"."""
    if municipality:
        name = re.escape(municipality)
        opener = (
            rf"(?:I {name}s?\b|{name}s? (?:kommun\s+)?[a-zåäö]+\b"
            rf"|Under {_YEAR} (?:har|hade|var|är) {name}\b|{_GENERIC_OPENER})"
        )
    else:
        opener = _GENERIC_OPENER
    return re.compile(opener)


# --- results relative to the national average -------------------------------------------

# Other municipalities state each result relative to the national average, under
# headings with the indicators as bullets and no figures:
#   "Äldreomsorgen i kommunen ligger bättre till än riksgenomsnittet när det gäller:"
#   "Vi ligger under rikssnittet för:", "På samma nivå som medlet i riket:".
_NATIONAL_REFERENCE = (
    r"(?:riks(?:genom)?snitt\w*|(?:genomsnitt|medel|medelvärd)\w*\s+(?:i|för)\s+(?:riket|landet)"
    r"|medlet\s+i\s+riket|riket|landet|övriga\s+kommuner|andra\s+kommuner|(?:genom)?snittet"
    r"|jämförbara\s+kommuner|kommunerna\s+i\s+(?:riket|landet))"
)
_RELATIVE_HEADING = re.compile(
    r"\b(?:(?P<cmp>bättre|sämre|högre|lägre|(?:på\s+)?samma\s+nivå|i\s+nivå\s+med"
    r"|likvärdig\w*|lika\s+bra)\b[^.!?]{0,60}?\b"
    + _NATIONAL_REFERENCE
    # "över"/"under" only right before the reference: "under rikssnittet", never "Resultat
    # under 2020 för kommunerna i landet"
    + r"|(?P<side>över|under)\s+(?:det\s+|den\s+)?"
    + _NATIONAL_REFERENCE
    + r")\b",
    re.IGNORECASE,
)
_COMPARISON_OF = {
    "bättre": "better", "högre": "better", "över": "better",
    "sämre": "worse", "lägre": "worse", "under": "worse",
}  # fmt: skip


_CLOSING_PUNCTUATION = (".", "!", "?", ";", ".\n", "!\n", "?\n", ";\n")


def relative_heading(text: str, *, before_bullets: bool = False) -> str | None:
    """`better`, `same` or `worse` when the line heads results relative to the nation.

    A heading ends in ":" or "när det gäller"; a short line with no closing punctuation
    ("Bättre än riket", an <h2>) counts only when bullets follow it (`before_bullets`).
    """
    if len(text) > 160:
        return None
    # endswith, as the regex "$" (which also matches before a final newline) would.
    if not text.endswith((":", "gäller", "för", "gäller\n", "för\n")) and not (
        before_bullets and len(text) <= 80 and not text.endswith(_CLOSING_PUNCTUATION)
    ):
        return None
    match = _RELATIVE_HEADING.search(text)
    if not match:
        return None
    word = (match.group("cmp") or match.group("side")).lower().split()[-1]
    return _COMPARISON_OF.get(word, "same")


# --- suspected swapped answers --------------------------------------------------------------

_CONTENT_WORD = re.compile(r"[a-zåäöéü]{4,}")
_STOPWORDS = frozenset(
    [
        "kommun",
        "kommuner",
        "kommunerna",
        "kommunens",
        "finns",
        "har",
        "hade",
        "procent",
        "aktuell",
        "aktuella",
        "inte",
        "även",
        "eller",
        "samt",
        "från",
        "till",
        "under",
        "över",
        "efter",
        "som",
        "inom",
        "mellan",
        "både",
        "andel",
        "andelen",
        "uppger",
        "uppgett",
        "sverige",
        "sveriges",
        "landets",
        "alla",
        "detta",
        "denna",
        "dessa",
        "deras",
        "vilket",
    ]
)


def _stems(text: str, municipality: str | None) -> frozenset[str]:
    """Stems (first six letters) of the words that tell statements apart: four letters
    or more, no stopwords, not the municipality's own name."""
    name = municipality.lower() if municipality else None
    if name and name in text.lower():
        return _stems_without(text, name)
    # The name is not even a substring (a national statement seldom names it): the
    # stems of the text alone, one analysis for every municipality's page.
    return _text_stems(text)


@lru_cache(maxsize=8192)  # pure: statements recur across captures of a page
def _text_stems(text: str) -> frozenset[str]:
    return frozenset(
        word[:6] for word in _CONTENT_WORD.findall(text.lower()) if word not in _STOPWORDS
    )


@lru_cache(maxsize=4096)  # answers name their municipality, and recur like statements
def _stems_without(text: str, name: str) -> frozenset[str]:
    return frozenset(
        word[:6]
        for word in _CONTENT_WORD.findall(text.lower())
        if word not in _STOPWORDS and word != name
    )


#: How many bullets before and after its own statement an answer is compared with. A swap
#: is a slip between neighbouring bullets of one block (seed 002: two adjacent bullets);
#: comparing every answer with every statement of the section is quadratic in its bullets
#: (a 20,000-bullet section took 133 s). Sections of up to window + 1 bullets (every
#: section of the shipped pages) are compared in full; in a longer one a swap between
#: bullets further apart than this goes unflagged: the flag is a suspicion, not a check.
_MISMATCH_WINDOW = 25


def _mismatched(pairs: list[_Pending], municipality: str | None) -> set[int]:
    """Indexes of bullets whose answer fits another statement of the section clearly better.

    Seed 002's 2019 block: the answer "Kalmar har en rutin för information till enskilda
    om samordnad individuell plan (SIP)" sits under the statement about samordning with
    barn och unga, and vice versa. The text is never moved, only flagged.
    """
    statements = [_stems(pair.statement, municipality) for pair in pairs]
    flagged: set[int] = set()
    for index, pair in enumerate(pairs):
        answer = _stems(pair.answer, municipality) if pair.answer else None
        if not answer:
            continue  # no answer, or no content word in it: it fits no statement
        # The share of the answer's stems each statement within `_MISMATCH_WINDOW`
        # bullets holds (one divisor: the best share is the best count over it).
        low = max(0, index - _MISMATCH_WINDOW)
        shared = [len(answer & words) for words in statements[low : index + _MISMATCH_WINDOW + 1]]
        own = shared[index - low] / len(answer)
        best_other = max(
            (count for other, count in enumerate(shared, low) if other != index), default=0
        ) / len(answer)
        if best_other >= 0.5 and best_other >= own + 0.25:
            flagged.add(index)
    return flagged


# --- assembly -----------------------------------------------------------------------------


@dataclass
class _Pending:
    statement: str
    line: int
    answer: str | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class _Section:
    heading: str
    pairs: list[_Pending] = field(default_factory=list)
    comparison: str | None = None  # better/same/worse: a section relative to the nation


def _split_glued_answer(pair: _Pending, opener: re.Pattern[str]) -> None:
    """Pull a local answer printed inside the statement's own paragraph out of it.

    "... minskat till 36 procent 2019I Kalmar har 19 procent ..." (no separator at all)
    or "... 36 procent 2019. I Kalmar har ..." (same paragraph).
    """
    for match in opener.finditer(pair.statement):
        start = match.start()
        if start == 0:
            continue
        before = pair.statement[start - 1]
        if not before.isspace():
            if before in "-/":  # part of a compound such as "Norra-Kalmar": not an answer
                continue
            pair.answer = pair.statement[start:].strip()
            pair.statement = pair.statement[:start].strip()
            pair.flags.append("answer_glued")
            return
        # "... boende. I Kalmar finns ..." or "... boende – I Kalmar finns ...".
        head = pair.statement[:start].rstrip()
        if head[-1:] in ".!?:" or head.endswith((" –", " -", " —")):
            pair.answer = pair.statement[start:].strip()
            pair.statement = head.rstrip(" –-—")
            pair.flags.append("answer_in_statement")
            return


def _reads_national(text: str, municipality: str | None) -> bool:
    """A paragraph about the nation, not an answer: it speaks of "kommunerna", "riket",
    "procent av" and names neither the municipality nor "vi"/"vår"/"här". A national
    summary page explains its bullets this way ("Resultaten bygger på en enkät som
    besvarades av 286 kommuner"); such a paragraph must not become a local answer."""
    if municipality and municipality.lower() in text.lower():
        return False
    if _LOCAL_VOICE.search(text):
        return False
    return bool(_NATIONAL_MARKER.search(text) or _NATIONAL_SOURCE.search(text))


_LOCAL_VOICE = re.compile(r"\b(?:vi|vår|vårt|våra|här|hos oss)\b", re.IGNORECASE)
_NATIONAL_SOURCE = re.compile(
    r"\b(?:enkät\w*|undersökning\w*)\b.{0,40}\b(?:besvara\w*|bygger|genomförd\w*)\b"
    r"|\b\d{2,3} kommuner\b",
    re.IGNORECASE,
)


def _collect_sections(
    lines: list[Line], opener: re.Pattern[str], municipality: str | None
) -> tuple[list[_Section], list[Reject], list[bool]]:
    """Walk the lines: results sections with their bullet pairs, what fits nowhere, and
    per line whether a section with bullets claims it (see `_unclaimed_regions`).

    A page that belongs to no municipality (`municipality` None: none given, none in its
    title, site name, answers or host) has no local answers: a national summary page
    ("2019 års resultat visar att:", national bullets, then "Öppna jämförelser ... är
    framtagen av Socialstyrelsen") would otherwise hand its closing line to the last
    bullet as that bullet's answer. Its paragraphs are rejects."""
    sections: list[_Section] = []
    rejects: list[Reject] = []
    owners: list[_Section | None] = [None] * len(lines)
    current: _Section | None = None
    for index, line in enumerate(lines):
        text_ = line.text
        # The line belongs to the section open when it is read (a heading: its own
        # section); lines read while no section with bullets is open stay unclaimed.
        owners[index] = current
        if not line.is_bullet and len(text_) <= 120 and _is_section_heading(text_):
            current = _Section(text_)
            sections.append(current)
            owners[index] = current
            continue
        if not line.is_bullet and _END_MARKER.match(text_):
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
            current = _Section(text_, comparison=comparison)
            sections.append(current)
            owners[index] = current
            continue
        if line.is_bullet:
            if not text_:
                if current is not None:
                    rejects.append(Reject("empty_bullet", text_, current.heading, line.number))
                continue
            if current is None:
                # Menus in text extracts are bullets too; keep only what reads like data.
                if re.search(r"\d|kommun", text_, re.IGNORECASE):
                    rejects.append(Reject("bullet_outside_section", text_, None, line.number))
                continue
            last = current.pairs[-1] if current.pairs else None
            if (
                current.comparison is None
                and municipality is not None
                and last is not None
                and last.answer is None
                and opener.match(text_)
                and not _NATIONAL_MARKER.search(text_)
            ):
                last.answer = text_
                last.flags.append("answer_as_bullet")
                continue
            current.pairs.append(_Pending(text_, line.number))
            continue
        if current is None or not current.pairs:
            continue  # intro text, banners, navigation: not findings
        if current.comparison is not None:
            # Prose after relative results comments on them; it answers nothing.
            rejects.append(Reject("unattached_paragraph", text_, current.heading, line.number))
            current = None
            continue
        last = current.pairs[-1]
        if (
            municipality is not None
            and last.answer is None
            and not _reads_national(text_, municipality)
        ):
            last.answer = text_
        else:
            rejects.append(Reject("unattached_paragraph", text_, current.heading, line.number))
    claimed = [owner is not None and bool(owner.pairs) for owner in owners]
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
            or _is_section_heading(text)
            or _END_MARKER.match(text)
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


#: The layouts tried, in this order, on each region the statement-and-answer pairs and the
#: relative lists leave unclaimed; the first that detects itself reads the region. A new
#: layout is a module with `detect`/`parse` in parsers/layouts/, one line here, and its
#: fixtures.
LAYOUTS: tuple[Layout, ...] = (tables, cards)  # type: ignore[assignment]

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
        if not any(_is_section_heading(line.text) for line in lines):
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
    opener = _answer_opener(municipality)

    sections, rejects, claimed = _collect_sections(lines, opener, municipality)
    if too_deep:
        rejects.insert(0, Reject("nesting_too_deep", _TOO_DEEP_TEXT, None, None))
    for section in sections:
        if not section.pairs:
            rejects.append(Reject("empty_section", section.heading, section.heading, None))
        elif section.comparison is None and municipality is not None:
            for pair in section.pairs:
                if pair.answer is None:
                    _split_glued_answer(pair, opener)
    filled = [section for section in sections if section.pairs]
    years = section_years(
        [
            SectionEvidence(
                s.heading, tuple(p.statement for p in s.pairs), relative=s.comparison is not None
            )
            for s in filled
        ],
        PageDates(page_updated, page_published, captured_at, title_text or None),
    )
    findings: list[Finding] = []
    for section, years_of_section in zip(filled, years, strict=True):
        swapped = _mismatched(section.pairs, municipality) if section.comparison is None else ()
        for index, (pair, (year, basis)) in enumerate(
            zip(section.pairs, years_of_section, strict=True)
        ):
            flags = list(pair.flags)
            if section.comparison is not None:
                # Relative results carry no national figure and no local answer: the
                # bullet names the indicator; the heading says how the municipality did.
                percent, values, answer, value, status = None, (), None, None, "unknown"
            else:
                reading = _national_reading(pair.statement)
                percent, values = reading.percent, reading.values
                flags.extend(reading.flags)
                answer = pair.answer
                value, status = _local_reading(answer)
                if answer is None:
                    flags.append("no_local_answer")
            if index in swapped:
                flags.append("answer_mismatch_suspected")
            findings.append(
                Finding(
                    url=url,
                    municipality=municipality,
                    area=area,
                    page_updated=page_updated,
                    page_published=page_published,
                    section=section.heading,
                    survey_year=year,
                    survey_year_basis=basis,
                    position=len(findings) + 1,
                    national_statement=pair.statement,
                    national_percent=percent,
                    national_values=values,
                    national_comparison=section.comparison,
                    local_answer=answer,
                    local_status=status,
                    local_value=value,
                    flags=tuple(flags),
                )
            )
    context = PageContext(url, municipality, area, page_updated, page_published)
    county = _county_name(title_text, municipality)
    n_layout_regions = 0
    for region in _unclaimed_regions(lines, claimed):
        layout_findings, layout_rejects = _read_region(region, context, county, directions)
        if layout_findings or layout_rejects:
            n_layout_regions += 1
        for finding in layout_findings:  # numbered on after the pairs: one page, one count
            findings.append(replace(finding, position=len(findings) + 1))
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
            findings = [replace(finding, area=area) for finding in findings]
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
