"""A run that lost its lock leaves no trace in any release (issue 20, item 1).

Run A is paused (SIGSTOP) past its lease after its first append; run B takes the lock
over and rolls A's commits back; A resumes while B is still writing. Before the fix A went
on appending into the tables B was about to pin (420 page rows for 250 snapshots).
Real processes, the real local S3 server (tests/conftest.py), and a local folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from helpers import OJ, RAW_DIR, ROOT, check_store, publish, run_oj, seed_records

from flows import location, pipeline, storage
from flows.errors import StorageWriteError


def _upload(local: Path, url: str) -> None:
    fs, path = location.filesystem(url)
    fs.put(f"{local}/", f"{path}/", recursive=True)


def _version(table: str) -> int:
    return DeltaTable(table).version() if DeltaTable.is_deltatable(table) else -1


def _wait_until(condition, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the run ended first ({process.returncode}): {out}{err}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _assert_every_release_holds_each_snapshot_once(datasets: str) -> None:
    for release in storage.releases(datasets)["release"]:
        row = storage.get_release(datasets, int(release))
        pages = storage.load_table("pages", int(release), datasets, columns=["snapshot_id"])
        assert pages["snapshot_id"].is_unique, f"release {release}: a snapshot twice"
        assert len(pages) == int(row["n_pages"]), f"release {release}"
        findings = storage.load_table("findings", int(release), datasets, ["finding_id"])
        assert findings["finding_id"].is_unique, f"release {release}: a finding twice"
        assert len(findings) == int(row["n_findings"]), f"release {release}"


def test_a_run_paused_past_its_lease_leaves_no_trace_in_any_release(
    prefect_server: str, bucket: str, tmp_path: Path
) -> None:
    sys.path.insert(0, str(ROOT))  # bench/ is not an installed package
    from bench.corpus import build_corpus

    raw, datasets = f"{bucket}/raw", f"{bucket}/datasets"
    build_corpus(tmp_path / "first", 40)
    _upload(tmp_path / "first", raw)
    first = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert "new release 1 written" in first.stdout, first.stderr
    build_corpus(tmp_path / "more", 200, seed=7)
    _upload(tmp_path / "more", raw)
    base = _version(f"{datasets}/pages")

    lease = 5
    env = os.environ | {"PREFECT_API_URL": prefect_server, "OJ_LOCK_LEASE_SECONDS": str(lease)}
    command = [*OJ, "run", "--raw-dir", raw, "--datasets-dir", datasets, "--batch-size", "10"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    a = start()
    b = None
    try:
        _wait_until(lambda: _version(f"{datasets}/pages") > base, a)  # A's first append
        a.send_signal(signal.SIGSTOP)
        paused_at = _version(f"{datasets}/pages")
        time.sleep(lease + 2)  # A's lease runs out while it is paused
        b = start()
        # B took the lock over, rolled A's commits back and appended: resume A now, while
        # B still writes its batches.
        _wait_until(lambda: _version(f"{datasets}/pages") >= paused_at + 3, b)
        a.send_signal(signal.SIGCONT)
        a_out, a_err = a.communicate(timeout=300)
        b_out, b_err = b.communicate(timeout=300)
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
    assert b.returncode == 0, b_err
    assert "new release 2 written" in b_out, b_err
    assert a.returncode == 74, a_err
    errors = [line for line in a_err.splitlines() if line.startswith("oj")]
    assert len(errors) == 1 and "lost the write lock" in errors[0], a_err
    _assert_every_release_holds_each_snapshot_once(datasets)
    check_store(datasets, raw)
    verify = run_oj("verify", "--raw-dir", raw, "--datasets-dir", datasets)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _foreign_append(datasets: Path, rows: dict[str, pa.Table]) -> None:
    """What a writer that lost its lock does late: append rows under its own run id."""
    for name, table in rows.items():
        write_deltalake(str(storage.table_path(datasets, name)), table, mode="append",
                        commit_properties=CommitProperties(
                            custom_metadata={"oj_run_id": "a-dead-lease"}))  # fmt: skip


def _writer(datasets: Path) -> storage.ReleaseWriter:
    return storage.ReleaseWriter(datasets, mode="append", parser_version="test",
                                 run_id=uuid.uuid4().hex, started_at=datetime.now(UTC))  # fmt: skip


@pytest.mark.parametrize("late", ["before_derivation", "after_derivation"])
def test_a_late_append_of_another_run_is_never_pinned_by_a_release(
    tmp_path: Path, late: str
) -> None:
    datasets = tmp_path / "datasets"
    records = list(seed_records().values())
    publish(datasets, records[:2], parser_version="test")
    writer = _writer(datasets)
    batch = pipeline.parse_snapshots(RAW_DIR, records[2:])
    writer.write(batch)
    # The late append of a run that lost its lock lands between this run's commits.
    if late == "before_derivation":  # set aside: the release holds this run's rows only
        _foreign_append(datasets, batch)
        assert pipeline.publish_release(writer, 3)[0] == 2
        check_store(datasets, RAW_DIR)
        assert len(storage.load_table("pages", 1, datasets)) == 2
        return
    versions = writer.close_data_tables()
    _foreign_append(datasets, {"findings": batch["findings"]})
    versions["findings"] = writer._version("findings")  # it would pin the foreign rows
    with pytest.raises(StorageWriteError, match="another run") as error:
        writer.commit(n_pages_new=3, versions=versions, derivation="full")
    assert "\n" not in str(error.value) and "findings version" in str(error.value)
    assert len(storage.releases(datasets)) == 1  # nothing published
    # The next run rolls the unreleased commits back and publishes the snapshots once.
    writer = _writer(datasets)
    writer.write(pipeline.parse_snapshots(RAW_DIR, records[2:]))
    assert pipeline.publish_release(writer, 3)[0] == 2
    check_store(datasets, RAW_DIR)


def test_a_writer_checks_its_lease_before_every_append(bucket: str, tmp_path: Path) -> None:
    from flows.locking import ObjectStoreLock

    datasets = f"{bucket}/datasets"
    records = list(seed_records().values())
    stalled = ObjectStoreLock(datasets, lease=1)
    stalled.acquire(timeout=5)
    writer = storage.ReleaseWriter(datasets, mode="append", parser_version="test",
                                   run_id="a", started_at=datetime.now(UTC),
                                   lock=storage.HeldLock(stalled))  # fmt: skip
    writer.write(pipeline.parse_snapshots(RAW_DIR, records[:1]))
    stalled._stop.set()  # its renewals stop, as in a process paused past its lease
    stalled._renewer.join()
    time.sleep(1.5)
    with storage.writer_lock(datasets, timeout=10):  # another run takes the lock over
        version = _version(f"{datasets}/pages")
        with pytest.raises(StorageWriteError, match="lost the write lock"):
            writer.write(pipeline.parse_snapshots(RAW_DIR, records[1:2]))
        assert _version(f"{datasets}/pages") == version  # nothing appended


def test_the_next_run_repairs_a_release_that_pinned_another_runs_rows(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = tmp_path / "datasets"
    records = list(seed_records().values())
    publish(datasets, records[:2])
    # A release as the code before the fix published it: another run's late rows pinned.
    with monkeypatch.context() as patch:
        patch.setattr(storage.ReleaseWriter, "_refuse_foreign_commits", lambda *_: None)
        patch.setattr(storage.ReleaseWriter, "_set_aside_foreign_commits", lambda *_: None)
        writer = _writer(datasets)
        writer.parser_version = storage.find_release(datasets)["parser_version"]
        batch = pipeline.parse_snapshots(RAW_DIR, records[2:])
        writer.write(batch)
        _foreign_append(datasets, batch)
        assert pipeline.publish_release(writer, 3)[0] == 2
    verify = run_oj("verify", "--raw-dir", RAW_DIR, "--datasets-dir", datasets)
    assert verify.returncode != 0 and "release 2: pages has" in verify.stdout + verify.stderr
    plan = pipeline.plan_run(RAW_DIR, datasets)
    assert plan.mode == "reparse" and "release 2 is inconsistent" in plan.repair
    assert "published twice" in plan.repair

    repaired = run_oj("run", "--raw-dir", RAW_DIR, "--datasets-dir", datasets,
                      api_url=prefect_server)  # fmt: skip
    assert repaired.returncode == 0, repaired.stderr
    assert "new release 3 written" in repaired.stdout, repaired.stderr
    assert "release 2 is inconsistent" in repaired.stderr
    check_store(datasets, RAW_DIR)  # every capture once: nothing lost
    verify = run_oj("verify", "--raw-dir", RAW_DIR, "--datasets-dir", datasets)
    # History is not rewritten: the old release is named, as repaired, not as a failure.
    assert verify.returncode == 0, verify.stderr
    assert "release 2: tables disagree with its runs row" in verify.stdout
    assert "repaired by release 3" in verify.stdout
    assert "release 3:" not in verify.stdout + verify.stderr
    again = run_oj("run", "--raw-dir", RAW_DIR, "--datasets-dir", datasets,
                   api_url=prefect_server)  # fmt: skip
    assert "no new release (latest is 3)" in again.stdout, again.stderr


def _publish_damaged(
    datasets: Path, records: list, monkeypatch: pytest.MonkeyPatch
) -> int:
    """A release as the code before the lost-lock fix published it: another run's late
    rows pinned with this run's (both guards off); its number."""
    with monkeypatch.context() as patch:
        patch.setattr(storage.ReleaseWriter, "_refuse_foreign_commits", lambda *_: None)
        patch.setattr(storage.ReleaseWriter, "_set_aside_foreign_commits", lambda *_: None)
        writer = _writer(datasets)
        writer.parser_version = storage.find_release(datasets)["parser_version"]
        batch = pipeline.parse_snapshots(RAW_DIR, records)
        writer.write(batch)
        _foreign_append(datasets, batch)
        return pipeline.publish_release(writer, len(records))[0]


