"""Layout modules: one per way a page prints its results, each a detector and a parser.

Every module reads a section of a page in the line form of parsers/lines.py (HTML and
text extracts meet there, so both give the same findings) and returns the same
`Finding` / `Reject` records. The number grammar (parsers/numbers.py), year rules
(parsers/years.py) and status rules (parsers/status.py) stay in their modules; a layout
only says where on the page they apply.

- `pairs`: Kalmar's statement-and-answer pairs under "... resultat visar att:".
- `relative`: bullets under a heading relative to the nation ("ligger bättre till än
  medlet i riket gällande:"), no figures.
- `tables`: a result table, one row per indicator, the entity's figure per year beside
  the national (or county) figure.
- `cards`: a county's indicator cards, a heading and a paragraph with the county's
  share and a verbal comparison with the nation.

What this package shares: the page-level fields every finding carries (`PageContext`),
how a row label is normalised for the `directions` mapping, and how a comparison
becomes better/worse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from parsers.lines import Line
from parsers.records import REJECT_REASONS

#: Why a layout module kept text back: the reasons live with every other reason in
#: records.REJECT_REASONS (one place, the data dictionary lists them); this is the
#: layouts' part of it.
LAYOUT_REJECT_REASONS: dict[str, str] = {
    key: REJECT_REASONS[key] for key in ("table_row_incomplete", "table_rank_row")
}

#: Values of the `directions` mapping each parse() accepts.
DIRECTIONS: tuple[str, ...] = ("higher_is_better", "lower_is_better")


@dataclass(frozen=True, slots=True)
class PageContext:
    """The page-level fields of every finding, as parse_page decided them."""

    url: str | None = None
    municipality: str | None = None  # the configured entity's name (municipality or county)
    area: str | None = None
    page_updated: date | None = None
    page_published: date | None = None


_LABEL_PUNCTUATION = re.compile(r"[\s.:;,*]+$")


def normalize_label(text: str) -> str:
    """A row label or card heading as the keys of a `directions` mapping are written:
    lower case, whitespace collapsed, trailing punctuation and footnote stars dropped."""
    return _LABEL_PUNCTUATION.sub("", " ".join(text.split())).lower()


def compare(local: float | None, national: float | None) -> str | None:
    """ "higher" / "lower" / "same" for a local figure against the national one."""
    if local is None or national is None:
        return None
    if local > national:
        return "higher"
    if local < national:
        return "lower"
    return "same"


def judged(comparison: str | None, label: str, directions: Mapping[str, str] | None) -> str | None:
    """better/same/worse from a higher/lower/same comparison, only where the indicator's
    direction is declared: 7,6 against 6,4 is worse for "olämpliga läkemedel" and better
    for "mycket nöjda", and the page does not say which."""
    if comparison is None or not directions:
        return None
    key = normalize_label(label)
    direction = directions.get(key)
    if direction is None:  # keys written as printed ("Andel som ...") match as well
        direction = next((d for k, d in directions.items() if normalize_label(k) == key), None)
    if direction not in DIRECTIONS:
        return None
    if comparison == "same":
        return "same"
    higher_better = direction == "higher_is_better"
    return "better" if (comparison == "higher") == higher_better else "worse"


# Lines that end the results part of a page: related-page navigation and page footers.
END_MARKER = re.compile(
    r"^(?:Fler sidor inom|Senast uppdaterad|Sidan uppdaterades|Publicerad\b|Övriga länkar"
    r"|Relaterade sidor|Relaterad information|Dela sidan|Dela på|Kontakta oss|Sidansvarig"
    r"|Hittade du det du sökte|Skriv ut|Lyssna\b)",
    re.IGNORECASE,
)


def bullets_before_boundary(lines: Sequence[Line]) -> bool:
    """Is there a bullet with text after the heading `lines[0]` before the next heading
    ("... resultat visar att:" or relative) or end marker? Exactly the sections
    parsers/page.py lets claim their lines: the pairs and relative detectors say yes to
    those and no to a heading left with no bullets (its lines go to the other layouts)."""
    from parsers.layouts.pairs import is_section_heading  # noqa: PLC0415 (cycle)
    from parsers.layouts.relative import relative_heading  # noqa: PLC0415 (cycle)

    for index in range(1, len(lines)):
        line = lines[index]
        text = line.text
        if line.is_bullet:
            if text:
                return True
            continue
        if (len(text) <= 120 and is_section_heading(text)) or END_MARKER.match(text):
            return False
        following = index + 1 < len(lines) and lines[index + 1].is_bullet
        if relative_heading(text, before_bullets=following) is not None:
            return False
    return False
