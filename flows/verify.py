"""`oj verify`: fixity of the raw archive and readability of every release.

Checks, and says in one line per problem which object, record or release is wrong:
- every raw object's bytes against the sha256 that names it;
- every record parses (`raw_archive.read_record`) and points at an existing object;
- every release's pinned Delta versions load, with the row counts its `runs` row states;
- every data file those versions list reads in full, with the size and row count its Delta
  log states (a flipped byte inside a file is found, not only a missing file);
- every table's Delta log versions are consecutive, and the `runs` releases are 1..N;
- `latest/` is byte for byte the latest release (the sha256s in `latest/release.json`);
- the raw archive still holds every record the latest release's `pages` name.
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from flows import location, raw_archive, storage
from flows.errors import plural
from flows.location import Location
from flows.pipeline import batched
from flows.schemas import DATA_TABLES, TABLES, VERSIONED_TABLES

#: Files read at once (concurrent GETs on an object store).
_READ_CHUNK = 64


def verify_raw(raw_dir: Location) -> tuple[list[str], dict[str, int]]:
    """Check every object against its hash and every record (a folder or an object
    store prefix alike)."""
    problems: list[str] = []
    objects_dir = location.join(raw_dir, "objects")
    records_dir = location.join(raw_dir, "records")
    present: set[str] = set()
    n_objects = n_records = 0
    objects = [
        path
        for path in location.find_files(objects_dir)
        # a write a crash interrupted (local temp files): ignored by design
        if not (location.name_of(path).startswith(".") and str(path).endswith(".tmp"))
    ]
    for chunk in batched(objects, _READ_CHUNK):
        for path, data in zip(chunk, location.read_many(chunk), strict=True):
            n_objects += 1
            folder, name = str(path).rstrip("/").split("/")[-2:]
            present.add(name)
            if folder != name[:2]:
                problems.append(f"{path}: object filed under the wrong folder")
            if isinstance(data, Exception):
                reason = data.strerror if isinstance(data, OSError) and data.strerror else data
                problems.append(f"{path}: unreadable object: {reason}")
                continue
            actual = hashlib.sha256(data).hexdigest()
            if actual != name:
                problems.append(f"{path}: content does not match its sha256 (now {actual[:12]}...)")
    names = [name for name in location.list_names(records_dir) if name.endswith(".json")]
    paths = [location.join(records_dir, name) for name in names]
    for chunk in batched(paths, _READ_CHUNK):
        for path, data in zip(chunk, location.read_many(chunk), strict=True):
            n_records += 1
            try:
                if isinstance(data, Exception):
                    raise data
                record = raw_archive.parse_record(data)
            except (OSError, ValueError) as error:
                reason = error.strerror if isinstance(error, OSError) and error.strerror else error
                problems.append(f"{path}: unreadable record: {reason}")
                continue
            stem = location.name_of(path).removesuffix(".json")
            if record.record_id != stem:
                problems.append(
                    f"{path}: record_id {record.record_id!r} differs from its file name"
                )
            if record.sha256 not in present:
                problems.append(f"{path}: its object {record.sha256[:12]}... is missing")
    # Segments (raw/segments/*.jsonl): every line a record, checked like a record file.
    segments = raw_archive.segment_names(raw_dir)
    for chunk in batched(segments, raw_archive.SEGMENT_READ_CHUNK):
        paths = [raw_archive.segment_path(raw_dir, name) for name in chunk]
        for path, data in zip(paths, location.read_many(paths), strict=True):
            if isinstance(data, Exception):
                reason = data.strerror if isinstance(data, OSError) and data.strerror else data
                problems.append(f"{path}: unreadable segment: {reason}")
                continue
            for number, line in enumerate(data.split(b"\n"), 1):
                if not line.strip():
                    continue
                n_records += 1
                try:
                    record = raw_archive.parse_record(line)
                except ValueError as error:
                    problems.append(f"{path} line {number}: unreadable record: {error}")
                    continue
                if record.sha256 not in present:
                    problems.append(
                        f"{path} line {number}: its object {record.sha256[:12]}... is missing"
                    )
    return problems, {"objects": n_objects, "records": n_records}


def verify_releases(
    datasets_dir: Location, notes: list[str] | None = None
) -> tuple[list[str], dict[str, int]]:
    """Every release's pinned versions load, with the row counts its `runs` row states.

    A release whose tables disagree with its `runs` row (a lost-lock run's rows pinned,
    see `pipeline.release_damage`) is a problem unless a later release *repaired* it: a
    release written in mode "reparse" (every data table rewritten from the raw archive,
    so nothing of the damaged release is carried on) whose own tables agree with its
    `runs` row. A repaired release is history that is not rewritten: it is said once in
    `notes` ("release 2: tables disagree with its runs row (...); repaired by release 3"),
    not counted as a problem. The latest release is never repaired by definition, and an
    append on top of a damaged release carries the damage: both stay problems.
    """
    problems: list[str] = []
    try:
        runs = storage.releases(datasets_dir)
    except Exception as error:  # noqa: BLE001 - a broken runs table is a finding, not a crash
        return [f"{storage.table_path(datasets_dir, 'runs')}: unreadable: {error}"], {"releases": 0}
    disagree: dict[int, list[str]] = {}  # release -> its tables' counts against its runs row
    consistent: dict[int, bool] = {}
    for row in runs.itertuples():
        release = int(row.release)
        consistent[release] = True
        for name in VERSIONED_TABLES:
            path = storage.table_path(datasets_dir, name)
            version = int(getattr(row, f"{name}_version"))
            try:
                table = DeltaTable(str(path), version=version)
                n_rows = table.to_pyarrow_dataset().count_rows()
            except Exception as error:  # noqa: BLE001 - say which release and table
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                problems.append(f"release {release}: {name} version {version} unreadable: {first}")
                consistent[release] = False
                continue
            if name in DATA_TABLES and n_rows != int(getattr(row, f"n_{name}")):
                disagree.setdefault(release, []).append(
                    f"{name} has {plural(n_rows, 'row')}, its runs row says "
                    f"{getattr(row, f'n_{name}')}"
                )
                consistent[release] = False
    repairs = sorted(
        int(row.release)
        for row in runs.itertuples()
        if getattr(row, "mode", None) == "reparse" and consistent[int(row.release)]
    )
    for release, details in sorted(disagree.items()):
        later = next((r for r in repairs if r > release), None)
        if later is None:
            problems += [f"release {release}: {detail}" for detail in details]
        elif notes is not None:
            notes.append(
                f"release {release}: tables disagree with its runs row ({'; '.join(details)}); "
                f"repaired by release {later}"
            )
    return problems, {"releases": len(runs)}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def verify_log(datasets_dir: Location) -> list[str]:
    """Each table's Delta log: commit files numbered without a gap (a deleted entry of
    `runs` otherwise reads as a shorter, "valid" history)."""
    problems = []
    for name in TABLES:
        log = location.join(storage.table_path(datasets_dir, name), "_delta_log")
        names = location.list_names(log)
        versions = sorted(int(n[:-5]) for n in names if re.fullmatch(r"\d{20}\.json", n))
        checkpoints = [int(n[:20]) for n in names if re.fullmatch(r"\d{20}\.checkpoint.*", n)]
        if not versions:
            continue
        # versions before a checkpoint may be cleaned up; from it on, none may be missing
        start = max([v for v in checkpoints if v <= versions[0]] + [0])
        missing = sorted(set(range(start, versions[-1] + 1)) - set(versions) - set(checkpoints))
        if missing:
            shown = ", ".join(str(v) for v in missing[:5]) + (" ..." if len(missing) > 5 else "")
            problems.append(f"{log}: log entries missing: version {shown}")
    return problems


def verify_files(datasets_dir: Location) -> list[str]:
    """Read every data file of every pinned version in full; its size and row count
    against the Delta log's `add` action. One line per damaged file."""
    problems: list[str] = []
    try:
        pinned: dict[str, list[int | None]] = dict(storage.pinned_versions(datasets_dir))
    except Exception:  # noqa: BLE001 - reported by verify_releases already
        return []
    pinned["runs"] = [None]  # read as "rows up to a release": its current version
    for name, versions in pinned.items():
        path = storage.table_path(datasets_dir, name)
        expected: dict[str, tuple[int, int | None]] = {}
        for version in versions:
            try:
                actions = pa.table(DeltaTable(str(path), version=version).get_add_actions(True))
            except Exception:  # noqa: BLE001 - verify_releases names an unreadable version
                continue
            for row in actions.select(["path", "size_bytes", "num_records"]).to_pylist():
                expected[row["path"]] = (row["size_bytes"], row["num_records"])
        files = sorted(expected)
        where = [location.join(path, f) for f in files]
        for chunk in batched(list(zip(files, where, strict=True)), _READ_CHUNK):
            datas = location.read_many([w for _, w in chunk])
            for (file, at), data in zip(chunk, datas, strict=True):
                size, rows = expected[file]
                problem = _file_problem(data, size, rows)
                if problem:
                    problems.append(f"{at}: {problem}")
    return problems