def test_verify_names_a_repaired_release_as_information_and_fails_an_unrepaired_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `oj verify` flagged the damaged old release forever, after the next run repaired it.
    datasets = tmp_path / "datasets"
    records = list(seed_records().values())
    publish(datasets, records[:2])
    assert _publish_damaged(datasets, records[2:4], monkeypatch) == 2
    damaged = run_oj("verify", "--raw-dir", RAW_DIR, "--datasets-dir", datasets)
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "oj verify: release 2: pages has" in damaged.stderr
    # An append on top of it carries the damage on: not a repair, both releases fail.
    assert publish(datasets, records[4:]) == 3
    carried = run_oj("verify", "--raw-dir", RAW_DIR, "--datasets-dir", datasets)
    assert carried.returncode == 1
    assert "release 2: pages has" in carried.stderr and "release 3: pages has" in carried.stderr
    # A re-parse rewrites every table from the raw archive: releases 2 and 3 are repaired.
    assert publish(datasets, records, mode="reparse") == 4
    repaired = run_oj("verify", "--raw-dir", RAW_DIR, "--datasets-dir", datasets)
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stderr == ""
    notes = [line for line in repaired.stdout.splitlines() if "repaired by" in line]
    assert len(notes) == 2, repaired.stdout
    assert notes[0].startswith("oj verify: release 2: tables disagree with its runs row (pages has")
    assert notes[0].endswith("; repaired by release 4")
    assert notes[1].startswith("oj verify: release 3: ")
    assert "4 releases checked" in repaired.stdout and "all hold" in repaired.stdout


