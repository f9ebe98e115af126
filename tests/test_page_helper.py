"""The parse helper process (flows/page_worker.py): on two cores a first run parsed on one
core, its threads sharing one interpreter lock; a lean helper process parses chunks of a
batch beside the flow's thread. The rows must be the same, in the same order, whoever
parsed a page; a helper that dies loses nothing; no helper outlives the flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import HTML_DIR, RAW_DIR, ROOT, seed_records

from flows import location, nightly, page_worker, pipeline, raw_archive, storage
from flows.page_worker import PageInput


def _archive(tmp_path: Path) -> tuple[Path, list[raw_archive.SnapshotRecord]]:
    """Every HTML fixture page and seed extract, and a page that cannot be parsed (binary
    content) in the middle: 27 captures to spread over chunks."""
    raw = tmp_path / "raw"
    records = []
    pages = [(path.read_bytes(), f"https://www.kalmar.se/{path.stem}.html")
             for path in sorted(HTML_DIR.glob("*.html"))]  # fmt: skip
    pages.insert(7, (b"\x00\x01\x02 binary " * 100, "https://www.kalmar.se/binary.html"))
    for record in seed_records().values():
        pages.append((raw_archive.read_object(RAW_DIR, record.sha256), record.url + "?seed"))
    for data, url in pages:
        record, _ = raw_archive.add_snapshot(raw, data, url=url, source="live")
        records.append(record)
    # One object lost and one damaged: whoever reads them says so, naming the file.
    raw_archive.object_path(raw, records[3].sha256).unlink()
    raw_archive.object_path(raw, records[12].sha256).write_bytes(b"<p>edited</p>")
    return raw, records


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two pages a chunk: the 27 pages make 14 chunks, some parsed by the helper, some here.
    monkeypatch.setattr(pipeline, "HELPER_CHUNK", 2)


def test_the_helper_gives_the_same_rows_in_the_same_order(
    tmp_path: Path, small_chunks: None
) -> None:
    raw, records = _archive(tmp_path)
    alone = pipeline.parse_snapshots(raw, records)
    with page_worker.ParseHelper() as helper:
        answered = []
        submit = helper.submit

        def counted(pages: list, *limits: float) -> object:
            answered.append(len(pages))
            return submit(pages, *limits)

        helper.submit = counted  # type: ignore[method-assign]
        shared = pipeline.parse_snapshots(raw, records, helper=helper)
        assert helper.gone is None
    assert sum(answered) > 0  # the helper parsed some of them
    for name, table in alone.items():
        assert table.equals(shared[name]), name
    pages = shared["pages"].to_pylist()
    assert [row["snapshot_id"] for row in pages] == [r.record_id for r in records]
    failed = {row["snapshot_id"]: row["error"] for row in pages if row["parse_status"] == "failed"}
    assert len(failed) == 3
    assert failed[records[7].record_id].startswith("PageError: binary content")
    missing = str(raw_archive.object_path(raw, records[3].sha256))
    assert failed[records[3].record_id] == (
        f"ArchiveError: {missing}: object missing from the raw archive"
    )
    assert failed[records[12].record_id].endswith("content does not match its sha256 (corrupted)")
    assert shared["findings"].num_rows > 100


def test_a_helper_that_dies_loses_no_page(tmp_path: Path, small_chunks: None) -> None:
    raw, records = _archive(tmp_path)
    alone = pipeline.parse_snapshots(raw, records)
    with page_worker.ParseHelper() as helper:
        submit = helper.submit
        sent = []

        def submit_then_kill(pages: list, *limits: float) -> object:
            future = submit(pages, *limits)
            sent.append(len(pages))
            if len(sent) == 2:  # killed with chunks queued: they are parsed here instead
                os.kill(helper.process.pid, signal.SIGKILL)
            return future

        helper.submit = submit_then_kill  # type: ignore[method-assign]
        shared = pipeline.parse_snapshots(raw, records, helper=helper)
        assert helper.gone is not None and str(helper.process.pid) in helper.gone
    for name, table in alone.items():
        assert table.equals(shared[name]), name


def test_the_time_limit_holds_in_the_helper(
    tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, records = _archive(tmp_path)
    monkeypatch.setattr(pipeline, "PARSE_TIMEOUT_SECONDS", 0.0)  # every parse is too slow
    with page_worker.ParseHelper() as helper:
        tables = pipeline.parse_snapshots(raw, records, helper=helper)
    rejects = {row["snapshot_id"]: row["reason"] for row in tables["rejects"].to_pylist()}
    assert set(tables["pages"].column("parse_status").to_pylist()) == {"failed"}
    assert len(rejects) == len(records)
    assert sorted(set(rejects.values())) == ["parse_timeout", "unreadable_page"]


def test_the_helper_imports_the_parser_not_the_flow() -> None:
    # A Prefect process-pool worker imports Prefect, pyarrow, polars, deltalake and pandas
    # (~230 MB before its first page); the helper is what the parser needs.
    code = (
        "import sys; import flows.page_worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    modules = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    for heavy in ("prefect", "pyarrow", "polars", "deltalake", "pandas", "requests"):
        assert f"'{heavy}'" not in modules


def test_the_helper_dies_with_the_flow_sigkill_included(tmp_path: Path) -> None:
    script = (
        "import sys, time; from flows import page_worker, pipeline; "
        "helper = page_worker.ParseHelper(); "
        "print(helper.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        helper_pid = int(parent.stdout.readline())
        os.kill(helper_pid, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(helper_pid):
            time.sleep(0.1)
        assert not _alive(helper_pid), f"helper {helper_pid} outlived its flow"
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_a_large_parse_on_the_flows_threads_gets_a_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nightly.os, "cpu_count", lambda: 2)
    many = nightly.HELPER_MIN_PAGES
    helper = nightly.parse_helper(many, None, None)
    assert helper is not None
    helper.close()
    assert helper.process.returncode == 0  # it exits when its input closes
    assert nightly.parse_helper(many - 1, None, None) is None  # a nightly's 20 pages
    assert nightly.parse_helper(many, 1, None) is None  # --parse-workers 1: no processes
    assert nightly.parse_helper(many, None, object()) is None  # a process pool parses
    monkeypatch.setattr(nightly.os, "cpu_count", lambda: 1)
    assert nightly.parse_helper(many, None, None) is None  # no core to spare


def test_the_nightly_flow_parses_with_a_helper(
    prefect_server: str, tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, records = _archive(tmp_path)
    monkeypatch.setattr(nightly, "HELPER_MIN_PAGES", 1)
    monkeypatch.setattr(nightly.os, "cpu_count", lambda: 2)
    started: list[page_worker.ParseHelper] = []

    class Recorded(page_worker.ParseHelper):
        def __init__(self) -> None:
            super().__init__()
            started.append(self)

    monkeypatch.setattr(page_worker, "ParseHelper", Recorded)
    datasets = tmp_path / "datasets"
    summary = nightly.nightly(raw_dir=str(raw), datasets_dir=str(datasets), batch_size=10)
    assert summary["new_release"] and summary["failed_pages"] == 3
    assert len(started) == 1 and started[0].process.returncode == 0  # closed, not killed
    expected = pipeline.parse_snapshots(raw, records)["findings"].to_pandas()
    published = storage.load_table("findings", datasets_dir=datasets)
    columns = ["finding_id", "national_percent", "local_status", "survey_year"]
    assert (
        published[columns].sort_values("finding_id").astype(str).values.tolist()
        == expected[columns].sort_values("finding_id").astype(str).values.tolist()
    )


def test_pages_from_a_bucket_go_to_the_helper_as_bytes(
    bucket: str, tmp_path: Path, small_chunks: None
) -> None:
    # From an object store the flow reads the objects (concurrent GETs) and sends their
    # bytes; the helper's rows and failures are those of the local archive's pages, the
    # missing and the damaged object included (named by their bucket paths).
    raw, records = _archive(tmp_path)
    remote = f"{bucket}/raw"
    fs, path = location.filesystem(remote)
    fs.put(f"{raw}/", f"{path}/", recursive=True)
    local = pipeline.parse_snapshots(raw, records)
    with page_worker.ParseHelper() as helper:
        sent: list[PageInput] = []
        submit = helper.submit

        def recorded(pages: list, *limits: float) -> object:
            sent.extend(pages)
            return submit(pages, *limits)

        helper.submit = recorded  # type: ignore[method-assign]
        shared = pipeline.parse_snapshots(remote, records, helper=helper)
        assert helper.gone is None
    assert sent and all(page.data is not None and page.path is None for page in sent)
    for name in ("findings", "rejects"):
        assert (
            local[name]
            .drop_columns(["text"] if name == "rejects" else [])
            .equals(shared[name].drop_columns(["text"] if name == "rejects" else []))
        ), name
    errors = dict(zip(shared["pages"].column("snapshot_id").to_pylist(),
                      shared["pages"].column("error").to_pylist(), strict=True))  # fmt: skip
    assert errors[records[3].record_id] == (
        f"ArchiveError: {remote}/objects/{records[3].sha256[:2]}/{records[3].sha256}: "
        "object missing from the raw archive"
    )
    assert errors[records[12].record_id].endswith("content does not match its sha256 (corrupted)")
