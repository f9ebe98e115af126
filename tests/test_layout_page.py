"""parse_page chooses a layout per region (issue 22): result tables and county cards where
the pairs and relative lists claim nothing; Kalmar's pages are unchanged
(tests/test_golden.py). Fixtures: tests/fixtures/layouts/ (invented pages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parsers import LAYOUTS, REJECT_REASONS, parse_page
from parsers.layouts import LAYOUT_REJECT_REASONS, PageContext, cards, pairs, relative, tables
from parsers.lines import text_lines

FIXTURES = Path(__file__).parent / "fixtures" / "layouts"
LAYOUT_KEYS = (
    "survey_year",
    "national_statement",
    "local_value",
    "national_value",
    "national_measure",
    "comparison",
    "entity_kind",
    "entity",
    "municipality",
)


def _findings(name: str) -> list[tuple]:
    page = parse_page((FIXTURES / name).read_bytes())
    return [tuple(getattr(f, key) for key in LAYOUT_KEYS) for f in page.findings]


@pytest.mark.parametrize("form", ["html", "txt"])
def test_a_table_page_gives_one_finding_per_row_and_year(form: str) -> None:
    page = parse_page((FIXTURES / f"table_eldercare.{form}").read_bytes())
    rows = {(f.national_statement[:13], f.survey_year): f for f in page.findings}
    nojda = rows[("Andel som sam", 2022)]
    assert (nojda.local_value, nojda.national_value, nojda.national_measure) == (
        84.0,
        81.0,
        "share_of_respondents",
    )
    assert (nojda.entity_kind, nojda.entity, nojda.municipality) == (
        "municipality",
        "Björkvala",
        "Björkvala",
    )
    nki = rows[("Nöjd kund-ind", 2022)]
    assert (nki.national_measure, nki.national_percent, nki.comparison) == ("index", None, "lower")
    # positions number the page's findings 1..n, as finding ids need
    assert [f.position for f in page.findings] == list(range(1, len(page.findings) + 1))
    assert [r.reason for r in page.rejects] == ["table_rank_row"]
    # the title is the page's, not the last title-like line before the end of the page
    assert {f.area for f in page.findings} == {"Öppna jämförelser äldreomsorg"}


def test_html_and_text_give_the_same_table_findings() -> None:
    assert _findings("table_eldercare.html") == _findings("table_eldercare.txt")
    assert _findings("table_county.html") == _findings("table_county.txt")


def test_a_county_card_page_names_the_county_as_entity_not_municipality() -> None:
    page = parse_page((FIXTURES / "card_county.html").read_bytes())
    assert [(f.entity_kind, f.entity, f.municipality, f.local_value) for f in page.findings] == [
        ("county", "Granåsens län", None, 70.0),
        ("county", "Granåsens län", None, 45.5),
        ("county", "Granåsens län", None, 90.0),
    ]
    assert page.rejects == ()


def test_news_gives_no_findings() -> None:
    page = parse_page((FIXTURES / "news_rank.txt").read_bytes())
    assert page.findings == ()
    assert [r.reason for r in page.rejects] == ["no_results_section"]


def test_directions_judge_higher_and_lower_when_given() -> None:
    label = "Andelen personer 75 och äldre med olämpliga läkemedel på vård- och omsorgsboende"
    page = parse_page(
        (FIXTURES / "table_eldercare.txt").read_bytes(),
        directions={label.lower(): "lower_is_better"},
    )
    judged = {(f.national_statement, f.survey_year): f.national_comparison for f in page.findings}
    assert judged[(label, 2022)] == "worse"  # 7,3 against 6,8, lower is better
    # without a declared direction higher/lower is no judgement
    plain = parse_page((FIXTURES / "table_eldercare.txt").read_bytes())
    assert {f.national_comparison for f in plain.findings} == {None}


def test_registry_and_reject_reasons_are_one_place() -> None:
    # pairs and relative lists first: they keep the precedence they had inline (issue 22)
    assert (pairs, relative, tables, cards) == LAYOUTS
    assert set(LAYOUT_REJECT_REASONS) <= set(REJECT_REASONS)


PAIRS_PAGE = """Öppna jämförelser
Årets resultat visar att:
• 36 procent av kommunerna har en rutin för SIP 2019.
I Kalmar har vi en rutin för SIP.
Kommunens hemtjänst ligger bättre till än medlet i riket gällande:
• Kontinuitet i hemtjänsten
"""


def test_every_layout_detects_and_parses_its_own_section() -> None:
    lines = text_lines(PAIRS_PAGE)
    pair_section, relative_section = lines[1:4], lines[4:6]
    context = PageContext(municipality="Kalmar")
    assert pairs.detect(pair_section) and not relative.detect(pair_section)
    assert relative.detect(relative_section) and not pairs.detect(relative_section)
    # a heading with no bullet after it claims nothing: its lines go to the other layouts
    assert not pairs.detect(lines[1:2]) and not relative.detect(lines[4:5])
    (pair,), () = pairs.parse(pair_section, context=context)
    assert (pair.national_percent, pair.local_answer, pair.municipality) == (
        36.0,
        "I Kalmar har vi en rutin för SIP.",
        "Kalmar",
    )
    (rel,), () = relative.parse(relative_section, context=context)
    assert (rel.national_statement, rel.national_comparison, rel.local_answer) == (
        "Kontinuitet i hemtjänsten",
        "better",
        None,
    )
    # parse_page gives the same records, dated by the page
    page = parse_page(PAIRS_PAGE, municipality="Kalmar")
    assert [(f.national_statement, f.national_comparison) for f in page.findings] == [
        (pair.national_statement, None),
        (rel.national_statement, "better"),
    ]
