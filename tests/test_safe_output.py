"""Issue 20 item 6: page text in alerts is one line of plain text (no forged lines, no
Markdown, HTML or Slack mentions), and long unbroken tokens wrap on the site."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from helpers import edited_history, publish
from pytest_httpserver import HTTPServer

from flows import notify

HOSTILE_TEXT = [
    "Evil\n- injected line (2099): 999 removed",
    "Evil\r\n\r\nNational figures changed:\n- fake",
    "Evil\x00\x1b[31m\x85\u2028- injected",
    "<!channel> <!here|here> @channel @here @everyone",
    "<b>bold</b> <script>alert(1)</script> &amp;",
    "[klicka](http://evil.example/x) ![](http://evil.example/p.png) `code`",
    "x" * 100_000,
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_clean_makes_page_text_one_plain_bounded_line(text: str) -> None:
    safe = notify.clean(text)
    assert "\n" not in safe and "\r" not in safe
    assert all(ord(ch) >= 32 and not 0x7F <= ord(ch) < 0xA0 for ch in safe)
    assert "<" not in safe and ">" not in safe
    assert "&" not in safe.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
    for mention in ("@channel", "@here", "@everyone"):
        assert mention not in safe
    for markup in ("[klicka](", "![](", "`code`"):
        assert markup not in safe
    assert len(safe) <= 3 * notify.LINE_WIDTH


def test_clean_keeps_ordinary_text() -> None:
    assert notify.clean("Kalmar") == "Kalmar"
    assert notify.clean("Våld i nära relationer (2020)") == "Våld i nära relationer (2020)"


def test_a_hostile_municipality_cannot_forge_alert_lines(
    tmp_path: Path, monkeypatch, httpserver: HTTPServer
) -> None:
    raw, records = edited_history(tmp_path)
    monkeypatch.setattr("helpers.RAW_DIR", raw)
    evil = "Evil\n- injected line (2099): 999 removed <!channel> @here <b>x</b> [a](http://e.x)"
    records = [dataclasses.replace(record, municipality=evil) for record in records]
    datasets = tmp_path / "datasets"
    publish(datasets, records[:1])
    publish(datasets, records[1:3])
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    url = f"json://127.0.0.1:{httpserver.port}/hook"
    assert notify.notify_release(datasets, 2, [url]) == {"sent": 1, "failures": []}
    ((request, _),) = httpserver.log
    body = json.loads(request.get_data())["message"]
    assert "Evil" in body  # the text is there, as text
    assert not any(line.startswith("- injected") for line in body.splitlines())
    for raw_markup in ("<!channel>", "@here", "<b>", "[a](http://e.x)"):
        assert raw_markup not in body
    assert all(len(line) <= 2 * notify.LINE_WIDTH for line in body.splitlines())


# --- the site: a long unbroken token wraps -------------------------------------------------

TOKEN = "x" * 60_000
WINDOW = (1200, 900)
#: Written into the page after layout, read back from Chromium's --dump-dom.
MEASURE = (
    "<script>addEventListener('load', () => document.body.setAttribute("
    "'data-scroll-width', document.documentElement.scrollWidth));</script>"
)


def test_a_long_unbroken_token_wraps_on_a_question_page(tmp_path: Path, chromium: str) -> None:
    import subprocess
    from datetime import UTC, datetime

    import helpers
    from helpers import RAW_DIR, seed_records

    from flows import raw_archive
    from flows.cli import main

    seed = next(r for r in seed_records().values() if r.url.endswith("vald-i-nara-relationer.html"))
    text = raw_archive.read_object(RAW_DIR, seed.sha256).decode("utf-8")
    phrase = "rutin för hur handläggare ska säkra skolgången"
    assert phrase in text
    text = text.replace(phrase, f"rutin {TOKEN} för hur handläggare ska säkra skolgången")
    raw = tmp_path / "raw"
    record, _ = raw_archive.add_snapshot(
        raw, text.encode("utf-8"), url=seed.url, source="wayback", municipality="Kalmar",
        captured_at=datetime(2020, 7, 1, tzinfo=UTC))  # fmt: skip
    original = helpers.RAW_DIR
    helpers.RAW_DIR = raw
    try:
        publish(tmp_path / "datasets", [record])
    finally:
        helpers.RAW_DIR = original
    out = tmp_path / "site"
    assert main(["report", "--datasets-dir", str(tmp_path / "datasets"), "--out", str(out)]) == 0
    (page,) = [p for p in (out / "questions").glob("*.html") if TOKEN in p.read_text("utf-8")]
    measured = page.with_name("measured.html")  # same folder: the same style.css
    measured.write_text(page.read_text("utf-8").replace("</body>", MEASURE + "</body>"), "utf-8")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=5000",
         "--dump-dom", measured.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-1000:]
    (width,) = map(int, re.findall(r'data-scroll-width="(\d+)"', result.stdout))
    assert 0 < width <= 2 * WINDOW[0], f"the page is {width} px wide"
