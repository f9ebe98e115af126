"""`oj report`: the static site of a release, opened in a real headless Chromium with the
network cut off: every page renders with no console message, every local link and
resource exists, and the index and one question page are kept as screenshots."""

from __future__ import annotations

import html
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import edited_history, publish, seed_records

from flows.cli import main

#: Chromium may not reach anything: a page that needs the network shows it here.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND"]


def _browser(chromium: str, *args: str) -> subprocess.CompletedProcess:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", *OFFLINE, *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of a release of the shipped pages plus an edited history (changes)."""
    tmp = tmp_path_factory.mktemp("site")
    import helpers

    raw, records = edited_history(tmp)
    datasets = tmp / "datasets"
    publish(datasets)  # the shipped pages, from raw/
    original = helpers.RAW_DIR
    helpers.RAW_DIR = raw
    try:
        publish(datasets, records)
    finally:
        helpers.RAW_DIR = original
    out = tmp / "site"
    assert main(["report", "--datasets-dir", str(datasets), "--out", str(out)]) == 0
    return out


def test_the_site_has_every_part(site: Path) -> None:
    index = (site / "index.html").read_text("utf-8")
    assert "Öppna jämförelser: release 2" in index
    assert (
        "Cite as: Öppna jämförelser: municipal pages as data (oppna-jamforelser), release 2"
        in index
    )
    for part in (
        "Coverage",
        "Data quality",
        "national-figure conflicts",
        "Latest changes",
        "Areas",
    ):
        assert part in index
    questions = sorted((site / "questions").glob("*.html"))
    assert len(questions) >= 30
    areas = list((site / "areas").glob("*.html"))
    assert {a.stem for a in areas} >= {"vald-i-nara-relationer", "ekonomiskt-bistand"}
    page = next(p for p in questions if "skolgången" in p.read_text("utf-8"))
    text = page.read_text("utf-8")
    assert "<svg" in text and "National share" in text and "Local answer by municipality" in text
    assert "Every wording of the question" in text and "Source snapshots" in text
    assert re.search(r"<code>[0-9a-f]{64}</code>", text)  # each snapshot's sha256
    feed = (site / "changes.html").read_text("utf-8")
    assert "edited" in feed and 'class="before">no</span> → <span class="after">yes' in feed


def test_every_local_link_and_resource_exists_and_nothing_is_fetched(site: Path) -> None:
    for page in site.rglob("*.html"):
        text = page.read_text("utf-8")
        assert not re.search(r'<(script|img|link)[^>]+(src|href)="https?://', text), page
        for target in re.findall(r'(?:href|src)="([^"#]+)"', text):
            if target.startswith(("http://", "https://")):
                continue  # links to the source pages, followed only by a click
            assert (page.parent / target).resolve().exists(), (page, target)


def test_every_page_opens_in_chromium_without_a_console_message(site: Path, chromium: str) -> None:
    pages = sorted(site.rglob("*.html"))
    for page in pages:
        result = _browser(chromium, "--dump-dom", page.as_uri())
        assert result.returncode == 0, (page, result.stderr[-1000:])
        assert "<h1>" in result.stdout and "</nav>" in result.stdout, page  # it rendered
        console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
        assert console == [], (page, console)


def test_screenshots_of_the_index_and_a_question(site: Path, chromium: str, tmp_path: Path) -> None:
    # Copies looked at by hand are in docs/screenshots/ (README, "See it").
    question = _negated_question(site)
    for name, page, size in (("index.png", site / "index.html", "1280,1500"),
                             ("question.png", question, "1200,1600")):  # fmt: skip
        out = tmp_path / name
        result = _browser(chromium, f"--screenshot={out}", f"--window-size={size}", page.as_uri())
        assert result.returncode == 0, result.stderr[-1000:]
        data = out.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000, name


def _negated_question(site: Path) -> Path:
    """The Ekonomiskt bistånd question the page states negated ("4 av 5 kommuner ... inte")."""
    return next(
        p
        for p in (site / "questions").glob("*.html")
        if "inte en aktuell rutin för att förhindra" in p.read_text("utf-8")
    )


