"""The raw archive and the datasets in a bucket, and parsing on a Dask cluster (issue 13).

Everything runs against real servers started by fixtures (tests/conftest.py): moto's S3
server on 127.0.0.1 and a `dask scheduler` with two `dask worker` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from helpers import (
    OJ,
    RAW_DIR,
    ROOT,
    check_store,
    edited_history,
    overlapping_runs,
    run_oj,
    seed_records,
    stop_serving,
    wait_for_deployment,
    write_warc,
)

from flows import location, raw_archive, storage
from flows.cli import main
from flows.errors import LockTimeout
from flows.schemas import TABLES


def _upload(local: Path, url: str) -> None:
    """Copy a local raw archive into a bucket, as a team moving to object storage would."""
    fs, path = location.filesystem(url)
    fs.put(f"{local}/", f"{path}/", recursive=True)


def _frame(name: str, datasets: object) -> pl.DataFrame:
    """A table of the latest release in a stable row order (comparable across stores)."""
    frame = pl.from_arrow(storage.load_arrow(name, datasets_dir=datasets))
    # where a record is kept (a segment file, or a record file as RAW_DIR ships them) is
    # the archive's storage, not the data: `oj add` writes segments
    frame = frame.drop("raw_segment", strict=False)
    return frame.sort([c for c, kind in frame.schema.items() if not kind.is_nested()])


def _assert_same_tables(a: object, b: object) -> None:
    from polars.testing import assert_frame_equal

    for name in TABLES:
        if name == "runs":  # ids and times of the runs differ by design
            continue
        assert_frame_equal(_frame(name, a), _frame(name, b))


def test_every_command_works_on_a_bucket(
    prefect_server: str, bucket: str, tmp_path: Path, capsys
) -> None:
    raw, datasets = f"{bucket}/raw", f"{bucket}/datasets"
    # oj add: the seed pages into the bucket's archive, the same records as shipped
    for record in seed_records().values():
        page = tmp_path / f"{record.record_id}.txt"
        page.write_bytes(raw_archive.read_object(RAW_DIR, record.sha256))
        assert main(["add", str(page), "--url", record.url, "--source", "seed",
                     "--municipality", record.municipality, "--raw-dir", raw]) == 0  # fmt: skip
    assert sorted(raw_archive.record_names(raw)) == sorted(raw_archive.record_names(RAW_DIR))
    assert location.exists(f"{raw}/objects/{record.sha256[:2]}/{record.sha256}")

    first = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert first.returncode == 0, first.stderr
    assert "new release 1 written" in first.stdout
    again = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert "no new release (latest is 1)" in again.stdout, again.stderr
    assert not (ROOT / "s3:").exists()  # a URL never became a local folder

    # The bucket's release equals a local run over the same pages.
    local = tmp_path / "local"
    assert run_oj("run", "--raw-dir", RAW_DIR, "--datasets-dir", local, "--overrides",
               _empty_overrides(tmp_path), api_url=prefect_server).returncode == 0  # fmt: skip
    _assert_same_tables(datasets, local)

    # oj import-warc: a WARC capture of one page, edited since, into the bucket; a release
    edited_raw, edited = edited_history(tmp_path)
    warc = write_warc(tmp_path / "crawl.warc.gz",
                      {edited[1].url: raw_archive.read_object(edited_raw, edited[1].sha256)})
    assert main(["import-warc", str(warc), "--all", "--raw-dir", raw]) == 0
    assert "1 HTML response added" in capsys.readouterr().out
    assert any(name.endswith(".jsonl") for name in location.list_names(f"{raw}/fetch-log"))
    second = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert "new release 2 written" in second.stdout, second.stderr

    capsys.readouterr()
    assert main(["versions", "--datasets-dir", datasets]) == 0
    versions = capsys.readouterr().out
    assert versions.count("\n") == 3 and " 2 " in versions.splitlines()[-1]
    out = tmp_path / "findings.parquet"
    assert main(["export", "findings", "--out", str(out), "--datasets-dir", datasets]) == 0
    assert pl.read_parquet(out).height == storage.get_release(datasets)["n_findings"]
    assert main(["changes", "--datasets-dir", datasets]) == 0
    assert "I Kalmar finns en rutin för hur handläggare ska säkra skolgången" in (
        capsys.readouterr().out
    )
    assert main(["diff", "1", "2", "--datasets-dir", datasets]) == 0
    assert "A = release 1, B = release 2" in capsys.readouterr().out
    assert main(["check", "--datasets-dir", datasets]) == 0
    assert main(["vacuum", "--datasets-dir", datasets]) == 0
    assert "every release stays readable" in capsys.readouterr().out
    assert main(["verify", "--raw-dir", raw, "--datasets-dir", datasets]) == 0
    assert "6 objects, 6 records, 2 releases checked" in capsys.readouterr().out
    assert main(["package", "--datasets-dir", datasets, "--out", str(tmp_path / "pkg")]) == 0
    assert json.loads((tmp_path / "pkg" / "datapackage.json").read_text())["version"]
    assert main(["report", "--datasets-dir", datasets, "--out", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "index.html").is_file()

    # What an analyst types (README): polars and pandas read the bucket with the same
    # AWS_* variables, through Delta or the plain Parquet copies of the latest release.
    findings = pl.read_delta(f"{datasets}/findings")
    assert findings.height == storage.get_release(datasets)["n_findings"]
    # In a bucket each release's folder, latest/<N>/, as docs/team.md reads it.
    assert storage.latest_published(datasets) == 2
    assert storage.latest_table_path(datasets, "findings") == f"{datasets}/latest/2/findings.parquet"
    latest = pd.read_parquet(storage.latest_table_path(datasets, "findings"))
    assert len(latest) == findings.height
    observations = storage.latest_table_path(datasets, "observations") + "/*.parquet"
    assert pl.read_parquet(observations).height > 0

    # A broken record in the bucket is published as a failed page, named, and blocks
    # nothing (as in a folder).
    location.write_bytes(f"{raw}/records/broken.json", b'{"url": "https://kalmar.se/x",')
    third = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert third.returncode == 1 and "new release 3 written" in third.stdout, third.stderr
    assert f"unreadable record {raw}/records/broken.json: not valid JSON" in third.stderr
    pages = storage.load_table("pages", datasets_dir=datasets)
    assert pages.set_index("snapshot_id").loc["broken", "parse_status"] == "failed"


def _empty_overrides(tmp_path: Path) -> Path:
    """The project's overrides file sits beside the shipped raw/; the bucket run has
    none named, so the local run to compare with names an empty one."""
    path = tmp_path / "no_overrides.toml"
    path.write_text("", "utf-8")
    return path


def test_two_overlapping_runs_on_a_bucket_publish_once(
    prefect_server: str, bucket: str, tmp_path: Path
) -> None:
    sys.path.insert(0, str(ROOT))  # bench/ is not an installed package
    from bench.corpus import build_corpus

    local = tmp_path / "raw"
    build_corpus(local, 150)
    raw, datasets = f"{bucket}/raw", f"{bucket}/datasets"
    _upload(local, raw)
    command = [*OJ, "run", "--raw-dir", raw, "--datasets-dir", datasets]
    env = os.environ | {"PREFECT_API_URL": prefect_server}
    overlapping_runs(command, env, release=1)  # started together
    check_store(datasets, raw)
    # New pages arrive; two runs again, the second started while the first holds the lock.
    build_corpus(tmp_path / "more", 60, seed=7)
    _upload(tmp_path / "more", raw)
    overlapping_runs(command, env, release=2, stagger=1.5)
    check_store(datasets, raw)
    assert len(storage.releases(datasets)) == 2
    assert not location.exists(f"{datasets}/.oj-write.lock")  # released after each run


def test_a_run_killed_mid_write_on_a_bucket_is_healed_by_the_next(
    prefect_server: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deltalake import DeltaTable

    sys.path.insert(0, str(ROOT))
    from bench.corpus import build_corpus

    build_corpus(tmp_path / "raw", 120)
    raw, datasets = f"{bucket}/raw", f"{bucket}/datasets"
    _upload(tmp_path / "raw", raw)
    monkeypatch.setenv("OJ_LOCK_LEASE_SECONDS", "3")  # the killed run's lock expires soon
    env = os.environ | {"PREFECT_API_URL": prefect_server}
    run = subprocess.Popen([*OJ, "run", "--raw-dir", raw, "--datasets-dir", datasets,
                            "--batch-size", "10"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        # killed once some batches are committed and before the release row
        while not (DeltaTable.is_deltatable(f"{datasets}/findings")
                   and DeltaTable(f"{datasets}/findings").version() >= 2):  # fmt: skip
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.wait()
    finally:
        run.kill()
        run.wait()
    assert storage.find_release(datasets) is None  # nothing visible: no release row
    assert location.exists(f"{datasets}/.oj-write.lock")  # it died holding the lock
    again = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert again.returncode == 0, again.stderr
    assert "new release 1 written" in again.stdout
    check_store(datasets, raw)
    assert main(["verify", "--raw-dir", raw, "--datasets-dir", datasets]) == 0


#: A process that takes the bucket's write lock with a 2-second lease, says so, and
#: waits to be killed.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from flows.locking import ObjectStoreLock
    lock = ObjectStoreLock(sys.argv[1], lease=2)
    lock.acquire(timeout=5)
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_the_bucket_lock_holds_and_a_killed_holders_lease_expires(bucket: str) -> None:
    datasets = f"{bucket}/datasets"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, datasets], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        # Renewed every lease/3 seconds: alive, it keeps others out past its lease.
        waits: list[str] = []
        with (
            pytest.raises(LockTimeout, match="locked for 4 s"),
            storage.writer_lock(datasets, timeout=4, on_wait=waits.append),
        ):
            pass
        assert "another run" in waits[0] and ".oj-write.lock" in waits[0]
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: no release, no delete
        holder.wait()
        started = time.monotonic()
        with storage.writer_lock(datasets, timeout=30):
            taken_after = time.monotonic() - started
        assert taken_after < 10  # the dead holder's 2-second lease expired
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_that_lost_its_lease_does_not_publish(bucket: str) -> None:
    from flows.errors import StorageWriteError
    from flows.locking import ObjectStoreLock

    datasets = f"{bucket}/datasets"
    stalled = ObjectStoreLock(datasets, lease=1)
    stalled.acquire(timeout=5)
    stalled._stop.set()  # its renewals stop, as in a process paused past its lease
    stalled._renewer.join()
    time.sleep(1.5)
    with storage.writer_lock(datasets, timeout=10):  # another run takes the stale lease
        assert not stalled.renew()  # its next renewal finds the lock rewritten by another
        with pytest.raises(StorageWriteError, match="lost the write lock"):
            stalled.check()


def test_a_renewal_that_fails_is_retried_until_the_lease_runs_out(bucket: str) -> None:
    from obstore.store import from_url

    from flows.errors import StorageWriteError
    from flows.locking import ObjectStoreLock
    from flows.server import free_port

    lock = ObjectStoreLock(f"{bucket}/datasets", lease=2)
    lock.acquire(timeout=5)
    lock._stop.set()  # renew by hand below
    lock._renewer.join()
    # The store stops answering (nothing listens on this port): inside the lease a failed
    # renewal is retried, not a lost lock; after it, the lock counts as lost.
    lock._store = from_url(
        lock.url, config={"endpoint": f"http://127.0.0.1:{free_port()}"},
        client_options={"allow_http": True}, retry_config={"max_retries": 0},
    )  # fmt: skip
    assert lock.renew()
    lock.check()
    time.sleep(2.2)
    assert not lock.renew()
    with pytest.raises(StorageWriteError, match="not renewed for 2 s"):
        lock.check()


#: Appends one row per commit to a Delta table in the bucket, ten times.
APPENDER = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    from deltalake import write_deltalake
    for n in range(10):
        write_deltalake(sys.argv[1], pa.table({"writer": [sys.argv[2]], "n": [n]}),
                        mode="append")
    """
)


