"""`datasets/latest/<table>.parquet/`: the latest release as plain Parquet, a folder of
parts per table, so any Parquet reader (pandas, polars, DuckDB) reads exactly that
release, not the superseded files a Delta folder also holds; a release writes only the
parts whose Delta files changed."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
from helpers import publish, seed_records

from flows import storage
from flows.schemas import TABLES


def _canon(value: object) -> object:
    """A cell as plain Python: pandas gives NaN or <NA> for a null and arrays for lists."""
    if isinstance(value, list | tuple | np.ndarray):
        return [_canon(v) for v in value]
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _rows(frame: pd.DataFrame) -> list[dict]:
    return [{k: _canon(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _sorted(rows: list[dict]) -> list[dict]:
    """Rows in one order: a table's parts are read in their names' order, not Delta's."""
    return sorted(rows, key=lambda row: repr(sorted(row.items())))


def test_every_reader_reads_exactly_the_latest_release(tmp_path: Path) -> None:
    records = list(seed_records().values())
    datasets = tmp_path / "datasets"
    publish(datasets, records[:3])
    publish(datasets, records[3:])  # the Delta folders now hold two versions' files
    latest = datasets / "latest"
    assert storage.latest_published(datasets) == 2
    manifest = storage.latest_manifest(datasets)
    assert manifest["release"] == 2 and manifest["layout"] == storage.LATEST_LAYOUT
    for table in TABLES:
        path = latest / f"{table}.parquet"  # a folder of parts, read as one table
        assert storage.latest_table_path(datasets, table) == str(path)
        expected = storage.load_table(table, datasets_dir=datasets)
        parts = sorted(path.iterdir())
        assert [p.name for p in parts] == sorted(manifest["tables"][table]["parts"]), table
        for part in parts:
            schema = pq.read_schema(part)
            assert schema.metadata[b"oppna_jamforelser.table"] == table.encode()
            assert schema.field(0).metadata[b"description"], table
        assert manifest["tables"][table]["rows"] == len(expected), table
        expected_arrow = storage.load_arrow(table, datasets_dir=datasets)
        with_pandas = pd.read_parquet(path)
        with_polars = pl.read_parquet(path)
        with_duckdb = duckdb.sql(f"SELECT * FROM read_parquet('{path}/*.parquet')").to_arrow_table()
        assert len(with_pandas) == len(with_polars) == len(with_duckdb) == len(expected), table
        assert _sorted(_rows(with_pandas)) == _sorted(_rows(expected)), table
        assert with_polars.schema == pl.from_arrow(expected_arrow).schema, table
        assert _sorted(with_polars.to_dicts()) == _sorted(pl.from_arrow(expected_arrow).to_dicts())
        assert _sorted(with_duckdb.to_pylist()) == _sorted(expected_arrow.to_pylist()), table
        if table == "runs":
            assert with_pandas["release"].tolist() == [1, 2]
    # A Delta folder read as plain Parquet is the trap these files avoid.
    assert len(pd.read_parquet(datasets / "findings")) == len(
        pd.read_parquet(latest / "findings.parquet")
    )
    # duckdb over the folder: one row per finding of release 2
    count = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{latest}/findings.parquet')"
    ).fetchall()[0]
    assert count[0] == storage.get_release(datasets)["n_findings"]


