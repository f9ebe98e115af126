"""County indicator cards: a heading, then a paragraph with the county's share.

    Erbjuder uppsökande verksamhet            <- the heading, often printed twice
    Erbjuder uppsökande verksamhet
    80 procent av länets kommuner/stadsdelar som svarat på enkäten uppger 2023 att de
    erbjuder ... Utvecklingen har stadigt ökat sedan 2019 då andelen låg på cirka 60
    procent. Utvecklingen följer utvecklingen i riket men ligger något under medianen
    i riket 2023.

Recognised:
- A heading line (short, no closing full stop), its repetition right after it dropped,
  then a paragraph whose first stated level (parsers/numbers) is a share of the
  county's municipalities: "80 procent av länets kommuner", "75 % av regionens
  kommuner", "70 procent av kommunerna i länet". The paragraph runs to the next
  heading-like line.
- One finding per card: entity_kind "county", the heading as `national_statement`,
  the paragraph as `local_answer` (status from parsers/status), the share as
  `local_value`; the survey year is the one year the paragraph names that is not an
  earlier survey's or a "sedan 2019" bound (parsers/years), basis "stated_year".
- The comparison in words: "under / lägre än / något under medianen i riket" ->
  comparison "lower", "över / högre än" -> "higher", "i nivå med riket" -> "same";
  "bättre / sämre än riket" is better/worse as printed. Better/worse from higher/lower
  only through the `directions` mapping.

Deliberately not:
- The county's earlier level ("sedan 2019 då andelen låg på cirka 60 procent") is kept
  nowhere: it is not national, and not the current figure; earlier captures of the page
  give the county's series.
- No national figure: cards state none as a number, so national_percent/national_value
  stay null and national_measure is null.
- A bounded share ("över 74 procent av länets kommuner"), a share only in words
  ("cirka en tredjedel av länets kommuner"), ranks and news ("hamnar på plats 23",
  "bland de 25 procent bästa") are no card.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from parsers.layouts import PageContext, judged, normalize_label
from parsers.lines import Line
from parsers.numbers import Level, bounded_at, folded, stated_levels
from parsers.records import Finding, Reject
from parsers.status import local_status
from parsers.years import statement_years

# What follows a county's share: "av länets kommuner/stadsdelar", "av kommunerna i länet".
_OF_COUNTY = re.compile(
    r"\s*(?:av\s+)?(?:(?:länets|regionens)\s+(?:kommuner|stadsdelar)"
    r"|(?:kommunerna|stadsdelarna)\s+i\s+(?:länet|regionen))\b",
    re.IGNORECASE,
)
_HEADING_MAX = 150
# The county's share opens the paragraph: "80 procent av länets kommuner/stadsdelar".
_OPENING = 200
_CLOSED = re.compile(r"[.!?]\s*$")
_VERBAL = re.compile(
    r"\b(?P<word>under|över|lägre än|högre än|i nivå med|på samma nivå som|bättre än|sämre än)"
    r"\s+(?:(?:medianen|genomsnittet|snittet|medelvärdet|nivån)\s+(?:i|för)\s+)?"
    r"(?:riket|landet|riksgenomsnittet|rikssnittet)\b",
    re.IGNORECASE,
)
_VERBAL_MEANING = {
    "under": ("lower", None),
    "lägre än": ("lower", None),
    "över": ("higher", None),
    "högre än": ("higher", None),
    "i nivå med": ("same", "same"),
    "på samma nivå som": ("same", "same"),
    "bättre än": (None, "better"),
    "sämre än": (None, "worse"),
}
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")


def _county_share(paragraph: str) -> Level | None:
    """The county's current share: the first stated level, a figure (not words, not a
    bound, not an earlier survey's), followed by "av länets kommuner"."""
    lowered = paragraph[:_OPENING].lower()
    if "län" not in lowered and "region" not in lowered:
        return None  # cheap: a card's opening names the county ("av länets kommuner")
    levels = stated_levels(paragraph)
    if not levels:
        return None
    first = levels[0]
    if (
        first.in_words
        or first.is_from
        or first.in_range
        or bounded_at(paragraph, first.start)  # "över 74 procent": a bound, no figure
        or not _OF_COUNTY.match(paragraph, first.end)
    ):
        return None
    return first


def _heading_like(text: str) -> bool:
    return (
        0 < len(text) <= _HEADING_MAX
        and not _CLOSED.search(text)
        and not text[:1].isdigit()
        and any(ch.isalpha() for ch in text)
    )


def _cards(lines: Sequence[Line]) -> list[tuple[str, str, int]]:
    """(heading, paragraph, line number of the heading) of every card."""
    cards: list[tuple[str, str, int]] = []
    index = 0
    while index < len(lines):
        heading = lines[index]
        if not _heading_like(heading.text):
            index += 1
            continue
        body = index + 1
        # The heading printed twice (a visible title and a screen-reader copy): once.
        while body < len(lines) and normalize_label(lines[body].text) == normalize_label(
            heading.text
        ):
            body += 1
        if body >= len(lines) or _county_share(lines[body].text) is None:
            index += 1
            continue
        end = body + 1
        while end < len(lines) and not _heading_like(lines[end].text):
            end += 1
        paragraph = " ".join(line.text for line in lines[body:end])
        cards.append((heading.text, paragraph, heading.number))
        index = end
    return cards


def detect(lines: Sequence[Line], *, entity: str | None = None) -> bool:
    """Does the section hold at least one county indicator card? (`entity` is accepted
    for the same call as tables.detect; a card names its county as "länet".)"""
    return bool(_cards(lines))


def _survey_year(paragraph: str) -> tuple[int | None, str]:
    evidence = statement_years(paragraph)
    years = {int(y) for y in _YEAR.findall(paragraph)} - set(evidence.earlier) - set(evidence.since)
    if len(years) == 1:
        return years.pop(), "stated_year"
    return None, "conflict" if years else "none"


def _verbal_comparison(paragraph: str) -> tuple[str | None, str | None]:
    """(comparison, national_comparison) as the paragraph words them; none if it words
    two different ones."""
    meanings = {_VERBAL_MEANING[folded(m.group("word"))] for m in _VERBAL.finditer(paragraph)}
    return meanings.pop() if len(meanings) == 1 else (None, None)


def parse(
    lines: Sequence[Line],
    *,
    context: PageContext | None = None,
    directions: Mapping[str, str] | None = None,
) -> tuple[tuple[Finding, ...], tuple[Reject, ...]]:
    """Findings of every county card in the section (cards keep nothing back)."""
    context = context or PageContext()
    findings: list[Finding] = []
    for heading, paragraph, _line in _cards(lines):
        share = _county_share(paragraph)
        value = share.value if share is not None else None
        year, basis = _survey_year(paragraph)
        comparison, printed = _verbal_comparison(paragraph)
        findings.append(
            Finding(
                url=context.url,
                # A county is no municipality: its name goes in `entity`.
                municipality=None,
                area=context.area,
                page_updated=context.page_updated,
                page_published=context.page_published,
                section=heading,
                survey_year=year,
                survey_year_basis=basis,
                position=len(findings) + 1,
                national_statement=heading,
                national_percent=None,
                national_values=(),
                national_comparison=printed or judged(comparison, heading, directions),
                local_answer=paragraph,
                local_status=local_status(paragraph, value),
                local_value=value,
                flags=(),
                entity_kind="county",
                national_measure=None,
                national_value=None,
                comparison=comparison,
                entity=context.municipality,
            )
        )
    return tuple(findings), ()
