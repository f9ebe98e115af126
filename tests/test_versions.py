"""Each distinct page version (page, bytes, parser) is parsed once (issue 21 items 1-2).

A real archive: the shipped seed pages, captured again byte for byte later (as most
Wayback captures are). Runs go through the flow's plain functions in the flow's order
(`plan_run`, recapture rows, parse batches, `publish_release`), one end-to-end run through
the `nightly` flow itself.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from helpers import RAW_DIR, seed_records

from flows import pipeline, raw_archive, storage
from flows.schemas import SCHEMA_VERSION


def _add(raw: Path, data: bytes, seed: raw_archive.SnapshotRecord, when: datetime):
    return raw_archive.add_snapshot(
        raw, data, url=seed.url, source="wayback", municipality=seed.municipality,
        captured_at=when, content_type=seed.content_type,
    )[0]  # fmt: skip


def _seed_bytes(seed: raw_archive.SnapshotRecord) -> bytes:
    return raw_archive.read_object(RAW_DIR, seed.sha256)


def _archive(raw: Path) -> list[raw_archive.SnapshotRecord]:
    """The five seeds captured 2021-09-01, then seeds 0 and 1 twice more, unchanged."""
    seeds = list(seed_records().values())
    first = [_add(raw, _seed_bytes(s), s, datetime(2021, 9, 1, tzinfo=UTC)) for s in seeds]
    again = [
        _add(raw, _seed_bytes(s), s, datetime(2021, month, 1, tzinfo=UTC))
        for s in seeds[:2]
        for month in (10, 11)
    ]
    return first + again


def _run(raw: Path, datasets: Path, reparse: bool = False) -> pipeline.Plan:
    """One run as `flows.nightly` does it, without Prefect."""
    plan = pipeline.plan_run(raw, datasets, reparse=reparse)
    writer = storage.ReleaseWriter(
        datasets, mode=plan.mode, parser_version=pipeline.PARSER_VERSION,
        run_id=uuid.uuid4().hex, started_at=datetime.now(UTC),
    )  # fmt: skip
    writer.write(pipeline.recapture_rows(plan.recaptures))
    for batch in pipeline.batched(plan.records, 2):  # several batches, as workers get them
        writer.write(pipeline.parse_snapshots(raw, batch))
    pipeline.publish_release(writer, plan.n_captures)
    return plan


def test_split_versions_parses_the_first_capture_of_each_version_once(tmp_path: Path) -> None:
    seeds = list(seed_records().values())
    when = [datetime(2021, 11, 1, tzinfo=UTC), datetime(2021, 9, 1, tzinfo=UTC), None]
    records = [raw_archive.add_snapshot(tmp_path, _seed_bytes(seeds[0]), url=seeds[0].url,
                                        source="wayback", captured_at=at)[0]
               for at in when]  # fmt: skip
    other = raw_archive.add_snapshot(
        tmp_path, _seed_bytes(seeds[1]), url=seeds[1].url, source="wayback"
    )[0]
    todo, again = pipeline.split_versions([*records, other], set())
    # unknown capture times come first, as the archive and `changes` order captures
    assert todo == [records[2], other] and again == records[:2]
    known = {pipeline.version_id(other.url, other.sha256)}
    assert pipeline.split_versions([other], known) == ([], [other])
    # the same bytes under another parser version are another version
    assert pipeline.version_id(other.url, other.sha256, "x") != next(iter(known))
    # http:// and https:// captures of one page are one page
    assert pipeline.version_id(other.url.replace("https://", "http://"), other.sha256) == next(
        iter(known)
    )


def test_each_version_is_parsed_once_and_every_capture_keeps_its_row(tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    records = _archive(raw)
    plan = _run(raw, datasets)
    assert (len(plan.records), len(plan.recaptures)) == (5, 4)

    pages = storage.load_table("pages", datasets_dir=datasets)
    findings = storage.load_table("findings", datasets_dir=datasets)
    assert sorted(pages.snapshot_id) == sorted(r.record_id for r in records)
    assert pages.parse_status.value_counts().to_dict() == {"parsed": 5, "recapture": 4}
    assert pages.version_id.nunique() == 5 and pages.version_id.notna().all()
    recaptured = pages[pages.parse_status == "recapture"]
    assert (recaptured[["n_findings", "n_rejects"]] == 0).all().all()
    # one row per bullet per version, from the version's first capture
    parsed = pages[pages.parse_status == "parsed"]
    assert len(findings) == parsed.n_findings.sum()
    assert set(findings.snapshot_id) == set(parsed.snapshot_id)
    assert (findings.captured_at == pd.Timestamp("2021-09-01", tz="UTC")).all()
    runs = storage.releases(datasets)
    assert runs.schema_version.tolist() == [SCHEMA_VERSION]
    assert runs[["n_pages", "n_pages_new"]].values.tolist() == [[9, 9]]

    # The documented join (docs/using-the-dataset.md) gives every capture its findings.
    every = pages[["snapshot_id", "captured_at", "version_id"]].merge(
        findings.drop(columns=["snapshot_id", "captured_at"]), on="version_id"
    )
    per_capture = every.groupby("snapshot_id").size()
    for record in records:
        version = pages.set_index("snapshot_id").version_id[record.record_id]
        first = parsed.set_index("version_id").n_findings[version]
        assert per_capture.get(record.record_id, 0) == first

    # Observations count distinct versions, so recaptures do not inflate them.
    observations = storage.load_table("observations", datasets_dir=datasets)
    assert observations.n_snapshots.max() == 1


def test_a_recapture_in_a_later_run_reads_no_object(tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    seeds = list(seed_records().values())
    _add(raw, _seed_bytes(seeds[0]), seeds[0], datetime(2021, 9, 1, tzinfo=UTC))
    _run(raw, datasets)
    later = _add(raw, _seed_bytes(seeds[0]), seeds[0], datetime(2022, 9, 1, tzinfo=UTC))
    # With its object gone, only a run that never reads it can succeed.
    Path(raw_archive.object_path(raw, later.sha256)).unlink()
    plan = _run(raw, datasets)
    assert (plan.records, plan.recaptures.column("snapshot_id").to_pylist()) == ([], [later.record_id])
    pages = storage.load_table("pages", datasets_dir=datasets).set_index("snapshot_id")
    assert pages.parse_status[later.record_id] == "recapture"
    assert storage.releases(datasets).n_findings_new.tolist()[-1] == 0


def test_a_revert_gives_its_change(tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    seed = next(iter(seed_records().values()))
    text = _seed_bytes(seed)
    edited = re.sub(rb"\b(\d{1,2}) procent", lambda m: b"%d procent" % (int(m[1]) + 1), text, count=1)
    assert edited != text
    a1 = _add(raw, text, seed, datetime(2021, 9, 1, tzinfo=UTC))
    b = _add(raw, edited, seed, datetime(2021, 10, 1, tzinfo=UTC))
    a2 = _add(raw, text, seed, datetime(2021, 11, 1, tzinfo=UTC))  # A -> B -> A
    _run(raw, datasets)
    changes = storage.load_table("changes", datasets_dir=datasets)
    pairs = set(zip(changes.from_snapshot_id, changes.to_snapshot_id, strict=True))
    assert pairs == {(a1.record_id, b.record_id), (b.record_id, a2.record_id)}
    back = changes[changes.to_snapshot_id == a2.record_id]
    assert back.national_changed.all() and len(back) == 1


def test_survey_years_of_a_version_come_from_its_first_capture(tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    seed = list(seed_records().values())[1]
    # No printed date: the capture date is the page's only calendar (basis captured_at).
    text = re.sub(r"(?m)^(Senast uppdaterad|Publicerad):.*$", "", _seed_bytes(seed).decode())
    first = _add(raw, text.encode(), seed, datetime(2020, 9, 1, tzinfo=UTC))
    _add(raw, text.encode(), seed, datetime(2021, 9, 1, tzinfo=UTC))
    _run(raw, datasets)
    findings = storage.load_table("findings", datasets_dir=datasets)
    assert set(findings.snapshot_id) == {first.record_id}
    dated = findings[findings.survey_year_basis == "captured_at"]
    assert len(dated) > 0 and set(dated.survey_year) == {2020}
    observations = storage.load_table("observations", datasets_dir=datasets)
    assert 2021 not in set(observations.survey_year.dropna())
    assert observations.survey_year.notna().sum() >= len(dated.drop_duplicates("position"))


def test_a_release_of_another_schema_version_is_rebuilt(tmp_path: Path, monkeypatch) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    _archive(raw)
    _run(raw, datasets)
    assert pipeline.plan_run(raw, datasets).has_work is False
    base = storage.find_release(datasets)
    assert base is not None
    # The latest release as a schema-1 `runs` row reads (no schema_version column).
    monkeypatch.setattr(storage, "find_release", lambda *_: {**base, "schema_version": None})
    plan = pipeline.plan_run(raw, datasets)
    assert (plan.mode, len(plan.records), len(plan.recaptures)) == ("reparse", 5, 4)


def _segmented_archive(raw: Path) -> None:
    """Seeds in segments of two records, captured out of order: a later segment holds
    an older capture of a version than an earlier one (a backfill), one capture has no
    time, one is a record file beside the segments."""
    seeds = list(seed_records().values())
    when = [datetime(2021, month, 1, tzinfo=UTC) for month in (9, 10, 11)]
    with raw_archive.ArchiveAppender(raw, batch=2) as archive:
        for seed in seeds:
            archive.add(_seed_bytes(seed), url=seed.url, source="wayback",
                        municipality=seed.municipality, captured_at=when[2],
                        content_type=seed.content_type)  # fmt: skip
        for seed, moment in ((seeds[0], when[0]), (seeds[1], None), (seeds[0], when[1])):
            archive.add(_seed_bytes(seed), url=seed.url, source="wayback",
                        municipality=seed.municipality, captured_at=moment,
                        content_type=seed.content_type)  # fmt: skip
    _add(raw, _seed_bytes(seeds[2]), seeds[2], datetime(2021, 8, 1, tzinfo=UTC))


def test_a_plan_read_file_by_file_splits_versions_as_the_whole_archive_would(tmp_path) -> None:
    # Bounded memory (issue 21 item 4): at 1,000,000 captures a plan held a record object
    # per capture (~540 MB, and its freed heap mostly stayed with the process). It now
    # reads a file at a time and keeps only each version's first capture as a record,
    # the recaptures as a compact table: the same split as over every record at once.
    raw = tmp_path / "raw"
    _segmented_archive(raw)
    assert len(raw_archive.segment_names(raw)) == 4
    todo, again = pipeline.plan_versions(raw_archive.iter_new(raw), set())
    expected_todo, expected_again = pipeline.split_versions(raw_archive.read_all(raw), set())
    assert [r.record_id for r in todo] == [r.record_id for r in expected_todo]
    assert sorted(again.column("snapshot_id").to_pylist()) == sorted(
        r.record_id for r in expected_again
    )
    assert len(todo) == 5 and again.num_rows == 4
    # the earliest capture of a version is parsed, wherever in the archive it is
    # (unknown times first, as `split_versions`; 08-01 is the record file's capture)
    assert sorted((r.captured_at or "")[:10] for r in todo) == [
        "", "2021-08-01", "2021-09-01", "2021-11-01", "2021-11-01"
    ]
    # the recaptures' rows are those built from the records themselves
    from_table = pipeline.recapture_rows(again)["pages"].sort_by("snapshot_id")
    from_records = pipeline.recapture_rows(expected_again)["pages"].sort_by("snapshot_id")
    assert from_table.equals(from_records)


def test_a_capture_copied_into_a_second_segment_is_planned_once(tmp_path: Path) -> None:
    # A segment file copied under another name (by hand, or a sync tool) holds captures
    # the archive already has: each is one capture, planned and published once.
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    _segmented_archive(raw)
    first = raw_archive.segment_names(raw)[0]
    source = Path(raw_archive.segment_path(raw, first))
    source.with_name("z-copy.jsonl").write_bytes(source.read_bytes())
    plan = _run(raw, datasets)
    assert (len(plan.records), plan.recaptures.num_rows, plan.n_in_archive) == (5, 4, 9)
    pages = storage.load_table("pages", datasets_dir=datasets)
    assert len(pages) == 9 and pages.snapshot_id.is_unique
