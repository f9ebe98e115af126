"""The only module that writes `datasets/`: Delta Lake tables, releases, reading them back.

A *release* is one row of the `runs` table, written last; it records the Delta version
of every other table. Readers go through a release, so rows a crashed run committed to
`pages`/`findings`/`rejects` without reaching `runs` are invisible, and the next run
restores those tables to the last release before writing (`DeltaTable.restore`, itself a
Delta commit, so nothing is lost from the history).

One writer at a time: a run holds `writer_lock` (an exclusive lock file in the datasets
dir; on an object store a leased lock object, `flows.locking`) from planning to its
`runs` row, so two runs never race for a release number and a run never rolls back
another live run's commits. Readers never need the lock.

The datasets dir may be an object-store prefix (`s3://bucket/datasets`): delta-rs reads
and writes it through its own object store, configured by the standard environment
variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, keys; `AWS_ALLOW_HTTP=true` for plain http),
and commits with conditional PUTs, so no commit overwrites another.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, write_deltalake
from deltalake.exceptions import DeltaError
from filelock import FileLock, Timeout

from flows import history, location
from flows.errors import LockTimeout, StorageWriteError, UsageError, one_line
from flows.location import Location, parse_location
from flows.schemas import (
    DATA_TABLES,
    DERIVED_TABLES,
    FIXED_SETS,
    SCHEMA_VERSION,
    TABLES,
    VERSIONED_TABLES,
)

DEFAULT_DATASETS_DIR = Path("datasets")
#: Target size of a derived table's files (and of the data tables' compaction).
DERIVED_FILE_BYTES = 8 * 1024 * 1024
#: Derived tables a nightly replaces a few entities' or pages' rows of, in smaller files:
#: their rows are ordered by entity (`history.build_observations`) or by page
#: (`history.build_changes`), so the Delta delete of a nightly that touched one
#: municipality's page rewrites one or two of these files instead of the whole table.
#: Kept by the table's `delta.targetFileSize`, which the delete's rewrite follows too.
#: At 30,000 captures (94,255 observations, 5.5 MB): in one 8 MB file, a delete of 5
#: indicators of one entity copied 91,099 rows (0.6 s of CPU); in 47 files of 128 KB,
#: about 2,000 rows (0.03-0.1 s); 20 random entities' rows 0.33-0.48 s.
CLUSTERED_FILE_BYTES = {"observations": 128 * 1024, "changes": 128 * 1024}
#: A release compacts a table once it holds this many files under SMALL_FILE_BYTES (or
#: under half its clustered file size).
COMPACT_MIN_FILES = 100
SMALL_FILE_BYTES = 1024 * 1024


def file_bytes(name: str) -> int:
    """The target size of a table's files."""
    return CLUSTERED_FILE_BYTES.get(name, DERIVED_FILE_BYTES)


#: A checkpoint every this many commits of a table: opening a table replays its log from
#: the newest checkpoint, so without one the cost of every open grows with the age of
#: the archive (a nightly adds one to three commits per table; `findings` of a
#: 150,000-capture full run, 51 commits, opened in 30-50 ms, after a checkpoint in 7 ms,
#: and a release opens its tables about 70 times).
CHECKPOINT_EVERY = 10
#: Properties every table carries: set when it is created, added to an older table by the
#: next release (`ReleaseWriter._keep_table_properties`). Expired-log cleanup is off
#: because a release pins table versions: delta-rs otherwise deletes, after a commit, the
#: commit files older than 30 days up to the newest checkpoint, and a release pinned to
#: one of those versions can no longer be read ("No files in log segment": seen here
#: with 100 appends to a table whose log files were 40 days old). Every commit of
#: this module also passes `_KEEP_LOG`, for tables that predate the property.
TABLE_PROPERTIES = {
    "delta.checkpointInterval": str(CHECKPOINT_EVERY),
    "delta.enableExpiredLogCleanup": "false",
}
_KEEP_LOG = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)


def table_properties(name: str) -> dict[str, str]:
    """The Delta table properties of the table `name` (see `TABLE_PROPERTIES`)."""
    wanted = dict(TABLE_PROPERTIES)
    if name in CLUSTERED_FILE_BYTES:
        # so that deletes, which rewrite files, write files of the clustered size too
        wanted["delta.targetFileSize"] = str(file_bytes(name))
    return wanted


class SchemaError(ValueError):
    """Rows that do not match the declared schema of a table."""


class NoReleaseError(UsageError, LookupError):
    """The datasets folder has no release (yet), or not the one asked for: `oj` says so
    in one line and exits 2 (a usage error: the folder or release named is wrong)."""


def table_path(datasets_dir: Path | str, name: str) -> Location:
    """A table's Delta folder: a Path, or a URL on an object store."""
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
    return location.join(parse_location(datasets_dir), name)


def _is_table(path: Location) -> bool:
    return DeltaTable.is_deltatable(str(path))


# --- one writer at a time ------------------------------------------------------------------

#: The lock file a writing run holds, inside the datasets dir.
LOCK_FILE = ".oj-write.lock"


class HeldLock:
    """What `writer_lock` yields: `check()` before a release commit raises if the lock
    was lost meanwhile (only possible on an object store, see `flows.locking`)."""

    def __init__(self, lease: Any = None) -> None:
        self._lease = lease

    def check(self) -> None:
        if self._lease is not None:
            self._lease.check()


