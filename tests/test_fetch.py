"""Fetching against a real HTTP server on 127.0.0.1 that plays kalmar.se and the Wayback
Machine's CDX and replay endpoints, and injects the faults real servers produce."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from helpers import HTML_DIR, ROOT
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flows import fetch, location, raw_archive, storage
from flows.http import FetchError, FetchSettings, check_url
from flows.nightly import nightly

# Fast but otherwise the real machinery: retries, backoff, Retry-After, timeouts.
FAST = {
    "host_rate": 200.0, "cdx_rate": 200.0, "replay_rate": 200.0, "rate_limit_wait": 0.3,
    "read_timeout": 0.6, "connect_timeout": 2.0, "retries": 3, "backoff_factor": 0.05,
    "max_bytes": 300_000,
}  # fmt: skip

PAGE_000 = (HTML_DIR / "000_li_br.html").read_bytes()
PAGE_001 = (HTML_DIR / "001_li_br.html").read_bytes()
PAGE_002 = (HTML_DIR / "002_li_p.html").read_bytes()
PAGE_004 = (HTML_DIR / "004_p_after.html").read_bytes()
PAGE_CP1252 = (HTML_DIR / "003_li_br_nocharset.html").read_bytes()
HTML = "text/html; charset=utf-8"


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    # Threaded, so a slow response does not hold up the other pages.
    httpserver = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    httpserver.start()
    yield httpserver
    httpserver.clear()
    httpserver.stop()


def write_sources(path: Path, urls: list[str]) -> Path:
    entries = "".join(
        f'[[page]]\nmunicipality = "Kalmar"\nmunicipality_code = "0880"\narea = "Sida {i}"\n'
        f'url = "{url}"\n\n'
        for i, url in enumerate(urls)
    )
    path.write_text(entries, "utf-8")
    return path


def with_etag(body: bytes, etag: str):
    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, content_type=HTML, headers={"ETag": etag})

    return handler


def slow_then(body: bytes, delay: float):
    def handler(request: Request) -> Response:
        time.sleep(delay)
        return Response(body, content_type=HTML)

    return handler


def dropped(request: Request) -> Response:
    def body() -> Iterator[bytes]:
        yield PAGE_000[:2000]
        raise ConnectionAbortedError("server went away mid-body")

    return Response(body(), content_type=HTML, headers={"Content-Length": str(len(PAGE_000))})


def serve_kalmar(server: HTTPServer) -> dict[str, str]:
    """The site, with one fault per page. Returns path -> what should happen."""
    server.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /privat/\n", content_type="text/plain"
    )
    server.expect_request("/ok.html").respond_with_handler(with_etag(PAGE_000, '"v1"'))
    server.expect_oneshot_request("/rate-limited.html").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    server.expect_request("/rate-limited.html").respond_with_data(PAGE_001, content_type=HTML)
    server.expect_oneshot_request("/flaky.html").respond_with_data("busy", status=503)
    server.expect_request("/flaky.html").respond_with_data(PAGE_002, content_type=HTML)
    server.expect_oneshot_request("/slow.html").respond_with_handler(slow_then(PAGE_004, 1.5))
    server.expect_request("/slow.html").respond_with_data(PAGE_004, content_type=HTML)
    server.expect_request("/dropped.html").respond_with_handler(dropped)
    server.expect_request("/moved.html").respond_with_data(
        "", status=301, headers={"Location": "/new-home.html"}
    )
    server.expect_request("/new-home.html").respond_with_data(PAGE_000, content_type=HTML)
    server.expect_request("/missing.html").respond_with_data("nope", status=404)
    server.expect_request("/data.json").respond_with_data("{}", content_type="application/json")
    server.expect_request("/huge.html").respond_with_data(
        b"<html><body>" + b"<p>x</p>" * 60_000 + b"</body></html>", content_type=HTML
    )
    server.expect_request("/latin1.html").respond_with_data(PAGE_CP1252, content_type="text/html")
    server.expect_request("/privat/sida.html").respond_with_data(PAGE_000, content_type=HTML)
    return {
        "/ok.html": "new_snapshot", "/rate-limited.html": "new_snapshot",
        "/flaky.html": "new_snapshot", "/slow.html": "new_snapshot",
        "/dropped.html": "failed", "/moved.html": "new_snapshot", "/missing.html": "failed",
        "/data.json": "failed", "/huge.html": "failed", "/latin1.html": "new_snapshot",
        "/privat/sida.html": "robots_disallowed",
    }  # fmt: skip


def assert_archive_whole(raw: Path) -> None:
    """Nothing half-written: no temp files, every record's object present and intact."""
    assert not list(raw.rglob("*.tmp"))
    for record in raw_archive.iter_records(raw):
        raw_archive.read_object(raw, record.sha256)


