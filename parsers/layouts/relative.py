"""Results relative to the nation, with no figures: a heading says how the municipality
did and its bullets name the indicators ("Kommunens hemtjänst ligger bättre till än medlet
i riket gällande:", "Vi ligger under rikssnittet för:", "På samma nivå som medlet i riket:").

A section is the heading, its bullets, and at most one paragraph after them (prose after
the bullets comments on them and ends the section; parsers/page.py splits the sections).
Each bullet is a finding with `national_comparison` from the heading and no national
figure or local answer. Deliberately not: figures in the bullets (a bullet names the
indicator only), and a survey year (parsers/page.py dates every section of a page at once).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from parsers.layouts import PageContext, bullets_before_boundary
from parsers.lines import Line
from parsers.records import Finding, Reject

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


def detect(lines: Sequence[Line], *, entity: str | None = None) -> bool:
    """Does the section open with a relative heading that bullets follow? (`entity` is
    accepted for the same call as the other layouts.)"""
    if not lines or lines[0].is_bullet:
        return False
    before = len(lines) > 1 and lines[1].is_bullet
    return relative_heading(lines[0].text, before_bullets=before) is not None and (
        bullets_before_boundary(lines)
    )


def parse(
    lines: Sequence[Line],
    *,
    context: PageContext | None = None,
    directions: Mapping[str, str] | None = None,
) -> tuple[tuple[Finding, ...], tuple[Reject, ...]]:
    """One finding per bullet of the section (`survey_year` left for the page to set)."""
    context = context or PageContext()
    heading = lines[0].text
    before = len(lines) > 1 and lines[1].is_bullet
    comparison = relative_heading(heading, before_bullets=before)
    bullets: list[str] = []
    rejects: list[Reject] = []
    for line in lines[1:]:
        text = line.text
        if line.is_bullet:
            if not text:
                rejects.append(Reject("empty_bullet", text, heading, line.number))
            else:
                bullets.append(text)
            continue
        if bullets:
            # Prose after relative results comments on them; it answers nothing.
            rejects.append(Reject("unattached_paragraph", text, heading, line.number))
    findings = tuple(
        Finding(
            url=context.url,
            municipality=context.municipality,
            area=context.area,
            page_updated=context.page_updated,
            page_published=context.page_published,
            section=heading,
            survey_year=None,
            survey_year_basis="none",
            position=index,
            national_statement=bullet,
            national_percent=None,
            national_values=(),
            national_comparison=comparison,
            local_answer=None,
            local_status="unknown",
            local_value=None,
            flags=(),
        )
        for index, bullet in enumerate(bullets, 1)
    )
    return findings, tuple(rejects)
