"""Where the raw archive and the datasets live: a local folder, or a prefix in an object
store (`s3://bucket/prefix`, `gs://...`, `az://...`).

A location is a `Path` for a local folder (`file://` URLs become one) and a URL string
for an object store. Local folders keep the plain file-system code (rename-based atomic
writes, `os.scandir`); object stores go through fsspec (s3fs for `s3://`), whose
credentials and endpoint come from the standard environment variables
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`), the
same ones delta-rs, polars and DuckDB read. Delta tables never go through here: delta-rs
talks to the store itself (`flows.storage`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: A local folder or file (Path), or an object-store URL (str).
Location = Path | str

#: Object reads in flight at once for `read_many` on an object store.
READ_CONCURRENCY = 32


def parse_location(text: str | os.PathLike[str]) -> Location:
    """`s3://bucket/prefix` stays a URL (without a trailing slash); a `file://` URL or a
    plain path becomes a Path. ValueError for a URL without a bucket."""
    if isinstance(text, Path):
        return text
    text = os.fspath(text)
    if "://" not in text:
        return Path(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.netloc:
        raise ValueError(f"{text}: an object-store URL needs a bucket (s3://bucket/prefix)")
    return text.rstrip("/")


def is_remote(location: Location) -> bool:
    """True for an object-store URL."""
    return isinstance(location, str) and "://" in location


def join(location: Location, *parts: str) -> Location:
    """`location / part / ...` for either kind."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return Path(location).joinpath(*parts)


def name_of(location: Location) -> str:
    """The last part: a file or object name."""
    return (
        str(location).rstrip("/").rsplit("/", 1)[-1] if is_remote(location) else Path(location).name
    )


@functools.cache
def _filesystem(protocol: str) -> Any:
    import fsspec

    # No listings cache: another process (a fetch, a second run) adds objects meanwhile.
    return fsspec.filesystem(protocol, use_listings_cache=False)


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system of an object-store URL, and the URL's path within it."""
    protocol = urlsplit(url).scheme
    fs = _filesystem(protocol)
    return fs, fs._strip_protocol(url)


def read_bytes(location: Location) -> bytes:
    """A file's or object's bytes; FileNotFoundError when there is none."""
    if not is_remote(location):
        return Path(location).read_bytes()
    fs, path = filesystem(str(location))
    return fs.cat_file(path)


def read_many(locations: list[Location]) -> list[bytes | Exception]:
    """Several files' bytes, in order; an error in place of a file that cannot be read.
    On an object store the reads run concurrently (one round trip each, in parallel)."""
    if not locations:
        return []
    if not is_remote(locations[0]):
        results: list[bytes | Exception] = []
        for location in locations:
            try:
                results.append(Path(location).read_bytes())
            except OSError as error:
                results.append(error)
        return results
    fs, _ = filesystem(str(locations[0]))
    paths = [fs._strip_protocol(str(location)) for location in locations]
    results = []
    for start in range(0, len(paths), READ_CONCURRENCY * 8):
        chunk = paths[start : start + READ_CONCURRENCY * 8]
        found = fs.cat(chunk, on_error="return", batch_size=READ_CONCURRENCY)
        if len(chunk) == 1 and not isinstance(found, dict):  # one path: fsspec returns bytes
            found = {chunk[0]: found}
        results.extend(found.get(path, FileNotFoundError(path)) for path in chunk)
    return results


def write_bytes(location: Location, data: bytes) -> None:
    """Write a whole file or object so that a reader sees all of it or none.

    Locally: a temporary file in the same folder, flushed, then renamed into place. On an
    object store a single PUT is already all or nothing.
    """
    if is_remote(location):
        fs, path = filesystem(str(location))
        fs.pipe_file(path, data)
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy(source: Location, target: Location) -> None:
    """Copy a file or object to another name. On an object store the store copies it
    (CopyObject: no bytes travel through here); locally a plain file copy."""
    if is_remote(source):
        fs, path = filesystem(str(source))
        fs.copy(path, fs._strip_protocol(str(target)))
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def exists(location: Location) -> bool:
    if not is_remote(location):
        return Path(location).exists()
    fs, path = filesystem(str(location))
    return fs.exists(path)


def is_folder(location: Location) -> bool:
    """A local directory, or an object-store prefix holding at least one object."""
    if not is_remote(location):
        return Path(location).is_dir()
    fs, path = filesystem(str(location))
    return bool(fs.exists(path))


def list_names(folder: Location) -> list[str]:
    """Names of the files directly in a folder (prefix), sorted; [] when there is none."""
    if not is_remote(folder):
        if not Path(folder).is_dir():
            return []
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if entry.is_file())
    fs, path = filesystem(str(folder))
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return sorted(
        entry["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in entries
        if entry.get("type") == "file"
    )


def find_files(folder: Location) -> list[Location]:
    """Every file under a folder (prefix), any depth, sorted."""
    if not is_remote(folder):
        root = Path(folder)
        return sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else []
    fs, path = filesystem(str(folder))
    protocol = urlsplit(str(folder)).scheme
    try:
        found = fs.find(path)
    except FileNotFoundError:
        return []
    return sorted(f"{protocol}://{name}" for name in found)


def find_sizes_and_etags(folder: Location) -> dict[str, tuple[int | None, str]]:
    """Every object under an object-store prefix, any depth: its size and ETag (without
    quotes), from listings alone (one request per 1,000 objects). For a single-part
    upload the ETag is the MD5 of the bytes, so a stored MD5 checks an object unread."""
    fs, path = filesystem(str(folder))
    protocol = urlsplit(str(folder)).scheme
    try:
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        return {}
    return {
        f"{protocol}://{name}": (info.get("size"), str(info.get("ETag") or "").strip('"'))
        for name, info in found.items()
    }


def delete(locations: Iterable[Location]) -> None:
    """Delete files (objects); missing ones are fine."""
    for location in locations:
        if is_remote(location):
            fs, path = filesystem(str(location))
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(path)
        else:
            Path(location).unlink(missing_ok=True)