@contextmanager
def writer_lock(
    datasets_dir: Path | str, timeout: float, on_wait: Callable[[str], None] | None = None
) -> Iterator[HeldLock]:
    """Hold the datasets dir's exclusive write lock; wait up to `timeout` seconds for it.

    Locally an OS file lock (flock through `filelock`): the kernel releases it when the
    holder dies, SIGKILL included, so a crashed run never leaves the store locked. On an
    object store a lock object created by conditional PUT and held as a lease
    (`flows.locking.ObjectStoreLock`): a killed holder's lease expires.
    """
    where = parse_location(datasets_dir)
    if location.is_remote(where):
        from flows.locking import ObjectStoreLock

        lease = ObjectStoreLock(str(where))
        lease.acquire(timeout, on_wait)
        try:
            yield HeldLock(lease)
        finally:
            lease.release()
        return
    path = Path(where)
    if path.exists() and not path.is_dir():
        raise StorageWriteError(f"cannot write {path}: it is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if timeout <= 0:  # never "waiting up to 0 s": refuse, in one line
                raise LockTimeout(
                    f"another run holds the lock of {path} ({path / LOCK_FILE}); "
                    "--lock-timeout 0: not waiting, nothing was written"
                ) from None
            if on_wait is not None:
                on_wait(
                    f"another run is writing {path}: waiting up to {timeout:g} s for its lock "
                    f"({path / LOCK_FILE})"
                )
            try:
                lock.acquire(timeout=timeout)
            except Timeout:
                raise LockTimeout(
                    f"another run kept {path} locked for {timeout:g} s ({path / LOCK_FILE}); "
                    "nothing was written"
                ) from None
    except OSError as error:
        raise StorageWriteError(
            f"cannot write {path}: {_io_reason(error)}; the last release is intact"
        ) from None
    try:
        yield HeldLock()
    finally:
        lock.release()


def lock_holder(datasets_dir: Path | str) -> str | None:
    """Who holds the datasets dir's write lock now ("pid 1234"; on an object store the
    lock's owner, "host:pid:id"), or None when it is free. A look without waiting and
    without creating anything: `oj run --lock-timeout 0` decides with it before starting
    a Prefect server (that took ~11 s only to exit 75 afterwards)."""
    where = parse_location(datasets_dir)
    if location.is_remote(where):
        from flows.locking import ObjectStoreLock

        held = ObjectStoreLock(str(where)).holder()
        if held is None or held["expires"] <= datetime.now(UTC):
            return None  # free, or a dead holder's expired lease: a run may take it over
        return f"owner {held.get('owner', 'unknown')}"
    path = Path(where) / LOCK_FILE
    if not path.is_file():
        return None
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid = _flock_pid(path)
        return f"pid {pid}" if pid is not None else "pid unknown"
    except OSError:
        return None  # unreadable: the run itself says why, in one line, when it locks
    lock.release()
    return None


def _flock_pid(path: Path) -> int | None:
    """The pid holding an flock on `path`, from Linux's /proc/locks (lines such as
    "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": device major:minor in hex, inode);
    None elsewhere. The lock file holds no pid: filelock truncates it on every open."""
    try:
        stat = path.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    flocks = [line.split() for line in lines if " FLOCK " in line]
    holders = [f[4] for f in flocks if len(f) > 5 and f[5] == device]
    # An overlay file system reports its own device for the file, and the lower one here.
    holders = holders or [f[4] for f in flocks if len(f) > 5 and f[5].endswith(f":{stat.st_ino}")]
    return int(holders[0]) if len(set(holders)) == 1 else None


def _io_reason(error: BaseException) -> str:
    """The operating system's reason when a Delta error wraps one: a full disk reads
    "Failed to parse parquet: External: Generic LocalFileSystem error: ... (os error 28)"."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    found = re.search(r"\(os error (\d+)\)", text)
    if found:
        return os.strerror(int(found.group(1)))
    return one_line(error) or type(error).__name__


@contextmanager
def _writing(path: Location, base: dict[str, Any] | None) -> Iterator[None]:
    """Turn an IO failure of a write into one line that says the last release is intact
    (nothing is visible to readers before the `runs` row is written)."""
    try:
        yield
    except (OSError, DeltaError) as error:
        last = f"release {base['release']}" if base else "no release yet"
        reason = _io_reason(error)
        raise StorageWriteError(
            f"cannot write {path}: {reason}; the last release ({last}) is intact"
        ) from error


# --- schema enforcement ---------------------------------------------------------------------


def build_table(name: str, rows: Mapping[str, list[Any]]) -> pa.Table:
    """Columns -> an Arrow table of the declared schema; raises SchemaError on any mismatch.

    Arrow refuses a wrong type here ("7" for an int32), which the Delta writer would
    otherwise cast silently on append.
    """
    schema = TABLES[name]
    missing = set(schema.names) - set(rows)
    extra = set(rows) - set(schema.names)
    if missing or extra:
        raise SchemaError(f"{name}: missing columns {sorted(missing)}, unknown {sorted(extra)}")
    try:
        table = pa.table({field.name: rows[field.name] for field in schema}, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise SchemaError(f"{name}: {error}") from error
    validate(name, table)
    return table


def validate(name: str, table: pa.Table) -> None:
    """Check types, non-null columns and fixed sets against the declared schema."""
    schema = TABLES[name]
    if not table.schema.equals(schema, check_metadata=False):
        raise SchemaError(f"{name}: schema differs from the declaration:\n{table.schema}")
    for field in schema:
        column = table.column(field.name)
        if not field.nullable and column.null_count:
            raise SchemaError(f"{name}.{field.name}: {column.null_count} null values")
    for (table_name, column_name), allowed in FIXED_SETS.items():
        if table_name != name or not table.num_rows:
            continue
        column = table.column(column_name)
        allowed_or_null = pc.or_(pc.is_null(column), pc.is_in(column, pa.array(allowed)))
        bad = pc.filter(column, pc.invert(allowed_or_null))
        if len(bad):
            raise SchemaError(f"{name}.{column_name}: {bad[0].as_py()!r} is not one of {allowed}")


# --- releases -------------------------------------------------------------------------------


def releases(datasets_dir: Path | str = DEFAULT_DATASETS_DIR) -> pd.DataFrame:
    """All releases, oldest first (the `runs` table, one row per release: see
    `_released_runs`)."""
    path = table_path(datasets_dir, "runs")
    if not _is_table(path):
        return _to_pandas(TABLES["runs"].empty_table())
    return _to_pandas(_released_runs(path)).sort_values("release", ignore_index=True)


def _released_runs(path: Location, columns: list[str] | None = None) -> pa.Table:
    """The `runs` rows that are releases: of two rows with one release number, the one
    committed first.

    A run paused (SIGSTOP, a long GC pause) between its last lease check and its `runs`
    append appends its row when it resumes, after the run that took the lock over may
    have published that release number itself. The row committed first is the release;
    a later row of the same number is a run that did not hold the lease then, and is
    ignored (`ReleaseWriter._commit` exits 74 for it). Delta's history says which came
    first (each commit carries its run's `oj_run_id`); it is read only when a number is
    there twice."""
    table = DeltaTable(str(path))
    data = table.to_pyarrow_table()
    numbers = data.column("release").to_pylist()
    if len(numbers) != len(set(numbers)):
        committed: dict[str, int] = {}
        for entry in table.history():
            run_id = entry.get("oj_run_id")
            if run_id is not None:
                committed[run_id] = min(committed.get(run_id, 1 << 62), int(entry["version"]))
        order = [committed.get(run_id, 1 << 62) for run_id in data.column("run_id").to_pylist()]
        first: dict[int, int] = {}
        for row, (number, at) in enumerate(zip(numbers, order, strict=True)):
            if number not in first or at < order[first[number]]:
                first[number] = row
        data = data.take(sorted(first.values()))
    return data.select(columns) if columns is not None else data


def find_release(
    datasets_dir: Path | str = DEFAULT_DATASETS_DIR, release: int | None = None
) -> dict[str, Any] | None:
    """One release as a dict (the latest when `release` is None); None if there is none.
    For the pipeline, where "no release yet" is the normal first run; readers use
    `get_release`, which says why in one line."""
    runs = releases(datasets_dir)
    if runs.empty:
        return None
    if release is None:
        row = runs.iloc[-1]
    else:
        match = runs[runs["release"] == release]
        if match.empty:
            return None
        row = match.iloc[0]
    return {key: (None if pd.isna(value) else value) for key, value in row.items()} | {
        "release": int(row["release"])
    }


def get_release(
    datasets_dir: Path | str = DEFAULT_DATASETS_DIR, release: int | None = None
) -> dict[str, Any]:
    """One release as a dict (the latest when `release` is None).

    Raises NoReleaseError (one line naming the folder, the release asked for and the
    releases there are) when there is no such release: returning None made the README's
    `get_release(...)["findings_version"]` fail with "'NoneType' object is not
    subscriptable", which names neither the folder nor the release.
    """
    found = find_release(datasets_dir, release)
    if found is not None:
        return found
    where = parse_location(datasets_dir)
    if not location.is_remote(where) and not Path(where).is_dir():
        wanted = "no release yet" if release is None else f"no release {release}"
        raise NoReleaseError(f"{datasets_dir}: no such folder, so {wanted}")
    numbers = [int(n) for n in releases(datasets_dir)["release"]]
    if not numbers:
        if release is None:
            raise NoReleaseError(f"{datasets_dir}: no release yet (run `oj run` first)")
        raise NoReleaseError(
            f"{datasets_dir}: there is no release {release} (no release yet: run `oj run` first)"
        )
    raise NoReleaseError(
        f"{datasets_dir}: there is no release {release} (releases: {_ranges(numbers)})"
    )


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5": a store's releases in a short line."""
    spans: list[list[int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def load_arrow(
    name: str,
    release: int | None = None,
    datasets_dir: Path | str = DEFAULT_DATASETS_DIR,
    columns: list[str] | None = None,
) -> pa.Table:
    """A table as of a release (default: the latest), as Arrow."""
    found = get_release(datasets_dir, release)
    path = table_path(datasets_dir, name)
    if name == "runs":
        table = _released_runs(path, columns)
        return table.filter(pc.field("release") <= found["release"]).sort_by("release")
    version = int(found[f"{name}_version"])
    return DeltaTable(str(path), version=version).to_pyarrow_table(columns=columns)


def load_table(
    name: str,
    release: int | None = None,
    datasets_dir: Path | str = DEFAULT_DATASETS_DIR,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """A table as of a release (default: the latest), as pandas, for notebooks.

    Reads through the release's Delta version, never the folder's Parquet files
    (`pd.read_parquet("datasets/findings")` also returns rows of superseded files).
    Integer columns keep nulls (pandas nullable Int dtypes).
    """
    return _to_pandas(load_arrow(name, release, datasets_dir, columns))


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    mapping = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}
    return table.to_pandas(types_mapper=mapping.get)


def _release_metadata(name: str, found: Mapping[str, Any]) -> dict[str, str]:
    """What a plain Parquet file of a table says about where it comes from: the table, the
    release, the parser and the Delta version, so a citation can name exactly its data."""
    metadata = {
        "oppna_jamforelser.table": name,
        "oppna_jamforelser.release": str(found["release"]),
        "oppna_jamforelser.parser_version": str(found["parser_version"]),
    }
    if name != "runs":  # runs is read as "rows up to this release", not by version
        metadata["oppna_jamforelser.delta_version"] = str(found[f"{name}_version"])
    return metadata


#: Rows gathered before a plain Parquet file gets a row group: the Delta files' batches
#: are small (a 150,000-capture `changes` part came as ~160 batches), and one row group
#: per batch made files of hundreds of tiny row groups, slower to write and to read.
ROW_GROUP_ROWS = 64 * 1024


def _write_batches(schema: pa.Schema, batches: Any, out: Any) -> int:
    """Write record batches as one plain Parquet file with the declared schema (types and
    field descriptions), in row groups of up to ROW_GROUP_ROWS; its row count.
    `out`: a local path or an open binary file."""
    rows = gathered_rows = 0
    gathered: list[pa.RecordBatch] = []
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:

        def flush() -> None:
            if gathered:
                table = pa.Table.from_batches(gathered).cast(schema)  # declared types
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                gathered.clear()

        for batch in batches:
            gathered.append(batch)
            rows += batch.num_rows
            gathered_rows += batch.num_rows
            if gathered_rows >= ROW_GROUP_ROWS:
                flush()
                gathered_rows = 0
        flush()
    return rows


def _read_in_sequence(scannable: Any, **options: Any) -> Any:
    # One batch at a time, read on this thread: the default read-ahead (16 batches of 4
    # files, decoded by a thread pool) held up to 200 MB of `pages` at 1,000,000
    # captures, the peak of a first run; read in sequence, 25 MB and no slower (the
    # writer's compression is the slow part).
    return scannable.to_batches(batch_readahead=0, use_threads=False, **options)


def _write_parquet(name: str, found: Mapping[str, Any], datasets_dir: Path | str, out: Any) -> int:
    """One plain Parquet file of a table as of a release, streamed batch by batch (never
    the whole table in memory); its row count. Field descriptions travel with the schema.
    `out`: a local path or an open binary file."""
    schema = TABLES[name].with_metadata(_release_metadata(name, found))
    if name == "runs":
        batches = load_arrow("runs", found["release"], datasets_dir).cast(schema).to_batches()
    else:
        version = int(found[f"{name}_version"])
        dataset = DeltaTable(str(table_path(datasets_dir, name)), version=version)
        batches = _read_in_sequence(dataset.to_pyarrow_dataset(), fragment_readahead=0)
    return _write_batches(schema, batches, out)


def export_table(
    name: str,
    out: Path | str,
    release: int | None = None,
    datasets_dir: Path | str = DEFAULT_DATASETS_DIR,
) -> tuple[int, int]:
    """Write one plain Parquet file of a table as of a release; returns (release, rows).

    The file's metadata names the release and Delta version, so a citation can say
    exactly which data it used; field descriptions travel with the schema.
    """
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r} (tables: {', '.join(TABLES)})")
    found = get_release(datasets_dir, release)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return found["release"], _write_parquet(name, found, datasets_dir, out)


#: Plain Parquet copies of the latest release (see `publish_latest`): each table a folder
#: `latest/<table>.parquet/` of parts, which pandas, polars, pyarrow, DuckDB and Spark read
#: as one table by that name.
LATEST_DIR = "latest"
_LATEST_MARKER = "release.txt"
#: The manifest of `latest/`: its release, each table's folder and parts, and each part's
#: size and sha256; written last.
LATEST_MANIFEST = "release.json"
#: The layout `latest/release.json` describes. 2: a folder of parts per table, one part
#: per data file of the table's Delta version, so a release rewrites only the parts whose
#: Delta files changed. (1, or none: one file per table, rewritten whole by each release.)
LATEST_LAYOUT = 2
_PART_NAME = re.compile(r"part-[0-9a-f]{24}\.parquet")
#: A release's folder in a bucket's `latest/`: `<N>`, or `<N>.<k>` when a heal could not
#: reuse `<N>/`.
_RELEASE_FOLDER = re.compile(r"\d+(?:\.\d+)?")
#: A manifest's path of a table's folder: `<table>.parquet` on a folder, under a release
#: folder on an object store.
_TABLE_PATH = re.compile(rf"(?:({_RELEASE_FOLDER.pattern})/)?([a-z_]+)\.parquet")
#: A manifest's path of a part: its table's folder, then the part.
_PART_PATH = re.compile(rf"{_TABLE_PATH.pattern}/({_PART_NAME.pattern})")


def latest_published(datasets_dir: Path | str) -> int | None:
    """The release whose plain Parquet files `datasets/latest/` holds; None if none."""
    marker = location.join(parse_location(datasets_dir), LATEST_DIR, _LATEST_MARKER)
    try:
        return int(location.read_bytes(marker).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def latest_manifest(datasets_dir: Path | str) -> dict[str, Any] | None:
    """`latest/release.json`, or None when it is missing or unreadable:
    {"release": N, "layout": 2,
     "tables": {"<table>": {"path": "<table>.parquet", "rows": R, "parts": ["part-….parquet"]}},
     "files": {"<table>.parquet/<part>": {"path", "size", "sha256", "rows"}}}.

    `path` is under `latest/`: `<table>.parquet` on a local folder (swapped as a whole
    folder), `<N>/<table>.parquet` on an object store (one folder per release, see
    `publish_latest`)."""
    path = location.join(parse_location(datasets_dir), LATEST_DIR, LATEST_MANIFEST)
    try:
        manifest = json.loads(location.read_bytes(path))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    return manifest


def latest_table_path(datasets_dir: Path | str, name: str) -> str:
    """The folder of a table in `latest/` as `latest/release.json` names it:
    `datasets/latest/<table>.parquet` locally, `.../latest/<N>/<table>.parquet` in a bucket
    (one folder per release). Any Parquet reader reads it as the table."""
    manifest = latest_manifest(datasets_dir)
    table = ((manifest or {}).get("tables") or {}).get(name)
    named = table.get("path") if isinstance(table, dict) else None
    if not isinstance(named, str) or not _TABLE_PATH.fullmatch(named):
        raise NoReleaseError(
            f"{location.join(parse_location(datasets_dir), LATEST_DIR, LATEST_MANIFEST)}: "
            f"names no folder of {name!r} (run `oj run` to write latest/)"
        )
    return str(location.join(parse_location(datasets_dir), LATEST_DIR, *named.split("/")))


def _part_key(name: str, part: str) -> str:
    return f"{name}.parquet/{part}"


class _LatestCheck:
    """`latest/` against its manifest: `problems` (one line each, naming the file) and
    `good`, the parts whose bytes are as published ({key: (location, entry)}), which the
    next release reuses instead of writing them again."""

    def __init__(self, datasets_dir: Path | str, release: int | None, *, deep: bool = True) -> None:
        self.folder = location.join(parse_location(datasets_dir), LATEST_DIR)
        # On an object store, `deep=False` takes a part whose listed size and ETag match
        # the manifest's size and MD5 as it is, unread (one listing instead of a GET per
        # part: a run with nothing new at 1,000,000 captures read 283 parts, 4.3 s against
        # a local S3 server); an edit through the store changes the ETag. `oj verify`
        # reads every byte.
        self.deep = deep
        #: Every object under a bucket's `latest/` (size, ETag); empty on a local folder.
        self.listed = (
            location.find_sizes_and_etags(self.folder) if location.is_remote(self.folder) else {}
        )
        self.problems: list[str] = []
        self.good: dict[str, tuple[Location, dict[str, Any]]] = {}
        self.manifest = latest_manifest(datasets_dir)
        manifest_path = location.join(self.folder, LATEST_MANIFEST)
        if self.manifest is None:
            self.problems.append(f"{manifest_path}: missing or unreadable")
            return
        if self.manifest.get("layout") != LATEST_LAYOUT:
            self.problems.append(
                f"{manifest_path}: layout {self.manifest.get('layout', 1)}, not "
                f"{LATEST_LAYOUT} (a folder of parts per table)"
            )
            return
        if release is not None and self.manifest.get("release") != release:
            self.problems.append(
                f"{manifest_path}: holds release {self.manifest.get('release')}, "
                f"the latest release is {release}"
            )
        self._check_files()

    def _check_files(self) -> None:
        tables = self.manifest.get("tables")
        tables = tables if isinstance(tables, dict) else {}
        release = self.manifest.get("release")
        checks: list[tuple[Location, str, dict[str, Any]]] = []  # (file, key, entry)
        folders: dict[str, set[str]] = {}  # a table's folder -> the parts it must hold
        for name in TABLES:
            table = tables.get(name)
            named = table.get("path") if isinstance(table, dict) else None
            parts = table.get("parts") if isinstance(table, dict) else None
            if not isinstance(named, str) or not isinstance(parts, list) or not parts:
                self.problems.append(
                    f"{location.join(self.folder, LATEST_MANIFEST)}: names no parts of {name}"
                )
                continue
            expected: set[str] = set()
            for part in parts:
                key = _part_key(name, str(part))
                entry = self.manifest["files"].get(key)
                path = entry.get("path") if isinstance(entry, dict) else None
                found = _PART_PATH.fullmatch(path) if isinstance(path, str) else None
                if found is None or found.group(2) != name or f"{named}/{part}" != path:
                    # a path out of latest/ is never read
                    self.problems.append(
                        f"{location.join(self.folder, LATEST_MANIFEST)}: {key}: no valid path"
                    )
                    continue
                expected.add(str(part))
                checks.append((location.join(self.folder, *path.split("/")), key, entry))
            folders[named] = expected
        if not self.deep:
            unread = []
            for path, key, entry in checks:
                size, etag = self.listed.get(str(path), (None, ""))
                if entry.get("md5") and etag == entry["md5"] and size == entry.get("size"):
                    self.good[key] = (path, entry)
                else:
                    unread.append((path, key, entry))
            checks = unread
        datas = location.read_many([path for path, _, _ in checks])
        for (path, key, entry), data in zip(checks, datas, strict=True):
            if isinstance(data, Exception):
                self.problems.append(f"{path}: unreadable: {_io_reason(data)}")
            elif hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                self.problems.append(
                    f"{path}: differs from release {release} as published (sha256 recorded "
                    f"in {LATEST_MANIFEST})"
                )
            else:
                self.good[key] = (path, entry)
        for named, expected in folders.items():
            # A reader of the folder reads every file in it: one more is a wrong table.
            # Any depth: pyarrow reads a table folder's subfolders too.
            table_folder = location.join(self.folder, *named.split("/"))
            if location.is_remote(table_folder):
                inside = f"{str(table_folder).rstrip('/')}/"
                files = sorted(path for path in self.listed if path.startswith(inside))
            else:
                files = location.find_files(table_folder)
            for stray in files:
                if str(stray)[len(str(table_folder)) :].strip("/") not in expected:
                    self.problems.append(
                        f"{stray}: not a part of release {release} (a reader of {named} "
                        "reads it too)"
                    )


def latest_problems(
    datasets_dir: Path | str, release: int | None, *, deep: bool = True
) -> list[str]:
    """What differs between `latest/` and `release` (the latest release): one line each,
    naming the file. Every part the manifest names is hashed in full (sha256 ran at
    ~330 MB/s here), and a file in a table's folder that the manifest does not name is
    one too (every reader of the folder would read it). `deep=False`: on an object store
    a part whose listed size and ETag match its manifest entry is not read."""
    if release is None:
        return []
    return _LatestCheck(datasets_dir, release, deep=deep).problems


def _file_entry(
    path: str, size: int, sha256: str, rows: int, md5: str | None = None
) -> dict[str, Any]:
    """A manifest entry; `path` under `latest/`, with `/` between folder and file. `md5`:
    on an object store, what the object's ETag is (a single-part upload's)."""
    entry = {"path": path, "size": size, "sha256": sha256, "rows": rows}
    return entry | {"md5": md5} if md5 else entry


def _manifest_bytes(
    release: int, tables: Mapping[str, dict[str, Any]], files: Mapping[str, dict[str, Any]]
) -> bytes:
    manifest = {"release": release, "layout": LATEST_LAYOUT, "tables": dict(tables)}
    return (json.dumps(manifest | {"files": dict(files)}, indent=1) + "\n").encode()


def _part_metadata(name: str, source: str) -> dict[str, str]:
    """What a part of `latest/` says about where it comes from. Not the release: a part
    stays as it is while its Delta file is in the table, from release to release
    (`latest/release.json` names the release and every part of it)."""
    return {"oppna_jamforelser.table": name, "oppna_jamforelser.source": source}


class _Part(NamedTuple):
    """One part of a table in `latest/`: its file name, schema and rows (read when called)."""

    name: str
    schema: pa.Schema
    batches: Callable[[], Any]


def _latest_parts(name: str, found: Mapping[str, Any], datasets_dir: Path | str) -> list[_Part]:
    """A table's parts in `latest/`, in the table's order: one per data file of the
    table's Delta version, named by that file and the declared schema, so a part whose
    Delta file a release keeps is the same part, linked (or copied) instead of written.
    `runs` (a row per release) is one part; a table without rows is one empty part, so its
    folder still says its schema."""

    def part(source: str, batches: Callable[[], Any]) -> _Part:
        schema = TABLES[name].with_metadata(_part_metadata(name, source))
        fingerprint = hashlib.sha256(
            f"{LATEST_LAYOUT}\n{name}\n{source}\n".encode() + schema.serialize().to_pybytes()
        )
        return _Part(f"part-{fingerprint.hexdigest()[:24]}.parquet", schema, batches)

    if name == "runs":
        release = int(found["release"])
        return [part(f"runs of releases 1-{release}", lambda: load_arrow(
            "runs", release, datasets_dir).to_batches())]  # fmt: skip
    version = int(found[f"{name}_version"])
    dataset = DeltaTable(str(table_path(datasets_dir, name)), version=version).to_pyarrow_dataset()
    parts = [
        # the Delta file, relative to the datasets dir: the part's name stays when the
        # datasets dir moves
        part(f"{name}/{fragment.path}", lambda f=fragment: _read_in_sequence(
            f, schema=dataset.schema))  # fmt: skip
        for fragment in dataset.get_fragments()
    ]
    return parts or [part(f"{name}: no rows", lambda: iter(()))]


def _write_latest_tables(
    found: Mapping[str, Any],
    datasets_dir: Path | str,
    check: _LatestCheck,
    prefix: str,
    keep: Callable[[Location, str], None],
    write: Callable[[_Part, str], dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every table's parts, under `prefix` in `latest/` ("" on a folder, `<N>/` in a
    bucket); the manifest's `tables` and `files`. A part `check` found as published is
    kept (`keep(its location, path)`: linked or copied there); any other is written
    (`write(part, path)`: its manifest entry)."""
    tables: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {}
    for name in TABLES:
        parts, rows = [], 0
        for part in _latest_parts(name, found, datasets_dir):
            key = _part_key(name, part.name)
            path = f"{prefix}{key}"
            if key in check.good:
                at, kept = check.good[key]
                keep(at, path)
                figures = (kept["size"], kept["sha256"], kept["rows"], kept.get("md5"))
                entry = _file_entry(path, *figures)
            else:
                entry = write(part, path)
            files[key] = entry
            parts.append(part.name)
            rows += entry["rows"]
        tables[name] = {"path": f"{prefix}{name}.parquet", "rows": rows, "parts": parts}
    return tables, files


def _link_or_copy(source: Path, target: Path) -> None:
    """A part kept from the previous `latest/`: a hard link (no bytes written), or a copy
    where the file system has none."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def publish_latest(datasets_dir: Path | str = DEFAULT_DATASETS_DIR) -> int | None:
    """Write the latest release's tables as plain Parquet, `latest/<table>.parquet/`: a
    folder of parts per table, which `pd.read_parquet`, `pl.read_parquet`, DuckDB, Spark
    or R's `arrow::open_dataset` read as one table without knowing Delta (a Delta folder
    read as plain Parquet returns superseded rows too).

    Per changed part: a part is one data file of the table's Delta version, so a release
    writes only the parts of Delta files it added (a nightly's few pages, the clustered
    files of the entities it touched) and keeps the others, as published and hashed
    again before reuse, by a hard link (locally) or a server-side copy (bucket).

    Called under the writer lock once the release row is written. Returns the release
    written; None when `latest/` holds that release already, byte for byte (its manifest's
    sha256s): a run that crashed after its release row, or a `latest/` edited since, is
    healed by the next run.

    On a local folder the files are written to `latest.<N>.partial/` and swapped in by
    renaming folders (`latest` -> `latest.old-<N>`, the new folder -> `latest`), so a
    reader that opens files of `latest/` sees one release: files it holds open stay
    readable, and a file opened in the instant between the two renames is not found
    (ENOENT; open again). On an object store, where nothing renames, see
    `_publish_latest_remote`: one folder per release, `release.json` written last as the
    pointer.
    """
    found = find_release(datasets_dir, None)
    if found is None:
        return None
    check = _LatestCheck(datasets_dir, int(found["release"]), deep=False)
    if not check.problems:
        return None
    where = parse_location(datasets_dir)
    if location.is_remote(where):
        return _publish_latest_remote(str(where), found, check)
    release = int(found["release"])
    root = Path(where)
    folder = root / LATEST_DIR
    staging = root / f"{LATEST_DIR}.{release}.partial"
    old = root / f"{LATEST_DIR}.old-{release}"
    try:
        for leftover in (staging, old):  # a crashed run's: only this function writes them
            _remove_latest_copy(leftover)
        old = _free_name(old)  # `.1`, ... when a stray file kept the folder
        staging.mkdir(parents=True)
        for name in TABLES:
            (staging / f"{name}.parquet").mkdir()

        def keep(at: Location, path: str) -> None:
            _link_or_copy(Path(at), staging / path)

        def write(part: _Part, path: str) -> dict[str, Any]:
            target = staging / path
            n_rows = _write_batches(part.schema, part.batches(), target)
            with target.open("rb") as written:  # hashed as read: never held whole
                digest = hashlib.file_digest(written, "sha256").hexdigest()
            return _file_entry(path, target.stat().st_size, digest, n_rows)

        tables, files = _write_latest_tables(found, datasets_dir, check, "", keep, write)
        for name in TABLES:
            _fsync_folder(staging / f"{name}.parquet")
        (staging / _LATEST_MARKER).write_text(f"{release}\n", "utf-8")
        (staging / LATEST_MANIFEST).write_bytes(_manifest_bytes(release, tables, files))
        _fsync_folder(staging)
        if folder.exists():
            os.rename(folder, old)
        os.rename(staging, folder)
        _fsync_folder(root)
    except OSError as error:
        _remove_latest_copy(staging)
        if not folder.exists() and old.exists():
            os.rename(old, folder)  # put the previous copies back rather than none
        held = latest_published(datasets_dir)
        raise StorageWriteError(
            f"cannot write {staging}: {_io_reason(error)}; release {release} is written and "
            f"intact, {folder} "
            + (f"still holds release {held}" if held else "holds no release")
            + " (the next run writes it)"
        ) from error
    _remove_latest_copy(old)
    return release


def _free_name(path: Path) -> Path:
    """`path`, or `path.1`, `path.2`, ... : the first that does not exist."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_latest_copy(folder: Path) -> None:
    """Delete a `latest` copy this module wrote: only the names it writes (the parts, the
    marker, the manifest; the one file per table of layout 1); a folder holding anything
    else stays, with that."""
    if not folder.is_dir():
        return
    for name in TABLES:
        table = folder / f"{name}.parquet"
        if table.is_dir():
            for part in table.iterdir():
                if _PART_NAME.fullmatch(part.name) and part.is_file():
                    part.unlink()
            with contextlib.suppress(OSError):
                table.rmdir()
        elif table.is_file():
            table.unlink()
    for name in (_LATEST_MARKER, LATEST_MANIFEST):
        (folder / name).unlink(missing_ok=True)
    for stray in folder.glob(".*.partial"):  # the per-file temporaries of older versions
        stray.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()



def _publish_latest_remote(datasets_url: str, found: Mapping[str, Any], check: _LatestCheck) -> int:
    """`publish_latest` on an object store, where nothing renames and an object
    overwritten in place is seen by a reader of several objects as a mix of two releases
    (73 of 1,863 reads during runs).

    1. each table's parts to `latest/<N>/<table>.parquet/`, a folder only this release
       writes (`<N>.<k>/` if an earlier attempt left `<N>/`): a part the previous release
       holds too is copied by the store itself (no bytes through here), the others written;
    2. `latest/release.txt`, then `latest/release.json` LAST: the pointer naming each
       table's folder and each part's path, size, sha256 and rows. A reader reads it first
       and opens the paths it names, in one folder no later run rewrites;
    3. release folders other than this one and the one `release.json` named before are
       removed (a reader that read the previous manifest just before step 2 is still on
       that one), and the one-file-per-table copies of layout 1.
    """
    folder = location.join(datasets_url, LATEST_DIR)
    release = int(found["release"])
    existing = sorted(check.listed)  # every object under latest/, listed by the check
    relatives = [str(path)[len(str(folder)) :].strip("/").split("/") for path in existing]
    taken = {relative[0] for relative in relatives if len(relative) > 1}
    release_folder, n = str(release), 0
    while release_folder in taken:
        n += 1
        release_folder = f"{release}.{n}"
    kept_folders = {release_folder}
    for table in ((check.manifest or {}).get("tables") or {}).values():
        if isinstance(table, dict) and isinstance(table.get("path"), str):
            kept_folders.add(table["path"].split("/")[0])

    def keep(at: Location, path: str) -> None:
        location.copy(at, location.join(folder, *path.split("/")))  # the copy keeps its ETag

    def write(part: _Part, path: str) -> dict[str, Any]:
        sink = pa.BufferOutputStream()  # hashed before upload
        n_rows = _write_batches(part.schema, part.batches(), sink)
        data = sink.getvalue().to_pybytes()
        location.write_bytes(location.join(folder, *path.split("/")), data)
        digest = hashlib.sha256(data).hexdigest()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return _file_entry(path, len(data), digest, n_rows, md5)

    try:
        tables, files = _write_latest_tables(
            found, datasets_url, check, f"{release_folder}/", keep, write
        )
        location.write_bytes(location.join(folder, _LATEST_MARKER), f"{release}\n".encode())
        location.write_bytes(
            location.join(folder, LATEST_MANIFEST), _manifest_bytes(release, tables, files)
        )
    except (OSError, DeltaError) as error:
        held = latest_manifest(datasets_url)
        raise StorageWriteError(
            f"cannot write {folder}: {_io_reason(error)}; release {release} is written and "
            f"intact, {location.join(folder, LATEST_MANIFEST)} "
            + (f"still names release {held.get('release')}" if held else "names no release")
            + " (the next run writes it)"
        ) from error
    ours = {f"{name}.parquet" for name in TABLES}
    stale = []
    for path, relative in zip(existing, relatives, strict=True):
        if len(relative) == 1 and relative[0] in ours:
            stale.append(path)  # layout 1's one file per table
        elif not _RELEASE_FOLDER.fullmatch(relative[0]) or relative[0] in kept_folders:
            continue
        elif (len(relative) == 2 and relative[1] in ours) or (
            len(relative) == 3 and relative[1] in ours and _PART_NAME.fullmatch(relative[2])
        ):
            stale.append(path)
    with contextlib.suppress(OSError):  # left for the next run to remove; nothing reads it
        location.delete(stale)
    return release


def published_snapshot_ids(datasets_dir: Path | str = DEFAULT_DATASETS_DIR) -> set[str]:
    """Snapshot ids in the latest release's `pages` (parsed already, failed or not)."""
    try:
        column = load_arrow("pages", None, datasets_dir, columns=["snapshot_id"]).column(0)
    except NoReleaseError:  # load_arrow reads the releases once; no second look first
        return set()
    return set(column.to_pylist())


# --- retention -------------------------------------------------------------------------------


def pinned_versions(datasets_dir: Path | str) -> dict[str, list[int]]:
    """Table -> every Delta version some release pins (all must stay readable)."""
    runs = releases(datasets_dir)
    return {
        name: sorted({int(v) for v in runs[f"{name}_version"].dropna()})
        for name in VERSIONED_TABLES
    }


def vacuum(datasets_dir: Path | str, *, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete the files no release needs: files of superseded versions that no release
    pins (between two releases' versions, an incremental delete's intermediate state) and
    files of crashed runs never committed. Call it under `writer_lock`. Every release
    stays readable, time travel to unpinned intermediate versions does not.

    Returns table -> files deleted (or that would be, with `dry_run`).
    """
    deleted = {}
    pinned = pinned_versions(datasets_dir)
    for name in TABLES:
        path = table_path(datasets_dir, name)
        if not _is_table(path):
            continue
        table = DeltaTable(str(path))
        keep = pinned.get(name) or [table.version()]
        planned = table.vacuum(
            retention_hours=0, dry_run=True, enforce_retention_duration=False, full=True,
            keep_versions=keep,
        )
        existing_before = {
            relative: location.exists(where)
            for relative, where in _vacuum_candidates(path, planned).items()
        }
        with _writing(path, find_release(datasets_dir)):
            listed = table.vacuum(
                retention_hours=0,
                dry_run=dry_run,
                enforce_retention_duration=False,
                full=True,
                keep_versions=keep,
            )
        # delta-rs lists the log's removed files again on every later vacuum, as absolute
        # paths, though they are long gone ("deleted 8 files" on each run): report only
        # files that existed before (and, unless a dry run, are gone now).
        deleted[name] = _really_deleted(path, listed, before=existing_before, dry_run=dry_run)
    return deleted


def _vacuum_candidates(path: Location, listed: list[str]) -> dict[str, Location]:
    """Each file a vacuum lists, by its name relative to the table, with its location."""
    prefix = str(path).rstrip("/") + "/"
    out = {}
    for entry in listed:
        relative = entry.removeprefix(prefix) if entry.startswith(prefix) else entry
        if "://" in relative or relative.startswith("/"):  # outside this table: leave it
            continue
        out[relative] = location.join(path, relative)
    return out


def _really_deleted(
    path: Location, listed: list[str], *, before: dict[str, bool], dry_run: bool
) -> list[str]:
    candidates = _vacuum_candidates(path, listed)
    return sorted(
        relative
        for relative, where in candidates.items()
        if before.get(relative, False) and (dry_run or not location.exists(where))
    )


# --- writing a release ---------------------------------------------------------------------


class ReleaseWriter:
    """Writes one release: batches of rows to the data tables, then the `runs` row.

    Usage: `writer = ReleaseWriter(dir, mode=...)`, `writer.write(batch)` per batch of
    tables, `writer.commit(...)` last. Nothing is visible to readers before `commit`.
    """

    def __init__(
        self,
        datasets_dir: Path | str,
        *,
        mode: str,
        parser_version: str,
        run_id: str,
        started_at: datetime,
        flow_run_id: str | None = None,
        overrides: history.Overrides | None = None,
        lock: HeldLock | None = None,
    ) -> None:
        self.datasets_dir = parse_location(datasets_dir)
        self.lock = lock or HeldLock()
        self.overrides = overrides or history.Overrides()
        self.mode = mode
        self.parser_version = parser_version
        self.run_id = run_id
        self.started_at = started_at
        self.flow_run_id = flow_run_id
        self.base = find_release(self.datasets_dir)
        self.new_rows = dict.fromkeys(DATA_TABLES, 0)
        self._written: set[tuple[str, str]] = set()  # (first snapshot of a batch, table)
        self._overwrite_next = dict.fromkeys(DATA_TABLES, mode == "reparse")
        self._tables: dict[str, DeltaTable] = {}  # see `_table`
        with _writing(self.datasets_dir, self.base):
            self._roll_back_unreleased_commits()

    def _table(self, name: str) -> DeltaTable:
        """The table `name` at its newest version, as `DeltaTable(path)` opens it: one
        handle per table for the writer's life, brought up to date on each use (it reads
        the commits since its last use, ~0.4 ms) instead of a new one replaying the log
        from its checkpoint (5-50 ms: a +20-page release at 150,000 captures opened its
        tables ~70 times, 0.5-0.8 s)."""
        path = str(table_path(self.datasets_dir, name))
        table = self._tables.get(path)
        if table is None:
            table = self._tables[path] = DeltaTable(path)
        else:
            table.update_incremental()
        return table

    def _commit_properties(self) -> CommitProperties:
        return CommitProperties(custom_metadata={"oj_run_id": self.run_id})

    def _roll_back_unreleased_commits(self) -> None:
        """Undo what a crashed run committed after the last release (derived tables
        included: an incremental release deletes and appends rows in place)."""
        for name in VERSIONED_TABLES:
            path = table_path(self.datasets_dir, name)
            if not _is_table(path):
                continue
            if self.base is None:
                if name in DATA_TABLES:
                    self._overwrite_next[name] = True  # a crashed first run: replace it all
                continue  # derived tables of a first release are written in full
            released = int(self.base[f"{name}_version"])
            table = self._table(name)
            if table.version() != released:
                self.lock.check()
                table.restore(
                    released, commit_properties=self._commit_properties(),
                    post_commithook_properties=_KEEP_LOG,
                )  # fmt: skip

    def write(self, batch: Mapping[str, pa.Table]) -> None:
        """Append one batch of rows (a table per name) to the data tables.

        A batch is three Delta commits, one per table. Writing the same batch again (a
        task retry after the second commit failed) skips the tables it already reached,
        so a retry never appends a batch's rows twice.
        """
        pages = batch.get("pages")
        batch_key = pages["snapshot_id"][0].as_py() if pages is not None and len(pages) else None
        for name in DATA_TABLES:
            table = batch.get(name)
            if table is None or (table.num_rows == 0 and not self._overwrite_next[name]):
                continue
            if batch_key is not None and (batch_key, name) in self._written:
                continue
            self._write(name, table)
            if batch_key is not None:
                self._written.add((batch_key, name))

    def _write(self, name: str, table: pa.Table) -> None:
        validate(name, table)
        # Before every commit, not only the release's: a run paused past its lease (a
        # SIGSTOP, a long GC pause, clock skew) must stop at its next append, or its rows
        # land in the tables the run that took the lock over is about to pin.
        self.lock.check()
        path = table_path(self.datasets_dir, name)
        with _writing(path, self.base):
            if not location.is_remote(path):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            overwrite = self._overwrite_next[name] or not _is_table(path)
            if not overwrite:
                # An append through the writer's handle (`_table`): given the path,
                # write_deltalake opened the table anew for every batch, replaying its log
                # (115 opens, 1.4 s of a first run at 150,000 captures).
                self._table(name)
            self._delta_write(path, table, overwrite=overwrite)
        self._overwrite_next[name] = False
        self.new_rows[name] += table.num_rows

    def _version(self, name: str) -> int:
        return self._table(name).version()

    def _delta_write(
        self, path: Location, data: Any, *, overwrite: bool, file_bytes: int | None = None
    ) -> None:
        """Append to a table, or replace it (schema included)."""
        write_deltalake(
            self._tables.get(str(path)) or str(path),  # a handle spares a log replay
            data,
            mode="overwrite" if overwrite else "append",
            schema_mode="overwrite" if overwrite else None,
            description=f"oppna-jamforelser table `{location.name_of(path)}`",
            target_file_size=file_bytes,
            configuration=table_properties(location.name_of(path)),  # a new table's only
            commit_properties=self._commit_properties(),
            post_commithook_properties=_KEEP_LOG,
        )

    def close_data_tables(self) -> dict[str, int]:
        """Create the data tables a release lacks (or clear them on a re-parse); their
        versions, which the derivation reads and the release pins."""
        with _writing(self.datasets_dir, self.base):
            for name in DATA_TABLES:
                path = table_path(self.datasets_dir, name)
                if self._overwrite_next[name] or not _is_table(path):
                    self._write(name, TABLES[name].empty_table())  # create, or clear
                else:
                    self._set_aside_foreign_commits(name)
            return {name: self._version(name) for name in DATA_TABLES}

    def _base_version(self, name: str) -> int:
        """The table's version in the base release; -1 for none."""
        released = self.base.get(f"{name}_version") if self.base is not None else None
        return -1 if released is None or pd.isna(released) else int(released)

    def _foreign_versions(self, name: str, pinned: int) -> list[int]:
        """Versions after the base release, up to `pinned`, committed by another run.

        Every commit carries its run's id (`_commit_properties`). Walking back from
        `pinned`: this run's own restore or overwrite ends the walk (nothing before it is
        in the table any more), as does the base release."""
        base = self._base_version(name)
        table = self._table(name)
        found = []
        for entry in table.history(limit=table.version() - base if base >= 0 else None):
            version = int(entry["version"])
            if version > pinned:
                continue
            if version <= base:
                break
            if entry.get("oj_run_id") != self.run_id:
                found.append(version)
                continue
            mode = (entry.get("operationParameters") or {}).get("mode")
            if entry.get("operation") == "RESTORE" or mode == "Overwrite":
                break
        return found

    def _set_aside_foreign_commits(self, name: str) -> None:
        """Take the rows another run appended since the base release out of a data table,
        keeping this run's own: restore the base release's version, append this run's
        rows again.

        A run paused past its lease in the middle of a Delta write (its files written,
        its commit not yet) completes that commit when it resumes, after the run that
        took the lock over rolled its earlier commits back: no lock check can stop a
        write already under way (seen: `findings` version 3 by the paused run, landed
        between the new holder's appends)."""
        path = table_path(self.datasets_dir, name)
        table = self._table(name)
        foreign = self._foreign_versions(name, table.version())
        if not foreign:
            return
        self.lock.check()

        def files(version: int) -> set[str]:
            if version < 0:
                return set()
            actions = DeltaTable(str(path), version=version).get_add_actions(flatten=True)
            return {location.name_of(p) for p in actions.column("path").to_pylist()}

        theirs = set().union(*(files(v) - files(v - 1) for v in foreign))
        base = self._base_version(name)
        mine = files(table.version()) - theirs - files(base)
        dataset = table.to_pyarrow_dataset()
        fragments = [f for f in dataset.get_fragments() if location.name_of(f.path) in mine]
        own = ds.FileSystemDataset(
            fragments, dataset.schema, dataset.format, dataset.filesystem
        ).to_table()
        if base >= 0:
            table.restore(
                base, commit_properties=self._commit_properties(),
                post_commithook_properties=_KEEP_LOG,
            )  # fmt: skip
        self._delta_write(path, own, overwrite=base < 0)

    def derivation_inputs(self, findings_version: int) -> DerivationReader:
        """What `flows.history.plan_derivation` reads, at this release's versions."""
        return DerivationReader(self.datasets_dir, self.base, findings_version)

    def write_derived(self, derivation: history.Derivation) -> dict[str, int]:
        """Write a derivation to the derived tables; their versions.

        "full" overwrites each table. "incremental" deletes the rows it replaces (by key)
        and appends the new ones: two Delta commits per table, made visible together by
        the `runs` row (a crash between them is rolled back by the next run).
        """
        with _writing(self.datasets_dir, self.base):
            return self._write_derived(derivation)

    def _write_derived(self, derivation: history.Derivation) -> dict[str, int]:
        versions: dict[str, int] = {}
        # Each table is written as soon as it is derived, so one is in memory at a time;
        # a table may come in several parts (`history.page_parts`): the first replaces
        # (overwrite, or delete then append), the later ones are appended.
        for name, table in derivation.tables:
            validate(name, table)
            self.lock.check()  # see `_write`
            path = table_path(self.datasets_dir, name)
            if name in versions:
                if table.num_rows:
                    self._delta_write(path, table, overwrite=False, file_bytes=file_bytes(name))
                del table
                versions[name] = self._version(name)
                continue
            full = derivation.mode == "full" or not _is_table(path)
            conditions = derivation.replace.get(name, [])
            if not full and conditions and all(values for _, values in conditions):
                self._table(name).delete(
                    " AND ".join(_in_predicate(column, values) for column, values in conditions),
                    commit_properties=self._commit_properties(),
                    post_commithook_properties=_KEEP_LOG,
                )
            if full or table.num_rows:
                self._delta_write(path, table, overwrite=full, file_bytes=file_bytes(name))
            if full:
                self._keep_table_properties(path, name)
            del table
            versions[name] = self._version(name)
        for name in DERIVED_TABLES:
            if name not in versions:
                versions[name] = self._version(name)
        return versions

    def _keep_table_properties(self, path: Location, name: str) -> None:
        """Give the table its `table_properties` where it lacks one: a Delta write sets
        properties only when it creates a table, and a restore to a version before they
        were set drops them again."""
        table = self._table(name)
        have = table.metadata().configuration
        missing = {key: value for key, value in table_properties(name).items()
                   if have.get(key) != value}  # fmt: skip
        if missing:
            table.alter.set_table_properties(
                missing, commit_properties=self._commit_properties(),
                post_commithook_properties=_KEEP_LOG,
            )  # fmt: skip
            if "delta.checkpointInterval" in missing:
                # a table older than the property: its log so far, in one checkpoint now
                # rather than at its next multiple of CHECKPOINT_EVERY
                self._table(name).create_checkpoint()

    def compact_fragmented(self) -> dict[str, int]:
        """Give every table its `table_properties` (an older table lacks them), and compact
        every table holding `COMPACT_MIN_FILES` or more small files (nightly
        appends and incremental releases add a few each); the new versions, which the
        release pins. Compaction rewrites no row, so readers of any release see the same
        data; the small files stay for the releases that pin them (see `vacuum`)."""
        versions = {}
        with _writing(self.datasets_dir, self.base):
            for name in VERSIONED_TABLES:
                path = table_path(self.datasets_dir, name)
                if not _is_table(path):
                    continue
                table = self._table(name)
                have = table.metadata().configuration
                if any(have.get(key) != value for key, value in table_properties(name).items()):
                    self.lock.check()  # see `_write`
                    self._keep_table_properties(path, name)  # a table older than them
                    versions[name] = self._version(name)
                    table = self._table(name)
                sizes = table.get_add_actions(flatten=True).column("size_bytes").to_pylist()
                small = min(SMALL_FILE_BYTES, file_bytes(name) // 2)
                if sum(size < small for size in sizes) < COMPACT_MIN_FILES:
                    continue
                self.lock.check()  # see `_write`
                table.optimize.compact(
                    target_size=file_bytes(name), commit_properties=self._commit_properties(),
                    post_commithook_properties=_KEEP_LOG,
                )  # fmt: skip
                versions[name] = self._version(name)
        return versions

    def commit(
        self,
        *,
        n_pages_new: int,
        versions: Mapping[str, int],
        derivation: str,
        finished_at: datetime | None = None,
    ) -> int:
        """Write the `runs` row that makes everything written a release; returns its number.

        `versions`: the Delta version of every table the release pins (from
        `close_data_tables` and `write_derived`); `derivation`: "full" or "incremental".
        """
        with _writing(self.datasets_dir, self.base):
            return self._commit(
                n_pages_new=n_pages_new,
                versions=versions,
                derivation=derivation,
                finished_at=finished_at,
            )

    def _commit(
        self,
        *,
        n_pages_new: int,
        versions: Mapping[str, int],
        derivation: str,
        finished_at: datetime | None,
    ) -> int:
        self.lock.check()  # a run that lost its lease (object store) must not publish
        self._refuse_foreign_commits(versions)
        totals = {name: self.new_rows[name] for name in DATA_TABLES}
        if self.base is not None and self.mode != "reparse":
            totals = {name: totals[name] + int(self.base[f"n_{name}"]) for name in DATA_TABLES}
        release = (int(self.base["release"]) + 1) if self.base else 1
        row = {
            "release": [release],
            "run_id": [self.run_id],
            "flow_run_id": [self.flow_run_id],
            "started_at": [self.started_at],
            "finished_at": [finished_at or datetime.now(UTC)],
            "parser_version": [self.parser_version],
            "mode": [self.mode],
            "pages_version": [versions["pages"]],
            "findings_version": [versions["findings"]],
            "rejects_version": [versions["rejects"]],
            **{f"{name}_version": [versions[name]] for name in DERIVED_TABLES},
            "overrides_sha256": [self.overrides.sha256],
            "n_pages_new": [n_pages_new],
            "n_findings_new": [self.new_rows["findings"]],
            "n_rejects_new": [self.new_rows["rejects"]],
            "n_pages": [totals["pages"]],
            "n_findings": [totals["findings"]],
            "n_rejects": [totals["rejects"]],
            "schema_version": [SCHEMA_VERSION],
            "derivation": [derivation],
        }
        runs = build_table("runs", row)
        path = table_path(self.datasets_dir, "runs")
        latest = find_release(self.datasets_dir)
        if (latest and latest["release"]) != (self.base and self.base["release"]):
            raise StorageWriteError(
                f"cannot publish to {self.datasets_dir}: release {latest and latest['release']} "
                f"was published by another run since this run planned on "
                f"{'release ' + str(self.base['release']) if self.base else 'no release'}, "
                "a run that lost its lock; this run publishes nothing"
            )
        self.lock.check()  # the last moment: see `_released_runs` for a pause after it
        if os.environ.get("OJ_TEST_STOP_BEFORE_RUNS_ROW") == "1":
            # Tests only: pause here, past the last lease check, as a SIGSTOP or a long GC
            # pause can (tests/test_lease_takeover.py resumes it with SIGCONT).
            import signal

            os.kill(os.getpid(), signal.SIGSTOP)
        write_deltalake(
            str(path),
            runs,
            mode="append",
            schema_mode="merge",  # releases written before a column was added lack it
            description="oppna-jamforelser releases: one row per release",
            configuration=table_properties("runs"),  # a new table's only
            commit_properties=CommitProperties(
                custom_metadata={"oj_run_id": self.run_id, "oj_release": str(release)}
            ),
            post_commithook_properties=_KEEP_LOG,
        )
        try:
            self.lock.check()
        except StorageWriteError as error:
            row_run = find_release(self.datasets_dir, release)
            fate = (
                f"its runs row for release {release} landed after another run's and is "
                "ignored by readers"
                if row_run is not None and row_run["run_id"] != self.run_id
                else f"its runs row for release {release} landed first and stands (the "
                "tables it pins are its own)"
            )
            raise StorageWriteError(
                f"lost the write lock of {self.datasets_dir} while writing its runs row "
                f"({one_line(error)[:200]}); {fate}"
            ) from error
        return release


    def _refuse_foreign_commits(self, versions: Mapping[str, int]) -> None:
        """Raise StorageWriteError if a version this release pins holds a commit of
        another run since the base release.

        A run that lost its lock (paused past its lease) may append once more after the
        run that took the lock over rolled its commits back; Delta accepts the append
        (commits need no lock), so the lock alone cannot keep those rows out of the
        release. `close_data_tables` sets such rows aside; one landing later still (a write
        under way while this run derived) is refused here. The next run rolls every
        unreleased commit back, so nothing is lost but time.
        """
        found = []
        for name in VERSIONED_TABLES:
            if name in versions and int(versions[name]) > self._base_version(name):
                found += [
                    f"{name} version {version} by another run"
                    for version in self._foreign_versions(name, int(versions[name]))
                ]
        if found:
            since = f"release {self.base['release']}" if self.base else "the first release"
            raise StorageWriteError(
                f"cannot publish to {self.datasets_dir}: commits of another run since "
                f"{since} ({'; '.join(found)[:300]}), a run that lost its lock; this run "
                "publishes nothing, the next run rolls them back"
            )


def _in_predicate(column: str, values: list[str]) -> str:
    """A Delta (SQL) predicate `column IN (...)`; the values are ids, quoted anyway."""
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"{column} IN ({quoted})"


class DerivationReader(history.DerivationInputs):
    """Reads what a derivation needs at the versions of the release being written."""

    def __init__(
        self,
        datasets_dir: Location,
        base: dict[str, Any] | None,
        findings_version: int,
        pages_version: int | None = None,
    ) -> None:
        self.datasets_dir = parse_location(datasets_dir)
        self.base = base
        self.findings_version = findings_version
        self.pages_version = pages_version  # None: the table's latest version
        self._dataset: ds.Dataset | None = None
        self._pages: ds.Dataset | None = None
        self._urls: list[str] | None = None

    def _read(self, name: str, version: int | None) -> ds.Dataset:
        path = table_path(self.datasets_dir, name)
        table = DeltaTable(str(path)) if version is None else DeltaTable(str(path), version=version)
        files = table.file_uris()
        # Texts that repeat (the same bullets on every version of a page) are read as
        # Arrow dictionaries: each distinct text is held once. At 150,000 snapshots
        # the findings read this way take a third of the memory.
        columns = history.REPEATED if name == "findings" else ("url",)
        options = ds.ParquetReadOptions(dictionary_columns=list(columns))
        if files and all("://" not in file for file in files):
            # local files: Arrow reads them itself (faster than through delta-rs)
            parquet = ds.ParquetFileFormat(read_options=options)
            return ds.dataset(files, format=parquet)
        # an object store: through delta-rs's store, same settings as its writes
        return table.to_pyarrow_dataset(parquet_read_options=options)

    def _findings(self) -> ds.Dataset:
        if self._dataset is None:
            self._dataset = self._read("findings", self.findings_version)
        return self._dataset

    def _captures(self) -> ds.Dataset:
        if self._pages is None:
            self._pages = self._read("pages", self.pages_version)
        return self._pages

    def _added(self, name: str, dataset: ds.Dataset) -> ds.Dataset:
        """The files of `dataset` added since the base release: no scan of older rows."""
        if self.base is None:
            return dataset
        path = table_path(self.datasets_dir, name)
        before = DeltaTable(str(path), version=int(self.base[f"{name}_version"]))
        # Delta file names are unique (local paths or object URLs alike)
        old = {location.name_of(file) for file in before.file_uris()}
        fragments = [f for f in dataset.get_fragments() if location.name_of(f.path) not in old]
        return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)

    def all_findings(self, columns: list[str]) -> pa.Table:
        return self._findings().to_table(columns=columns)

    def new_findings(self, columns: list[str]) -> pa.Table:
        """The findings of files added since the base release."""
        return self._added("findings", self._findings()).to_table(columns=columns)

    def captures(self, urls: set[str] | None = None) -> pa.Table:
        """`pages` rows (`history.CAPTURE_COLUMNS`) of every capture, or of `urls`."""
        wanted = None if urls is None else pc.field("url").isin(pa.array(sorted(urls), pa.string()))
        return self._captures().to_table(columns=list(history.CAPTURE_COLUMNS), filter=wanted)

    def new_captures(self) -> pa.Table:
        """`pages` rows this run added (recaptures too: they carry no findings)."""
        return self._added("pages", self._captures()).to_table(
            columns=list(history.CAPTURE_COLUMNS)
        )

    def capture_url_counts(self) -> dict[str, int]:
        """The captures of each url: the `pages.url` column alone (read as a dictionary,
        each url once), not every capture's rows. `capture_urls` is its keys."""
        return history.url_counts(self._captures().to_table(columns=["url"]).column("url"))

    def finding_urls(self) -> list[str]:
        if self._urls is None:
            urls = self._findings().to_table(columns=["url"]).column("url")
            self._urls = [url for url in pc.unique(urls).to_pylist() if url is not None]
        return self._urls

    def findings(self, columns: list[str], finding_ids: set[str], urls: set[str]) -> pa.Table:
        wanted = pc.field("finding_id").isin(pa.array(sorted(finding_ids), pa.string())) | (
            pc.field("url").isin(pa.array(sorted(urls), pa.string()))
        )
        return self._findings().to_table(columns=columns, filter=wanted)

    def previous_links(self, columns: list[str]) -> pa.Table | None:
        path = table_path(self.datasets_dir, "indicator_links")
        if self.base is None or not _is_table(path):
            return None
        version = int(self.base["indicator_links_version"])
        return DeltaTable(str(path), version=version).to_pyarrow_table(columns=columns)
