"""End to end: the `nightly` flow on a temporary copy of raw/, against a Prefect test server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from helpers import HTML_DIR, RAW_DIR, golden, seed_records

from flows import raw_archive, storage
from flows.nightly import nightly, summary_line
from flows.schemas import TABLES

SOURCES = Path(__file__).resolve().parents[1] / "sources.toml"


def test_nightly_flow_end_to_end(prefect_server: str, tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    expected_findings = sum(len(golden(seed_id)) for seed_id in seed_records())

    first = nightly(
        raw_dir=str(raw), datasets_dir=str(datasets), sources=str(SOURCES), batch_size=2
    )
    assert (first["new_release"], first["release"], first["pages_read"]) == (True, 1, 5)
    assert first["findings"] == expected_findings
    # the run summary counts what a researcher must know before citing (details: oj check)
    assert (first["national_conflicts"], first["findings_without_year"]) == (0, 0)
    assert "national-figure conflicts: 0, findings without a survey year: 0" in summary_line(first)

    # Every table, read with pandas through the release.
    pages = storage.load_table("pages", datasets_dir=datasets)
    findings = storage.load_table("findings", datasets_dir=datasets)
    rejects = storage.load_table("rejects", datasets_dir=datasets)
    runs = storage.load_table("runs", datasets_dir=datasets)
    assert len(pages) == 5 and set(pages["parse_status"]) == {"parsed"}
    assert len(findings) == expected_findings
    assert findings["finding_id"].is_unique
    assert len(rejects) == 0
    assert runs[["release", "n_pages", "n_findings", "n_rejects"]].values.tolist() == [
        [1, 5, expected_findings, 0]
    ]
    assert str(findings["survey_year"].dtype) == "Int32"
    assert str(findings["national_percent"].dtype) == "float64"
    assert str(findings["captured_at"].dtype) == "datetime64[us, UTC]"
    assert isinstance(pages["page_updated"].dropna().iloc[0], __import__("datetime").date)
    assert list(findings["national_values"].iloc[0]) == [63.0]
    for name in TABLES:  # the stored types are the declared ones, descriptions included
        stored = pa.schema(DeltaTable(str(datasets / name)).schema().to_arrow())
        assert stored.equals(TABLES[name], check_metadata=True), name
    by_position = findings.sort_values(["url", "position"])
    assert set(by_position["municipality"]) == {"Kalmar"}

    # Nothing new: no release.
    second = nightly(raw_dir=str(raw), datasets_dir=str(datasets))
    assert (second["new_release"], second["release"], second["pages_read"]) == (False, 1, 0)
    assert len(storage.releases(datasets)) == 1

    # A new snapshot (an HTML capture of a seed page) and an unreadable one: one new release.
    record = next(iter(seed_records().values()))
    raw_archive.add_snapshot(
        raw,
        (HTML_DIR / "000_li_p.html").read_bytes(),
        url=record.url,
        source="warc",
        captured_at=pd.Timestamp("2020-07-05", tz="UTC"),
    )
    raw_archive.add_snapshot(
        raw,
        b"\x00\x01binary",
        url=record.url,
        source="warc",
        captured_at=pd.Timestamp("2020-07-06", tz="UTC"),
    )
    third = nightly(raw_dir=str(raw), datasets_dir=str(datasets))
    assert (third["new_release"], third["release"], third["pages_read"]) == (True, 2, 2)
    assert third["failed_pages"] == 1
    assert len(storage.releases(datasets)) == 2
    findings_2 = storage.load_table("findings", datasets_dir=datasets)
    assert len(findings_2) == expected_findings + len(golden(next(iter(seed_records()))))
    assert findings_2["finding_id"].is_unique
    failed = storage.load_table("pages", datasets_dir=datasets).query("parse_status == 'failed'")
    assert len(failed) == 1 and "binary" in failed["error"].iloc[0]
    assert list(storage.load_table("rejects", datasets_dir=datasets)["reason"]) == [
        "unreadable_page"
    ]

    # The older release stays readable by number.
    pd.testing.assert_frame_equal(
        storage.load_table("findings", release=1, datasets_dir=datasets), findings
    )


def test_parse_batches_on_worker_processes(prefect_server: str, tmp_path: Path) -> None:
    # Large jobs (a backfill, a re-parse) parse on Prefect's process pool: same records.
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    summary = nightly(raw_dir=str(raw), datasets_dir=str(datasets), batch_size=1, parse_workers=2)
    assert (summary["new_release"], summary["pages_read"]) == (True, 5)
    findings = storage.load_table("findings", datasets_dir=datasets)
    expected = [row for seed_id in seed_records() for row in golden(seed_id)]
    assert sorted(findings["finding_id"]) == sorted(
        storage.load_table("findings", datasets_dir=datasets)["finding_id"].unique()
    )
    assert len(findings) == len(expected)
    got = findings.sort_values(["url", "page_updated", "position"])["national_statement"].tolist()
    want = [
        row["national_statement"]
        for row in sorted(expected, key=lambda r: (r["url"], r["page_updated"], r["position"]))
    ]
    assert got == want
