"""The raw archive in segment files (issue 21 items 5 and 6): records appended in batches
to raw/segments/*.jsonl, a run reads only the segments its release did not consume."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from helpers import RAW_DIR, seed_records

from flows import pipeline, raw_archive, storage


def _release(raw: Path, datasets: Path) -> pipeline.Plan:
    """Plan and publish a release with the flow's plain functions (no Prefect)."""
    plan = pipeline.plan_run(raw, datasets)
    writer = storage.ReleaseWriter(datasets, mode=plan.mode, parser_version=pipeline.PARSER_VERSION,
                                   run_id=uuid.uuid4().hex, started_at=datetime.now(UTC))  # fmt: skip
    if plan.bad_records:
        writer.write(pipeline.quarantined_rows(plan.bad_records))
    recaptures = getattr(plan, "recaptures", ())  # versions parsed once (item 1)
    if recaptures:
        writer.write(pipeline.recapture_rows(recaptures))
    writer.write(pipeline.parse_snapshots(raw, plan.records))
    pipeline.publish_release(writer, len(plan.records) + len(recaptures) + len(plan.bad_records))
    return plan


def _seed_archive(raw: Path, batch: int) -> list[raw_archive.SnapshotRecord]:
    added = []
    with raw_archive.ArchiveAppender(raw, batch=batch) as archive:
        for seed in list(seed_records().values())[:3]:
            data = raw_archive.read_object(RAW_DIR, seed.sha256)
            record, new = archive.add(data, url=seed.url, source="seed",
                                      municipality=seed.municipality)  # fmt: skip
            assert new
            added.append(record)
    return added


def test_a_run_reads_only_the_segments_its_release_did_not_consume(tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    added = _seed_archive(raw, batch=2)
    segments = raw_archive.segment_names(raw)
    assert len(segments) == 2 and not (raw / "records").exists()
    lines = [json.loads(line) for name in segments
             for line in (raw / "segments" / name).read_text("utf-8").splitlines()]  # fmt: skip
    # (two segments of one second sort by their random part, not by writing order)
    assert sorted(line["record_id"] for line in lines) == sorted(r.record_id for r in added)
    assert set(lines[0]) == {f for f in raw_archive.SnapshotRecord.__dataclass_fields__} - {
        "raw_segment"
    }
    first = _release(raw, datasets)
    assert sorted(r.record_id for r in first.records) == sorted(r.record_id for r in added)
    published = storage.load_arrow("pages", datasets_dir=datasets)
    assert set(published.column("raw_segment").to_pylist()) == set(segments)

    # A consumed segment is never read again: garbage in its place plans nothing.
    (raw / "segments" / segments[0]).write_bytes(b"\x00garbage\n{")
    plan = pipeline.plan_run(raw, datasets)
    assert (plan.has_work, plan.records, plan.bad_records) == (False, [], ())

    # A segment written after the release (as while a run plans) is read by the next run,
    # with its bad line quarantined by segment path and line number, never blocking.
    seed = list(seed_records().values())[3]
    with raw_archive.ArchiveAppender(raw) as archive:
        late, _ = archive.add(raw_archive.read_object(RAW_DIR, seed.sha256), url=seed.url,
                              source="seed")  # fmt: skip
    (name,) = archive.segments
    path = raw / "segments" / name
    path.write_bytes(path.read_bytes() + b'{"record_id": "x", "url": 7}\n')
    # and a record file, as archives before segments and hand-placed records are
    old, _ = raw_archive.add_snapshot(raw, b"<html>ny</html>", url="https://kalmar.se/n.html",
                                      source="seed")  # fmt: skip
    second = _release(raw, datasets)
    assert sorted(r.record_id for r in second.records) == sorted([late.record_id, old.record_id])
    (bad,) = second.bad_records
    assert f"{path} line 2:" in bad.reason and bad.raw_segment == name
    assert not pipeline.plan_run(raw, datasets).has_work
    assert pipeline.plan_run(raw, datasets).n_in_archive == 6


def test_fetch_planning_reads_segments(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    added = _seed_archive(raw, batch=10)
    (raw / "segments" / "20260101T000000Z-hand.jsonl").write_text("not json\n", "utf-8")
    latest = raw_archive.latest_by_page(raw, "seed")
    assert sorted(r.record_id for r in latest.values()) == sorted(r.record_id for r in added)
    assert raw_archive.record_ids(raw) == {r.record_id for r in added}
    # the same bytes added again with known ids: said to be there, not recorded twice
    with raw_archive.ArchiveAppender(raw, known_ids=raw_archive.record_ids(raw)) as archive:
        data = raw_archive.read_object(raw, added[0].sha256)
        again = archive.add(data, url=added[0].url, source="seed",
                            municipality=added[0].municipality)  # fmt: skip
    assert again[1] is False and archive.segments == []


def test_each_distinct_object_is_read_once_per_batch(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(RAW_DIR, raw)
    seeds = list(seed_records().values())
    # The same bytes under two URLs, in different read chunks of one batch.
    twin, _ = raw_archive.add_snapshot(raw, raw_archive.read_object(raw, seeds[0].sha256),
                                       url=seeds[0].url + "?kopia", source="seed")  # fmt: skip
    records = [seeds[0], seeds[1], seeds[2], twin]
    reads: list[str] = []
    real = raw_archive.read_objects

    def counting(raw_dir, sha256s):
        reads.extend(sha256s)
        return real(raw_dir, sha256s)

    monkeypatch.setattr(raw_archive, "read_objects", counting)
    monkeypatch.setattr(pipeline, "OBJECT_READ_CHUNK", 2)
    got = list(pipeline._with_objects(raw, records))
    assert [r.record_id for r, _ in got] == [r.record_id for r in records]
    assert got[3][1] == got[0][1] == raw_archive.read_object(raw, seeds[0].sha256)
    assert sorted(reads) == sorted({r.sha256 for r in records})


def test_verify_checks_segments_line_by_line(tmp_path: Path, capsys) -> None:
    from flows.cli import main

    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    added = _seed_archive(raw, batch=10)
    _release(raw, datasets)
    args = ["verify", "--raw-dir", str(raw), "--datasets-dir", str(datasets)]
    assert main(args) == 0, capsys.readouterr().err
    assert "3 objects, 3 records, 1 release checked" in capsys.readouterr().out
    (name,) = raw_archive.segment_names(raw)
    path = raw / "segments" / name
    lines = path.read_text("utf-8").splitlines()
    path.write_text("\n".join([lines[0], lines[1][:30], lines[2]]) + "\n", "utf-8")
    raw_archive.object_path(raw, added[2].sha256).unlink()
    assert main(args) == 1
    problems = capsys.readouterr().err.splitlines()
    assert any(f"{path} line 2: unreadable record" in line for line in problems), problems
    assert any(f"{path} line 3: its object" in line for line in problems), problems
