"""Plain functions behind the flow's tasks: which snapshots to parse, parse a batch into
Arrow tables. No Prefect here, so tests and notebooks call them directly."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from flows import history, location, page_worker, raw_archive, storage
from flows.location import Location
from flows.schemas import SCHEMA_VERSION, TABLES
from flows.sources import Source, page_key
from parsers import PARSER_VERSION

#: Pages per parse task on the flow's threads and on the process pool: fewer tasks, so
#: less per-task Prefect overhead and fewer Delta commits (each ~15-20 ms, three per
#: batch). Measured at 10,000 pages on 2 cores, `oj run` wall time: 200-page batches on
#: 2 processes 78 s, 1,000-page batches on 2 processes 65 s. A first run at 150,000
#: captures (10,098 versions) on the flow's threads, parse and write phase: 200-page
#: batches 14.8 and 12.6 s, 1,000-page batches 13.1 and 11.1 s (two runs each).
DEFAULT_BATCH_SIZE = 1000
PROCESS_BATCH_SIZE = 1000
#: Objects read at once while parsing a batch: concurrent GETs on an object store (a
#: Dask worker reads its pages itself), a bounded number of pages in memory.
OBJECT_READ_CHUNK = 64
#: Largest raw object parsed. Municipal pages are 50-300 KB of HTML; a 1 GiB object (a
#: 2,352-byte .warc.gz of a gzip-encoded payload, before imports were capped) took 4.1 GB
#: of memory to parse. A larger one is recorded as a failed page (`page_too_large`)
#: without being read when its record states its size.
MAX_PAGE_BYTES = 20_000_000
#: A page whose parse took longer than this is recorded as failed (`parse_timeout`), not
#: published. The parser is linear in the page's size (bench/slow_pages.py), so with
#: `MAX_PAGE_BYTES` a parse is bounded anyway (~0.5 s per 100 KB of hostile page here);
#: the check runs after the parse: a parse runs on a Prefect worker thread, where no
#: signal can interrupt it, and a pure parser has no clock to stop itself.
PARSE_TIMEOUT_SECONDS = 60.0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Plan:
    """What a run has to do."""

    records: list[raw_archive.SnapshotRecord]  # snapshots to parse, in archive order
    mode: str  # "append" (new snapshots only) or "reparse" (a new parser version)
    n_in_archive: int
    base_release: int | None
    base_parser_version: str | None
    #: Record files that cannot be used and are not yet published as failed pages.
    bad_records: tuple[raw_archive.BadRecord, ...] = ()
    #: Why the latest release is re-parsed although nothing asked for it: its tables
    #: disagree with its `runs` row (see `release_damage`); None when it is consistent.
    repair: str | None = None
    #: Byte-identical recaptures of a version already published or parsed earlier in this
    #: run (`plan_versions`): a `pages` row each (`recapture_rows`), never parsed or read.
    #: A table of `RECAPTURES`, not records: most of a backfill's captures are recaptures.
    recaptures: pa.Table = field(default_factory=lambda: RECAPTURES.empty_table())

    @property
    def n_captures(self) -> int:
        """`pages` rows this run adds: parsed, recaptured and quarantined captures."""
        return len(self.records) + self.recaptures.num_rows + len(self.bad_records)

    @property
    def has_work(self) -> bool:
        return bool(self.records or self.bad_records or self.recaptures.num_rows) or (
            self.mode in ("reparse", "relink") and self.base_release is not None
        )


def plan_run(
    raw_dir: Location,
    datasets_dir: Location,
    parser_version: str = PARSER_VERSION,
    overrides_sha256: str | None = None,
    reparse: bool = False,
) -> Plan:
    """Compare the raw archive with the latest release.

    New snapshots are appended; a parser version other than the release's (or
    `reparse`, e.g. after fixing a quarantined record) re-parses everything in the
    archive into a new release (no refetch); a changed indicator override file alone
    re-links the indicators into a new release. Record files that cannot be used are
    planned as failed pages, once each.
    """
    names = raw_archive.record_file_names(raw_dir)  # records/: none or few (segments/)
    bad: list[raw_archive.BadRecord] = []
    base = storage.find_release(datasets_dir)
    repair = None
    # the snapshot ids the release published (failed or not)
    done: set[str] | raw_archive.PublishedIds = set()
    known: set[str] = set()
    # A release of another schema version (schema 1 kept findings per capture and had no
    # version_id) is rebuilt like a parser change: the raw archive holds every capture.
    stale = base is not None and (reparse or _parsed_otherwise(base, parser_version))
    consumed: set[str] = set()
    if base is not None and not stale:
        # One open of the pages table and one scan of the three columns planning needs
        # (each read opened the Delta log again: 0.42 s of a 0.55 s plan at 30,000).
        table = DeltaTable(
            str(storage.table_path(datasets_dir, "pages")), version=int(base["pages_version"])
        )
        names_there = table.schema().to_arrow().names
        wanted = [c for c in ("snapshot_id", "version_id", "raw_segment") if c in names_there]
        columns = table.to_pyarrow_table(columns=wanted)
        published = columns.column("snapshot_id")
        done = raw_archive.PublishedIds(published)
        if "version_id" in wanted:
            versions = pc.unique(columns.column("version_id")).to_pylist()
            known = {version for version in versions if version is not None}
        if "raw_segment" in wanted:  # a release written before segments has none
            segments = pc.unique(columns.column("raw_segment")).to_pylist()
            consumed = {name for name in segments if name is not None}
        repair = release_damage(datasets_dir, base, published)
    if base is not None and (stale or repair):
        # A damaged release is repaired as a re-parse: every table is rewritten from the
        # raw archive, which holds every capture, so nothing published is lost.
        todo, again = _read_versions(raw_dir, set(), set(), set(), bad, names, parser_version)
        return Plan(
            todo, "reparse", len(todo) + again.num_rows + len(bad), base["release"],
            base["parser_version"], tuple(bad), repair, again,
        )  # fmt: skip
    # Planning from names: only records not yet published are read (a record file is
    # named by its id, and `pages.snapshot_id` holds the ids published, failed or not).
    # Segments: only those the release did not consume are read (`pages.raw_segment`).
    # Before any batching: two parse workers never get the same version.
    todo, again = _read_versions(raw_dir, done, consumed, known, bad, names, parser_version)
    # Counted without a copy of `done` (a million ids at a million captures): every new
    # record is one capture; a record file or bad record that is none of them is one more.
    candidates = list({*names, *(b.record_id for b in bad)})
    others = {
        name for name, new in zip(candidates, raw_archive.unpublished(candidates, done),
                                  strict=True) if new
    }  # fmt: skip
    others -= {record.record_id for record in todo}
    if others and again.num_rows:
        repeated = pc.is_in(again.column("snapshot_id"), pa.array(sorted(others), pa.string()))
        others -= set(again.filter(repeated).column("snapshot_id").to_pylist())
    n_in_archive = len(done) + len(todo) + again.num_rows + len(others)
    mode = "append"
    if base is not None and not todo and not again.num_rows and (
        base.get("overrides_sha256") != overrides_sha256
    ):
        mode = "relink"
    return Plan(
        todo,
        mode,
        n_in_archive,
        base["release"] if base else None,
        base["parser_version"] if base else None,
        tuple(bad),
        recaptures=again,
    )


def _parsed_otherwise(release: dict[str, Any], parser_version: str) -> bool:
    """Was `release` parsed by another parser version, or written in another schema
    version? Then a run parses the whole raw archive again."""
    return (
        release["parser_version"] != parser_version
        or release.get("schema_version") != SCHEMA_VERSION
    )


def work_without_reading(datasets_dir: Location, parser_version: str = PARSER_VERSION) -> bool:
    """Whether a run has work, known without reading the raw archive: there is no release
    yet, or the latest was parsed otherwise (`_parsed_otherwise`). `oj run` asks this
    before its read-only look for work (`plan_run` outside the lock), which on a first
    run read every record of the archive only for the flow to read them all again under
    the lock: 2.5 s of a first run at 150,000 captures, 19 s at 1,000,000."""
    base = storage.find_release(datasets_dir)
    return base is None or _parsed_otherwise(base, parser_version)


def _read_versions(
    raw_dir: Location,
    published: set[str] | raw_archive.PublishedIds,
    consumed: set[str],
    known: set[str],
    bad: list[raw_archive.BadRecord],
    names: list[str],
    parser_version: str,
) -> tuple[list[raw_archive.SnapshotRecord], pa.Table]:
    """The new records split by version (`plan_versions`), read a file at a time. An
    archive that holds one capture twice (two segments with one record: a copied
    segment file) is read whole instead, where the first copy read is kept
    (`raw_archive.read_new`); that path holds every record at once."""
    chunks = raw_archive.iter_new_tables(raw_dir, published, consumed, bad, names)
    todo, again = plan_versions(chunks, known, parser_version)
    ids = pa.chunked_array(
        [*again.column("snapshot_id").chunks, pa.array([r.record_id for r in todo], pa.string())]
    )
    if pc.count_distinct(ids).as_py() == len(ids):
        return todo, again
    del bad[:]  # read again below
    records = raw_archive.read_new(raw_dir, published, consumed, bad, names)
    todo, repeated = split_versions(records, known, parser_version)
    return todo, recapture_table(repeated, parser_version)


def published_versions(datasets_dir: Location, release: int | None = None) -> set[str]:
    """The version ids a release (default: the latest) published; empty without one."""
    if release is None:
        base = storage.find_release(datasets_dir)
        if base is None:
            return set()
        release = int(base["release"])
    column = storage.load_arrow("pages", release, datasets_dir, ["version_id"]).column(0)
    return {version for version in column.to_pylist() if version is not None}


@lru_cache(maxsize=65536)  # a plan asks it for every capture; recaptures repeat the pair
def version_id(url: str, raw_sha256: str, parser_version: str = PARSER_VERSION) -> str:
    """The distinct page version a capture is of: the page (`flows.sources.page_key`, so
    `http://` and `https://` captures of one page are one page), its bytes and the parser
    that reads them. Byte-identical recaptures share it, and are parsed once."""
    joined = "\x1f".join((page_key(url), raw_sha256, parser_version))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:20]


def split_versions(
    records: Iterable[raw_archive.SnapshotRecord],
    known: set[str],
    parser_version: str = PARSER_VERSION,
) -> tuple[list[raw_archive.SnapshotRecord], list[raw_archive.SnapshotRecord]]:
    """(captures to parse, recaptures): the first capture of each version not in `known`
    (published before) is parsed; every other capture of a known or repeated version is a
    recapture. The first is the earliest captured (unknown times first, as the archive
    and `flows.history` order captures), so a version's findings and its survey years
    from `captured_at` come from its first capture."""
    records = list(records)
    times = [record.captured_datetime for record in records]
    ordered = sorted(
        range(len(records)), key=lambda i: (times[i] is not None, times[i] or _EPOCH, i)
    )
    seen = set(known)
    first: set[int] = set()
    for index in ordered:
        version = version_id(records[index].url, records[index].sha256, parser_version)
        if version not in seen:
            seen.add(version)
            first.add(index)
    return (
        [r for i, r in enumerate(records) if i in first],
        [r for i, r in enumerate(records) if i not in first],
    )


_TEXTS = pa.dictionary(pa.int32(), pa.string())
#: A plan's recaptures (`Plan.recaptures`): what a recapture's `pages` row takes from its
#: record, one row each. Texts that repeat over captures are dictionary-encoded: 1,000,000
#: recaptures of 10,000 versions take ~60 MB here, and took ~540 MB as records (whose
#: scattered survivors then kept most of that heap from being returned after use).
RECAPTURES = pa.schema(
    [
        pa.field("snapshot_id", pa.string(), nullable=False),
        pa.field("raw_sha256", _TEXTS),
        pa.field("url", _TEXTS),
        pa.field("captured_at", pa.timestamp("us", tz="UTC")),
        pa.field("version_id", _TEXTS),
        pa.field("municipality", _TEXTS),
        pa.field("source", _TEXTS),
        pa.field("raw_segment", _TEXTS),
    ]
)


def recapture_table(
    records: Iterable[raw_archive.SnapshotRecord], parser_version: str = PARSER_VERSION
) -> pa.Table:
    """Records as a `RECAPTURES` table, as `plan_versions` builds it."""
    return _as_recaptures(_with_versions(raw_archive.records_table(list(records)), parser_version))


def _with_versions(table: pa.Table, parser_version: str) -> pa.Table:
    """A `raw_archive.RECORDS` table with the `version_id` of each row, computed once per
    distinct (URL, sha256) pair: recaptures repeat the pair."""
    pairs = pc.binary_join_element_wise(table.column("url"), table.column("sha256"), "\x1f")
    encoded = pc.dictionary_encode(pairs.combine_chunks())
    # URLs hold no control character (`raw_archive.check_url`), so the pair splits back.
    versions = [version_id(*pair.split("\x1f"), parser_version)
                for pair in encoded.dictionary.to_pylist()]  # fmt: skip
    return table.append_column("version_id", pa.array(versions, pa.string()).take(encoded.indices))


def _in_first_capture_order(table: pa.Table) -> pa.Table:
    """`table` in `split_versions`' order: unknown times first, then by time, ties in the
    archive's stable order (`raw_archive.sort_key`: the time as written, URL, id)."""
    moment = table.column("captured_moment")
    keys = pa.table(
        {
            "known": pc.is_valid(moment),
            "moment": pc.fill_null(moment, pa.scalar(_EPOCH, moment.type)),
            "text": pc.fill_null(table.column("captured_at"), ""),
            "url": table.column("url"),
            "id": table.column("record_id"),
        }
    )
    order = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])
    return table.take(order).combine_chunks()


