"""Result tables (parsers/layouts/tables.py, issue 22): one finding per indicator row and
year, the same from an HTML <table> and from a text extract with a cell per line.

The fixtures in tests/fixtures/layouts/ were written for these tests (invented
municipalities "Björkvala" and "Tallmora", invented figures); the expected records
below were written by hand from the rules in the module docstring."""

from __future__ import annotations

from pathlib import Path

import pytest

from parsers.layouts import PageContext, tables
from parsers.lines import html_lines, text_lines
from parsers.records import Finding

FIXTURES = Path(__file__).parent / "fixtures" / "layouts"
KEYS = (
    "section",
    "survey_year",
    "survey_year_basis",
    "national_statement",
    "local_value",
    "national_value",
    "national_percent",
    "national_measure",
    "comparison",
    "national_comparison",
    "entity_kind",
    "municipality",
)
ELDERCARE = "Öppna jämförelser vård och omsorg om äldre 2022, ett urval av frågor"
NOJDA = "Andel som sammantaget är mycket nöjda med hemtjänsten"
LAKEMEDEL = "Andelen personer 75 och äldre med olämpliga läkemedel på vård- och omsorgsboende"
NKI = "Nöjd kund-index (NKI) hemtjänst"
ANTAL = "Antal personal som en hemtjänsttagare möter under 14 dagar"
B = "Björkvala"
COUNTY = "Resultat i Öppna jämförelser, andel kommuner"
RUTIN = "andel kommuner som har en aktuell rutin för orosanmälningar"
VANTETID = "Väntetid till första samtal, medelvärde dagar"
M = "municipality"

EXPECTED: dict[str, list[tuple[object, ...]]] = {
    "table_eldercare": [
        # 2021 has no national column ("Medelvärde riket 2022" only): no national figure.
        (ELDERCARE, 2021, "heading", NOJDA, 79.0, None, None, None, None, None, M, B),
        # a share of respondents: national_percent holds it
        (ELDERCARE, 2022, "heading", NOJDA, 84.0, 81.0, 81.0, "share_of_respondents",
         "higher", None, M, B),
        (ELDERCARE, 2021, "heading", LAKEMEDEL, 9.1, None, None, None, None, None, M, B),
        # decimal commas: 7,3 against 6,8
        (ELDERCARE, 2022, "heading", LAKEMEDEL, 7.3, 6.8, 6.8, "share_of_respondents",
         "higher", None, M, B),
        (ELDERCARE, 2021, "heading", NKI, 70.0, None, None, None, None, None, M, B),
        # an index is no share: national_value only
        (ELDERCARE, 2022, "heading", NKI, 68.0, 72.0, None, "index", "lower", None, M, B),
        (ELDERCARE, 2021, "heading", ANTAL, 17.0, None, None, None, None, None, M, B),
        # "–" is a missing cell: no local value, the national count stays
        (ELDERCARE, 2022, "heading", ANTAL, None, 16.0, None, "count", None, None, M, B),
        # "Placering bland landets kommuner | plats 41 | plats 23 | –": a reject, no finding
    ],
    "table_county": [
        # bare year headers "2021", "2022"; ".." for 2021 and no national 2021: no finding;
        # "länet 2022" (75) is the county's, never the national figure (88)
        (COUNTY, 2022, "heading", RUTIN, 100.0, 88.0, 88.0, "share_of_municipalities",
         "higher", None, M, "Tallmora"),
        (COUNTY, 2021, "heading", VANTETID, 12.5, None, None, None, None, None, M, "Tallmora"),
        # a mean of days: no share
        (COUNTY, 2022, "heading", VANTETID, 9.5, 9.5, None, "mean", "same", None, M, "Tallmora"),
    ],
}  # fmt: skip
REJECTS = {
    "table_eldercare": [
        ("table_rank_row", "Placering bland landets kommuner | plats 41 | plats 23 | –", ELDERCARE)
    ],
    "table_county": [("table_row_incomplete", "Andel klienter med uppföljning | 64", COUNTY)],
}
CONTEXT = {"table_eldercare": PageContext(), "table_county": PageContext(municipality="Tallmora")}


def _lines(name: str, form: str) -> list:
    path = FIXTURES / f"{name}.{form}"
    if form == "html":
        return html_lines(path.read_text("utf-8"))[0]
    return text_lines(path.read_text("utf-8"))


def _rows(findings: tuple[Finding, ...]) -> list[tuple[object, ...]]:
    return [tuple(getattr(finding, key) for key in KEYS) for finding in findings]


