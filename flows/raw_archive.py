"""The raw archive: append-only, content-addressed page snapshots with one record each.

Layout under the raw dir (docs/layout.md describes it for readers without the project)::

    objects/<sha256[:2]>/<sha256>      the bytes of a snapshot, stored once, untouched
    segments/<yyyymmddThhmmssZ>-<random>.jsonl
                                       records appended in batches: one record's JSON
                                       per line, each file written once, never changed
    records/<record_id>.json           one record per file (archives before segments,
                                       and hand-placed records); still read

The same bytes captured twice (two dates, two sources) are one object and two
records. Writers append through `ArchiveAppender`: a run that finds nothing new lists
`segments/` (a few hundred names at a million captures) instead of a million record
files, and a release records which segments it consumed (`pages.raw_segment`).
Object and record file names derive only from hashes, never from a URL, so no URL can
make the archive write outside its folder. Every write goes to a temporary file in the same
folder, is flushed to disk, then renamed into place: a crash leaves either the whole
file or none (stray `*.tmp` files are ignored and may be deleted).

The raw dir may also be an object-store prefix (`s3://bucket/raw`, see
`flows.location`): the same layout as objects, each written by one PUT (all or nothing).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from flows import location
from flows.location import Location
from flows.objects import (  # noqa: F401 - the archive's API: objects as records
    SHA256_PATTERN,
    ArchiveError,
    is_sha256,
    object_path,
    read_object,
    read_objects,
    sha256_hex,
)

#: Where a snapshot came from.
SOURCES = ("seed", "live", "wayback", "warc")


# slots: a plan holds every record of the archive; at 1,000,000 captures a record with
# a __dict__ and its own copy of every text took ~1.2 GB (see `from_dict` for the texts).
@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """Metadata of one captured snapshot. `captured_at` is None when unknown (seed extracts)."""

    record_id: str
    sha256: str
    url: str
    municipality: str | None
    source: str
    captured_at: str | None  # ISO 8601, UTC
    fetched_at: str | None  # when this archive got it, ISO 8601, UTC
    http_status: int | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    charset: str | None = None
    size_bytes: int | None = None
    final_url: str | None = None  # where redirects ended, when not at `url`
    note: str | None = None
    #: The segment file (`segments/<name>`) the record was read from; None for a record
    #: file. Where the record is kept, not part of it: never written into a record.
    raw_segment: str | None = field(default=None, compare=False)

    @property
    def captured_datetime(self) -> datetime | None:
        """`captured_at` as an aware datetime (None when unknown)."""
        if not self.captured_at:
            return None
        return datetime.fromisoformat(self.captured_at.replace("Z", "+00:00"))

    @classmethod
    def from_dict(cls, data: dict, raw_segment: str | None = None) -> SnapshotRecord:
        # Texts that repeat over the captures of a page (its URL, the object's sha256,
        # municipality, source, content type) are held once, not once per record. A
        # record with only its own keys (every record `oj` writes) is copied as it is: a
        # comprehension over every key was ~15 % of a plan at 1,000,000 captures.
        if data.keys() <= _RECORD_FIELDS:
            values = dict(data)
        else:
            values = {key: value for key, value in data.items() if key in _RECORD_FIELDS}
        for key in _SHARED_TEXTS:
            value = values.get(key)
            if type(value) is str:
                values[key] = sys.intern(value)
        return cls(**values, raw_segment=raw_segment)

    def to_json(self, indent: int | None = None) -> str:
        """The record as stored: a record file's text, or (no indent) a segment's line."""
        data = asdict(self)
        del data["raw_segment"]
        separators = None if indent else (",", ":")
        return json.dumps(data, ensure_ascii=False, indent=indent, sort_keys=True,
                          separators=separators)  # fmt: skip


#: What a record may hold (`raw_segment` is where it was read from, never in it): named
#: once, not looked up per record (`dataclasses.fields` was 5 s of a 1,000,000-record plan).
_RECORD_FIELDS = frozenset(f.name for f in fields(SnapshotRecord)) - {"raw_segment"}
_SHARED_TEXTS = frozenset(
    ("sha256", "url", "final_url", "municipality", "source", "content_type", "charset")
)


MAX_URL_LENGTH = 2048
#: Record ids are 20 hex characters (`record_id_for`); hand-made ones are bounded so a
#: file name can never turn into a 100 KB stderr line or table cell.
MAX_RECORD_ID_LENGTH = 64
_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: How much of a hostile value an error message echoes.
SHOWN_CHARACTERS = 80
#: Oldest capture time a record may carry: before the web pages this archive holds.
EARLIEST_TIME = datetime(1990, 1, 1, tzinfo=UTC)
#: Longest text per optional string field of a record; generous for real HTTP headers.
STRING_LIMITS = {
    "municipality": 100,
    "content_type": 500,
    "etag": 500,
    "last_modified": 200,
    "charset": 64,
    "note": 1000,
}
MAX_SIZE_BYTES = 2**40
#: The whole-number fields of a record and their ranges.
INT_RANGES = {"http_status": (100, 599), "size_bytes": (0, MAX_SIZE_BYTES)}


def show(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """`value` for an error line: repr (control characters escaped), at most about `limit`
    characters, cut with "…". A record once held a 100,000-character record_id and
    gave 100 KB stderr lines."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]
        return repr(value)[:limit] + "…"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def show_text(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """`text` as it is when short and free of control characters, else `show(text)`."""
    if len(text) <= limit and not _has_control(text):
        return text
    return show(text, limit)


#: Control characters: C0 (\x00-\x1f), DEL and C1 (\x80-\x9f). Searched by a regular
#: expression, not character by character in Python: the per-character loops of
#: `check_url` and `is_sha256` were 100 of the 157 CPU seconds that planning a
#: 1,000,000-capture archive took.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: ... or whitespace: `\s` on a str pattern is what `str.isspace` says (Unicode spaces).
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x1f\x7f-\x9f\s]")