def _late_runs_row(datasets: Path | str, release: int) -> str:
    """Append what a run paused before its `runs` append writes when it resumes: a row of a
    release number another run published meanwhile; its run id."""
    row = storage.load_arrow("runs", release, datasets).filter(
        pa.compute.field("release") == release
    )
    late = uuid.uuid4().hex
    row = row.set_column(row.schema.get_field_index("run_id"), "run_id", pa.array([late]))
    write_deltalake(str(storage.table_path(datasets, "runs")), row, mode="append",
                    commit_properties=CommitProperties(
                        custom_metadata={"oj_run_id": late, "oj_release": str(release)}))  # fmt: skip
    return late


def test_a_late_runs_row_of_a_release_number_taken_is_ignored_by_readers(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    records = list(seed_records().values())
    publish(datasets, records[:2])
    publish(datasets, records[2:])
    first = storage.get_release(datasets, 2)
    _late_runs_row(datasets, 2)
    assert storage.releases(datasets)["release"].tolist() == [1, 2]
    assert storage.get_release(datasets)["run_id"] == first["run_id"]
    assert storage.load_arrow("runs", None, datasets).num_rows == 2
    verify = run_oj("verify", "--raw-dir", RAW_DIR, "--datasets-dir", datasets)
    assert verify.returncode == 0, verify.stderr


def _stopped(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return any(line.split()[1] == "T" for line in status.splitlines() if line.startswith("State:"))


def test_a_run_paused_before_its_runs_row_never_publishes_over_the_next_holder(
    prefect_server: str, bucket: str
) -> None:
    # A run paused between its last lease check and its runs append appended its row
    # after the run that took the lock over had published that release number.
    raw, datasets = f"{bucket}/raw", f"{bucket}/datasets"
    _upload(RAW_DIR, raw)
    lease = 5
    env = os.environ | {"PREFECT_API_URL": prefect_server, "OJ_LOCK_LEASE_SECONDS": str(lease)}
    command = [*OJ, "run", "--raw-dir", raw, "--datasets-dir", datasets]
    a = subprocess.Popen(command, cwd=ROOT, env=env | {"OJ_TEST_STOP_BEFORE_RUNS_ROW": "1"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_until(lambda: _stopped(a.pid), a)  # A paused itself right before its row
        time.sleep(lease + 2)  # its lease runs out
        b = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300, check=False)  # fmt: skip
        assert b.returncode == 0, b.stderr
        assert "new release 1 written" in b.stdout, b.stderr
        b_run = storage.get_release(datasets)["run_id"]
        a.send_signal(signal.SIGCONT)
        _, a_err = a.communicate(timeout=300)
    finally:
        if a.poll() is None:
            a.send_signal(signal.SIGCONT)
            a.kill()
            a.wait()
    assert a.returncode == 74, a_err
    errors = [line for line in a_err.splitlines() if line.startswith("oj")]
    assert len(errors) == 1 and "ignored by readers" in errors[0], a_err
    # A's row is in the table, and no reader takes it for a release.
    rows = DeltaTable(str(storage.table_path(datasets, "runs"))).to_pyarrow_table()
    assert rows.column("release").to_pylist() == [1, 1]
    assert storage.releases(datasets)["run_id"].tolist() == [b_run]
    _assert_every_release_holds_each_snapshot_once(datasets)
    verify = run_oj("verify", "--raw-dir", raw, "--datasets-dir", datasets)
    assert verify.returncode == 0, verify.stdout + verify.stderr
