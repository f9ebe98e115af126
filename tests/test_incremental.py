"""An incremental release (only the indicators and pages the new snapshots touch are
recomputed) must publish exactly what a full rebuild publishes, table by table.

The archive grows as a nightly run sees it: the shipped pages, then later captures of
the same pages with a figure or an answer changed, an unchanged recapture, the same page
of another municipality, and last a page whose new wording forces a full re-link.
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from helpers import RAW_DIR, publish, seed_records

from flows import pipeline, raw_archive, storage
from flows.schemas import DERIVED_TABLES

#: Row order differs (an incremental release appends), so tables are compared sorted.
KEYS = {
    "indicators": ["indicator_id"],
    "indicator_links": ["finding_id"],
    "observations": ["indicator_id", "municipality", "survey_year"],
    "changes": ["to_snapshot_id", "indicator_id", "survey_year", "change_kind",
                "finding_id_before", "finding_id_after"],  # fmt: skip
}


def _text(record: raw_archive.SnapshotRecord) -> str:
    return raw_archive.read_object(RAW_DIR, record.sha256).decode("utf-8")


def _bump_first_figure(text: str) -> str:
    # "I 89 procent av Sveriges kommuner ..." -> "I 90 procent ...": a new survey's figure
    # for the same question (normalised wording unchanged).
    return re.sub(r"\b(\d{1,2}) procent", lambda m: f"{int(m.group(1)) + 1} procent", text, count=1)


def _steps(raw: Path) -> list[list[raw_archive.SnapshotRecord]]:
    seeds = list(seed_records().values())
    texts = [_text(record) for record in seeds]

    def add(text: str, record: raw_archive.SnapshotRecord, when: datetime, url: str | None = None):
        return raw_archive.add_snapshot(
            raw, text.encode("utf-8"), url=url or record.url, source="wayback",
            municipality=None if url else record.municipality, captured_at=when,
            content_type="text/plain; charset=utf-8",
        )[0]  # fmt: skip

    first = [add(text, record, datetime(2021, 9, 1, tzinfo=UTC)) for text, record in zip(
        texts, seeds, strict=True)]  # fmt: skip
    # Another municipality's copy of page 1 with no date anywhere: its "Årets resultat"
    # has no year (basis none), twice, the second capture with another figure.
    undated = re.sub(r"(?m)^(Senast uppdaterad|Publicerad):.*$", "", texts[1])
    mora = seeds[1].url.replace("kalmar.se", "mora.se")
    second = [
        add(_bump_first_figure(texts[0]), seeds[0], datetime(2021, 10, 1, tzinfo=UTC)),
        add(texts[1].replace("finns en rutin", "saknas en rutin", 1), seeds[1],
            datetime(2021, 10, 1, tzinfo=UTC)),
        add(undated.replace("Kalmar", "Mora"), seeds[1], None, url=mora),
        add(_bump_first_figure(undated).replace("Kalmar", "Mora"), seeds[1], None, url=mora),
    ]  # fmt: skip
    third = [
        add(texts[2], seeds[2], datetime(2021, 11, 1, tzinfo=UTC)),  # unchanged recapture
        add(texts[3].replace("Kalmar", "Växjö"), seeds[3], datetime(2021, 11, 2, tzinfo=UTC),
            url=seeds[3].url.replace("kalmar.se", "vaxjo.se")),
        # The same statements under a dated heading: the undated Mora bullets with the same
        # figure now take its year (matched_national_figure), so Mora's earlier rows and
        # the changes between its captures change although Mora got nothing new.
        add(texts[1].replace("Årets resultat", "2020 års resultat").replace("Kalmar", "Växjö"),
            seeds[1], datetime(2021, 11, 2, tzinfo=UTC),
            url=seeds[1].url.replace("kalmar.se", "vaxjo.se")),
    ]  # fmt: skip
    fourth = [
        add(
            re.sub(r"\bkommunerna\b", "kommunerna i landet numera", texts[4], count=1),
            seeds[4],
            datetime(2022, 9, 1, tzinfo=UTC),
        )
    ]
    # Page 1 reverted to its first bytes: a recapture (no parse, no findings of its own)
    # that must still give the change back, in a run that adds nothing else.
    fifth = [add(texts[0], seeds[0], datetime(2022, 10, 1, tzinfo=UTC))]
    # An older capture of page 2 backfilled between its first two: it splits their pair.
    sixth = [add(_bump_first_figure(texts[1]), seeds[1], datetime(2021, 9, 15, tzinfo=UTC))]
    return [first, second, third, fourth, fifth, sixth]


def _publish(datasets: Path, raw: Path, records, rebuild: bool) -> str:
    writer = storage.ReleaseWriter(
        datasets, mode="append", parser_version="test", run_id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
    )  # fmt: skip
    # Recaptures of published versions are not parsed again, as `oj run` plans them.
    known = pipeline.published_versions(datasets)
    writer.write(pipeline.parse_snapshots(raw, records, parser_version="test", known=known))
    _, derivation = pipeline.publish_release(writer, len(records), rebuild=rebuild)
    return derivation.mode


def _sorted(table: str, release: int, datasets: Path) -> pd.DataFrame:
    frame = storage.load_table(table, release, datasets)
    frame = frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object})
    return frame.sort_values(KEYS[table], ignore_index=True, na_position="first")


@pytest.fixture(scope="module")
def chains(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("incremental")
    raw = root / "raw"
    steps = _steps(raw)
    incremental, full = root / "incremental", root / "full"
    modes = [_publish(incremental, raw, step, rebuild=False) for step in steps]
    for step in steps:
        _publish(full, raw, step, rebuild=True)
    return incremental, full, modes


def test_releases_after_the_first_are_incremental_until_a_new_wording(chains) -> None:
    _, _, modes = chains
    # A new wording may change how statements link: only a full re-link is exact.
    assert modes == ["full", "incremental", "incremental", "full", "incremental", "incremental"]
    runs = storage.releases(chains[0])
    assert runs["derivation"].tolist() == modes


@pytest.mark.parametrize("release", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("table", DERIVED_TABLES)
def test_an_incremental_release_equals_a_full_rebuild(chains, table: str, release: int) -> None:
    incremental, full, _ = chains
    left, right = _sorted(table, release, incremental), _sorted(table, release, full)
    assert len(left) > 0
    pd.testing.assert_frame_equal(left, right)


def test_a_reverting_recapture_gives_its_change_incrementally(chains) -> None:
    incremental, _, _ = chains
    pages = storage.load_table("pages", 5, incremental)
    revert = pages[pages.parse_status == "recapture"].sort_values("captured_at").iloc[-1]
    assert str(revert.captured_at).startswith("2022-10-01")
    changes = storage.load_table("changes", 5, incremental)
    back = changes[changes.to_snapshot_id == revert.snapshot_id]
    # the bumped figure (step 2) goes back down: an edit of the national figure
    assert back.national_changed.any()
    assert len(storage.load_table("changes", 4, incremental)) < len(changes)


def test_a_backfilled_capture_splits_a_pair(chains) -> None:
    incremental, _, _ = chains
    pages = storage.load_table("pages", 6, incremental)
    backfilled = pages[pages.captured_at == pd.Timestamp("2021-09-15", tz="UTC")]
    changes = storage.load_table("changes", 6, incremental)
    assert set(changes.to_snapshot_id) >= set(backfilled.snapshot_id)
    assert set(changes.from_snapshot_id) >= set(backfilled.snapshot_id)


def test_new_evidence_moves_the_year_of_earlier_rows(chains) -> None:
    incremental, _, _ = chains
    links = storage.load_table("indicator_links", 3, incremental)
    findings = storage.load_table("findings", 3, incremental)
    mora = findings[findings.url.str.contains("mora.se")].merge(links, on="finding_id")
    assert (mora.resolved_survey_year_basis == "matched_national_figure").any()
    before = storage.load_table("indicator_links", 2, incremental)
    assert not before.merge(mora[["finding_id"]]).resolved_survey_year.notna().any()


def test_every_release_of_an_incremental_chain_stays_readable(chains) -> None:
    incremental, _, _ = chains
    for release in (1, 2, 3, 4):
        for table in DERIVED_TABLES:
            storage.load_table(table, release, incremental)


def _snapshot(datasets: Path) -> dict[tuple[str, int], pd.DataFrame]:
    return {
        (table, release): storage.load_table(table, release, datasets)
        for release in storage.releases(datasets)["release"]
        for table in (*DERIVED_TABLES, "pages", "findings", "rejects")
    }


def test_vacuum_deletes_only_files_no_release_needs(chains, tmp_path) -> None:
    datasets = tmp_path / "datasets"
    shutil.copytree(chains[0], datasets)
    before = _snapshot(datasets)
    # A crashed run's file that never reached the log.
    stray = datasets / "observations" / "part-00000-crashed-run-c000.zstd.parquet"
    shutil.copy(next((datasets / "observations").glob("*.parquet")), stray)
    deleted = storage.vacuum(datasets)
    assert not stray.exists()
    assert stray.name in deleted["observations"]
    after = _snapshot(datasets)
    for key, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[key], obj=str(key))


def test_fragmented_tables_are_compacted_in_a_release(tmp_path, monkeypatch) -> None:
    # Every nightly run appends a few small files; from COMPACT_MIN_FILES of them a
    # release compacts the table, and pins the compacted version.
    monkeypatch.setattr(storage, "COMPACT_MIN_FILES", 3)
    raw = tmp_path / "raw"
    datasets = tmp_path / "datasets"
    for step in _steps(raw)[:3]:
        _publish(datasets, raw, step, rebuild=False)
    history = DeltaTable(str(datasets / "findings")).history()
    assert any(entry["operation"] == "OPTIMIZE" for entry in history)
    runs = storage.releases(datasets)
    latest = DeltaTable(str(datasets / "findings"), version=int(runs.findings_version.iloc[-1]))
    assert len(latest.file_uris()) < 3
    assert len(storage.load_table("findings", 3, datasets)) == int(runs.n_findings.iloc[-1])
    for release in runs.release:
        storage.load_table("observations", int(release), datasets)


def test_captures_of_touched_pages_read_only_their_rows(tmp_path) -> None:
    # A nightly adding 20 pages read every capture's rows to pick the touched pages'
    # (issue 21 item 3: 0.11 s at 30,000 captures, growing with the archive); now only
    # the url column of all captures, then the touched pages' rows by a pushed-down filter.
    from flows import history
    from flows.sources import page_key

    datasets = tmp_path / "datasets"
    publish(datasets)
    base = storage.find_release(datasets)
    asked: list[set[str] | None] = []

    class Recording(storage.DerivationReader):
        def captures(self, urls: set[str] | None = None):
            asked.append(urls)
            return super().captures(urls)

    reader = Recording(datasets, base, int(base["findings_version"]), int(base["pages_version"]))
    everything = storage.DerivationReader(
        datasets, base, int(base["findings_version"]), int(base["pages_version"])
    ).captures(None)
    url = sorted(everything.column("url").drop_null().to_pylist())[0]
    got = history._captures_of(reader, {page_key(url)})
    assert asked and None not in asked, asked
    expected = sorted(
        row["snapshot_id"]
        for row in everything.to_pylist()
        if row["url"] is not None and page_key(row["url"]) == page_key(url)
    )
    assert expected and sorted(got.column("snapshot_id").to_pylist()) == expected


def test_changes_derived_in_parts_of_pages_equal_one_part(tmp_path, monkeypatch) -> None:
    # Bounded memory (issue 21 item 4): a full derivation built every page's pairs at once
    # (the release's peak). In parts of one page each, full and incremental releases
    # publish the same changes as one part, and each part is its own Delta append.
    from flows import history

    raw = tmp_path / "raw"
    steps = _steps(raw)
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    for step in steps:
        _publish(whole, raw, step, rebuild=False)
    monkeypatch.setattr(history, "CHANGES_PART_PAGES", 1)
    for step in steps:
        _publish(parted, raw, step, rebuild=False)
    for release in range(1, len(steps) + 1):
        for table in DERIVED_TABLES:
            left, right = _sorted(table, release, whole), _sorted(table, release, parted)
            pd.testing.assert_frame_equal(left, right)
    assert len(_sorted("changes", len(steps), parted)) > 0
    # the first (full) release wrote `changes` as several appends after its overwrite
    operations = [
        entry["operation"]
        for entry in DeltaTable(str(parted / "changes")).history()
        if entry.get("operation") in ("CREATE TABLE", "WRITE")
    ]
    assert len(operations) > len(steps), operations


def test_planning_opens_the_pages_table_once(tmp_path, monkeypatch) -> None:
    # A nightly's plan read pages.snapshot_id/version_id (storage.load_arrow) and then
    # pages.raw_segment (pipeline.consumed_segments), each replaying the Delta log and
    # scanning the table again (issue 21 item 3): now one open, one scan of three columns.
    from deltalake import DeltaTable as RealDeltaTable

    from flows import history
    from parsers import PARSER_VERSION

    datasets = tmp_path / "datasets"
    records = list(seed_records().values())
    publish(datasets, records[:3])
    opened: list[str] = []

    class Counting(RealDeltaTable):
        def __init__(self, path, *args, **kwargs) -> None:
            opened.append(Path(str(path)).name)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(storage, "DeltaTable", Counting)
    monkeypatch.setattr(pipeline, "DeltaTable", Counting)
    plan = pipeline.plan_run(RAW_DIR, datasets, PARSER_VERSION, history.Overrides().sha256)
    assert opened.count("pages") == 1, opened
    # the plan is the same: the two records not yet published, nothing else
    assert sorted(r.record_id for r in plan.records) == sorted(r.record_id for r in records[3:])


def test_a_page_of_one_municipality_replaces_only_its_observations(tmp_path) -> None:
    # Flat nightly (issue 21 item 3): a new page of one municipality touches indicators
    # that every municipality answers, and its release deleted their rows for every
    # municipality, rewriting every file of `observations` (91,099 of 94,255 rows copied
    # at 30,000 captures). Now only that municipality's rows of them are recomputed and
    # replaced; rows are ordered by entity in files of `delta.targetFileSize` (which the
    # delete's rewrite keeps), so its rows sit in a few files.
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/ is not an installed package
    from bench.corpus import build_corpus
    from bench.run import add_new_pages

    raw, more = tmp_path / "raw", tmp_path / "more"
    build_corpus(raw, 80)
    add_new_pages(raw, more, 1, seed=2)  # a page whose wordings the archive knows
    first = list(raw_archive.iter_records(raw))
    known = {record.record_id for record in first}
    new = [record for record in raw_archive.iter_records(more) if record.record_id not in known]
    assert len(new) == 1
    nightly, rebuilt = tmp_path / "nightly", tmp_path / "rebuilt"
    for datasets, rebuild in ((nightly, False), (rebuilt, True)):
        _publish(datasets, more, first, rebuild=True)
        assert _publish(datasets, more, new, rebuild=rebuild) == ("full" if rebuild else
                                                                  "incremental")  # fmt: skip
    before = storage.load_table("observations", 1, nightly)
    table = DeltaTable(str(nightly / "observations"))
    assert table.metadata().configuration["delta.targetFileSize"] == str(
        storage.file_bytes("observations")
    )
    deletes = [entry["operationMetrics"] for entry in table.history()
               if entry.get("operation") == "DELETE"]  # fmt: skip
    links = storage.load_table("indicator_links", 2, nightly)
    findings = storage.load_table("findings", 2, nightly)
    touched = set(links[links.finding_id.isin(findings.finding_id[
        findings.snapshot_id == new[0].record_id])].indicator_id)  # fmt: skip
    entity = new[0].municipality
    of_touched = before[before.indicator_id.isin(touched)]
    assert len(of_touched[of_touched.entity != entity]) > 0  # other municipalities answer
    assert len(deletes) == 1
    assert deletes[0]["num_deleted_rows"] == len(of_touched[of_touched.entity == entity])
    pd.testing.assert_frame_equal(
        _sorted("observations", 2, nightly), _sorted("observations", 2, rebuilt)
    )


def test_a_full_derivation_in_parts_reads_only_each_parts_captures(tmp_path, monkeypatch) -> None:
    # Bounded memory (issue 21 item 4): at 1,000,000 captures every capture row read at
    # once for `changes` was ~540 MB of a full derivation's peak. In parts, each part
    # reads its own pages' captures (a pushed-down URL filter), never all of them.
    from flows import history

    raw = tmp_path / "raw"
    steps = _steps(raw)
    monkeypatch.setattr(history, "CHANGES_PART_PAGES", 1)
    asked: list[set[str] | None] = []
    read = storage.DerivationReader.captures

    def captures(self, urls=None):
        asked.append(None if urls is None else set(urls))
        return read(self, urls)

    monkeypatch.setattr(storage.DerivationReader, "captures", captures)
    _publish(tmp_path / "datasets", raw, steps[0], rebuild=False)  # the first: full
    assert len(asked) > 1 and None not in asked
    pages_of_parts = [{history.page_key(url) for url in urls} for urls in asked]
    assert all(len(pages) <= 1 for pages in pages_of_parts), pages_of_parts


def test_a_full_derivation_cuts_its_parts_by_captures_too(tmp_path, monkeypatch) -> None:
    # Bounded memory (issue 21 item 4): at 1,000,000 captures a part of 1,000 pages held
    # ~440,000 captures (each page recaptured ~450 times), and its joins added ~330 MB
    # to the run's peak. A part now also stops at CHANGES_PART_CAPTURES captures (a
    # page with more is a part of its own), and `changes` is the same as in one part.
    from flows import history

    raw = tmp_path / "raw"
    records = [record for step in _steps(raw) for record in step]
    _publish(tmp_path / "whole", raw, records, rebuild=False)
    monkeypatch.setattr(history, "CHANGES_PART_CAPTURES", 2)
    parts: list[tuple[int, set[str]]] = []
    read = storage.DerivationReader.captures

    def captures(self, urls=None):
        table = read(self, urls)
        pages = {history.page_key(url) for url in table.column("url").to_pylist()}
        parts.append((table.num_rows, pages))
        return table

    monkeypatch.setattr(storage.DerivationReader, "captures", captures)
    _publish(tmp_path / "parts", raw, records, rebuild=False)
    assert len(parts) > 1
    assert all(rows <= 2 or len(pages) == 1 for rows, pages in parts), parts
    assert any(rows > 2 for rows, _ in parts)  # the page captured most is a part alone
    whole = _sorted("changes", 1, tmp_path / "whole")
    assert len(whole) >= 3  # edits, a revert and a backfilled capture
    pd.testing.assert_frame_equal(whole, _sorted("changes", 1, tmp_path / "parts"))