def _has_control(text: str) -> bool:
    """Control characters: C0 (\x00-\x1f), DEL and C1 (\x80-\x9f)."""
    return _CONTROL.search(text) is not None


def check_url(url: object) -> str:
    """`url` if it is an absolute http(s) URL with a host, else ValueError saying why
    (see `_check_url`). The answers for the last URLs asked are kept: an archive holds
    every capture of a page under the same few URLs, and `urlsplit` was 11 s of a
    1,000,000-capture plan."""
    if isinstance(url, str):
        return _check_url_text(url)
    return _check_url(url)


@functools.lru_cache(maxsize=8192)
def _check_url_text(url: str) -> str:
    return _check_url(url)  # a ValueError is raised again on each call, not kept


def _check_url(url: object) -> str:
    """`url` if it is an absolute http(s) URL with a host, else ValueError saying why.

    `oj add` once accepted "http://[oops/", "file:...", "javascript:...", "" and a 120 KB
    string; every later run then failed on that record. A record's URL with a NUL byte
    was stored as it was; `urlsplit` silently drops tabs and newlines, so control
    characters and inner whitespace are refused here.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"not a URL: {show(url)}")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters ({len(url)})")
    stripped = url.strip()
    if _CONTROL_OR_SPACE.search(stripped):
        raise ValueError(f"URL holds control characters or whitespace: {show(url)}")
    try:
        parts = urlsplit(stripped)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise ValueError(f"not a valid URL: {show(url)} ({error})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"not an absolute http(s) URL: {show(url)}")
    return stripped


def check_record_id(value: object, what: str = "record_id") -> str:
    """A record id (and so a record file's name): 1 to 64 of A-Z a-z 0-9 . _ -."""
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string: {show(value)}")
    if len(value) > MAX_RECORD_ID_LENGTH:
        raise ValueError(f"{what} longer than {MAX_RECORD_ID_LENGTH} characters "
                         f"({len(value)}): {show(value, 24)}")  # fmt: skip
    if not _RECORD_ID.fullmatch(value):
        raise ValueError(f"{what} is not made of A-Z, a-z, 0-9, '.', '_', '-': {show(value)}")
    return value


def _check_time(value: object, key: str, latest: datetime) -> None:
    """None, or an ISO 8601 time with a time zone within 1990-01-01 and `latest` (now +
    1 day).

    "9999-12-31T23:59:59-14:00" once passed, and the release's `observations` could not
    be read back ("Invalid isoformat string: '+10000-01-01'")."""
    if value is None:
        return
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"{key} is not a time: {show(value)}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{key} is not an ISO 8601 time: {show(value)}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{key} has no time zone: {show(value)}")
    try:
        in_range = EARLIEST_TIME <= moment <= latest
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError(f"{key} is not between 1990-01-01 and tomorrow: {show(value)}")


def _check_int(value: object, key: str, low: int, high: int) -> None:
    if value is None:
        return
    # bool is an int to Python, never a status or a size to us
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key} is not a whole number from {low} to {high}: {show(value)}")


def check_record(data: dict, now: datetime | None = None) -> None:
    """Every field of a record checked by type and range, else ValueError naming the
    field with its value shortened (`show`). `"municipality": 12345` once made every
    run fail with "SchemaError: pages: Expected bytes, got a 'int' object"."""
    get = data.get
    # Every key at once first: this runs for each of a million records in a plan.
    if get("record_id") is None or get("sha256") is None or get("url") is None or (
        get("source") is None
    ):
        missing = [key for key in ("record_id", "sha256", "url", "source") if get(key) is None]
        raise ValueError(f"missing {', '.join(missing)}")
    check_record_id(data["record_id"])
    for key in ("url", "final_url"):
        if data.get(key) is not None:
            try:
                check_url(data[key])
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None
            if data[key] != data[key].strip():
                raise ValueError(f"{key} has surrounding whitespace: {show(data[key])}")
    if data["source"] not in SOURCES:
        raise ValueError(f"source {show(data['source'])} is not one of {SOURCES}")
    if not is_sha256(data["sha256"]):
        raise ValueError(f"sha256 is not a hex digest: {show(data['sha256'])}")
    latest = (now or datetime.now(UTC)) + timedelta(days=1)
    for key in ("captured_at", "fetched_at"):
        _check_time(data.get(key), key, latest)
    for key, (low, high) in INT_RANGES.items():
        _check_int(data.get(key), key, low, high)
    for key, limit in STRING_LIMITS.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{key} is not a string: {show(value)}")
        if len(value) > limit:
            raise ValueError(f"{key} longer than {limit} characters ({len(value)}): "
                             f"{show(value)}")  # fmt: skip
    municipality = data.get("municipality")
    if municipality is not None and (_has_control(municipality) or not municipality.strip()):
        raise ValueError(f"municipality is blank or holds control characters: "
                         f"{show(municipality)}")  # fmt: skip


@dataclass(frozen=True)
class BadRecord:
    """A record file that cannot be used, kept with why: it is published as a failed
    page and named on stderr, and never blocks the rest of the archive."""

    path: Location
    record_id: str  # the file's name without .json; <segment stem>-L<line> in a segment
    url: str | None  # the record's URL when it has a usable one
    reason: str
    raw_segment: str | None = None  # the segment file holding the bad line(s)


