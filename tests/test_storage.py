"""Storage without Prefect: schema enforcement, releases, crash safety, time travel, export."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from helpers import RAW_DIR, golden, seed_records
from helpers import publish as _release

from flows import pipeline, storage
from flows.schemas import TABLES


def _writer(datasets: Path, mode: str = "append", parser_version: str = "1.0.0"):
    return storage.ReleaseWriter(
        datasets,
        mode=mode,
        parser_version=parser_version,
        run_id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
    )


def test_schema_is_enforced_before_any_write() -> None:
    row = {name: [None] for name in TABLES["runs"].names}
    with pytest.raises(storage.SchemaError, match="runs"):
        storage.build_table("runs", row | {"release": ["7"]})  # a string for an int64
    with pytest.raises(storage.SchemaError, match=r"runs\.release: 1 null"):
        storage.build_table("runs", row)
    batch = pipeline.parse_snapshots(RAW_DIR, list(seed_records().values())[:1])
    findings = batch["findings"].to_pydict()
    findings["local_status"][0] = "maybe"
    with pytest.raises(storage.SchemaError, match="local_status: 'maybe' is not one of"):
        storage.build_table("findings", findings)


def test_crash_between_table_commits_leaves_the_release_intact(tmp_path: Path) -> None:
    seeds = list(seed_records().values())
    assert _release(tmp_path, seeds[:2]) == 1
    before = storage.load_table("findings", datasets_dir=tmp_path)

    # A run that commits `pages` and `findings` and then dies before `runs`.
    crashed = _writer(tmp_path)
    batch = pipeline.parse_snapshots(RAW_DIR, seeds[2:])
    crashed.write({"pages": batch["pages"], "findings": batch["findings"]})
    del crashed
    assert DeltaTable(str(tmp_path / "findings")).version() > int(
        storage.get_release(tmp_path)["findings_version"]
    )
    # Readers still see release 1, exactly.
    pd.testing.assert_frame_equal(storage.load_table("findings", datasets_dir=tmp_path), before)
    assert storage.published_snapshot_ids(tmp_path) == {s.record_id for s in seeds[:2]}

    # The next run rolls the orphan commits back and publishes the rest once.
    assert _release(tmp_path, seeds[2:]) == 2
    findings = storage.load_table("findings", datasets_dir=tmp_path)
    assert len(findings) == sum(len(golden(seed_id)) for seed_id in seed_records())
    assert findings["finding_id"].is_unique
    runs = storage.releases(tmp_path)
    assert list(runs["n_findings"]) == [len(before), len(findings)]


def test_reparse_replaces_rows_and_old_releases_stay_readable(tmp_path: Path) -> None:
    seeds = list(seed_records().values())
    _release(tmp_path, seeds)
    _release(tmp_path, seeds[:1], mode="reparse", parser_version="2.0.0")
    assert len(storage.load_table("pages", datasets_dir=tmp_path)) == 1
    assert len(storage.load_table("pages", release=1, datasets_dir=tmp_path)) == 5
    assert list(storage.load_table("runs", release=1, datasets_dir=tmp_path)["release"]) == [1]
    with pytest.raises(storage.NoReleaseError, match="no release 9"):
        storage.load_table("pages", release=9, datasets_dir=tmp_path)


def test_descriptions_travel_with_the_table_and_the_export(tmp_path: Path) -> None:
    _release(tmp_path, list(seed_records().values()))
    delta_fields = {
        f.name: f.metadata for f in DeltaTable(str(tmp_path / "findings")).schema().fields
    }
    assert "the current national share" in delta_fields["national_percent"]["description"]
    out = tmp_path / "export" / "findings.parquet"
    assert storage.export_table("findings", out, release=1, datasets_dir=tmp_path) == (1, 40)
    exported = pq.read_table(out)
    assert exported.schema.metadata[b"oppna_jamforelser.release"] == b"1"
    assert exported.schema.field("national_percent").metadata[b"description"]
    assert exported.num_rows == 40


def test_a_page_that_cannot_be_parsed_is_recorded(tmp_path: Path) -> None:
    from flows import raw_archive

    raw = tmp_path / "raw"
    good, _ = raw_archive.add_snapshot(
        raw,
        "2019 års resultat visar att:\n• 5 procent av kommunerna har en plan.\n".encode(),
        url="https://kalmar.se/a.html",
        source="seed",
    )
    bad, _ = raw_archive.add_snapshot(
        raw, b"\x89PNG\x00\x00\x00", url="https://kalmar.se/b.png", source="seed"
    )
    batch = pipeline.parse_snapshots(raw, [bad, good])
    pages = batch["pages"].to_pandas()
    assert list(pages["parse_status"]) == ["failed", "parsed"]
    assert "binary" in pages["error"][0]
    rejects = batch["rejects"].to_pandas()
    assert list(rejects["reason"]) == ["unreadable_page"]
    assert rejects["url"][0] == "https://kalmar.se/b.png"


def test_a_retried_batch_is_not_written_twice(tmp_path: Path, monkeypatch) -> None:
    # The write task retries; a failure after `pages` committed must not duplicate pages.
    seeds = list(seed_records().values())
    writer = _writer(tmp_path)
    batch = pipeline.parse_snapshots(RAW_DIR, seeds)
    real_write = writer._write

    def failing_on_findings(name, table):
        if name == "findings":
            monkeypatch.setattr(writer, "_write", real_write)
            raise OSError("disk hiccup")
        real_write(name, table)

    monkeypatch.setattr(writer, "_write", failing_on_findings)
    with pytest.raises(OSError):
        writer.write(batch)
    writer.write(batch)  # the retry
    pipeline.publish_release(writer, len(seeds))
    assert len(storage.load_table("pages", datasets_dir=tmp_path)) == len(seeds)
    assert len(storage.load_table("findings", datasets_dir=tmp_path)) == 40


def test_get_release_raises_one_clear_error_when_absent(tmp_path: Path) -> None:
    # The README's polars/DuckDB snippets and the notebook index the result
    # (`get_release(...)["findings_version"]`): None there read "TypeError: 'NoneType'
    # object is not subscriptable". The error names the folder, the release asked for, and
    # the releases there are.
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(storage.NoReleaseError) as error:
        storage.get_release(missing)
    assert str(error.value) == f"{missing}: no such folder, so no release yet"
    with pytest.raises(storage.NoReleaseError, match=r"no such folder, so no release 99$"):
        storage.get_release(missing, 99)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(storage.NoReleaseError, match=r": no release yet \(run `oj run` first\)$"):
        storage.get_release(empty)
    with pytest.raises(storage.NoReleaseError, match=r"there is no release 2 \(no release yet"):
        storage.get_release(empty, 2)
    _release(tmp_path / "datasets", list(seed_records().values())[:1])
    _release(tmp_path / "datasets", list(seed_records().values())[1:2])
    with pytest.raises(storage.NoReleaseError) as error:
        storage.get_release(tmp_path / "datasets", 99)
    assert str(error.value) == f"{tmp_path / 'datasets'}: there is no release 99 (releases: 1-2)"
    assert "\n" not in str(error.value)
    # the same error as load_table's, and a usage error for `oj` (exit 2)
    with pytest.raises(storage.NoReleaseError, match="there is no release 99"):
        storage.load_table("findings", 99, tmp_path / "datasets")
    assert error.value.exit_code == 2
    assert storage.get_release(tmp_path / "datasets", 1)["release"] == 1
    assert storage.get_release(tmp_path / "datasets")["release"] == 2
