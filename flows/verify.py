"""`oj verify`: fixity of the raw archive and readability of every release.

Checks, and says in one line per problem which object, record or release is wrong:
- every raw object's bytes against the sha256 that names it;
- every record parses (`raw_archive.read_record`) and points at an existing object;
- every release's pinned Delta versions load, with the row counts its `runs` row states.
"""

from __future__ import annotations

import hashlib

from deltalake import DeltaTable

from flows import location, raw_archive, storage
from flows.errors import plural
from flows.location import Location
from flows.pipeline import batched
from flows.schemas import DATA_TABLES, VERSIONED_TABLES

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
    return problems, {"objects": n_objects, "records": n_records}


def verify_releases(datasets_dir: Location) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    try:
        runs = storage.releases(datasets_dir)
    except Exception as error:  # noqa: BLE001 - a broken runs table is a finding, not a crash
        return [f"{storage.table_path(datasets_dir, 'runs')}: unreadable: {error}"], {"releases": 0}
    for row in runs.itertuples():
        for name in VERSIONED_TABLES:
            path = storage.table_path(datasets_dir, name)
            version = int(getattr(row, f"{name}_version"))
            try:
                table = DeltaTable(str(path), version=version)
                n_rows = table.to_pyarrow_dataset().count_rows()
            except Exception as error:  # noqa: BLE001 - say which release and table
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                problems.append(
                    f"release {row.release}: {name} version {version} unreadable: {first}"
                )
                continue
            if name in DATA_TABLES and n_rows != int(getattr(row, f"n_{name}")):
                problems.append(
                    f"release {row.release}: {name} has {plural(n_rows, 'row')}, its runs row says "
                    f"{getattr(row, f'n_{name}')}"
                )
    return problems, {"releases": len(runs)}