@pytest.mark.parametrize("form", ["html", "txt"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_table_fixture_gives_the_expected_findings(name: str, form: str) -> None:
    lines = _lines(name, form)
    assert tables.detect(lines, entity=CONTEXT[name].municipality)
    findings, rejects = tables.parse(lines, context=CONTEXT[name])
    assert _rows(findings) == EXPECTED[name]
    assert [f.position for f in findings] == list(range(1, len(findings) + 1))
    assert [(r.reason, r.text, r.section) for r in rejects] == REJECTS[name]
    # a table states figures, not answers
    assert all(f.local_answer is None and f.local_status is None for f in findings)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_html_and_text_give_the_same_findings(name: str) -> None:
    html = tables.parse(_lines(name, "html"), context=CONTEXT[name])[0]
    text = tables.parse(_lines(name, "txt"), context=CONTEXT[name])[0]
    assert html == text


def test_direction_turns_higher_and_lower_into_better_and_worse() -> None:
    directions = {
        # lower is better: 7,3 above the nation's 6,8 is worse
        LAKEMEDEL.lower(): "lower_is_better",
        NOJDA.lower(): "higher_is_better",
        NKI.lower(): "higher_is_better",
    }
    findings, _ = tables.parse(_lines("table_eldercare", "txt"), directions=directions)
    judged = {(f.national_statement, f.survey_year): f.national_comparison for f in findings}
    assert judged[(LAKEMEDEL, 2022)] == "worse"
    assert judged[(NOJDA, 2022)] == "better"
    assert judged[(NKI, 2022)] == "worse"
    # without a national figure there is nothing to judge
    assert judged[(NOJDA, 2021)] is None


def _parse_text(text: str, entity: str | None = None) -> tuple:
    return tables.parse(text_lines(text), context=PageContext(municipality=entity))


def test_pipe_separated_rows_read_like_cells_per_line() -> None:
    # Some text extracts keep a row on one line with bars between the cells.
    text = "Frågor | Ekås 2022 | Riket 2022\nAndel som är nöjda | 8,5 % | 90 %\n"
    (finding,), rejects = _parse_text(text)
    assert (finding.local_value, finding.national_percent, finding.survey_year) == (8.5, 90.0, 2022)
    assert finding.municipality == "Ekås" and rejects == ()


def test_county_column_alone_is_no_national_figure() -> None:
    # "länet" = the county: the table is recognised, but nothing goes in national fields.
    text = "Frågor\nEkås 2022\nLänet 2022\nAndel som är nöjda\n80\n70\n"
    (finding,), _ = _parse_text(text)
    assert finding.local_value == 80.0
    assert (finding.national_value, finding.national_percent, finding.comparison) == (
        None,
        None,
        None,
    )


def test_nation_column_without_year_pairs_with_the_one_entity_year() -> None:
    text = "Frågor\nEkås 2023\nSverige\nAndel som är nöjda\n80\n82\n"
    (finding,), _ = _parse_text(text)
    assert (finding.survey_year, finding.national_value, finding.comparison) == (
        2023,
        82.0,
        "lower",
    )


def test_bounds_in_cells_are_no_figures() -> None:
    # "över 74 procent" bounds the share; it states none.
    text = "Frågor\nEkås 2022\nRiket 2022\nAndel som är nöjda\növer 74 procent\n75\n"
    (finding,), _ = _parse_text(text)
    assert finding.local_value is None and finding.national_percent == 75.0
    assert finding.comparison is None


def test_other_municipalities_columns_are_skipped_and_the_entity_chosen() -> None:
    text = "Frågor\nEkås 2022\nLindby 2022\nRiket 2022\nAndel som är nöjda\n80\n60\n70\n"
    (finding,), _ = _parse_text(text, entity="Lindby")
    assert (finding.municipality, finding.local_value, finding.national_value) == (
        "Lindby",
        60.0,
        70.0,
    )
    # With no configured entity, two names: neither is the page's own; no table.
    assert not tables.detect(text_lines(text))
    assert _parse_text(text) == ((), ())
    # A configured entity the table does not name gets no local values.
    assert _parse_text(text, entity="Norrå") == ((), ())


@pytest.mark.parametrize(
    "text",
    [
        # a rank list: "NKI 2022" names no entity, and there is no national column
        "Plats\nKommun\nNKI 2022\n1\nEkås\n72\n2\nLindby\n70\n",
        # a table of the entity's own years with no national or county column
        "Frågor\nEkås 2021\nEkås 2022\nAndel som är nöjda\n80\n82\n",
        # a header with nothing under it
        "Frågor\nEkås 2022\nRiket 2022\nSe resultaten i rapporten.\n",
    ],
)
def test_not_result_tables_give_nothing(text: str) -> None:
    assert not tables.detect(text_lines(text))
    assert _parse_text(text) == ((), ())


def test_news_post_is_no_table() -> None:
    lines = text_lines((FIXTURES / "news_rank.txt").read_text("utf-8"))
    assert not tables.detect(lines)
    assert tables.parse(lines) == ((), ())
    assert not tables.detect(lines, entity="Björkvala")
    assert tables.parse(lines, context=PageContext(municipality="Björkvala")) == ((), ())


def test_layout_fields_are_left_out_of_to_dict_only_at_their_defaults() -> None:
    # Kalmar's pairs keep today's dicts (tests/test_golden.py); a table finding carries
    # all four new keys.
    base = Finding(None, "Kalmar", None, None, None, "s", 2020, "heading", 1, "x", 50.0,
                   (50.0,), None, "I Kalmar finns det.", "yes", None, ())  # fmt: skip
    assert not {"entity_kind", "national_measure", "national_value", "comparison"} & set(
        base.to_dict()
    )
    (finding,), _ = _parse_text("Frågor\nEkås 2023\nSverige\nAndel som är nöjda\n80\n82\n")
    record = finding.to_dict()
    assert (record["entity_kind"], record["national_measure"], record["comparison"]) == (
        "municipality",
        "share_of_respondents",
        "lower",
    )
    assert record["national_value"] == 82.0