def test_a_folder_without_latest_says_so(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(storage.NoReleaseError, match=r"release.json: names no folder of 'pages'"):
        storage.latest_table_path(tmp_path, "pages")


def _parts(datasets: Path) -> dict[str, int]:
    """Every part of latest/ -> its inode: a part linked from the previous copy keeps it."""
    return {
        f"{p.parent.name}/{p.name}": p.stat().st_ino
        for p in (datasets / "latest").glob("*.parquet/part-*.parquet")
    }


def test_a_release_writes_only_the_parts_whose_delta_files_changed(tmp_path: Path) -> None:
    # latest/ was rewritten whole by every release: 1.4 s at 150,000 captures after a
    # nightly that touched 20 pages. A part is one Delta file now; an unchanged one is
    # linked from the previous copy, not written again.
    from deltalake import DeltaTable

    records = list(seed_records().values())
    datasets = tmp_path / "datasets"
    publish(datasets, records[:3])
    before = _parts(datasets)
    first = storage.get_release(datasets)
    publish(datasets, records[3:])
    after = _parts(datasets)
    second = storage.get_release(datasets)
    kept = {key for key in before.keys() & after.keys() if before[key] == after[key]}
    for table in TABLES:
        if table == "runs":
            continue
        path = str(datasets / table)
        files_before = set(DeltaTable(path, version=int(first[f"{table}_version"])).file_uris())
        files_after = set(DeltaTable(path, version=int(second[f"{table}_version"])).file_uris())
        # a table without rows on both sides keeps its one empty part
        unchanged = len(files_before & files_after) or int(not files_before | files_after)
        kept_here = [key for key in kept if key.startswith(f"{table}.parquet/")]
        assert len(kept_here) == unchanged, table  # each kept Delta file: its part, linked
    assert any(key.startswith("pages.parquet/") for key in kept)  # release 1's pages
    assert not any(key.startswith("runs.parquet/") for key in kept)  # a row more
    assert storage.latest_problems(datasets, 2) == []


def test_latest_files_lagging_a_release_are_rewritten_and_current_ones_kept(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    publish(datasets)
    findings = datasets / "latest" / "findings.parquet"
    written = {p.name: p.stat().st_mtime_ns for p in findings.iterdir()}
    assert storage.publish_latest(datasets) is None  # current: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in findings.iterdir()} == written
    # A run killed between its release row and these files leaves the marker behind.
    (datasets / "latest" / "release.txt").unlink()
    next(findings.iterdir()).unlink()
    assert storage.publish_latest(datasets) == 1
    assert pq.read_table(findings).num_rows == storage.get_release(datasets)["n_findings"]
    assert not list((datasets / "latest").glob(".*.partial"))
    assert storage.latest_problems(datasets, 1) == []


def test_a_stray_file_in_a_table_folder_is_reported_and_kept(tmp_path: Path) -> None:
    # Every reader of latest/findings.parquet/ reads every file in it: a file there that
    # no release wrote is a wrong table. It is reported, and the next run writes a clean
    # copy and leaves the file where it was moved (nothing it did not write is deleted).
    datasets = tmp_path / "datasets"
    publish(datasets)
    findings = datasets / "latest" / "findings.parquet"
    stray = findings / "part-0.parquet"
    stray.write_bytes(next(findings.iterdir()).read_bytes())  # rows twice for readers
    problems = storage.latest_problems(datasets, 1)
    assert problems == [f"{stray}: not a part of release 1 (a reader of findings.parquet reads "
                        "it too)"]  # fmt: skip
    assert storage.publish_latest(datasets) == 1
    assert storage.latest_problems(datasets, 1) == []
    assert pq.read_table(findings).num_rows == storage.get_release(datasets)["n_findings"]
    kept = datasets / "latest.old-1" / "findings.parquet" / "part-0.parquet"
    assert kept.read_bytes() == stray.with_name(next(findings.iterdir()).name).read_bytes()
    assert sorted(p.name for p in (datasets / "latest.old-1").rglob("*")) == [
        "findings.parquet", "part-0.parquet"]  # fmt: skip
    # Healing again (another stray, a folder deep) keeps both folders: the first is not
    # reused.
    (findings / "mine").mkdir()
    (findings / "mine" / "notes.txt").write_text("mine")
    assert storage.latest_problems(datasets, 1) == [
        f"{findings / 'mine' / 'notes.txt'}: not a part of release 1 (a reader of "
        "findings.parquet reads it too)"
    ]
    assert storage.publish_latest(datasets) == 1
    assert (datasets / "latest.old-1.1" / "findings.parquet" / "mine" / "notes.txt").exists()
    assert kept.exists()


def test_a_latest_of_one_file_per_table_is_rewritten_as_parts(tmp_path: Path) -> None:
    # Layout 1 (until 2026-12): latest/<table>.parquet was one file. The next run writes
    # the folders of parts and removes those files; a reader's path stays the same.
    import json

    datasets = tmp_path / "datasets"
    publish(datasets)
    latest = datasets / "latest"
    flat = {}
    for table in TABLES:
        flat[table] = pq.read_table(latest / f"{table}.parquet")
    shutil.rmtree(latest)
    latest.mkdir()
    for table, rows in flat.items():
        pq.write_table(rows, latest / f"{table}.parquet")
    (latest / "release.txt").write_text("1\n")
    files = {f"{t}.parquet": {"sha256": "x", "size": 1, "rows": 1} for t in TABLES}
    (latest / "release.json").write_text(json.dumps({"release": 1, "files": files}))
    assert storage.latest_problems(datasets, 1) == [
        f"{latest / 'release.json'}: layout 1, not 2 (a folder of parts per table)"
    ]
    assert storage.publish_latest(datasets) == 1
    assert storage.latest_problems(datasets, 1) == []
    for table, rows in flat.items():
        assert (latest / f"{table}.parquet").is_dir()
        assert pq.read_table(latest / f"{table}.parquet").num_rows == rows.num_rows
    assert not list(datasets.glob("latest.*"))


_READER = r"""
import json, os, sys, time
latest, stop, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
reads = mixed = gone = 0
while not os.path.exists(stop):
    try:
        folder = os.open(latest, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        gone += 1  # between the two renames of a swap: honest, open again
        continue
    try:
        # One go: the folder opened first, then everything read through it.
        with os.fdopen(os.open("release.json", os.O_RDONLY, dir_fd=folder)) as f:
            manifest = json.load(f)
        with os.fdopen(os.open("release.txt", os.O_RDONLY, dir_fd=folder)) as f:
            marker = int(f.read().split()[0])
        seen = {}
        for name in names:
            table = os.open(f"{name}.parquet", os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
            try:
                seen[name] = sorted(os.listdir(table))
            finally:
                os.close(table)
    except FileNotFoundError:
        gone += 1
        continue
    finally:
        os.close(folder)
    reads += 1
    mixed += marker != manifest["release"] or any(
        seen[name] != sorted(manifest["tables"][name]["parts"]) for name in names
    )
    time.sleep(0.001)
print(json.dumps({"reads": reads, "mixed": mixed, "gone": gone}))
"""


def test_a_reader_of_latest_never_mixes_two_releases(tmp_path: Path) -> None:
    # Files were replaced one by one: a reader during a run read a mix of two releases in
    # 73 of 1,863 reads. Now the folder is swapped whole: every table folder a reader
    # lists holds exactly the parts of the release its manifest names.
    import json
    import subprocess
    import sys

    records = list(seed_records().values())
    datasets = tmp_path / "datasets"
    publish(datasets, records[:1])
    stop = tmp_path / "stop"
    names = ",".join(TABLES)
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(datasets / "latest"), str(stop), names],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for record in records[1:]:
            publish(datasets, [record])
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    figures = json.loads(out)
    assert figures["reads"] > 20, figures
    assert figures["mixed"] == 0, figures
    assert storage.latest_published(datasets) == len(records)
    assert not list(datasets.glob("latest.*"))  # no staging or old copy left behind


def test_a_full_disk_while_writing_latest_says_which_release_is_where(tmp_path: Path) -> None:
    # Disk full while writing latest/ left files of two releases and a .partial file, and
    # said "the last release (release 3) is intact" about the release the run wrote.
    import shutil
    import subprocess

    import pytest

    from flows.errors import StorageWriteError

    records = list(seed_records().values())
    built = tmp_path / "built"
    publish(built, records[:2])
    first_latest = tmp_path / "latest-1"
    shutil.copytree(built / "latest", first_latest)
    publish(built, records[2:])
    disk = tmp_path / "disk"
    disk.mkdir()
    size = sum(p.stat().st_size for p in built.rglob("*") if p.is_file()) + 256 * 1024
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True)
    try:
        datasets = disk / "datasets"
        shutil.copytree(built, datasets, ignore=shutil.ignore_patterns("latest"))
        shutil.copytree(first_latest, datasets / "latest")  # a run died before latest/
        with (disk / "filler").open("wb") as filler:  # leave ~20 KB: not a release's copy
            free = shutil.disk_usage(disk).free
            filler.write(b"\0" * max(0, free - 20 * 1024))
        with pytest.raises(StorageWriteError) as raised:
            storage.publish_latest(datasets)
        message = str(raised.value)
        assert "release 2 is written and intact" in message, message
        assert f"{datasets / 'latest'} still holds release 1" in message, message
        assert "\n" not in message
        assert storage.latest_problems(datasets, 1) == []  # release 1's copies, whole
        assert not list(datasets.glob("latest.*")) and not list(datasets.rglob("*.partial"))
        (disk / "filler").unlink()
        assert storage.publish_latest(datasets) == 2  # the next run writes it
        assert storage.latest_problems(datasets, 2) == []
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)  # even if a file is open