def _first_of_each_version(table: pa.Table) -> pa.Array:
    """True on the first row of each `version_id` in the table's order."""
    codes = pc.dictionary_encode(table.column("version_id")).combine_chunks().indices
    rows = pa.array(range(table.num_rows), pa.int64())
    firsts = pa.table({"code": codes, "row": rows}).group_by("code").aggregate([("row", "min")])
    return pc.is_in(rows, value_set=firsts.column("row_min"))


def _as_recaptures(table: pa.Table) -> pa.Table:
    """A `raw_archive.RECORDS` table with its `version_id` as `RECAPTURES` rows."""
    return pa.table(
        {
            "snapshot_id": table.column("record_id"),
            "raw_sha256": table.column("sha256"),
            "url": table.column("url"),
            "captured_at": table.column("captured_moment"),
            "version_id": table.column("version_id"),
            "municipality": table.column("municipality"),
            "source": table.column("source"),
            "raw_segment": table.column("raw_segment"),
        }
    ).cast(RECAPTURES)


def plan_versions(
    chunks: Iterable[pa.Table | list[raw_archive.SnapshotRecord]],
    known: set[str],
    parser_version: str = PARSER_VERSION,
) -> tuple[list[raw_archive.SnapshotRecord], pa.Table]:
    """`split_versions` over records read a file at a time (`raw_archive.iter_new_tables`,
    or lists of records as `raw_archive.iter_new` gives them), with no record id twice:
    (the first capture of each version not in `known`, in the archive's stable order;
    every other capture as a `RECAPTURES` table, by capture time then id).

    Done on Arrow columns, a file at a time: the first captures so far (one row per
    version) are merged with each file's rows, the merged rows sorted in
    `split_versions`' order and the first of each version kept; every other row goes
    into the recaptures. Only the first captures become records. Held as records and
    compared in Python a capture at a time, planning took ~17 µs a capture (a first run
    over 1,000,000 captures: 17 s)."""
    known_ids = pa.array(sorted(known), pa.string())
    best: pa.Table | None = None  # the first capture so far of each version
    tables = [RECAPTURES.empty_table()]
    for chunk in chunks:
        table = chunk if isinstance(chunk, pa.Table) else raw_archive.records_table(chunk)
        if not table.num_rows:
            continue
        table = _with_versions(table, parser_version)
        if known:
            published = pc.is_in(table.column("version_id"), value_set=known_ids)
            tables.append(_as_recaptures(table.filter(published)))
            table = table.filter(pc.invert(published))
        if best is not None:
            table = pa.concat_tables([best, table])
        table = _in_first_capture_order(table)
        first = _first_of_each_version(table)
        tables.append(_as_recaptures(table.filter(pc.invert(first))))
        best = table.filter(first)
    table = pa.concat_tables(tables).unify_dictionaries()
    order = pc.sort_indices(
        table, sort_keys=[("captured_at", "ascending", "at_start"), ("snapshot_id", "ascending")]
    )
    todo = raw_archive.table_records(best) if best is not None else []
    return raw_archive.sort_records(todo), table.take(order).combine_chunks()