def test_delta_commits_on_a_bucket_never_overwrite_each_other(bucket: str) -> None:
    # S3 has no atomic rename: delta-rs writes each commit file with a conditional PUT,
    # so of two writers racing for a version one retries at the next. Nothing is lost.
    table = f"{bucket}/race"
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    write_deltalake(table, pa.table({"writer": ["setup"], "n": [0]}))
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, table, name])
               for name in ("a", "b")]  # fmt: skip
    assert [writer.wait(timeout=300) for writer in writers] == [0, 0]
    delta = DeltaTable(table)
    assert delta.version() == 20
    rows = delta.to_pyarrow_table().to_pylist()
    assert sorted((row["writer"], row["n"]) for row in rows if row["writer"] != "setup") == [
        (name, n) for name in ("a", "b") for n in range(10)
    ]


def test_a_dask_run_equals_a_local_run(
    prefect_server: str, bucket: str, dask_cluster: str, tmp_path: Path
) -> None:
    from distributed import Client

    sys.path.insert(0, str(ROOT))
    from bench.corpus import build_corpus

    local = tmp_path / "raw"
    build_corpus(local, 65)
    raw = f"{bucket}/raw"
    _upload(local, raw)
    overrides = _empty_overrides(tmp_path)

    def executed() -> int:
        with Client(dask_cluster) as client:
            return sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())

    before = executed()
    on_dask = run_oj("run", "--raw-dir", raw, "--datasets-dir", f"{bucket}/datasets",
                  "--dask-address", dask_cluster, "--batch-size", "10",
                  api_url=prefect_server)  # fmt: skip
    assert on_dask.returncode == 0, on_dask.stderr
    assert "new release 1 written" in on_dask.stdout
    assert executed() - before == 7  # 65 pages in batches of 10, each on a Dask worker
    here = run_oj("run", "--raw-dir", local, "--datasets-dir", tmp_path / "datasets",
               "--overrides", overrides, api_url=prefect_server)  # fmt: skip
    assert here.returncode == 0, here.stderr
    _assert_same_tables(f"{bucket}/datasets", tmp_path / "datasets")


