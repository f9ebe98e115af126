"""`oj verify` finds damage inside a release, not only missing pieces: flipped bytes in a
data file, an edited `latest/` file, a deleted `runs` log entry, an emptied raw archive.
Each case is made on a real published dataset and checked by a real `oj verify` process."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import RAW_DIR, ROOT, publish, seed_records

OJ = ROOT / ".venv" / "bin" / "oj"


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """Three releases of the seed pages, and a copy of their raw archive."""
    root = tmp_path_factory.mktemp("verify")
    records = list(seed_records().values())
    datasets = root / "datasets"
    for part in (records[:2], records[2:4], records[4:]):
        publish(datasets, part)
    shutil.copytree(RAW_DIR, root / "raw")
    return root


@pytest.fixture
def copy(published: Path, tmp_path: Path) -> Path:
    shutil.copytree(published, tmp_path, dirs_exist_ok=True)
    return tmp_path


def _verify(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(OJ), "verify", "--raw-dir", str(root / "raw"), "--datasets-dir",
         str(root / "datasets")], capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _flip(path: Path, count: int) -> None:
    """Flip bytes inside the column data, not the footer: the file still opens and counts
    its rows from the footer, only reading its values fails."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    middle = (4 + len(data) - 8 - footer) // 2
    for at in range(middle, middle + count):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _data_files(table: Path) -> list[Path]:
    return sorted(table.glob("*.parquet"), key=lambda p: p.stat().st_size)


def test_an_intact_dataset_holds(copy: Path) -> None:
    result = _verify(copy)
    assert result.returncode == 0, result.stderr
    assert "3 releases checked" in result.stdout and "all hold" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(("table", "count"), [("findings", 16), ("pages", 64)])
def test_flipped_bytes_inside_a_data_file_are_found(copy: Path, table: str, count: int) -> None:
    damaged = _data_files(copy / "datasets" / table)[-1]
    _flip(damaged, count)
    result = _verify(copy)
    assert result.returncode == 1, result.stdout
    assert damaged.name in result.stderr
    assert f"oj verify: {damaged}: damaged data file: " in result.stderr


def test_an_edited_latest_file_is_found(copy: Path) -> None:
    path = max((copy / "datasets" / "latest" / "findings.parquet").iterdir())  # a part
    table = pq.read_table(path)
    edited = table.slice(0, table.num_rows - 3)
    column = edited.schema.get_field_index("national_percent")
    zeros = pa.array([0.0] * edited.num_rows, edited.schema.field(column).type)
    edited = edited.set_column(column, edited.schema.field(column), zeros)
    pq.write_table(edited, path)  # keeps the schema metadata
    result = _verify(copy)
    assert result.returncode == 1
    assert f"{path}: differs from release 3" in result.stderr


def test_a_deleted_runs_log_entry_is_found(copy: Path) -> None:
    entry = copy / "datasets" / "runs" / "_delta_log" / f"{1:020d}.json"
    entry.unlink()
    result = _verify(copy)
    assert result.returncode == 1
    assert f"{entry.parent}: log entries missing: version 1" in result.stderr


def test_a_deleted_last_runs_log_entry_is_found(copy: Path) -> None:
    log = copy / "datasets" / "runs" / "_delta_log"
    last = sorted(log.glob("*.json"))[-1]
    last.unlink()  # release 3 is gone from runs; latest/ still holds it
    result = _verify(copy)
    assert result.returncode == 1
    assert "release.json: holds release 3, the latest release is 2" in result.stderr


def test_an_emptied_raw_archive_is_found(copy: Path) -> None:
    for folder in ("objects", "records"):
        shutil.rmtree(copy / "raw" / folder)
        (copy / "raw" / folder).mkdir()
    result = _verify(copy)
    assert result.returncode == 1, result.stdout
    assert "0 objects, 0 records" in result.stdout
    assert f"{copy / 'raw' / 'records'}: " in result.stderr
    assert "missing from the raw archive" in result.stderr


def test_a_no_op_run_heals_an_edited_latest(tmp_path: Path, prefect_server: str) -> None:
    from helpers import run_oj

    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    first = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert first.returncode == 0, first.stderr
    path = max((datasets / "latest" / "findings.parquet").iterdir())  # a part
    published = path.read_bytes()
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows // 2), path)  # rows dropped
    assert _verify(tmp_path).returncode == 1
    second = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert second.returncode == 0, second.stderr
    assert "no new release" in second.stdout
    assert path.read_bytes() == published  # the same release, byte for byte
    healed = _verify(tmp_path)
    assert healed.returncode == 0, healed.stderr