def recapture_rows(
    recaptures: pa.Table | Iterable[raw_archive.SnapshotRecord],
    sources: Iterable[Source] = (),
    parser_version: str = PARSER_VERSION,
) -> dict[str, pa.Table]:
    """`pages` rows for recaptures (`Plan.recaptures`, a `RECAPTURES` table, or records):
    their own snapshot_id, captured_at and source, parse_status 'recapture', no findings
    or rejects of their own (those are the version's, by version_id). Nothing is read:
    the record says all this. A recapture without a municipality takes its source's."""
    if not isinstance(recaptures, pa.Table):
        recaptures = recapture_table(recaptures, parser_version)
    rows = recaptures.num_rows
    municipality = recaptures.column("municipality").cast(pa.string())
    missing = pc.fill_null(pc.equal(municipality, ""), True)
    if pc.any(missing).as_py():
        by_page = {page_key(source.url): source.municipality for source in sources}
        urls = recaptures.column("url").cast(pa.string()).to_pylist()
        municipality = pa.array(
            [name or by_page.get(page_key(url)) for name, url in
             zip(municipality.to_pylist(), urls, strict=True)], pa.string(),
        )  # fmt: skip
    constant = {
        "municipality": municipality,
        "parse_status": pa.repeat(pa.scalar("recapture"), rows),
        "parser_version": pa.repeat(pa.scalar(parser_version), rows),
        "n_findings": pa.repeat(pa.scalar(0, pa.int32()), rows),
        "n_rejects": pa.repeat(pa.scalar(0, pa.int32()), rows),
    }
    pages = {
        field.name: constant[field.name] if field.name in constant
        else recaptures.column(field.name).cast(field.type) if field.name in RECAPTURES.names
        else pa.nulls(rows, field.type)
        for field in TABLES["pages"]
    }  # fmt: skip
    empty = {name: {field: [] for field in TABLES[name].names} for name in storage.DATA_TABLES}
    return {
        name: storage.build_table(name, pages if name == "pages" else empty[name])
        for name in storage.DATA_TABLES
    }


