"""Kalmar's statement-and-answer pairs: under a "... resultat visar att:" heading each
bullet is the nation's result, and the paragraph after it (or a bullet, or the statement's
own tail) the municipality's answer ("I Kalmar finns ...").

A section is the heading and its lines up to the next heading or end marker
(parsers/page.py splits the sections). Each bullet is a finding: the national figures
read by parsers/numbers.py, the local answer's figure and status (parsers/status.py), and
flags where the answer was glued to the statement, printed as a bullet, missing, or seems
to belong to a neighbouring statement. Deliberately not: local answers on a page that
belongs to no municipality, and a survey year (parsers/page.py dates every section of a
page at once).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from parsers.layouts import PageContext, bullets_before_boundary
from parsers.lines import Line
from parsers.numbers import NationalReading, local_value, national_reading
from parsers.records import Finding, Reject
from parsers.status import local_status

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


@lru_cache(maxsize=4096)  # pure: a page asks it of each line three times (a heading
# anywhere, the split into sections, each layout's section boundary)
def is_section_heading(text: str) -> bool:
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


# --- local answers ------------------------------------------------------------------------

#: A name as local answers print it ("Kalmar", "Upplands Väsby", "Malung-Sälen").
NAME = r"[A-ZÅÄÖ][a-zåäöéü]+(?:[- ][A-ZÅÄÖ][a-zåäöéü]+)?"
_NAME = NAME
_VERBS = r"(?:har|hade|finns|fanns|saknar|saknas|är|var|används|använder|erbjuds|erbjuder|görs)"
_GENERIC_OPENER = rf"I (?!Sverige\b|[Rr]iket\b|[Ll]andet\b|[Ll]änet\b){_NAME} {_VERBS}\b"
NATIONAL_MARKER = re.compile(
    r"\bkommuner(?:na)?\b|\bprocent av\b|\briket\b|\bi landet\b", re.IGNORECASE
)


_GENERIC_OPENER_RE = re.compile(_GENERIC_OPENER)


def own_opener_pattern(municipality: str) -> str:
    """The municipality's own ways to open an answer, as one pattern: what `_OwnOpener`
    finds without compiling it. "I Kalmar", "Kalmars kommun har", "Kalmar saknar",
    "Under 2020 har Kalmar"."""
    name = re.escape(municipality)
    return (
        rf"(?:I {name}s?\b|{name}s? (?:kommun\s+)?[a-zåäö]+\b"
        rf"|Under {_YEAR} (?:har|hade|var|är) {name}\b)"
    )


# `own_opener_pattern` in parts that need no name: what follows the name, what comes
# before it ("Under 2020 har " is 14-16 characters).
_AFTER_NAME = re.compile(r"s? (?:kommun\s+)?[a-zåäö]+\b")
_UNDER_YEAR = re.compile(rf"Under {_YEAR} (?:har|hade|var|är) ")
_UNDER_YEAR_LENGTHS = (16, 15, 14)


def _is_word(text: str, index: int) -> bool:
    """`\\w` at `index` (False outside the text), as `re` reads it in a str pattern."""
    if index < 0 or index >= len(text):
        return False
    char = text[index]
    return char.isalnum() or char == "_"


def _boundary(text: str, index: int) -> bool:
    """`\\b` at `index`."""
    return _is_word(text, index - 1) != _is_word(text, index)


class _OwnOpener:
    """`re.compile(own_opener_pattern(municipality))`'s `match` and `search`, found from
    where the name occurs (`str.find`): compiling the pattern took ~0.5 ms a name, ~8 %
    of parsing 2,000 pages of 290 municipalities. Only where a match starts is read.
    tests/test_parser_speed.py holds it to the compiled pattern."""

    __slots__ = ("_name", "_opener")

    def __init__(self, municipality: str) -> None:
        self._name = municipality
        self._opener = "I " + municipality

    def _end_at(self, text: str, start: int) -> int | None:
        """The end of the pattern's match at `start` (alternatives in order), or None."""
        name = self._name
        if text.startswith(self._opener, start):  # I <name>s?\b
            after = start + len(self._opener)
            if text.startswith("s", after) and _boundary(text, after + 1):
                return after + 1
            if _boundary(text, after):
                return after
        if text.startswith(name, start):  # <name>s? (kommun )?<word>\b
            tail = _AFTER_NAME.match(text, start + len(name))
            if tail is not None:
                return tail.end()
        head = _UNDER_YEAR.match(text, start)  # Under <year> <verb> <name>\b
        if head is not None and text.startswith(name, head.end()):
            after = head.end() + len(name)
            if _boundary(text, after):
                return after
        return None

    def match(self, text: str) -> int | None:
        """Where a match at the start ends; None when there is none."""
        return self._end_at(text, 0)

    def search(self, text: str, position: int = 0) -> tuple[int, int] | None:
        """(start, end) of the first match at or after `position`; None when there is none.
        Each alternative holds the name at a fixed distance from its start, so the
        starts to try are found from the name's occurrences."""
        name = self._name
        best: tuple[int, int] | None = None
        found = text.find(name, position)
        while found != -1:
            if best is not None and found - _UNDER_YEAR_LENGTHS[0] > best[0]:
                break  # no later occurrence can start before the best one
            starts = [found - 2, found]
            starts += [found - length for length in _UNDER_YEAR_LENGTHS]
            for start in starts:
                if start < position or (best is not None and start >= best[0]):
                    continue
                end = self._end_at(text, start)
                if end is not None:
                    best = (start, end)
            found = text.find(name, found + 1)
        return best