def _file_problem(data: bytes | Exception, size: int | None, rows: int | None) -> str | None:
    if isinstance(data, Exception):
        reason = data.strerror if isinstance(data, OSError) and data.strerror else data
        return f"unreadable data file: {reason}"
    if size is not None and len(data) != size:
        return f"{len(data)} bytes, its Delta log says {size}"
    try:
        n_rows = pq.read_table(pa.BufferReader(data)).num_rows  # every page, decompressed
    except Exception as error:  # noqa: BLE001 - any decoding failure is damage
        return f"damaged data file: {_first_line(error)}"
    if rows is not None and n_rows != rows:
        return f"{n_rows} rows, its Delta log says {rows}"
    return None


def verify_latest(datasets_dir: Location) -> list[str]:
    """`latest/` against the latest release: the release it names, and every file's
    sha256 against the manifest written when it was published."""
    try:
        found = storage.find_release(datasets_dir, None)
    except Exception:  # noqa: BLE001 - reported by verify_releases already
        return []
    if found is None:
        return []
    return storage.latest_problems(datasets_dir, int(found["release"]))


def verify_sequence(datasets_dir: Location) -> list[str]:
    """The `runs` table's releases are 1..N."""
    try:
        numbers = [int(n) for n in storage.releases(datasets_dir)["release"]]
    except Exception:  # noqa: BLE001 - reported by verify_releases already
        return []
    expected = list(range(1, len(numbers) + 1))
    if sorted(numbers) != expected:
        missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
        runs = storage.table_path(datasets_dir, "runs")
        return [
            f"{runs}: releases are not 1..{len(numbers)}: "
            + (f"release {', '.join(map(str, missing[:5]))} missing" if missing
               else "a release is there twice")
        ]  # fmt: skip
    return []


def verify_archive_covers(raw_dir: Location, datasets_dir: Location) -> list[str]:
    """The raw archive has not shrunk: every snapshot the latest release's `pages` name
    (its record id) still has its record."""
    try:
        published = storage.published_snapshot_ids(datasets_dir)
    except Exception:  # noqa: BLE001 - reported by verify_releases already
        return []
    records_dir = location.join(raw_dir, "records")
    present = raw_archive.archive_ids(raw_dir)  # record files and segment lines
    missing = sorted(published - present)
    if not missing:
        return []
    return [
        f"{records_dir}: {plural(len(missing), 'record')} of the "
        f"{plural(len(published), 'snapshot')} the latest release holds are missing from "
        f"the raw archive (it holds {plural(len(present), 'record')}; first missing: "
        f"{missing[0][:40]})"
    ]
