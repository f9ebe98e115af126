"""Fetch failures are failures (issue 19): a page or robots.txt that cannot be reached is a
failed fetch, named on stderr, in the fetch log and in an alert, and `oj run` exits 1
after publishing what the archive holds. A real `oj run` process against real local HTTP
servers (pytest-httpserver) and a port where nothing listens."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import HTML_DIR, RAW_DIR, run_oj
from pytest_httpserver import HTTPServer

from flows import storage
from flows.server import free_port

PAGE = (HTML_DIR / "000_li_br.html").read_bytes()
HTML = "text/html; charset=utf-8"
#: Fast but the real machinery (retries with backoff, timeouts).
FAST = ["--host-rate", "200", "--retries", "1", "--backoff-factor", "0.05",
        "--connect-timeout", "2", "--read-timeout", "2"]  # fmt: skip


def _server() -> HTTPServer:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    return server


@pytest.fixture
def servers() -> Iterator[list[HTTPServer]]:
    """Three sites (one port each: a site is scheme, host and port, as for robots.txt)."""
    started = [_server() for _ in range(3)]
    yield started
    for server in started:
        server.clear()
        server.stop()


def write_sources(path: Path, urls: list[str]) -> Path:
    path.write_text("".join(
        f'[[page]]\nmunicipality = "Kalmar"\nmunicipality_code = "0880"\narea = "Sida {i}"\n'
        f'url = "{url}"\n\n' for i, url in enumerate(urls)
    ), "utf-8")  # fmt: skip
    return path


def fetch_log(raw: Path) -> list[dict]:
    return [json.loads(line) for log in sorted((raw / "fetch-log").glob("*.jsonl"))
            for line in log.read_text("utf-8").splitlines()]  # fmt: skip


def run(tmp_path: Path, urls: list[str], api_url: str, *extra: str):
    sources = write_sources(tmp_path / "sources.toml", urls)
    return run_oj("run", "--fetch", "live", "--sources", sources, "--raw-dir", tmp_path / "raw",
                  "--datasets-dir", tmp_path / "datasets", *FAST, *extra,
                  api_url=api_url)  # fmt: skip


def fetch_failed_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("oj run: fetch failed: ")]


def test_unreachable_pages_fail_the_run_publish_the_archive_and_alert(
    prefect_server: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    shutil.copytree(RAW_DIR, tmp_path / "raw")  # the archive holds the seed pages
    dead = free_port()  # nothing listens there: every connection is refused
    urls = [f"http://127.0.0.1:{dead}/vald.html", f"http://127.0.0.1:{dead}/bistand.html"]
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    notify = ["--notify", f"json://127.0.0.1:{httpserver.port}/hook"]

    first = run(tmp_path, urls, prefect_server, *notify)
    assert first.returncode == 1, first.stderr
    failed = fetch_failed_lines(first.stderr)
    assert len(failed) == 2, first.stderr  # one line per page, naming its URL and why
    for url, line in zip(urls, sorted(failed, key=lambda x: "vald" not in x), strict=True):
        assert line.startswith(f"oj run: fetch failed: {url}: robots.txt unreachable: ")
        assert "Connection refused" in line and "\n" not in line
    assert "fetched: 2 failed" in first.stdout
    assert "robots_disallowed" not in first.stdout + first.stderr
    # What the archive holds is still published.
    assert "new release 1 written" in first.stdout
    assert len(storage.releases(tmp_path / "datasets")) == 1
    log = fetch_log(tmp_path / "raw")
    assert [entry["outcome"] for entry in log] == ["failed", "failed"]
    assert all(entry["reason"].startswith("robots.txt unreachable: ") for entry in log)

    # The next night nothing is new and the hosts are still down: no release changes,
    # and the watcher is still told.
    before = len(httpserver.log)
    second = run(tmp_path, urls, prefect_server, *notify)
    assert second.returncode == 1, second.stderr
    assert len(fetch_failed_lines(second.stderr)) == 2
    assert "no new release (latest is 1)" in second.stdout
    ((request, _),) = httpserver.log[before:]
    message = json.loads(request.get_data())
    assert message["title"] == "oppna-jamforelser run: 2 of 2 pages could not be fetched"
    body = message["message"]
    assert all(url in body for url in urls) and "Connection refused" in body
    assert "no new release (latest is 1)" in body
    logs = sorted((tmp_path / "raw" / "fetch-log").glob("*.jsonl"))
    assert str(logs[-1]) in body  # where the details are
    assert "oj run" in body


def test_robots_txt_5xx_is_a_failed_fetch_and_4xx_means_no_rules(
    prefect_server: str, tmp_path: Path, servers: list[HTTPServer]
) -> None:
    broken, missing, _ = servers
    broken.expect_request("/robots.txt").respond_with_data("oops", status=500)
    broken.expect_request("/page.html").respond_with_data(PAGE, content_type=HTML)
    missing.expect_request("/robots.txt").respond_with_data("not here", status=404)
    missing.expect_request("/page.html").respond_with_data(PAGE, content_type=HTML)
    urls = [broken.url_for("/page.html"), missing.url_for("/page.html")]

    result = run(tmp_path, urls, prefect_server)
    assert result.returncode == 1, result.stderr
    (line,) = fetch_failed_lines(result.stderr)
    assert line == f"oj run: fetch failed: {urls[0]}: robots.txt unreachable: HTTP 500"
    outcomes = {entry["url"]: entry for entry in fetch_log(tmp_path / "raw")}
    assert outcomes[urls[0]]["outcome"] == "failed"  # not robots_disallowed
    assert outcomes[urls[1]]["outcome"] == "new_snapshot"  # 404: no rules, fetched
    # robots.txt answered 5xx: the page itself was never asked for (RFC 9309 2.3.1.4)
    assert [request.path for request, _ in broken.log if request.path == "/page.html"] == []
    assert "fetched: 1 failed, 1 new_snapshot" in result.stdout
    assert "new release 1 written" in result.stdout


def test_a_real_disallow_is_a_refusal_not_a_failure(
    prefect_server: str, tmp_path: Path, servers: list[HTTPServer]
) -> None:
    site = servers[0]
    site.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /privat/\n", content_type="text/plain"
    )
    site.expect_request("/privat/page.html").respond_with_data(PAGE, content_type=HTML)
    result = run(tmp_path, [site.url_for("/privat/page.html")], prefect_server)
    assert result.returncode == 0, result.stderr
    assert fetch_failed_lines(result.stderr) == []
    assert "fetched: 1 robots_disallowed" in result.stdout
    (entry,) = fetch_log(tmp_path / "raw")
    assert entry["outcome"] == "robots_disallowed" and "disallowed by" in entry["reason"]


def test_a_run_whose_fetches_failed_is_a_failed_flow_run(
    prefect_server: str, tmp_path: Path
) -> None:
    # What `oj serve` runs: the flow itself. Prefect (its UI and log) shows a failed run,
    # whose result is the summary, with the release of what the archive holds.
    from prefect.client.orchestration import get_client

    from flows.nightly import nightly

    shutil.copytree(RAW_DIR, tmp_path / "raw")
    url = f"http://127.0.0.1:{free_port()}/vald.html"
    state = nightly(
        raw_dir=str(tmp_path / "raw"), datasets_dir=str(tmp_path / "datasets"),
        sources=str(write_sources(tmp_path / "sources.toml", [url])), fetch="live",
        fetch_settings={"host_rate": 200.0, "retries": 0, "connect_timeout": 2.0},
        return_state=True,
    )  # fmt: skip
    assert state.is_failed()
    assert state.message == "1 of 1 page could not be fetched"
    summary = state.result(raise_on_failure=False)
    assert summary["new_release"] and summary["release"] == 1
    assert summary["fetch_outcomes"] == {"failed": 1}
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(state.state_details.flow_run_id)
    assert stored.state.is_failed()