def consumed_segments(datasets_dir: Location, release: dict[str, Any] | None) -> set[str]:
    """The raw segment files a release consumed: the distinct `pages.raw_segment` (one
    column, a few hundred distinct values at a million captures). Empty for a release
    written before the column existed (its archive had no segments)."""
    if release is None:
        return set()
    table = DeltaTable(
        str(storage.table_path(datasets_dir, "pages")), version=int(release["pages_version"])
    )
    if "raw_segment" not in table.schema().to_arrow().names:
        return set()
    column = table.to_pyarrow_table(columns=["raw_segment"]).column(0)
    return {name for name in pc.unique(column).to_pylist() if name is not None}


def release_damage(
    datasets_dir: Location, release: dict[str, Any], snapshot_ids: pa.ChunkedArray
) -> str | None:
    """What is wrong with a release whose tables disagree with its `runs` row; None when
    they agree.

    Such a release was published by a version of `oj` that let a run that lost its lock
    append into the tables another run pinned ("420 page rows for 250 snapshots"):
    `oj verify` names it, and the next run repairs it by re-parsing. `snapshot_ids`: its
    `pages.snapshot_id` column (read by the planning anyway).
    """
    number = int(release["release"])
    counts = {"pages": len(snapshot_ids)}
    for name in ("findings", "rejects"):
        counts[name] = _count_rows(datasets_dir, name, int(release[f"{name}_version"]))
    problems = [
        f"{name} has {n_rows} rows, its runs row says {release[f'n_{name}']}"
        for name, n_rows in counts.items()
        if n_rows != int(release[f"n_{name}"])
    ]
    if not problems:
        # The runs row counts what its own run wrote, so rows another run appended show
        # as a count that disagrees. Only then are the ids counted: distinct counting of
        # a million ids is a hash of each, 0.2-0.4 s of a nightly that must stay under 2 s.
        return None
    twice = len(snapshot_ids) - pc.count_distinct(snapshot_ids, mode="all").as_py()
    if twice:
        problems.insert(0, f"{twice} page row(s) of snapshots published twice")
    return f"release {number} is inconsistent ({'; '.join(problems)})"