def read_record(path: Location) -> SnapshotRecord:
    """One record file, validated: JSON, required keys, an http(s) URL, a sha256, a known
    source, timezone-aware times. ValueError says what is wrong."""
    return parse_record(location.read_bytes(path))


def parse_record(
    raw: bytes, raw_segment: str | None = None, now: datetime | None = None
) -> SnapshotRecord:
    """A record file's bytes (or a segment's line), validated (see `read_record`); times
    are checked against `now` (default: the clock now)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    check_record(data, now)
    try:
        return SnapshotRecord.from_dict(data, raw_segment)
    except TypeError as error:
        raise ValueError(str(error)) from None


def record_id_for(sha256: str, url: str, captured_at: str | None, source: str) -> str:
    """Deterministic id of a capture: the same capture added twice is one record."""
    key = json.dumps([sha256, url, captured_at, source], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def record_path(raw_dir: Location, record_id: str) -> Location:
    return location.join(raw_dir, "records", f"{record_id}.json")


def make_record(
    data: bytes,
    *,
    url: str,
    source: str,
    municipality: str | None = None,
    captured_at: datetime | None = None,
    fetched_at: datetime | None = None,
    **extra: object,
) -> SnapshotRecord:
    """The record of a snapshot's bytes (not stored)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    url = check_url(url)
    digest = sha256_hex(data)
    captured = iso(captured_at)
    return SnapshotRecord(
        record_id=record_id_for(digest, url, captured, source),
        sha256=digest,
        url=url,
        municipality=municipality,
        source=source,
        captured_at=captured,
        fetched_at=iso(fetched_at or datetime.now(UTC)),
        size_bytes=len(data),
        **extra,  # type: ignore[arg-type]
    )


def add_snapshot(
    raw_dir: Location,
    data: bytes,
    *,
    url: str,
    source: str,
    municipality: str | None = None,
    captured_at: datetime | None = None,
    fetched_at: datetime | None = None,
    **extra: object,
) -> tuple[SnapshotRecord, bool]:
    """Store a snapshot's bytes (once) and its record as a record file; returns (record,
    newly added). One file per capture: for a few hand-made records (tests, repairs);
    writers of many use `ArchiveAppender`."""
    record = make_record(data, url=url, source=source, municipality=municipality,
                         captured_at=captured_at, fetched_at=fetched_at, **extra)  # fmt: skip
    path = record_path(raw_dir, record.record_id)
    if location.exists(path):
        return SnapshotRecord.from_dict(json.loads(location.read_bytes(path))), False
    target = object_path(raw_dir, record.sha256)
    if not location.exists(target):
        location.write_bytes(target, data)
    # The object is in place before its record, so a record never points at nothing.
    location.write_bytes(path, (record.to_json(indent=1) + "\n").encode("utf-8"))
    return record, True


#: Records per segment file an `ArchiveAppender` writes (~4.5 MB of JSON): a million
#: captures are ~100 segments, so a run lists a few hundred names at most.
SEGMENT_RECORDS = 10_000
#: Bad lines of one segment named one by one; the rest are counted in one more entry.
MAX_BAD_LINES_SHOWN = 10


def segment_path(raw_dir: Location, name: str) -> Location:
    return location.join(raw_dir, "segments", name)


def new_segment_name(now: datetime | None = None) -> str:
    """`<UTC yyyymmddThhmmssZ>-<random>.jsonl`: sorts by time, unique across writers."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}.jsonl"


class ArchiveAppender:
    """Appends snapshots to the archive in batches: each object at once (before any record
    names it), the records as one new segment file per `batch` records and at exit.

    `with ArchiveAppender(raw_dir) as archive: archive.add(data, url=..., source=...)`.
    A crash loses at most the records not yet flushed (their objects stay, unnamed, and
    are written again as the same object by the next fetch); a segment is written whole
    or not at all, never changed afterwards. `known_ids`: record ids already in the
    archive (e.g. `record_ids(raw_dir)`), so adding one again is reported, not repeated.
    """

    def __init__(
        self, raw_dir: Location, batch: int = SEGMENT_RECORDS, known_ids: set[str] | None = None
    ) -> None:
        self.raw_dir = raw_dir
        self.batch = batch
        self.segments: list[str] = []  # segment names written, in order
        self._known = known_ids if known_ids is not None else set()
        self._pending: list[SnapshotRecord] = []
        self._objects: set[str] = set()

    def add(self, data: bytes, **details: object) -> tuple[SnapshotRecord, bool]:
        """Store a snapshot's bytes (once) and queue its record (see `add_snapshot` for
        the keywords); returns (record, newly added)."""
        record = make_record(data, **details)  # type: ignore[arg-type]
        if record.record_id in self._known:
            return record, False
        if record.sha256 not in self._objects:
            target = object_path(self.raw_dir, record.sha256)
            if not location.exists(target):
                location.write_bytes(target, data)
            self._objects.add(record.sha256)
        self._known.add(record.record_id)
        self._pending.append(record)
        if len(self._pending) >= self.batch:
            self.flush()
        return record, True

    def add_record(self, record: SnapshotRecord) -> bool:
        """Queue a record whose object is already stored (e.g. a recapture of known bytes,
        without hashing them again); False when its id is known."""
        if record.record_id in self._known:
            return False
        if record.sha256 not in self._objects:
            if not location.exists(object_path(self.raw_dir, record.sha256)):
                raise ArchiveError(f"{object_path(self.raw_dir, record.sha256)}: no such "
                                   "object: a record must never point at nothing")  # fmt: skip
            self._objects.add(record.sha256)
        self._known.add(record.record_id)
        self._pending.append(record)
        if len(self._pending) >= self.batch:
            self.flush()
        return True

    def flush(self) -> str | None:
        """Write the queued records as one segment; its name (None when none queued)."""
        if not self._pending:
            return None
        name = new_segment_name()
        text = "".join(record.to_json() + "\n" for record in self._pending)
        location.write_bytes(segment_path(self.raw_dir, name), text.encode("utf-8"))
        self._pending = []
        self.segments.append(name)
        return name

    def __enter__(self) -> ArchiveAppender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Flushed on errors too: the objects of these records are already written.
        self.flush()


def iso(moment: datetime | None) -> str | None:
    """The archive's timestamp form: ISO 8601 in UTC with a Z."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"timestamps in the archive must be timezone-aware: {moment!r}")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def record_file_names(raw_dir: Location) -> list[str]:
    """The ids of every record file in records/ (names without .json), reading none."""
    return [
        name[:-5]
        for name in location.list_names(location.join(raw_dir, "records"))
        if name.endswith(".json") and not name.startswith(".")
    ]