class AnswerOpener:
    """`re.compile(rf"(?:{own_opener_pattern(name)}|{_GENERIC_OPENER})")` for `match` and
    the starts of `finditer`: the municipality's own alternatives (`_OwnOpener`, no
    pattern compiled per name), and the generic "I <Name> <verb>" compiled once.

    At one position the alternation tries the own alternatives first, then the generic
    one: `match` is the own match or else the generic one's, and `starts` takes the
    leftmost of the two next matches, the own one on a tie. Neither opens with an
    anchor, so where a match starts does not depend on where the search started, and no
    match is empty ("I " at least), as `re.finditer` assumes."""

    __slots__ = ("_own",)

    def __init__(self, own: _OwnOpener | None) -> None:
        self._own = own

    def match(self, text: str) -> bool:
        """Whether `text` opens with a local answer."""
        if self._own is not None and self._own.match(text) is not None:
            return True
        return _GENERIC_OPENER_RE.match(text) is not None

    def starts(self, text: str) -> Iterator[int]:
        """Where the local answers in `text` start, as `finditer` would find them."""
        if self._own is None:
            for found in _GENERIC_OPENER_RE.finditer(text):
                yield found.start()
            return
        own_opener = self._own
        own = own_opener.search(text)
        match = _GENERIC_OPENER_RE.search(text)
        generic = match.span() if match is not None else None
        while own is not None or generic is not None:
            if own is not None and (generic is None or own[0] <= generic[0]):
                start, end = own
            else:
                start, end = generic  # type: ignore[misc]
            yield start
            # Later matches of either that start at or past the end stay valid.
            if own is not None and own[0] < end:
                own = own_opener.search(text, end)
            if generic is not None and generic[0] < end:
                match = _GENERIC_OPENER_RE.search(text, end)
                generic = match.span() if match is not None else None


@lru_cache(maxsize=1024)
def answer_opener(municipality: str | None) -> AnswerOpener:
    """How a local answer starts: "I Kalmar", "Kalmar saknar", "Under 2020 har Kalmar"
    (`own_opener_pattern`), or any "I <Name> har ..." (`_GENERIC_OPENER`)."""
    return AnswerOpener(_OwnOpener(municipality) if municipality else None)


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


@lru_cache(maxsize=16384)  # pure; a page's statements recur on every capture of it
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
        if len(answer & statements[index]) * 4 > len(answer) * 3:
            # Its own statement holds over three quarters of its stems: no other share
            # (at most 1) reaches own + 0.25. Half of the answers stop here.
            continue
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