def _count_rows(datasets_dir: Location, name: str, version: int) -> int:
    """Rows of a table version, from the Delta log's file statistics (no data file read,
    as planning runs before every release); from the files' footers if stats lack."""
    table = DeltaTable(str(storage.table_path(datasets_dir, name)), version=version)
    records = table.get_add_actions(flatten=True).column("num_records").to_pylist()
    if None not in records:
        return int(sum(records))
    return table.to_pyarrow_dataset().count_rows()


def batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def finding_id(snapshot_id: str, position: int) -> str:
    """Deterministic: the same snapshot and position give the same id in every release."""
    return hashlib.sha256(f"{snapshot_id}:{position}".encode()).hexdigest()[:20]


def quarantined_rows(
    bad_records: Iterable[raw_archive.BadRecord], parser_version: str = PARSER_VERSION
) -> dict[str, pa.Table]:
    """Failed `pages` rows and `unreadable_record` rejects for record files that cannot be
    used, so a release names them instead of failing on them."""
    columns: dict[str, dict[str, list[Any]]] = {
        name: {field: [] for field in TABLES[name].names} for name in storage.DATA_TABLES
    }
    for bad in bad_records:
        snapshot = {"snapshot_id": bad.record_id, "raw_sha256": None, "url": bad.url,
                    "captured_at": None, "parser_version": parser_version,
                    "raw_segment": bad.raw_segment}  # fmt: skip
        for key, column in columns["pages"].items():
            column.append({**snapshot, "parse_status": "failed", "error": bad.reason,
                           "n_findings": 0, "n_rejects": 1}.get(key))  # fmt: skip
        for key, column in columns["rejects"].items():
            column.append({**snapshot, "reason": "unreadable_record", "text": bad.reason}.get(key))
    return {name: storage.build_table(name, columns[name]) for name in storage.DATA_TABLES}