def segment_names(raw_dir: Location) -> list[str]:
    """The names of the segment files, sorted (one listing; in-progress `.*.tmp` skipped)."""
    return [
        name
        for name in location.list_names(location.join(raw_dir, "segments"))
        if name.endswith(".jsonl") and not name.startswith(".")
    ]


def record_names(raw_dir: Location) -> list[str]:
    """The ids of every record: record files and the lines of every segment (all read)."""
    ids = record_file_names(raw_dir)
    seen = set(ids)
    for record in read_segments(raw_dir, segment_names(raw_dir)):
        if record.record_id not in seen:
            seen.add(record.record_id)
            ids.append(record.record_id)
    return ids


def record_ids(raw_dir: Location) -> set[str]:
    """Every record id in the archive: record file names and the ids of the segments'
    lines (read by pyarrow's JSON reader, not validated: see `page_summary`)."""
    ids = set(record_file_names(raw_dir))
    for table in _segment_summaries(raw_dir):
        ids.update(table.column("record_id").to_pylist())
    return ids


def archive_ids(raw_dir: Location) -> set[str]:
    """Every id a release may name for this archive: record file names, segment records'
    ids and the ids a bad segment line is published under (`parse_segment`)."""
    ids = {name.removesuffix(".json") for name in
           location.list_names(location.join(raw_dir, "records"))}  # fmt: skip
    names = segment_names(raw_dir)
    for start in range(0, len(names), SEGMENT_READ_CHUNK):
        chunk = names[start : start + SEGMENT_READ_CHUNK]
        paths = [segment_path(raw_dir, name) for name in chunk]
        for name, data in zip(chunk, location.read_many(paths), strict=True):
            stem = name.removesuffix(".jsonl")
            ids.update((stem, f"{stem}-more"))
            if isinstance(data, Exception):
                continue
            ids.update(_segment_summary(name, data).column("record_id").to_pylist())
            ids.update(f"{stem}-L{number}" for number in range(1, data.count(b"\n") + 2))
    return ids


def sort_key(record: SnapshotRecord) -> tuple[str, str, str]:
    """The archive's stable order of records: capture time as written, URL, id."""
    return (record.captured_at or "", record.url, record.record_id)


def sort_records(records: list[SnapshotRecord]) -> list[SnapshotRecord]:
    """`records` sorted in place into the archive's stable order (`sort_key`)."""
    records.sort(key=sort_key)
    return records


def read_records(
    raw_dir: Location, names: list[str], bad: list[BadRecord] | None = None
) -> list[SnapshotRecord]:
    """The records of the given record files (ids), in a stable order (capture time, URL,
    id).

    A record that cannot be read (see `read_record`), or whose id differs from its file
    name, is not fatal: it is appended to `bad` with its path and reason. On an object
    store the record files are read concurrently.
    """
    paths = [record_path(raw_dir, name) for name in names]
    records = []
    for name, path, data in zip(names, paths, location.read_many(paths), strict=True):
        try:
            check_record_id(name, "file name")
            if isinstance(data, Exception):
                raise data
            record = parse_record(data)
            if record.record_id != name:
                raise ValueError(f"record_id {show(record.record_id)} differs from its file name")
            records.append(record)
        except (OSError, ValueError) as error:
            if bad is not None:
                bad.append(_bad_record(path, error, data))
    return sort_records(records)


def parse_segment(
    raw_dir: Location, name: str, data: bytes | Exception, bad: list[BadRecord] | None = None
) -> list[SnapshotRecord]:
    """The records of one segment file's bytes, in line order; a record id repeated in the
    segment is kept once. A line that is not a valid record is not fatal: it goes to `bad`
    named by the segment's path and line number (the first `MAX_BAD_LINES_SHOWN`, then
    one entry counting the rest), like a bad record file."""
    path = segment_path(raw_dir, name)
    stem = name.removesuffix(".jsonl")
    if isinstance(data, Exception):
        if bad is not None:
            found = _bad_record(path, data, b"")
            bad.append(BadRecord(path, stem, None, found.reason, name))
        return []
    records: list[SnapshotRecord] = []
    seen: set[str] = set()
    failed: list[BadRecord] = []
    now = datetime.now(UTC)  # one clock reading per segment, not per line
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = parse_record(line, name, now)
        except ValueError as error:
            found = _bad_record(path, error, line)
            failed.append(BadRecord(path, f"{stem}-L{number}", found.url,
                                    f"unreadable record {shown_path(path)} line {number}: "
                                    f"{error}", name))  # fmt: skip
            continue
        if record.record_id not in seen:
            seen.add(record.record_id)
            records.append(record)
    if bad is not None and failed:
        bad.extend(failed[:MAX_BAD_LINES_SHOWN])
        if len(failed) > MAX_BAD_LINES_SHOWN:
            rest = len(failed) - MAX_BAD_LINES_SHOWN
            bad.append(BadRecord(path, f"{stem}-more", None,
                                 f"unreadable record {shown_path(path)}: {rest} more bad lines "
                                 f"(oj verify names each)", name))  # fmt: skip
    return records


