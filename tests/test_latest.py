"""`datasets/latest/<table>.parquet`: the latest release as plain Parquet files, so any
Parquet reader (pandas, polars, DuckDB) reads exactly that release, not the superseded
files a Delta folder also holds."""

from __future__ import annotations

import math
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


def test_every_reader_reads_exactly_the_latest_release(tmp_path: Path) -> None:
    records = list(seed_records().values())
    datasets = tmp_path / "datasets"
    publish(datasets, records[:3])
    publish(datasets, records[3:])  # the Delta folders now hold two versions' files
    latest = datasets / "latest"
    assert storage.latest_published(datasets) == 2
    for table in TABLES:
        path = latest / f"{table}.parquet"
        expected = storage.load_table(table, datasets_dir=datasets)
        metadata = pq.read_schema(path).metadata
        assert metadata[b"oppna_jamforelser.release"] == b"2", table
        assert pq.read_schema(path).field(0).metadata[b"description"], table
        expected_arrow = storage.load_arrow(table, datasets_dir=datasets)
        with_pandas = pd.read_parquet(path)
        with_polars = pl.read_parquet(path)
        with_duckdb = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").to_arrow_table()
        assert len(with_pandas) == len(with_polars) == len(with_duckdb) == len(expected), table
        assert _rows(with_pandas) == _rows(expected), table
        assert with_polars.equals(pl.from_arrow(expected_arrow)), table
        assert with_duckdb.to_pylist() == expected_arrow.to_pylist(), table
        if table == "runs":
            assert with_pandas["release"].tolist() == [1, 2]
    # A Delta folder read as plain Parquet is the trap these files avoid.
    assert len(pd.read_parquet(datasets / "findings")) == len(
        pd.read_parquet(latest / "findings.parquet")
    )
    # duckdb glob over the folder: one row per finding of release 2
    count = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{latest}/findings.parquet')"
    ).fetchall()[0]
    assert count[0] == storage.get_release(datasets)["n_findings"]


def test_latest_files_lagging_a_release_are_rewritten_and_current_ones_kept(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    publish(datasets)
    findings = datasets / "latest" / "findings.parquet"
    written = findings.stat().st_mtime_ns
    assert storage.publish_latest(datasets) is None  # current: nothing rewritten
    assert findings.stat().st_mtime_ns == written
    # A run killed between its release row and these files leaves the marker behind.
    (datasets / "latest" / "release.txt").unlink()
    findings.unlink()
    assert storage.publish_latest(datasets) == 1
    assert pq.read_table(findings).num_rows == storage.get_release(datasets)["n_findings"]
    assert not list((datasets / "latest").glob(".*.partial"))


_READER = r"""
import json, os, sys, time
import pyarrow.parquet as pq
latest, stop, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
reads = mixed = gone = 0
while not os.path.exists(stop):
    try:
        folder = os.open(latest, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        gone += 1  # between the two renames of a swap: honest, open again
        continue
    try:
        # One go: every file opened through the folder opened first, then read.
        files = [os.fdopen(os.open(n, os.O_RDONLY, dir_fd=folder), "rb") for n in names]
        marker = os.fdopen(os.open("release.txt", os.O_RDONLY, dir_fd=folder), "rb")
    except FileNotFoundError:
        gone += 1
        continue
    finally:
        os.close(folder)
    seen = {pq.read_schema(f).metadata[b"oppna_jamforelser.release"] for f in files}
    seen.add(marker.read().split()[0])
    for f in [*files, marker]:
        f.close()
    reads += 1
    mixed += len(seen) > 1
    time.sleep(0.001)
print(json.dumps({"reads": reads, "mixed": mixed, "gone": gone}))
"""


def test_a_reader_of_latest_never_mixes_two_releases(tmp_path: Path) -> None:
    # Files were replaced one by one: a reader during a run read a mix of two releases in
    # 73 of 1,863 reads. Now the folder is swapped whole.
    import json
    import subprocess
    import sys

    records = list(seed_records().values())
    datasets = tmp_path / "datasets"
    publish(datasets, records[:1])
    stop = tmp_path / "stop"
    names = ",".join(f"{name}.parquet" for name in TABLES)
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