def _rendered_text(dom: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


#: A plotted national point as the rendered SVG names it: year, value, how it is drawn.
POINT = re.compile(
    r'aria-label="survey year: (\d+); % of municipalities that have/do it: ([\d.]+); '
    r"figure: ([^;\"]+)"
)


def test_a_negated_share_is_charted_in_the_questions_sense_and_shown_as_printed(
    site: Path, chromium: str
) -> None:
    # "Däremot har 4 av 5 kommuner inte en aktuell rutin ..." was charted as 80 under
    # "National share (% of municipalities)", its flag shown nowhere.
    result = _browser(chromium, "--dump-dom", _negated_question(site).as_uri())
    assert result.returncode == 0, result.stderr[-1000:]
    dom = result.stdout
    assert "Y-axis titled '% of municipalities that have/do it'" in dom
    # the one point: 20, drawn as derived (hollow), with its legend entry
    assert POINT.findall(dom) == [("2019", "20", "100 − the share printed without it")]
    assert "legend titled 'figure' for shape and fill color with 1 value: 100 − the share" in dom
    text = _rendered_text(dom)
    assert (
        "2019 20 % “Däremot har 4 av 5 kommuner inte en aktuell rutin för att förhindra att "
        "barnfamiljer med hyresskuld avhyses.” = 80 % the page printed the share without it "
        "(80 %); shown as the share with it, 100 − 80 = 20 % (hollow circle)"
    ) in text
    assert "20 (printed 80)" in text  # the answers table


def test_several_figures_and_shares_in_words_are_marked_and_never_plotted_as_a_level(
    site: Path, chromium: str
) -> None:
    pages = {p: p.read_text("utf-8") for p in (site / "questions").glob("*.html")}
    several = next(p for p, t in pages.items() if "(95 procent) respektive" in t)
    dom = _browser(chromium, "--dump-dom", several.as_uri()).stdout
    assert ("2019", "95", "first of several figures printed") in POINT.findall(dom)
    assert "several figures printed, for different groups (95 %, 92 %); the chart shows the " \
        "first, 95 % (hollow diamond)" in _rendered_text(dom)
    vague = next(p for p, t in pages.items() if "Få kommuner uppger att de har en upprättad" in t)
    dom = _browser(chromium, "--dump-dom", vague.as_uri()).stdout
    assert POINT.findall(dom) == []
    assert "2020 not plotted “Få kommuner uppger att de har en upprättad kontinuitetsplan" \
        in _rendered_text(dom)
    assert "a share in words only, no figure: not plotted" in _rendered_text(dom)


def test_a_national_conflict_is_named_with_each_figure(site: Path) -> None:
    # The edited history prints 63 and later 64 percent for the same question and year.
    page = next(
        text
        for p in (site / "questions").glob("*.html")
        if "Allt fler kommuner, 64 procent" in (text := p.read_text("utf-8"))
    )
    text = _rendered_text(page)
    note = "this year's national figures disagree between snapshots or pages (63 %, 64 %)"
    assert text.count(note) == 2, text  # on the row of each figure
    assert "2020 63 % “Allt fler kommuner, 63 procent," in text
    assert "2020 64 % “Allt fler kommuner, 64 procent," in text


def test_records_of_seed_pages_stay_in_raw() -> None:
    assert seed_records()  # the site fixture swaps helpers.RAW_DIR back


def test_a_question_page_lists_at_most_max_sources_snapshots(tmp_path: Path, monkeypatch) -> None:
    # A national backfill gives a question thousands of captures: the page lists the
    # newest and says where the rest are, so pages stay small.
    from flows import site as site_module

    datasets = tmp_path / "datasets"
    raw, records = edited_history(tmp_path)
    import helpers

    monkeypatch.setattr(helpers, "RAW_DIR", raw)
    publish(datasets, records)
    monkeypatch.setattr(site_module, "MAX_SOURCES", 2)
    site_module.build_site(datasets, tmp_path / "site")
    pages = [p.read_text("utf-8") for p in (tmp_path / "site" / "questions").glob("*.html")]
    assert all(len(re.findall(r"<code>[0-9a-f]{64}</code>", page)) <= 2 for page in pages)
    counts = [int(re.search(r"(\d+) snapshots?, newest first", page).group(1)) for page in pages]
    assert max(counts) > 2
    for page, n in zip(pages, counts, strict=True):
        assert (f"… and {n - 2} earlier snapshots" in page) == (n > 2)


def test_latest_changes_list_the_newest_release_first(tmp_path: Path, monkeypatch) -> None:
    # Release 2 is a backfill: captures of another page from 2019, older than release 1's
    # captures (July 2020). Sorted by page date, release 2's changes sat below release 1's.
    import helpers

    from flows import raw_archive

    page = next(r for r in seed_records().values() if r.url.endswith("ekonomiskt-bistand.html"))
    text = raw_archive.read_object(helpers.RAW_DIR, page.sha256).decode("utf-8")
    raw, records = edited_history(tmp_path)  # release 1: Kalmar, captured 2020-07-01..03
    monkeypatch.setattr(helpers, "RAW_DIR", raw)
    datasets = tmp_path / "datasets"
    publish(datasets, records)
    share = re.search(r"(\d+) procent", text)
    edited = text.replace(share.group(0), f"{int(share.group(1)) + 1} procent", 1)
    backfill = [
        raw_archive.add_snapshot(
            raw, body.encode("utf-8"), url=page.url, source="wayback", municipality="Kalmar",
            captured_at=datetime(2019, 3, day, tzinfo=UTC))[0]  # fmt: skip
        for day, body in ((1, text), (2, edited))
    ]
    publish(datasets, backfill)
    out = tmp_path / "site"
    assert main(["report", "--datasets-dir", str(datasets), "--out", str(out)]) == 0
    for name in ("index.html", "changes.html"):
        headings = re.findall(r"<h3>(.*?)</h3>", (out / name).read_text("utf-8"))
        areas = ["Ekonomiskt bistånd" in h for h in headings]
        assert areas[0] and not all(areas), (name, headings)  # release 2 first, then 1
        assert areas == sorted(areas, reverse=True), (name, headings)
        # and each says which release it came with
        assert headings[0].startswith("Release 2 · 2019-03-02 · "), headings[0]
        assert headings[-1].startswith("Release 1 · 2020-07-0"), headings[-1]
