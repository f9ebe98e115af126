"""Shared test helpers: the shipped seed pages in raw/ and their golden findings."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flows import raw_archive
from parsers import PARSER_VERSION, ParsedPage, parse_page

ROOT = Path(__file__).resolve().parents[1]
RAW_DIR = ROOT / "raw"
GOLDEN_DIR = ROOT / "tests" / "golden"
HTML_DIR = ROOT / "tests" / "fixtures" / "html"


def seed_records() -> dict[str, raw_archive.SnapshotRecord]:
    """The shipped seed snapshots by archive id ("000_9204bfc52bc1e635", ...)."""
    out = {}
    for record in raw_archive.iter_records(RAW_DIR):
        match = re.search(r"archive id (\S+)", record.note or "")
        if record.source == "seed" and match:
            out[match.group(1)] = record
    return dict(sorted(out.items()))


def parse_seed(record: raw_archive.SnapshotRecord, data: bytes | None = None) -> ParsedPage:
    if data is None:
        data = raw_archive.read_object(RAW_DIR, record.sha256)
    return parse_page(data, url=record.url, municipality=record.municipality)


def golden(seed_id: str) -> list[dict]:
    path = GOLDEN_DIR / f"{seed_id}.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def publish(
    datasets_dir: Path,
    records: list[raw_archive.SnapshotRecord] | None = None,
    *,
    mode: str = "append",
    parser_version: str = PARSER_VERSION,
    overrides=None,
) -> int:
    """Publish a release of seed snapshots without Prefect (the flow's plain functions)."""
    import uuid
    from datetime import UTC, datetime

    from flows import pipeline, storage

    if records is None:
        records = list(seed_records().values())
    writer = storage.ReleaseWriter(
        datasets_dir,
        mode=mode,
        parser_version=parser_version,
        run_id=uuid.uuid4().hex,
        overrides=overrides,
        started_at=datetime.now(UTC),
    )
    writer.write(pipeline.parse_snapshots(RAW_DIR, records))
    return pipeline.publish_release(writer, len(records))[0]