#: A record's fields as `segment_table` reads them, with `captured_moment` (`captured_at`
#: as a time, what `SnapshotRecord.captured_datetime` gives) and `raw_segment`.
RECORD_FIELD_NAMES = tuple(f.name for f in fields(SnapshotRecord) if f.name != "raw_segment")
RECORD_JSON = pa.schema(
    [(name, pa.int64() if name in INT_RANGES else pa.string()) for name in RECORD_FIELD_NAMES]
)
RECORDS = pa.schema(
    [*RECORD_JSON, ("captured_moment", pa.timestamp("us", tz="UTC")), ("raw_segment", pa.string())]
)
#: The times `segment_table` hands to Arrow's cast: ISO 8601 with seconds, at most six
#: digits of fraction and a zone, every part in range (Arrow's cast refuses a 30 February;
#: Python's `fromisoformat` reads the same instants). Any other form, even one
#: `check_record` accepts, sends the segment to the record-by-record path.
_ARROW_TIME = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
# Two JSON values on one line ("{...} {...}"), or a line of nothing but whitespace: the
# record-by-record path reads these otherwise than Arrow's reader (a bad line; skipped).
# Each opens with a literal, which `re` scans for: one alternation opening with `^|\n`
# was tried at every byte (0.8 s of 1.7 s planning 150,000 captures).
_TWO_OBJECTS = re.compile(rb"\}[ \t\r\f\v]*\{")
_BLANK_LINE = re.compile(rb"\n[ \t\r\f\v]*(?:\n|\Z)")
_FIRST_LINE_BLANK = re.compile(rb"[ \t\r\f\v]*(?:\n|\Z)")


def segment_table(name: str, data: bytes, now: datetime | None = None) -> pa.Table | None:
    """The records of one segment file's bytes as a `RECORDS` table, read by pyarrow's
    JSON reader and checked column by column; None when any line needs `parse_segment`.

    `parse_segment` reads a line at a time in Python (JSON, `check_record`, a
    `SnapshotRecord`): ~17 µs a record, 17 s of planning a first run over 1,000,000
    captures. Here every check of `check_record` is made on whole columns (the URLs and
    municipalities on their distinct values, with the same functions), and the segment is
    taken only when every line passes every check in a form both paths read alike: one
    JSON object a line, no \\u escape (Python's `json` reads a lone surrogate) and no
    byte-order mark, no record id twice, every time in `_ARROW_TIME`'s form. A segment
    with anything else is read by `parse_segment`, which names each bad line: this path
    never decides that a line is bad, so both paths give the same records or this one
    gives none.
    tests/test_segment_table.py holds the two paths to the same records."""
    import pyarrow.json as pj

    # No copy of the segment's ~4.5 MB is made (a slice without its last newline, a
    # decoded str to check the UTF-8): the searches stop before that newline (`end`).
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    # A byte-order mark: Arrow's reader skips one at the start, `json.loads` refuses it.
    if end <= 0 or data.find(b"\\u", 0, end) >= 0 or data.find(b"\xef\xbb\xbf", 0, end) >= 0:
        return None
    if (
        _TWO_OBJECTS.search(data, 0, end)
        or _BLANK_LINE.search(data, 0, end)
        or _FIRST_LINE_BLANK.match(data, 0, end)
    ):
        return None
    buffer = pa.py_buffer(data)
    if not _valid_utf8(buffer):  # what `parse_record` refuses; Arrow's reader may not
        return None
    try:
        options = pj.ParseOptions(explicit_schema=RECORD_JSON, unexpected_field_behavior="ignore")
        table = pj.read_json(pa.BufferReader(buffer), parse_options=options)
    except (pa.ArrowInvalid, ValueError):
        return None
    if table.num_rows != data.count(b"\n", 0, end) + 1:
        return None
    moments = _captured_moments(table, now)
    if moments is None:
        return None
    segment = pa.array([name] * table.num_rows, pa.string())
    return table.append_column(RECORDS.field("captured_moment"), moments).append_column(
        RECORDS.field("raw_segment"), segment
    )


