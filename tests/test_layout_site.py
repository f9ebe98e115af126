"""The report of result tables and county cards (issue 22): a question page names the
entity (a county as a county) and the national figure's measure, and charts only shares
of municipalities on the "% of municipalities" axis: a mean of respondents' shares, an
index or a count is in the table, never plotted as a share."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

import helpers

from flows import raw_archive
from flows import site as site_module

FIXTURES = Path(__file__).parent / "fixtures" / "layouts"


def _question(site: Path, heading: str) -> str:
    for path in (site / "questions").glob("*.html"):
        page = path.read_text("utf-8")
        if f"<h1>{html.escape(heading)}</h1>" in page:
            return page
    raise AssertionError(f"no question page headed {heading!r}")


def _row(page: str, first_cell: str, second: str) -> str:
    match = re.search(
        rf"<tr><td[^>]*>{re.escape(first_cell)}</td><td[^>]*>{re.escape(second)}</td>.*?</tr>",
        page,
    )
    assert match, (first_cell, second)
    return match.group(0)


def test_question_pages_name_entity_and_measure_and_plot_only_shares_of_municipalities(
    tmp_path: Path, monkeypatch
) -> None:
    raw, datasets, out = tmp_path / "raw", tmp_path / "datasets", tmp_path / "site"
    when = datetime(2023, 6, 1, 10, tzinfo=UTC)
    records = [
        raw_archive.add_snapshot(raw, (FIXTURES / "table_eldercare.html").read_bytes(),
                                 url="https://www.bjorkvala.se/oj", source="live",
                                 municipality="Björkvala", captured_at=when)[0],
        raw_archive.add_snapshot(raw, (FIXTURES / "card_county.html").read_bytes(),
                                 url="https://www.granasen.se/oj", source="live",
                                 captured_at=when)[0],
    ]  # fmt: skip
    monkeypatch.setattr(helpers, "RAW_DIR", raw)
    helpers.publish(datasets, records)
    site_module.build_site(datasets, out)

    nojda = _question(out, "Andel som sammantaget är mycket nöjda med hemtjänsten")
    # the national 81 is a share of respondents: in the table with its measure, not plotted
    national = _row(nojda, "2022", "not plotted")
    assert "81 (% of respondents: not a share of municipalities, not plotted)" in national
    answer = _row(nojda, "Björkvala", "2022")
    assert "84" in answer and "81 (% of respondents)" in answer and "higher" in answer

    nki = _question(out, "Nöjd kund-index (NKI) hemtjänst")
    assert "72 (index)" in _row(nki, "Björkvala", "2022")

    card = _question(out, "Uppsökande verksamhet för äldre")
    assert "70" in _row(card, "Granåsens län (county)", "2023")