def parse_snapshots(
    raw_dir: Location,
    records: Iterable[raw_archive.SnapshotRecord],
    sources: Iterable[Source] = (),
    parser_version: str = PARSER_VERSION,
    known: set[str] | frozenset[str] = frozenset(),
    helper: page_worker.ParseHelper | None = None,
) -> dict[str, pa.Table]:
    """Parse a batch of snapshots into `pages`, `findings` and `rejects` rows.

    Each distinct version (`version_id`) is parsed once: a capture of a version in
    `known` (`published_versions`) or earlier in the batch becomes a recapture row
    (`recapture_rows`) without being read.
    A snapshot that cannot be read or parsed becomes a `failed` page with the reason,
    plus an `unreadable_page` reject (`page_too_large` over `MAX_PAGE_BYTES`,
    `parse_timeout` over `PARSE_TIMEOUT_SECONDS`); it never stops the rest of the batch.
    With a `helper` (`page_worker.ParseHelper`), part of the pages are parsed there
    while this thread parses the rest; the rows are the same, in the same order.
    """
    sources = list(sources)
    by_page = {page_key(source.url): source for source in sources}
    records, again = split_versions(records, set(known), parser_version)
    columns: dict[str, dict[str, list[Any]]] = {
        name: {field: [] for field in TABLES[name].names} for name in storage.DATA_TABLES
    }
    pages, findings, rejects = columns["pages"], columns["findings"], columns["rejects"]

    def add(target: dict[str, list[Any]], **values: Any) -> None:
        for key, column in target.items():
            column.append(values.get(key))

    def municipality_of(record: raw_archive.SnapshotRecord) -> str | None:
        source = by_page.get(page_key(record.url))
        return record.municipality or (source.municipality if source else None)

    for record, municipality, outcome in _outcomes(raw_dir, records, municipality_of, helper):
        snapshot = {
            "snapshot_id": record.record_id,
            "raw_sha256": record.sha256,
            "url": record.url,
            "captured_at": record.captured_datetime,
            "version_id": version_id(record.url, record.sha256, parser_version),
            "parser_version": parser_version,
            "raw_segment": record.raw_segment,  # pages only: the segments a release consumed
        }
        if isinstance(outcome, page_worker.FailedPage):
            add(pages, **snapshot, municipality=municipality, source=record.source,
                parse_status="failed", error=outcome.reason, n_findings=0,
                n_rejects=1)  # fmt: skip
            add(rejects, **snapshot, reason=outcome.limit or "unreadable_page",
                text=outcome.reason)  # fmt: skip
            continue
        status = "parsed" if outcome.findings else "no_findings"
        add(pages, **snapshot, municipality=outcome.municipality, area=outcome.area,
            page_updated=outcome.page_updated, page_published=outcome.page_published,
            source=record.source, input_format=outcome.input_format,
            charset=outcome.charset, parse_status=status,
            n_findings=len(outcome.findings), n_rejects=len(outcome.rejects))  # fmt: skip
        for finding_values in outcome.findings:
            finding = dict(zip(page_worker.FINDING_FIELDS, finding_values, strict=True))
            values = {key: finding[key] for key in _FINDING_COLUMNS}
            values["national_values"] = list(finding["national_values"])
            values["flags"] = list(finding["flags"])
            add(findings, **values, **snapshot,
                finding_id=finding_id(record.record_id, finding["position"]))  # fmt: skip
        for reject_values in outcome.rejects:
            reject = dict(zip(page_worker.REJECT_FIELDS, reject_values, strict=True))
            add(rejects, **snapshot, reason=reject["reason"], section=reject["section"],
                line=reject["line"], text=reject["text"])  # fmt: skip
    tables = {name: storage.build_table(name, columns[name]) for name in storage.DATA_TABLES}
    if not again:
        return tables
    extra = recapture_rows(again, sources, parser_version)
    return {name: pa.concat_tables([tables[name], extra[name]]) for name in storage.DATA_TABLES}


#: The columns of a `findings` row that come from the parser's `Finding` (the capture's
#: own fields, its URL included, come from its record).
_SNAPSHOT_COLUMNS = frozenset(
    ["snapshot_id", "raw_sha256", "url", "captured_at", "version_id", "parser_version",
     "raw_segment"]
)  # fmt: skip
_FINDING_COLUMNS = tuple(
    key for key in TABLES["findings"].names
    if key in page_worker.FINDING_FIELDS and key not in _SNAPSHOT_COLUMNS
)  # fmt: skip

#: Pages per chunk a batch sends to the parse helper, and the chunks the helper may hold
#: at once. A chunk is ~11 ms of parsing; the flow's threads hand chunks over only when
#: they get the interpreter lock (held by a local parse or a batch's rows for up to 5 ms
#: at a time), and the helper sat idle ~40 % of a first run at 150,000 captures with 3;
#: 8 did no worse (an A/B within the machine's noise) and gives it slack. From a local
#: archive a queued page is its object's path; from an object store its bytes (8 chunks:
#: ~13 MB).
HELPER_CHUNK = 16
HELPER_QUEUE = 8