def test_live_fetch_with_faults_end_to_end(
    prefect_server: str, server: HTTPServer, tmp_path: Path
) -> None:
    expected = serve_kalmar(server)
    sources = write_sources(tmp_path / "sources.toml", [server.url_for(p) for p in expected])
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"

    state = nightly(
        raw_dir=str(raw),
        datasets_dir=str(datasets),
        sources=str(sources),
        fetch="live",
        fetch_settings=FAST,
        return_state=True,
    )
    # Some fetches failed: a failed flow run, whose data is the summary of what it did.
    assert state.is_failed() and state.message == "4 of 11 pages could not be fetched"
    summary = state.result(raise_on_failure=False)
    log_files = list((raw / "fetch-log").glob("*.jsonl"))
    assert len(log_files) == 1
    log = {
        json.loads(line)["url"]: json.loads(line) for line in log_files[0].read_text().splitlines()
    }
    outcomes = {
        url.removeprefix(server.url_for("")): entry["outcome"] for url, entry in log.items()
    }
    assert outcomes == {path.lstrip("/"): outcome for path, outcome in expected.items()}
    reasons = {url.rsplit("/", 1)[-1]: entry["reason"] for url, entry in log.items()}
    assert "connection broken mid-body" in reasons["dropped.html"]
    assert reasons["missing.html"] == "HTTP 404"
    assert "not an HTML page" in reasons["data.json"]
    assert "too large" in reasons["huge.html"]
    assert "robots.txt" in reasons["sida.html"]

    # Every archived page is parsed and published; failures are in the summary.
    assert summary["new_release"] and summary["pages_read"] == 6
    assert len(summary["fetch_failures"]) == 4
    pages = storage.load_table("pages", datasets_dir=datasets)
    assert set(pages["parse_status"]) == {"parsed"}
    latin1 = pages[pages["url"].str.endswith("/latin1.html")].iloc[0]
    assert latin1["charset"] == "cp1252" and latin1["area"] == "Ekonomiskt bistånd"
    moved = next(r for r in raw_archive.iter_records(raw) if r.url.endswith("/moved.html"))
    assert moved.final_url.endswith("/new-home.html") and moved.source == "live"
    assert (
        next(r for r in raw_archive.iter_records(raw) if r.url.endswith("/ok.html")).etag == '"v1"'
    )
    assert_archive_whole(raw)

    # The next night: 304 or the same bytes everywhere, so no snapshot and no release.
    again = nightly(
        raw_dir=str(raw),
        datasets_dir=str(datasets),
        sources=str(sources),
        fetch="live",
        fetch_settings=FAST,
        return_state=True,
    ).result(raise_on_failure=False)  # the same four pages fail again
    assert again["fetch_outcomes"].get("new_snapshot", 0) == 0
    assert again["fetch_outcomes"]["not_modified"] == 1  # the page with an ETag
    assert again["fetch_outcomes"]["unchanged"] == 5
    assert (again["new_release"], again["release"]) == (False, 1)
    assert len(list(raw_archive.iter_records(raw))) == 6


def serve_wayback(server: HTTPServer, page: str) -> None:
    """CDX (paged with a resume key, one 429 first) and raw replays for `page`."""
    captures = {
        f"kalmar.se/{page}": [["20200701120000", "200"], ["20200702080000", "200"]],
        f"www.kalmar.se/{page}": [["20200702080000", "200"], ["20230110090000", "200"]],
    }
    header = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"]

    def cdx(request: Request) -> Response:
        query = {key: values[0] for key, values in parse_qs(request.query_string.decode()).items()}
        assert query["output"] == "json" and query["collapse"] == "digest"
        assert query["filter"] == "statuscode:200" and query["showResumeKey"] == "true"
        rows = [[f"se,kalmar)/{page}", ts, f"https://{query['url']}", "text/html", status,
                 f"D{ts}", "100"] for ts, status in captures.get(query["url"], [])]  # fmt: skip
        if "resumeKey" in query:
            body = [header, *rows[1:]]
        elif len(rows) > 1:  # first page of two: one row, then [] and the resume key
            body = [header, rows[0], [], [f"key-{query['url']}"]]
        else:
            body = [header, *rows] if rows else []
        return Response(json.dumps(body), content_type="application/json")

    server.expect_oneshot_request("/cdx/search/cdx").respond_with_data(
        "Too Many Requests",
        status=429,  # no Retry-After: wait rate_limit_wait
    )
    server.expect_request("/cdx/search/cdx").respond_with_handler(cdx)
    for ts, body in (("20200701120000", PAGE_000), ("20200702080000", PAGE_001),
                     ("20230110090000", PAGE_004)):  # fmt: skip
        for host in ("kalmar.se", "www.kalmar.se"):
            server.expect_request(f"/web/{ts}id_/https://{host}/{page}").respond_with_data(
                body, content_type=HTML
            )


