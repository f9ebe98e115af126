"""The last phases of a run and the maintenance commands: `oj vacuum` reports what it
really deleted, `oj package` swaps a whole package in, `latest/` never mixes releases,
CSV cells cannot run as spreadsheet formulas."""

from __future__ import annotations

from pathlib import Path

from helpers import publish, seed_records

from flows import storage
from flows.cli import main


def test_vacuum_reports_only_files_it_really_deleted(tmp_path: Path, monkeypatch, capsys) -> None:
    # Compaction leaves small files only unpinned versions need; delta-rs then lists them
    # on every later vacuum although they are gone ("deleted 8 files" on each run).
    monkeypatch.setattr(storage, "COMPACT_MIN_FILES", 2)
    datasets = tmp_path / "datasets"
    for record in seed_records().values():
        publish(datasets, [record])
    assert main(["vacuum", "--datasets-dir", str(datasets)]) == 0
    first = capsys.readouterr().out
    assert first.startswith("deleted ") and not first.startswith("deleted 0 files"), first
    assert main(["vacuum", "--datasets-dir", str(datasets)]) == 0
    assert capsys.readouterr().out.startswith("deleted 0 files no release needs;")
    for release in storage.releases(datasets)["release"]:
        storage.load_table("findings", int(release), datasets)


def test_health_check_waits_for_a_server_slower_than_two_seconds(monkeypatch) -> None:
    # Under load the Prefect server answered /health after more than 2 s: every request
    # timed out ("ReadTimeout ... (read timeout=2)") until the start deadline.
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from flows import server

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            time.sleep(3)
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(server, "STARTUP_TIMEOUT_SECONDS", 12)
    try:
        started = time.monotonic()
        server.wait_until_healthy(f"http://127.0.0.1:{httpd.server_address[1]}/api")
        assert 2.5 < time.monotonic() - started < 9
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