def _valid_utf8(buffer: pa.Buffer) -> bool:
    """Whether the bytes are UTF-8 as Python's codec reads it (no surrogates, no overlong
    forms), checked by Arrow's string validation: no decoded copy (2 ms and 4.5 MB of
    str a segment, against 0.3 ms). Arrow's JSON reader does not check the bytes of a
    key it ignores; `parse_record` refuses such a line."""
    kind = pa.large_string() if buffer.size >= 2**31 else pa.string()
    offsets = pa.array([0, buffer.size], pa.int64() if kind == pa.large_string() else pa.int32())
    try:
        pa.Array.from_buffers(kind, 1, [None, offsets.buffers()[1], buffer]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _moments(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Times of `_ARROW_TIME`'s form as UTC instants (ArrowInvalid for anything else)."""
    if column.null_count < len(column):
        valid = column.drop_null()
        if not pc.all(pc.match_substring_regex(valid, _ARROW_TIME)).as_py():
            raise ValueError("a time not in the form Arrow's cast reads")
    return column.cast(pa.timestamp("us", tz="UTC"))


def _captured_moments(table: pa.Table, now: datetime | None) -> pa.ChunkedArray | None:
    """Every check of `check_record` on whole columns: when every row passes, its
    `captured_at` as UTC instants (what `SnapshotRecord.captured_datetime` gives); None
    when a row fails one."""
    column = table.column
    for key in ("record_id", "sha256", "url", "source"):
        if column(key).null_count:
            return None
    ids = column("record_id")
    if (
        pc.max(pc.utf8_length(ids)).as_py() > MAX_RECORD_ID_LENGTH
        or not pc.all(pc.match_substring_regex(ids, f"^{_RECORD_ID.pattern}$")).as_py()
        or pc.count_distinct(ids).as_py() != len(ids)  # parse_segment keeps the first
        or not pc.all(pc.is_in(column("source"), pa.array(SOURCES))).as_py()
        or not pc.all(pc.match_substring_regex(column("sha256"), f"^{SHA256_PATTERN}$")).as_py()
    ):
        return None
    latest = (now or datetime.now(UTC)) + timedelta(days=1)
    times = {}
    try:
        for key in ("captured_at", "fetched_at"):
            times[key] = moments = _moments(column(key))
            if moments.null_count < len(moments):
                low, high = pc.min_max(moments).values()
                if low.as_py() < EARLIEST_TIME or high.as_py() > latest:
                    return None
        for key in ("url", "final_url"):
            for url in pc.unique(column(key)).to_pylist():
                if url is not None and (check_url(url) != url or url != url.strip()):
                    return None
        for municipality in pc.unique(column("municipality")).to_pylist():
            if municipality is not None and (
                _has_control(municipality) or not municipality.strip()
            ):
                return None
    except (pa.ArrowInvalid, ValueError, OverflowError):
        return None
    for key, (low, high) in INT_RANGES.items():
        values = column(key)
        if values.null_count < len(values):
            least, most = pc.min_max(values).values()
            if least.as_py() < low or most.as_py() > high:
                return None
    for key, limit in STRING_LIMITS.items():
        values = column(key)
        if values.null_count < len(values) and pc.max(pc.utf8_length(values)).as_py() > limit:
            return None
    return times["captured_at"]


def records_table(records: list[SnapshotRecord]) -> pa.Table:
    """Records as a `RECORDS` table (`segment_table`'s form)."""
    columns: dict[str, list[Any]] = {name: [] for name in RECORD_FIELD_NAMES}
    for name, values in columns.items():
        values.extend(getattr(record, name) for record in records)
    return pa.table(
        {**columns, "captured_moment": [record.captured_datetime for record in records],
         "raw_segment": [record.raw_segment for record in records]},
        schema=RECORDS,
    )  # fmt: skip


def table_records(table: pa.Table) -> list[SnapshotRecord]:
    """A `RECORDS` table's rows as records (`records_table` the other way)."""
    records = []
    for row in table.select([*RECORD_FIELD_NAMES, "raw_segment"]).to_pylist():
        segment = row.pop("raw_segment")
        records.append(SnapshotRecord.from_dict(row, segment))
    return records


#: Segment files read at once (concurrent GETs on an object store, bounded memory).
SEGMENT_READ_CHUNK = 16


def read_segments(
    raw_dir: Location, names: list[str], bad: list[BadRecord] | None = None
) -> list[SnapshotRecord]:
    """The records of the given segment files, in a stable order (see `read_records`)."""
    records: list[SnapshotRecord] = []
    for start in range(0, len(names), SEGMENT_READ_CHUNK):
        chunk = names[start : start + SEGMENT_READ_CHUNK]
        paths = [segment_path(raw_dir, name) for name in chunk]
        for name, data in zip(chunk, location.read_many(paths), strict=True):
            records.extend(parse_segment(raw_dir, name, data, bad))
    return sort_records(records)


def read_all(raw_dir: Location, bad: list[BadRecord] | None = None) -> list[SnapshotRecord]:
    """Every readable record, record files and segments, in a stable order; a capture
    found in both (or in two segments) once, the first read kept."""
    records = read_records(raw_dir, record_file_names(raw_dir), bad)
    seen = {record.record_id for record in records}
    for record in read_segments(raw_dir, segment_names(raw_dir), bad):
        if record.record_id not in seen:
            seen.add(record.record_id)
            records.append(record)
    return sort_records(records)


class PublishedIds:
    """The snapshot ids a release published, kept as the Arrow column the planning read.

    A nightly checks a few new ids against them; at 1,000,000 captures turning the column
    into a Python set took 0.3-0.5 s of a nightly whose flow time must stay under 2 s.
    `unpublished` checks a list of ids at once with one scan of the column against a
    hash of the (few) ids; after `_SCANS_BEFORE_SET` scans, or for a single id (`in`),
    the Python set is built once and kept.
    """

    _SCANS_BEFORE_SET = 8

    def __init__(self, column: pa.ChunkedArray | pa.Array) -> None:
        self.column = column
        self._set: set[str] | None = None
        self._scans = 0

    def __len__(self) -> int:
        return len(self.column)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._as_set()

    def _as_set(self) -> set[str]:
        if self._set is None:
            self._set = set(self.column.to_pylist())
        return self._set

    def unpublished(self, ids: list[str]) -> list[bool]:
        """For each id, whether it is not among the published ones."""
        if not ids or not len(self.column):
            return [True] * len(ids)
        if self._set is None and self._scans < self._SCANS_BEFORE_SET and len(ids) < 100_000:
            self._scans += 1
            hit = pc.is_in(self.column, value_set=pa.array(ids, pa.string()))
            found = set(self.column.filter(hit).to_pylist())
        else:
            found = self._as_set()
        return [record_id not in found for record_id in ids]


def unpublished(ids: list[str], published: set[str] | frozenset[str] | PublishedIds) -> list[bool]:
    """For each id, whether it is not in `published` (a set, or a `PublishedIds`)."""
    if isinstance(published, PublishedIds):
        return published.unpublished(ids)
    return [record_id not in published for record_id in ids]


def iter_new(
    raw_dir: Location,
    published: set[str] | frozenset[str] | PublishedIds = frozenset(),
    consumed_segments: set[str] | frozenset[str] = frozenset(),
    bad: list[BadRecord] | None = None,
    record_files: list[str] | None = None,
) -> Iterator[list[SnapshotRecord]]:
    """`read_new`'s records a file at a time, as read: the record files' first (one list),
    then each segment's not in `consumed_segments`, in name order; ids in `published`
    left out. Neither sorted nor deduplicated across files (a record id repeated within
    a segment is kept once): the caller holds one file's records at a time, not the
    archive's (a million captures as records took ~540 MB)."""
    yield _new_record_files(raw_dir, published, bad, record_files)
    for name, data in _new_segments(raw_dir, consumed_segments):
        records = parse_segment(raw_dir, name, data, bad)
        if published:
            new = unpublished([record.record_id for record in records], published)
            records = [record for record, keep in zip(records, new, strict=True) if keep]
        yield records


def _new_record_files(
    raw_dir: Location,
    published: set[str] | frozenset[str] | PublishedIds,
    bad: list[BadRecord] | None,
    record_files: list[str] | None,
) -> list[SnapshotRecord]:
    """The records of the record files whose id is not in `published`."""
    names = record_file_names(raw_dir) if record_files is None else record_files
    new = unpublished(names, published)
    return read_records(raw_dir, [name for name, keep in zip(names, new, strict=True) if keep], bad)


def _new_segments(
    raw_dir: Location, consumed_segments: set[str] | frozenset[str]
) -> Iterator[tuple[str, bytes | Exception]]:
    """(name, bytes or the error reading them) of each segment not in
    `consumed_segments`, in name order, read SEGMENT_READ_CHUNK at a time."""
    names = [name for name in segment_names(raw_dir) if name not in consumed_segments]
    for start in range(0, len(names), SEGMENT_READ_CHUNK):
        chunk = names[start : start + SEGMENT_READ_CHUNK]
        paths = [segment_path(raw_dir, name) for name in chunk]
        yield from zip(chunk, location.read_many(paths), strict=True)


def iter_new_tables(
    raw_dir: Location,
    published: set[str] | frozenset[str] | PublishedIds = frozenset(),
    consumed_segments: set[str] | frozenset[str] = frozenset(),
    bad: list[BadRecord] | None = None,
    record_files: list[str] | None = None,
) -> Iterator[pa.Table]:
    """`iter_new`'s records as `RECORDS` tables, a file at a time: a segment every line of
    which passes `segment_table`'s column checks is never turned into records (a plan
    over a million captures holds ten thousand records, not a million); any other is
    read by `parse_segment`, its bad lines going to `bad` as there."""
    yield records_table(_new_record_files(raw_dir, published, bad, record_files))
    now = datetime.now(UTC)
    for name, data in _new_segments(raw_dir, consumed_segments):
        table = None if isinstance(data, Exception) else segment_table(name, data, now)
        if table is None:
            table = records_table(parse_segment(raw_dir, name, data, bad))
        if published and table.num_rows:
            ids = table.column("record_id").to_pylist()
            table = table.filter(pa.array(unpublished(ids, published), pa.bool_()))
        yield table


def read_new(
    raw_dir: Location,
    published: set[str] | PublishedIds,
    consumed_segments: set[str],
    bad: list[BadRecord] | None = None,
    record_files: list[str] | None = None,
) -> list[SnapshotRecord]:
    """The records a release has not consumed, in a stable order: record files whose id is
    not in `published` and every record of a segment not in `consumed_segments` (the
    distinct `pages.raw_segment` of the release) whose id is not in `published`.

    Reads one listing of segments/ and one of records/ (`record_files` when listed
    already), then only the new files: a run with nothing new reads no record. A segment
    written while this runs is not consumed by this run's release, so the next run reads
    it (a set comparison, no time watermark)."""
    records: list[SnapshotRecord] = []
    seen: set[str] = set()  # `published` is not copied: 10**6 ids
    for chunk in iter_new(raw_dir, published, consumed_segments, bad, record_files):
        for record in chunk:
            if record.record_id not in seen:
                seen.add(record.record_id)
                records.append(record)
    return sort_records(records)


def iter_records(raw_dir: Location, bad: list[BadRecord] | None = None) -> Iterator[SnapshotRecord]:
    """Every readable record in the archive, in a stable order (capture time, then id);
    unreadable ones go to `bad` (see `read_records`, `parse_segment`)."""
    return iter(read_all(raw_dir, bad))


def _bad_record(path: Location, error: Exception, data: bytes | Exception) -> BadRecord:
    url = None
    try:
        candidate = json.loads(data).get("url")  # type: ignore[arg-type]
        url = check_url(candidate)
    except (TypeError, ValueError, AttributeError):
        pass
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    if isinstance(error, FileNotFoundError) and not reason:
        reason = "no such file"
    stem = location.name_of(path).removesuffix(".json")
    return BadRecord(path, stem, url, f"unreadable record {shown_path(path)}: {reason}")


def shown_path(path: Location) -> str:
    """A record file's path for a message: whole when its name is a valid record id, else
    with the name escaped and shortened (file names may hold newlines and 255 bytes)."""
    text = str(path)
    name = location.name_of(path)
    try:
        check_record_id(name.removesuffix(".json"))
    except ValueError:
        return text[: len(text) - len(name)] + show(name, 40)
    return text


#: The record fields the fetch planning needs (`page_summary`).
_SUMMARY_FIELDS = ("record_id", "url", "source", "captured_at", "etag", "last_modified", "sha256")


def _segment_summary(name: str, data: bytes) -> pa.Table:
    """`_SUMMARY_FIELDS` of one segment's lines as a table: pyarrow's JSON reader (~0.3 s
    per 100,000 lines here, against ~2 s for validating each record in Python); a segment
    it cannot read that way (a bad line) is read line by line, its bad lines left out."""
    import io

    import pyarrow.json as pj

    schema = pa.schema([(key, pa.string()) for key in _SUMMARY_FIELDS])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pj.read_json(io.BytesIO(data), parse_options=options)
        if table.column("record_id").null_count == 0:
            return table
    except (pa.ArrowInvalid, ValueError):
        pass
    records = parse_segment("", name, data)
    return pa.table({key: pa.array([getattr(r, key) for r in records], pa.string())
                     for key in _SUMMARY_FIELDS})  # fmt: skip


def page_summary(raw_dir: Location, source: str) -> Iterator[pa.Table]:
    """`_SUMMARY_FIELDS` of the readable records of one source (record files and
    segments), a table per file or segment, in no particular order: what fetching needs
    to skip known captures, read one segment at a time (one GET each on a bucket, never
    one per capture)."""
    files = [r for r in read_records(raw_dir, record_file_names(raw_dir)) if r.source == source]
    if files:
        yield pa.table({key: pa.array([getattr(r, key) for r in files], pa.string())
                        for key in _SUMMARY_FIELDS})  # fmt: skip
    for table in _segment_summaries(raw_dir):
        yield table.filter(pc.equal(table.column("source"), source))


def _segment_summaries(raw_dir: Location) -> Iterator[pa.Table]:
    """`_segment_summary` of each readable segment, a chunk of segments at a time."""
    names = segment_names(raw_dir)
    for start in range(0, len(names), SEGMENT_READ_CHUNK):
        chunk = names[start : start + SEGMENT_READ_CHUNK]
        paths = [segment_path(raw_dir, name) for name in chunk]
        for name, data in zip(chunk, location.read_many(paths), strict=True):
            if isinstance(data, Exception):
                continue  # planning names an unreadable segment; fetching goes on
            yield _segment_summary(name, data)


def latest_by_page(raw_dir: Location, source: str) -> dict[str, SnapshotRecord]:
    """The latest snapshot of each page from one source, keyed by `page_key(url)`: a
    record holding only the `_SUMMARY_FIELDS` (what a conditional GET needs)."""
    from flows.sources import page_key

    best: dict[str, dict] = {}
    keys: dict[str, str] = {}
    order = lambda row: (row["captured_at"] or "", row["url"], row["record_id"])  # noqa: E731
    for table in page_summary(raw_dir, source):
        for row in table.to_pylist():
            key = keys.get(row["url"]) or keys.setdefault(row["url"], page_key(row["url"]))
            if key not in best or order(row) > order(best[key]):
                best[key] = row
    return {
        key: SnapshotRecord(municipality=None, fetched_at=None, **row)  # type: ignore[arg-type]
        for key, row in best.items()
    }


def captures_by_page(raw_dir: Location, source: str) -> dict[str, set[str]]:
    """Capture times already archived per page (`page_key(url)`), for one source."""
    from flows.sources import page_key

    captures: dict[str, set[str]] = {}
    for table in page_summary(raw_dir, source):
        table = table.filter(pc.is_valid(table.column("captured_at")))
        # one group per distinct URL: page_key and the dict look-up once per page
        grouped = table.group_by("url").aggregate([("captured_at", "list")])
        urls, lists = grouped.column("url"), grouped.column("captured_at_list")
        for url, times in zip(urls.to_pylist(), lists.to_pylist(), strict=True):
            captures.setdefault(page_key(url), set()).update(times)
    return captures


def write_log(raw_dir: Location, label: str, data: bytes) -> Location:
    """Write one log file under raw/fetch-log/ (atomically; never overwrites one)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    path = location.join(raw_dir, "fetch-log", f"{safe}.jsonl")
    if location.exists(path):
        raise ArchiveError(f"{path}: a fetch log of that name exists already")
    location.write_bytes(path, data)
    return path


def find_record_for_file(path: Path) -> SnapshotRecord | None:
    """The first record of an object file given by path (so `oj parse raw/objects/..` knows
    the page's URL and municipality)."""
    path = Path(path).resolve()
    if path.parent.parent.name != "objects":
        return None
    raw_dir = path.parent.parent.parent
    for record in iter_records(raw_dir):
        if record.sha256 == path.name:
            return record
    return None