@pytest.mark.parametrize("store", ["folder", "bucket"])
def test_wayback_backfill_through_the_command_line(
    prefect_server: str, server: HTTPServer, tmp_path: Path, store: str, request
) -> None:
    serve_wayback(server, "barn--och-ungdomsvard.html")
    sources = write_sources(tmp_path / "sources.toml",
                            ["https://kalmar.se/barn--och-ungdomsvard.html"])  # fmt: skip
    # the same backfill into a local raw archive, and into one in a bucket (a local S3
    # server, tests/conftest.py)
    where = tmp_path if store == "folder" else request.getfixturevalue("bucket")
    raw, datasets = f"{where}/raw", f"{where}/datasets"
    command = [
        sys.executable, "-m", "flows.cli", "run", "--fetch", "wayback", "--wayback-url",
        server.url_for("").rstrip("/"), "--sources", str(sources), "--raw-dir", raw,
        "--datasets-dir", datasets, "--cdx-rate", "100", "--replay-rate", "100",
        "--rate-limit-wait", "0.3", "--backoff-factor", "0.05",
    ]  # fmt: skip
    env = os.environ | {"PREFECT_API_URL": prefect_server}
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "fetched: 3 new_snapshot" in first.stdout and "new release 1 written" in first.stdout
    records = sorted(raw_archive.iter_records(raw), key=lambda r: r.captured_at)
    assert [r.captured_at for r in records] == [
        "2020-07-01T12:00:00Z",
        "2020-07-02T08:00:00Z",
        "2023-01-10T09:00:00Z",
    ]
    assert {r.source for r in records} == {"wayback"}
    assert {r.url for r in records} == {"https://kalmar.se/barn--och-ungdomsvard.html"}
    findings = storage.load_table("findings", datasets_dir=datasets)
    assert findings["captured_at"].nunique() == 3
    # Survey years of "Årets" sections without other evidence come from the page dates
    # (each capture here is taken after its page's "Senast uppdaterad": consistent).
    assert findings["survey_year"].notna().all()

    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "3 already_archived" in second.stdout and "no new release" in second.stdout
    assert len(location.list_names(f"{raw}/fetch-log")) == 2  # one log per run


def test_warc_import(tmp_path: Path) -> None:
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    page = "https://www.kalmar.se/hemloshet.html"
    warc_path = tmp_path / "crawl.warc.gz"
    with open(warc_path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for uri, content_type, body in (
            (page, "text/html; charset=windows-1252", PAGE_CP1252),
            ("https://kalmar.se/logo.png", "image/png", b"\x89PNG..."),
            ("https://kalmar.se/other.html", HTML, PAGE_000),
        ):
            headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)],
                                       protocol="HTTP/1.1")  # fmt: skip
            record = writer.create_warc_record(
                uri, "response", payload=BytesIO(body), http_headers=headers,
                warc_headers_dict={"WARC-Date": "2021-03-04T05:06:07Z"},
            )  # fmt: skip
            writer.write_record(record)
    broken = tmp_path / "broken.warc"
    broken.write_bytes(b"this is not a WARC file at all\n" * 10)
    sources = write_sources(tmp_path / "sources.toml", ["https://kalmar.se/hemloshet.html"])
    raw = tmp_path / "raw"
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "import-warc", str(broken), str(warc_path),
         "--raw-dir", str(raw), "--sources", str(sources)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert str(broken) in result.stderr and "not a readable WARC" in result.stderr
    assert "1 HTML response added" in result.stdout
    (record,) = raw_archive.iter_records(raw)
    assert (record.url, record.source, record.captured_at, record.charset) == (
        "https://kalmar.se/hemloshet.html",
        "warc",
        "2021-03-04T05:06:07Z",
        "cp1252",
    )
    assert raw_archive.read_object(raw, record.sha256) == PAGE_CP1252


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://kalmar.se/vald.html",
        "javascript:alert(1)",
        "https://evil.example/kalmar.se/vald.html",
        "https://kalmar.se.evil.example/vald.html",
    ],
)
def test_only_http_from_listed_hosts_is_fetched(url: str) -> None:
    with pytest.raises(FetchError, match="refused"):
        check_url(url, fetch.allowed_hosts([_source("https://kalmar.se/x.html")]))


