"""The raw archive's objects (`raw/objects/<aa>/<sha256>`): named by the sha256 of their
bytes and checked against it whenever read.

Apart from flows/raw_archive.py, which imports pyarrow, so that the parse helper
(flows/page_worker.py) reads and checks the objects of its pages with the standard
library alone instead of the flow reading, hashing and piping ~100 KB a page to it.
"""

from __future__ import annotations

import hashlib
import re

from flows import location
from flows.location import Location


class ArchiveError(RuntimeError):
    """A raw archive file that is missing or does not match its hash."""


#: What an object's name is: a lower-case sha256 hex digest.
SHA256_PATTERN = r"[0-9a-f]{64}"
_SHA256 = re.compile(SHA256_PATTERN)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha256(value: object) -> bool:
    """A lower-case sha256 hex digest: the only file names objects may have."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def object_path(raw_dir: Location, sha256: str) -> Location:
    if not is_sha256(sha256):
        raise ArchiveError(f"not a sha256 hex digest: {sha256!r}")
    return location.join(raw_dir, "objects", sha256[:2], sha256)


def checked_object(path: Location, sha256: str, data: bytes | Exception) -> bytes:
    """`data` read from `path`, if it is the object `sha256` names; else ArchiveError."""
    if isinstance(data, FileNotFoundError):
        raise ArchiveError(f"{path}: object missing from the raw archive") from data
    if isinstance(data, Exception):
        raise ArchiveError(f"{path}: unreadable object: {data}") from data
    if sha256_hex(data) != sha256:
        raise ArchiveError(f"{path}: content does not match its sha256 (corrupted)")
    return data


def read_object(raw_dir: Location, sha256: str) -> bytes:
    """The bytes of a snapshot, checked against their hash."""
    path = object_path(raw_dir, sha256)
    try:
        data: bytes | Exception = location.read_bytes(path)
    except FileNotFoundError as error:
        data = error
    return checked_object(path, sha256, data)


def read_objects(raw_dir: Location, sha256s: list[str]) -> list[bytes | ArchiveError]:
    """The bytes of several snapshots, each checked against its hash, in order; an
    ArchiveError in place of one missing or corrupted. Concurrent on an object store."""
    paths = [object_path(raw_dir, sha256) for sha256 in sha256s]
    results: list[bytes | ArchiveError] = []
    for path, sha256, data in zip(paths, sha256s, location.read_many(paths), strict=True):
        try:
            results.append(checked_object(path, sha256, data))
        except ArchiveError as error:
            results.append(error)
    return results