def _split_glued_answer(pair: _Pending, opener: AnswerOpener) -> None:
    """Pull a local answer printed inside the statement's own paragraph out of it.

    "... minskat till 36 procent 2019I Kalmar har 19 procent ..." (no separator at all)
    or "... 36 procent 2019. I Kalmar har ..." (same paragraph).
    """
    for start in opener.starts(pair.statement):
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
    return bool(NATIONAL_MARKER.search(text) or _NATIONAL_SOURCE.search(text))


_LOCAL_VOICE = re.compile(r"\b(?:vi|vår|vårt|våra|här|hos oss)\b", re.IGNORECASE)
_NATIONAL_SOURCE = re.compile(
    r"\b(?:enkät\w*|undersökning\w*)\b.{0,40}\b(?:besvara\w*|bygger|genomförd\w*)\b"
    r"|\b\d{2,3} kommuner\b",
    re.IGNORECASE,
)


def detect(lines: Sequence[Line], *, entity: str | None = None) -> bool:
    """Does the section open with a "... resultat visar att:" heading that bullets follow?
    (`entity` is accepted for the same call as the other layouts.)"""
    return (
        bool(lines)
        and not lines[0].is_bullet
        and len(lines[0].text) <= 120
        and is_section_heading(lines[0].text)
        and bullets_before_boundary(lines)
    )


def parse(
    lines: Sequence[Line],
    *,
    context: PageContext | None = None,
    directions: Mapping[str, str] | None = None,
) -> tuple[tuple[Finding, ...], tuple[Reject, ...]]:
    """One finding per bullet of the section (`survey_year` left for the page to set).

    A page that belongs to no municipality (`context.municipality` None: none given, none
    in its title, site name, answers or host) has no local answers: a national summary
    page ("2019 års resultat visar att:", national bullets, then "Öppna jämförelser ... är
    framtagen av Socialstyrelsen") would otherwise hand its closing line to the last
    bullet as that bullet's answer. Its paragraphs are rejects."""
    context = context or PageContext()
    municipality = context.municipality
    opener = answer_opener(municipality)
    heading = lines[0].text
    pairs: list[_Pending] = []
    rejects: list[Reject] = []
    for line in lines[1:]:
        text_ = line.text
        if line.is_bullet:
            if not text_:
                rejects.append(Reject("empty_bullet", text_, heading, line.number))
                continue
            last = pairs[-1] if pairs else None
            if (
                municipality is not None
                and last is not None
                and last.answer is None
                and opener.match(text_)
                and not NATIONAL_MARKER.search(text_)
            ):
                last.answer = text_
                last.flags.append("answer_as_bullet")
                continue
            pairs.append(_Pending(text_, line.number))
            continue
        if not pairs:
            continue  # intro text, banners, navigation: not findings
        last = pairs[-1]
        if (
            municipality is not None
            and last.answer is None
            and not _reads_national(text_, municipality)
        ):
            last.answer = text_
        else:
            rejects.append(Reject("unattached_paragraph", text_, heading, line.number))
    if municipality is not None:
        for pair in pairs:
            if pair.answer is None:
                _split_glued_answer(pair, opener)
    swapped = _mismatched(pairs, municipality)
    findings: list[Finding] = []
    for index, pair in enumerate(pairs):
        flags = list(pair.flags)
        reading = _national_reading(pair.statement)
        flags.extend(reading.flags)
        answer = pair.answer
        value, status = _local_reading(answer)
        if answer is None:
            flags.append("no_local_answer")
        if index in swapped:
            flags.append("answer_mismatch_suspected")
        findings.append(
            Finding(
                url=context.url,
                municipality=municipality,
                area=context.area,
                page_updated=context.page_updated,
                page_published=context.page_published,
                section=heading,
                survey_year=None,
                survey_year_basis="none",
                position=index + 1,
                national_statement=pair.statement,
                national_percent=reading.percent,
                national_values=reading.values,
                national_comparison=None,
                local_answer=answer,
                local_status=status,
                local_value=value,
                flags=tuple(flags),
            )
        )
    return tuple(findings), tuple(rejects)