@pytest.mark.parametrize(
    "url",
    [
        "https://kalmar.se/../../../../tmp/evil.html",
        "https://kalmar.se/%2e%2e/%2e%2e/%2e%2e/tmp/evil.html",
        "/etc/passwd",
        "C:\\Windows\\system32\\evil.html",
        "https://kalmar.se/" + "a/" * 300,
    ],
)
def test_no_url_can_write_outside_the_archive(url: str, tmp_path: Path) -> None:
    raw = tmp_path / "inside" / "raw"
    if not url.startswith("https://"):
        # not an absolute http(s) URL: refused before anything is written (issue 10)
        with pytest.raises(ValueError, match="not an absolute http"):
            raw_archive.add_snapshot(raw, b"<html>x</html>", url=url, source="live")
        assert not any(p.is_file() for p in tmp_path.rglob("*"))
        return
    raw_archive.add_snapshot(raw, b"<html>x</html>", url=url, source="live")
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written and all(raw in p.parents for p in written)
    assert_archive_whole(raw)


def test_url_spellings_are_one_page() -> None:
    from flows.sources import page_key

    assert page_key("https://www.kalmar.se/a.html") == page_key("http://KALMAR.se/a.html")


def _source(url: str):
    from flows.sources import Source

    return Source("Kalmar", "0880", "Test", url)


def test_polite_defaults() -> None:
    settings = FetchSettings()
    assert settings.cdx_rate <= 0.4 and settings.host_rate <= 1 and settings.rate_limit_wait >= 60
    assert "oppna-jamforelser" in settings.user_agent


def test_wayback_stops_asking_after_a_persistent_429(server: HTTPServer, tmp_path: Path) -> None:
    from flows.http import RateLimiter
    from flows.sources import load_sources

    server.expect_request("/cdx/search/cdx").respond_with_data("Too Many Requests", status=429)
    sources = load_sources(
        write_sources(
            tmp_path / "s.toml",
            ["https://kalmar.se/a.html", "https://kalmar.se/b.html", "https://kalmar.se/c.html"],
        )
    )
    settings = FetchSettings(**FAST | {"retries": 1})
    limiter = RateLimiter(100)
    outcomes = fetch.fetch_wayback(
        tmp_path / "raw",
        sources,
        settings,
        limiter,
        RateLimiter(100),
        server.url_for("").rstrip("/"),
    )
    assert [o.outcome for o in outcomes] == ["failed"] * 3
    assert "not asked" in outcomes[2].reason
    # One page's CDX query and its retry, then nothing more.
    assert len([r for r, _ in server.log if r.path == "/cdx/search/cdx"]) == 2


def test_warc_import_all_refuses_a_bad_uri_and_keeps_the_rest(tmp_path: Path) -> None:
    # `--all` takes every HTML response, whatever its URI: one that is not absolute
    # http(s) fails that record, named, and the other records are still imported.
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    warc_path = tmp_path / "crawl.warc.gz"
    with open(warc_path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for uri in ("http://[oops/", "https://kalmar.se/other.html"):
            headers = StatusAndHeaders("200 OK", [("Content-Type", HTML)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                uri, "response", payload=BytesIO(PAGE_000), http_headers=headers,
                warc_headers_dict={"WARC-Date": "2021-03-04T05:06:07Z"},
            ))  # fmt: skip
    raw = tmp_path / "raw"
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "import-warc", str(warc_path), "--all",
         "--raw-dir", str(raw)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert "1 HTML response added, 1 failed" in result.stdout
    assert "refused URL" in result.stderr and "http://[oops/" in result.stderr
    assert [r.url for r in raw_archive.iter_records(raw)] == ["https://kalmar.se/other.html"]