_Chunk = list[
    tuple[raw_archive.SnapshotRecord, str | None, "page_worker.PageInput | page_worker.FailedPage"]
]


def _outcomes(
    raw_dir: Location,
    records: list[raw_archive.SnapshotRecord],
    municipality_of: Any,
    helper: page_worker.ParseHelper | None,
) -> Iterator[tuple[raw_archive.SnapshotRecord, str | None, Any]]:
    """Each record, its municipality and its outcome (`page_worker.ParsedRows` or
    `FailedPage`), in the records' order. Chunks of `HELPER_CHUNK` pages go to `helper`
    while it holds fewer than `HELPER_QUEUE`; the others are parsed here. A chunk the
    helper could not answer (it died) is parsed here too.

    From a local raw archive a page goes by its object's path, read and checked by
    whoever parses it: the flow's thread, which also feeds the helper, no longer reads,
    hashes and pipes ~100 KB a page for it. From an object store the flow reads the
    objects (`_with_objects`: concurrent GETs, each distinct object once per batch) and
    sends their bytes."""
    timeout, max_bytes = PARSE_TIMEOUT_SECONDS, MAX_PAGE_BYTES  # read now: tests lower them
    pending: deque[tuple[_Chunk, list[Any] | Future]] = deque()

    def parse_here(chunk: _Chunk) -> list[Any]:
        return [page_worker.parse_to_rows(item, timeout, max_bytes) for _, _, item in chunk
                if isinstance(item, page_worker.PageInput)]  # fmt: skip

    def start(chunk: _Chunk) -> None:
        if helper is not None and helper.gone is None and helper.in_flight < HELPER_QUEUE:
            inputs = [item for _, _, item in chunk if isinstance(item, page_worker.PageInput)]
            pending.append((chunk, helper.submit(inputs, timeout, max_bytes)))
        else:
            pending.append((chunk, parse_here(chunk)))

    def settle() -> Iterator[tuple[raw_archive.SnapshotRecord, str | None, Any]]:
        chunk, outcomes = pending.popleft()
        if isinstance(outcomes, Future):
            try:
                outcomes = outcomes.result()
            except page_worker.HelperGone:
                outcomes = parse_here(chunk)
        answered = iter(outcomes)
        for record, municipality, item in chunk:
            if isinstance(item, page_worker.FailedPage):
                yield record, municipality, item
            else:
                yield record, municipality, next(answered)

    def pages() -> Iterator[tuple[raw_archive.SnapshotRecord, str | None, Any]]:
        if location.is_remote(raw_dir):
            for record, data in _with_objects(raw_dir, records):
                municipality = municipality_of(record)
                yield record, municipality, _page_input(record, municipality, data)
        else:
            for record in records:
                municipality = municipality_of(record)
                yield record, municipality, _page_reference(raw_dir, record, municipality)

    chunk: _Chunk = []
    for page in pages():
        chunk.append(page)
        if len(chunk) == HELPER_CHUNK:
            start(chunk)
            chunk = []
            while pending and not (isinstance(pending[0][1], Future)
                                   and not pending[0][1].done()):  # fmt: skip
                yield from settle()
    if chunk:
        start(chunk)
    while pending:
        yield from settle()


def _page_reference(
    raw_dir: Location, record: raw_archive.SnapshotRecord, municipality: str | None
) -> page_worker.PageInput | page_worker.FailedPage:
    """A page of a local raw archive by its object's path (read by whoever parses it), or
    a failure when its record says it is over `MAX_PAGE_BYTES` (not read at all)."""
    if (record.size_bytes or 0) > MAX_PAGE_BYTES:
        return page_worker.too_large(record.size_bytes or 0, MAX_PAGE_BYTES)
    return page_worker.PageInput(
        None, record.url, municipality, record.captured_datetime, record.charset,
        str(raw_archive.object_path(raw_dir, record.sha256)), record.sha256,
    )  # fmt: skip


def _page_input(
    record: raw_archive.SnapshotRecord,
    municipality: str | None,
    data: bytes | Exception | page_worker.FailedPage,
) -> page_worker.PageInput | page_worker.FailedPage:
    """What the parser gets of a record, or why it gets nothing (an unreadable or too
    large object)."""
    if isinstance(data, page_worker.FailedPage):  # too large by its record: not read
        return data
    if isinstance(data, Exception):
        return page_worker.failure(data)
    if len(data) > MAX_PAGE_BYTES:
        return page_worker.too_large(len(data), MAX_PAGE_BYTES)
    return page_worker.PageInput(
        data, record.url, municipality, record.captured_datetime, record.charset
    )


