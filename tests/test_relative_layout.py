"""Pages of other municipalities: results relative to the national average, prose-only
pages and national summaries (issue 9). Expected records were written by hand from the
rules, independently of the parser, in tests/fixtures/relative/expected.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parsers import parse_page, relative_heading

FIXTURES = Path(__file__).parent / "fixtures" / "relative"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text("utf-8"))
KEYS = (
    "section",
    "national_statement",
    "national_comparison",
    "national_percent",
    "local_answer",
    "local_status",
    "survey_year",
    "municipality",
)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_matches_expected(name: str) -> None:
    page = parse_page((FIXTURES / name).read_bytes())
    got = [{key: getattr(finding, key) for key in KEYS} for finding in page.findings]
    assert got == EXPECTED[name]
    if not EXPECTED[name]:
        # a page that only comments in prose: no findings, and the reason is recorded
        assert [reject.reason for reject in page.rejects] == ["no_results_section"]


def test_relative_findings_carry_no_invented_figures_or_answers() -> None:
    page = parse_page((FIXTURES / "vaxjo_aldreomsorg_2019.txt").read_bytes())
    # "Andel som har en genomförandeplan, 92 procent." is the municipality's figure, not
    # the nation's: national_percent stays null and national_values empty.
    assert all(f.national_percent is None and f.national_values == () for f in page.findings)
    assert {f.survey_year_basis for f in page.findings} == {"page_title"}
    # the closing prose paragraph is kept as a reject, not attached to a bullet
    assert [r.reason for r in page.rejects] == ["unattached_paragraph"]


def test_national_summary_paragraph_is_not_a_local_answer() -> None:
    page = parse_page((FIXTURES / "national_summary.txt").read_bytes())
    assert all(f.local_answer is None for f in page.findings)
    assert all("no_local_answer" in f.flags for f in page.findings)
    assert page.rejects[0].text.startswith("Resultaten bygger på en enkät")


@pytest.mark.parametrize(
    ("heading", "comparison"),
    [
        (
            "Äldreomsorgen i kommunen ligger bättre till än riksgenomsnittet när det gäller:",
            "better",
        ),
        ("Vi ligger under rikssnittet för:", "worse"),
        ("Vi ligger över medlet i riket när det gäller:", "better"),
        ("På samma nivå som övriga kommuner ligger vi när det gäller:", "same"),
        ("Kommunen ligger sämre till än landet när det gäller:", "worse"),
        # not a heading: a sentence that compares in passing
        ("Här redovisar vi hur Växjö kommun står sig i förhållande till riket.", None),
        ("Årets resultat visar att:", None),
        # "under"/"över" only right before the reference
        ("Resultat under 2020 för kommunerna i landet:", None),
        ("Översikt över resultaten i riket:", None),
    ],
)
def test_relative_heading_family(heading: str, comparison: str | None) -> None:
    assert relative_heading(heading) == comparison


def test_a_short_heading_without_colon_counts_only_before_bullets() -> None:
    # an <h2>Bättre än riket</h2> heading its list; the same words closing a paragraph do not
    assert relative_heading("Bättre än riket", before_bullets=True) == "better"
    assert relative_heading("Bättre än riket", before_bullets=False) is None
    assert relative_heading("Kalmar ligger över rikssnittet.", before_bullets=True) is None


def test_municipality_from_url_host_when_the_page_does_not_say() -> None:
    text = "Årets resultat visar att:\n • 63 procent av kommunerna har en rutin.\n"
    page = parse_page(text, url="https://www.vaxjo.se/oppna-jamforelser.html")
    assert page.municipality == "Växjö"
