"""County indicator cards (parsers/layouts/cards.py, issue 22): the county's share, its
year and its verbal comparison with the nation, the same from HTML and from text.

tests/fixtures/layouts/card_county.* were written for these tests (an invented county,
"Granåsens län", invented figures); the expected records below were written by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from parsers.layouts import PageContext, cards
from parsers.lines import html_lines, text_lines

FIXTURES = Path(__file__).parent / "fixtures" / "layouts"
KEYS = (
    "section",
    "national_statement",
    "survey_year",
    "survey_year_basis",
    "local_value",
    "comparison",
    "national_comparison",
    "national_percent",
    "national_values",
    "national_value",
    "national_measure",
    "entity_kind",
    "entity",
)
G = "Granåsens län"
UPPSOKANDE = "Uppsökande verksamhet för äldre"
VANTETID = "Väntetid till särskilt boende"
VALD = "Rutin för våld i nära relationer"
EXPECTED = [
    # heading printed twice: one card; "sedan 2019 då andelen låg på cirka 45 procent" is
    # the county's earlier level: in no national field, and 2019 is not the survey year
    (UPPSOKANDE, UPPSOKANDE, 2023, "stated_year", 70.0, "lower", None, None, (), None, None,
     "county", G),
    # "45,5 procent av kommunerna i länet": decimal comma; "under 60 dagar" is no comparison,
    # "högre än riket" is
    (VANTETID, VANTETID, 2022, "stated_year", 45.5, "higher", None, None, (), None, None,
     "county", G),
    # "Samverkan kring demens": "Cirka en tredjedel av länets kommuner" states no figure:
    # no card. "bättre än riket" is better as printed.
    (VALD, VALD, 2023, "stated_year", 90.0, None, "better", None, (), None, None, "county", G),
]  # fmt: skip


def _lines(form: str) -> list:
    path = FIXTURES / f"card_county.{form}"
    if form == "html":
        return html_lines(path.read_text("utf-8"))[0]
    return text_lines(path.read_text("utf-8"))


@pytest.mark.parametrize("form", ["html", "txt"])
def test_card_fixture_gives_the_expected_findings(form: str) -> None:
    lines = _lines(form)
    assert cards.detect(lines)
    findings, rejects = cards.parse(lines, context=PageContext(municipality=G))
    assert [tuple(getattr(f, key) for key in KEYS) for f in findings] == EXPECTED
    assert rejects == ()
    # a county is no municipality: its name is the entity (issue 22: "`municipality`
    # stays for municipalities")
    assert {f.municipality for f in findings} == {None}
    # the paragraph is the county's answer, both of its <p> included
    assert findings[0].local_answer is not None
    assert findings[0].local_answer.endswith("något under medianen i riket 2023.")
    assert findings[0].local_answer.startswith("70 procent av länets kommuner/stadsdelar")


def test_html_and_text_give_the_same_cards() -> None:
    context = PageContext(municipality=G)
    assert cards.parse(_lines("html"), context=context) == cards.parse(
        _lines("txt"), context=context
    )


def test_direction_judges_a_verbal_comparison() -> None:
    # "något under medianen i riket" is lower; better or worse only by the declared direction
    findings, _ = cards.parse(_lines("txt"), directions={UPPSOKANDE.lower(): "higher_is_better"})
    assert findings[0].national_comparison == "worse"
    findings, _ = cards.parse(_lines("txt"), directions={VANTETID: "lower_is_better"})
    assert findings[1].national_comparison == "worse"  # higher, and lower is better
    assert findings[0].national_comparison is None  # no direction declared


def _parse(text: str) -> tuple:
    return cards.parse(text_lines(text))


def test_two_survey_years_in_one_card_give_no_year() -> None:
    text = "Rutin\n80 procent av länets kommuner har 2022 en rutin, och 2023 en plan.\n"
    (finding,), _ = _parse(text)
    assert (finding.survey_year, finding.survey_year_basis) == (None, "conflict")


def test_same_level_as_the_nation() -> None:
    text = "Rutin\n80 procent av länets kommuner har 2022 en rutin, i nivå med riket.\n"
    (finding,), _ = _parse(text)
    assert (finding.comparison, finding.national_comparison) == ("same", "same")


@pytest.mark.parametrize(
    "text",
    [
        # a bound is no figure
        "Kompetens\nÖver 74 procent av länets kommuner har en plan för kompetensförsörjning.\n",
        # a share only in words
        "Demens\nCirka en tredjedel av länets kommuner har en överenskommelse.\n",
        # a share of the nation's municipalities: not the county's card
        "Rutin\n80 procent av kommunerna i riket har en rutin 2023.\n",
        # an earlier level only
        "Rutin\nJämfört med 60 procent av länets kommuner 2019 har fler nu en rutin.\n",
    ],
)
def test_no_county_share_no_card(text: str) -> None:
    assert not cards.detect(text_lines(text))
    assert _parse(text) == ((), ())


def test_news_post_is_no_card() -> None:
    # "hamnar på plats 23", "delad förstaplats", "NKI ... 72", "bland de 25 procent bästa",
    # "Över 74 procent av länets kommuner": nothing a card states.
    lines = text_lines((FIXTURES / "news_rank.txt").read_text("utf-8"))
    assert not cards.detect(lines)
    assert cards.parse(lines) == ((), ())
