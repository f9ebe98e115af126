"""Typed records the parser returns: frozen, so a parsed page is a value, not a state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

LocalStatus = Literal["yes", "no", "partial", "unknown"]
#: Every value `Finding.local_status` can take besides null (null = no local answer).
LOCAL_STATUSES: tuple[str, ...] = ("yes", "no", "partial", "unknown")

#: How `Finding.survey_year` was decided, strongest evidence first (see parsers/years.py).
SURVEY_YEAR_BASES: tuple[str, ...] = (
    "heading",  # an explicit year in the section heading: "2019 års resultat visar att:"
    "page_title",  # a year in the page title, for its current section: "... äldreomsorg 2019"
    "stated_year",  # a year attached to the current national figure: "... till 15 procent 2019"
    "comparison_year",  # the year after the latest compared survey: "jämfört med 2021" -> 2022
    "page_updated",  # "Senast uppdaterad" read with the publication calendar (Jul-Feb)
    "page_published",  # "Publicerad" read the same way, when the page has no update date
    "captured_at",  # the capture time read the same way, when the page has no dates
    "matched_national_figure",  # (release only) same question, wording and figure as a
    # dated section elsewhere in the archive: that section's year
    "conflict",  # the evidence disagrees: survey_year is null
    "none",  # nothing determines one year: survey_year is null
)

#: Values of `Finding.national_comparison`: results stated relative to the nation.
NATIONAL_COMPARISONS: tuple[str, ...] = ("better", "same", "worse")

#: Values of `Finding.entity_kind`: whose figure `local_value` is.
ENTITY_KINDS: tuple[str, ...] = ("municipality", "county", "nation")

#: Values of `Finding.national_measure`: what the national figure measures, so nobody charts
#: a mean of respondents' shares as a share of municipalities.
NATIONAL_MEASURES: tuple[str, ...] = (
    "share_of_municipalities",  # "63 procent av kommunerna" (Kalmar's pairs)
    "share_of_respondents",  # a share of people: "Andel som är mycket nöjda med hemtjänsten"
    "mean",  # a mean that is not a share: "Medelvärde riket" of days, hours, a score
    "index",  # an index or score: "NKI", "Index", "poäng"
    "count",  # "Antal ..."
)

#: Values of `Finding.comparison`: the local figure against the national one, or the
#: verbal "högre/lägre än riket", before any judgement of better or worse.
COMPARISONS: tuple[str, ...] = ("higher", "lower", "same")

#: The defaults of the fields added for other layouts (issue 22); see `Finding.to_dict`.
_LAYOUT_DEFAULTS: dict[str, Any] = {
    "entity_kind": "municipality",
    "national_measure": "share_of_municipalities",
    "national_value": None,
    "comparison": None,
    "entity": None,
}

#: Quality flags a finding can carry.
FLAGS: dict[str, str] = {
    "no_local_answer": "the bullet has no local answer",
    "answer_glued": "the local answer was glued to the statement with no separator",
    "answer_in_statement": "the local answer was split off the statement's own paragraph",
    "answer_as_bullet": "the local answer was printed as a bullet of its own",
    "answer_mismatch_suspected": (
        "the local answer matches another bullet's statement in the section better than its own"
    ),
    "national_vague": (
        "national_percent is null: the statement only bounds or approximates the share in "
        "words ('Majoriteten', 'De flesta', 'Få', 'knappt hälften')"
    ),
    "national_range": (
        "national_percent is null: the statement gives a range across groups or sub-questions "
        "('mellan 12 och 30 procent'); both ends are in national_values"
    ),
    "national_several_figures": (
        "the statement gives several current figures, one per group or sub-question ('12 "
        "procent ... respektive 11 procent', '93 och 86 procent'); national_percent is the "
        "first, national_values holds every one in order"
    ),
    "national_share_negated": (
        "national_percent is the share of municipalities *without* the thing, as printed ('4 "
        "av 5 kommuner saknar ...'); 100 minus it is the share with it (observations."
        "national_percent holds that)"
    ),
}

#: The flags about the national figure (observations.national_flags carries these).
NATIONAL_FLAGS: tuple[str, ...] = tuple(name for name in FLAGS if name.startswith("national_"))

#: Reasons a reject can carry.
REJECT_REASONS: dict[str, str] = {
    "no_results_section": (
        "the page has no '... resultat visar att:' heading and no results relative to the "
        "national average (a page that only comments in prose)"
    ),
    "empty_section": "a results heading with no bullets under it",
    "empty_bullet": "a bullet with no text",
    "bullet_outside_section": "a statement-like bullet outside any results section",
    "unattached_paragraph": "a paragraph after a bullet's local answer, attached to nothing",
    "nesting_too_deep": (
        "the HTML nests deeper than the HTML parser builds (256 levels): what sits deeper "
        "was lost, so the page's findings may be incomplete"
    ),
    # Kept back by the result-table layout (parsers/layouts/tables.py).
    "table_row_incomplete": (
        "a table row with fewer cells than the header has columns (an empty cell prints "
        "nothing in HTML or text): which figure belongs to which year cannot be told"
    ),
    "table_rank_row": "a table row that states a rank ('Placering', 'plats 23'), not a figure",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One result: a national statement (or indicator) and the entity's local answer.

    Fields added for the table and card layouts (parsers/layouts/, issue 22), at the end
    with defaults so every constructor call written before them keeps working:

    - `entity_kind`: whose figure `local_value` is: "municipality" (default), "county"
      (a county's indicator card: "80 procent av länets kommuner ...") or "nation".
    - `national_measure`: what the national figure measures (`NATIONAL_MEASURES`), or
      None when the layout states no national figure or does not say what it measures.
      Default "share_of_municipalities": Kalmar's pairs state shares of municipalities.
    - `national_value`: the national figure whatever it measures (a share, a mean, an
      index, a count). `national_percent` holds it only where it is a share. None on
      Kalmar's pairs and relative lists, whose national figure is `national_percent`.
    - `comparison`: "higher" / "lower" / "same": the local figure above, below or equal
      to the national one, or the page's verbal "högre/lägre än riket", "något under
      medianen i riket". Better/worse is a judgement: it goes in `national_comparison`
      as printed ("bättre än riket"), or from `comparison` only where the indicator's
      direction is known.
    - `entity`: the name of the entity whose figure `local_value` is: the municipality
      on a result table, the county or region on a county card (whose `municipality` is
      None: a county is no municipality). None on Kalmar's pairs and relative lists,
      whose entity is `municipality`.
    """

    url: str | None
    municipality: str | None
    area: str | None
    page_updated: date | None
    page_published: date | None
    section: str
    survey_year: int | None
    survey_year_basis: str
    position: int
    national_statement: str
    national_percent: float | None
    national_values: tuple[float, ...]
    national_comparison: str | None  # better/same/worse for results relative to the nation
    local_answer: str | None
    local_status: str | None
    local_value: float | None
    flags: tuple[str, ...]
    entity_kind: str = "municipality"
    national_measure: str | None = "share_of_municipalities"
    national_value: float | None = None
    comparison: str | None = None
    entity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: dates as ISO strings, tuples as lists.

        The layout fields are left out when all of them hold their defaults (every
        finding of Kalmar's pairs and the relative lists): `oj parse` output and the
        golden files of those layouts stay byte for byte what they were before the
        fields existed. A finding with any of them set carries all of them, so one record
        never has half of them.
        """
        record = _jsonable(asdict(self))
        if all(record[key] == value for key, value in _LAYOUT_DEFAULTS.items()):
            for key in _LAYOUT_DEFAULTS:
                del record[key]
        return record


@dataclass(frozen=True, slots=True)
class Reject:
    """Text the parser could not turn into a finding, kept with the reason."""

    reason: str
    text: str
    section: str | None
    line: int | None  # 1-based line in the text form of the page (see ParsedPage.lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """Everything parsed from one page snapshot."""

    url: str | None
    municipality: str | None
    area: str | None
    page_updated: date | None
    page_published: date | None
    input_format: str  # "html" or "text"
    charset: str | None  # the charset used to decode bytes; None when text was given
    findings: tuple[Finding, ...]
    rejects: tuple[Reject, ...]
    n_sections: int


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, date):
            out[key] = value.isoformat()
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out
