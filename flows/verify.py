"""`oj verify`: fixity of the raw archive and readability of every release.

Checks, and says in one line per problem which object, record or release is wrong:
- every raw object's bytes against the sha256 that names it;
- every record parses (`raw_archive.read_record`) and points at an existing object;
- every release's pinned Delta versions load, with the row counts its `runs` row states.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from deltalake import DeltaTable

from flows import raw_archive, storage
from flows.schemas import DATA_TABLES, VERSIONED_TABLES

_CHUNK = 1 << 20


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_raw(raw_dir: Path) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    objects_dir, records_dir = raw_dir / "objects", raw_dir / "records"
    present: set[str] = set()
    n_objects = n_records = 0
    for path in sorted(objects_dir.glob("*/*")) if objects_dir.is_dir() else ():
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            continue  # a write a crash interrupted: ignored by design
        n_objects += 1
        present.add(path.name)
        if path.parent.name != path.name[:2]:
            problems.append(f"{path}: object filed under the wrong folder")
        try:
            actual = _sha256_of(path)
        except OSError as error:
            problems.append(f"{path}: unreadable object: {error.strerror or error}")
            continue
        if actual != path.name:
            problems.append(f"{path}: content does not match its sha256 (now {actual[:12]}...)")
    for path in sorted(records_dir.glob("*.json")) if records_dir.is_dir() else ():
        n_records += 1
        try:
            record = raw_archive.read_record(path)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            problems.append(f"{path}: unreadable record: {reason}")
            continue
        if record.record_id != path.stem:
            problems.append(f"{path}: record_id {record.record_id!r} differs from its file name")
        if record.sha256 not in present:
            problems.append(f"{path}: its object {record.sha256[:12]}... is missing")
    return problems, {"objects": n_objects, "records": n_records}


def verify_releases(datasets_dir: Path) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    try:
        runs = storage.releases(datasets_dir)
    except Exception as error:  # noqa: BLE001 - a broken runs table is a finding, not a crash
        return [f"{datasets_dir / 'runs'}: unreadable: {error}"], {"releases": 0}
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
                    f"release {row.release}: {name} has {n_rows} rows, its runs row says "
                    f"{getattr(row, f'n_{name}')}"
                )
    return problems, {"releases": len(runs)}
