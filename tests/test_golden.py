"""Golden tests: every finding of every shipped seed page, every field, reviewed by hand.

The HTML fixtures are the same pages as Kalmar's Sitevision CMS serves them, in four
markups of the bullet pairs and two legacy encodings; they must give the same records.
"""

from __future__ import annotations

import pytest
from helpers import HTML_DIR, golden, parse_seed, seed_records

from parsers import parse_page

SEEDS = seed_records()
HTML_FIXTURES = sorted(HTML_DIR.glob("*.html"))


def test_all_five_seeds_are_shipped_in_raw() -> None:
    assert len(SEEDS) == 5
    assert {record.municipality for record in SEEDS.values()} == {"Kalmar"}


@pytest.mark.parametrize("seed_id", list(SEEDS))
def test_seed_matches_golden(seed_id: str) -> None:
    page = parse_seed(SEEDS[seed_id])
    assert page.input_format == "text"
    assert [finding.to_dict() for finding in page.findings] == golden(seed_id)
    assert page.rejects == ()


@pytest.mark.parametrize("path", HTML_FIXTURES, ids=lambda path: path.name)
def test_html_fixture_gives_the_seed_findings(path) -> None:
    seed_prefix = path.name[:3]
    seed_id, record = next((k, v) for k, v in SEEDS.items() if k.startswith(seed_prefix))
    page = parse_page(path.read_bytes(), url=record.url)
    assert page.input_format == "html"
    # The municipality comes from the page itself here (its <title>), not from metadata.
    assert [finding.to_dict() for finding in page.findings] == golden(seed_id)
    assert page.rejects == ()
    if "cp1252" in path.name or "nocharset" in path.name:
        assert page.charset == "cp1252"
    else:
        assert page.charset == "utf-8"


def test_html_fixtures_cover_every_markup() -> None:
    markups = {path.stem.split("_", 1)[1] for path in HTML_FIXTURES}
    assert {"li_br", "li_p", "p_after", "bullet_p"} <= markups