def _with_objects(
    raw_dir: Location, records: Iterable[raw_archive.SnapshotRecord]
) -> Iterator[tuple[raw_archive.SnapshotRecord, bytes | Exception | page_worker.FailedPage]]:
    """Each record with its object's bytes (or the error reading them), read a chunk at a
    time. An object its record says is over `MAX_PAGE_BYTES` is not read at all: its
    record comes with the failure (`page_worker.too_large`).

    Each distinct object is read once per batch (one GET on a bucket): bytes that a later
    record of the batch shares (the same page under two URLs, `http://` and `https://`
    captures) are kept until that record, then dropped, so memory stays within one batch's
    distinct objects."""
    records = list(records)
    fits = [(record.size_bytes or 0) <= MAX_PAGE_BYTES for record in records]
    remaining = Counter(r.sha256 for r, ok in zip(records, fits, strict=True) if ok)
    kept: dict[str, bytes | Exception] = {}
    for start in range(0, len(records), OBJECT_READ_CHUNK):
        chunk = records[start : start + OBJECT_READ_CHUNK]
        ok = fits[start : start + OBJECT_READ_CHUNK]
        wanted = [sha for sha in dict.fromkeys(r.sha256 for r, o in zip(chunk, ok, strict=True)
                                               if o) if sha not in kept]  # fmt: skip
        kept.update(zip(wanted, raw_archive.read_objects(raw_dir, wanted), strict=True))
        for record, fit in zip(chunk, ok, strict=True):
            if not fit:
                yield record, page_worker.too_large(record.size_bytes or 0, MAX_PAGE_BYTES)
                continue
            data = kept[record.sha256]
            remaining[record.sha256] -= 1
            if not remaining[record.sha256]:
                del kept[record.sha256]
            yield record, data



def full_derivation_reason(writer: storage.ReleaseWriter, rebuild: bool = False) -> str | None:
    """Why a release must rebuild the history tables from every finding; None when an
    incremental update is exact (new snapshots appended, same overrides)."""
    base = writer.base
    if base is None:
        return "first release"
    if writer.mode == "reparse":
        return "re-parse"
    if writer.mode == "relink" or base.get("overrides_sha256") != writer.overrides.sha256:
        return "indicator overrides changed"
    if rebuild:
        return "a full rebuild was asked for"
    if base.get("derivation") is None:
        return "the previous release predates incremental updates"
    return None


def publish_release(
    writer: storage.ReleaseWriter, n_pages_new: int, rebuild: bool = False
) -> tuple[int, history.Derivation]:
    """Derive the history tables (`flows.history`), write them (`flows.storage`), commit
    the release, then publish its plain Parquet copies (`storage.publish_latest`); its
    number and how it was derived."""
    versions = writer.close_data_tables()
    clock = time.perf_counter()
    derivation = history.plan_derivation(
        storage.DerivationReader(
            writer.datasets_dir, writer.base, versions["findings"], versions["pages"]
        ),
        writer.overrides,
        full_derivation_reason(writer, rebuild),
    )
    versions |= writer.write_derived(derivation)
    derivation.seconds = time.perf_counter() - clock
    versions |= writer.compact_fragmented()
    release = writer.commit(n_pages_new=n_pages_new, versions=versions, derivation=derivation.mode)
    storage.publish_latest(writer.datasets_dir)  # plain Parquet, only now the release exists
    return release, derivation


def summary_line(summary: dict[str, Any]) -> str:
    release = (
        f"new release {summary['release']} written"
        if summary["new_release"]
        else f"no new release (latest is {summary['release']})"
        if summary["release"]
        else "no release (nothing to publish)"
    )
    fetched = ""
    if summary.get("fetch_outcomes"):
        counts = ", ".join(f"{n} {k}" for k, n in sorted(summary["fetch_outcomes"].items()))
        fetched = f"fetched: {counts}; "
    quality = ""
    if "national_conflicts" in summary:
        # The first conflict named briefly, so the line says which question to look at.
        first = summary.get("first_national_conflict")
        named = f" (first: {first})" if first and summary["national_conflicts"] else ""
        quality = (
            f"; national-figure conflicts: {summary['national_conflicts']}{named}, "
            f"findings without a survey year: {summary['findings_without_year']} "
            "(details: oj check)"
        )
    return (
        fetched
        + f"pages read: {summary['pages_read']} ({summary['pages_in_archive']} in archive), "
        f"findings: {summary['findings']}, rejects: {summary['rejects']}, "
        f"failed pages: {summary['failed_pages']}; {release}{quality}"
    )