def test_dask_workers_find_a_relative_raw_folder(
    prefect_server: str, dask_cluster: str, tmp_path: Path
) -> None:
    # The workers run in another working directory (here: the repository, whose raw/
    # lacks the page added below): `--raw-dir raw` must reach them as an absolute path.
    import shutil

    shutil.copytree(RAW_DIR, tmp_path / "raw")
    edited_raw, edited = edited_history(tmp_path / "edits")
    raw_archive.add_snapshot(tmp_path / "raw", raw_archive.read_object(edited_raw, edited[1].sha256),
                             url=edited[1].url, source="wayback",
                             captured_at=edited[1].captured_datetime)  # fmt: skip
    result = run_oj("run", "--raw-dir", "raw", "--datasets-dir", "datasets", "--dask-address",
                 dask_cluster, api_url=prefect_server, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pages read: 6 (6 in archive)" in result.stdout and "failed pages: 0" in result.stdout


def test_a_dask_address_nobody_answers_is_one_line(prefect_server: str, tmp_path: Path) -> None:
    from flows.server import free_port

    result = run_oj("run", "--raw-dir", RAW_DIR, "--datasets-dir", tmp_path / "datasets",
                 "--dask-address", f"tcp://127.0.0.1:{free_port()}",
                 api_url=prefect_server, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Dask scheduler answered at tcp://127.0.0.1:" in lines[0]
    assert not storage.releases(tmp_path / "datasets").shape[0]


def test_serve_deploys_a_nightly_on_the_bucket_and_the_cluster(
    prefect_server: str, bucket: str, dask_cluster: str
) -> None:
    from distributed import Client
    from prefect.deployments import run_deployment

    raw, datasets = f"{bucket}/raw", f"{bucket}/datasets"
    _upload(RAW_DIR, raw)
    process = subprocess.Popen(
        [*OJ, "serve", "--raw-dir", raw, "--datasets-dir", datasets, "--dask-address",
         dask_cluster, "--overrides", ROOT / "indicator_overrides.toml"],
        cwd=ROOT, env=os.environ | {"PREFECT_API_URL": prefect_server},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deployment = wait_for_deployment(process, "nightly/nightly")
        assert deployment.parameters["raw_dir"] == raw  # a URL stays a URL
        assert deployment.parameters["datasets_dir"] == datasets
        assert deployment.parameters["dask_address"] == dask_cluster
        with Client(dask_cluster) as dask:
            before = sum(dask.run(lambda dask_worker: dask_worker.state.executed_count).values())
            flow_run = run_deployment("nightly/nightly", timeout=180)
            after = sum(dask.run(lambda dask_worker: dask_worker.state.executed_count).values())
        assert flow_run.state.is_completed(), flow_run.state
        assert storage.get_release(datasets)["n_findings"] == 40
        assert after - before == 1  # the five pages: one batch, parsed on the cluster
    finally:
        stop_serving(process)


def test_locations_are_folders_or_object_store_urls(tmp_path: Path, capsys) -> None:
    assert location.parse_location("s3://bucket/raw/") == "s3://bucket/raw"
    assert location.parse_location("gs://bucket") == "gs://bucket"
    assert location.parse_location(f"file://{tmp_path}/raw") == tmp_path / "raw"
    assert location.parse_location("datasets") == Path("datasets")
    assert location.join("s3://bucket/datasets", "findings") == "s3://bucket/datasets/findings"
    assert location.join(tmp_path, "findings") == tmp_path / "findings"
    # a URL without a bucket is refused by every command, in one line
    with pytest.raises(SystemExit) as exit_info:
        main(["versions", "--datasets-dir", "s3:///datasets"])
    assert exit_info.value.code == 2
    assert "an object-store URL needs a bucket" in capsys.readouterr().err
    # a file:// URL is the local folder: one that does not exist is a usage error, an
    # empty one has no release yet
    assert main(["versions", "--datasets-dir", f"file://{tmp_path}/datasets"]) == 2
    assert f"datasets dir {tmp_path}/datasets does not exist" in capsys.readouterr().err
    (tmp_path / "datasets").mkdir()
    assert main(["versions", "--datasets-dir", f"file://{tmp_path}/datasets"]) == 0
    assert "no release yet" in capsys.readouterr().out


def test_a_misconfigured_store_is_named_in_one_line(
    bucket: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    datasets = f"{bucket}/datasets"
    # The local server speaks plain http, which delta-rs refuses unless told otherwise.
    monkeypatch.delenv("AWS_ALLOW_HTTP")
    assert main(["versions", "--datasets-dir", datasets]) == 2  # a setting away: usage error
    (line,) = capsys.readouterr().err.splitlines()
    assert "unexpected" not in line
    assert "URL scheme is not allowed (a plain-http endpoint needs AWS_ALLOW_HTTP=true)" in line
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    assert main(["versions", "--datasets-dir", "s3://no-such-bucket-here/datasets"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "NoSuchBucket: The specified bucket does not exist" in line
