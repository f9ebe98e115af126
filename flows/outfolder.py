"""An output folder a command replaces whole (`oj report`'s site, `oj package`'s data
package): built beside it, swapped in by renames, and never a folder holding files the
command did not write.

Each command leaves a marker file in its folder naming the command, the release, and every
file and folder it wrote there. Only a folder with that marker is replaced, and only when it
holds nothing else (`oj report --out mine` once deleted a thesis.tex the folder held).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.errors import StorageWriteError, UsageError


class OutFolderError(UsageError):
    """`--out` names a folder the command may not write to (the message starts with the
    path as given; the command prefixes "--out ")."""


class OutFolderUnwritable(StorageWriteError):
    """The output folder cannot be written (unwritable parent, full disk)."""


def written_by(folder: Path, tool: str, marker_name: str) -> dict[str, Any] | None:
    """The marker `tool` left in `folder`, or None."""
    try:
        marker = json.loads((folder / marker_name).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != tool:
        return None
    if not isinstance(marker.get("files"), list) or not isinstance(marker.get("folders"), list):
        return None
    return marker


def foreign(folder: Path, marker: dict[str, Any], marker_name: str) -> list[str]:
    """Paths under `folder` (relative) that the command named in `marker` did not write."""
    files = {str(name) for name in marker["files"]} | {marker_name}
    folders = {str(name) for name in marker["folders"]}
    found = []
    for root, dirs, names in os.walk(folder):
        here = Path(root).relative_to(folder)
        for name in sorted(dirs):
            path = here / name
            if (Path(root) / name).is_symlink() or path.as_posix() not in folders:
                found.append(path.as_posix())
        dirs[:] = sorted(d for d in dirs if (here / d).as_posix() not in found)
        found += [
            (here / n).as_posix() for n in sorted(names) if (here / n).as_posix() not in files
        ]
    return found


def check_out(
    out: Path | str,
    tool: str,
    marker_name: str,
    legacy: Callable[[Path], dict[str, Any] | None] | None = None,
) -> Path:
    """The absolute folder `--out out` names, checked before anything is written;
    OutFolderError (one line) when `tool` may not write there: a file, a path under a file,
    the root, a non-empty folder `tool` did not write, one of its own that holds other
    files, or the folder the command runs in (or one holding it). `legacy`: the marker of
    a folder written before markers existed, or None."""
    given = str(out)
    try:
        target = Path(out).resolve()
        if target == target.parent:
            raise OutFolderError(f"{given}: is the root folder; choose a new or empty folder")
        existing = next(p for p in (target, *target.parents) if p.exists())
        if not existing.is_dir():
            if existing == target:
                raise OutFolderError(f"{given}: is a file, not a folder")
            shown = os.path.relpath(existing) if not Path(given).is_absolute() else existing
            raise OutFolderError(f"{given}: {shown} is a file, not a folder")
        if existing == target and any(target.iterdir()):
            marker = marker_of(target, tool, marker_name, legacy)
            if marker is None:
                raise OutFolderError(
                    f"{given}: folder is not empty and was not written by {tool}; "
                    "choose a new or empty folder"
                )
            found = foreign(target, marker, marker_name)
            if found:
                more = f" and {len(found) - 3} more" if len(found) > 3 else ""
                raise OutFolderError(
                    f"{given}: holds files {tool} did not write ({', '.join(found[:3])}"
                    f"{more}); move them out or choose a new or empty folder"
                )
        cwd = Path.cwd().resolve()
    except OSError as error:
        raise OutFolderError(f"{given}: {error.strerror or error}") from None
    # The folder is replaced whole: the folder a shell stands in would vanish under it.
    if target == cwd or target in cwd.parents:
        raise OutFolderError(
            f"{given}: is the folder you are in (or holds it); choose a new or empty folder "
            "elsewhere"
        )
    return target


def marker_of(
    folder: Path,
    tool: str,
    marker_name: str,
    legacy: Callable[[Path], dict[str, Any] | None] | None = None,
) -> dict[str, Any] | None:
    marker = written_by(folder, tool, marker_name)
    if marker is None and legacy is not None:
        marker = legacy(folder)
    return marker


def remove_written(folder: Path, marker: dict[str, Any], marker_name: str) -> None:
    """Delete what the command named in `marker` wrote in `folder`, and the folder once
    empty; anything else stays (nothing else is expected: `check_out` refused it)."""
    for name in marker["files"]:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for name in sorted(marker["folders"], key=lambda n: -len(Path(n).parts)):
        with contextlib.suppress(OSError):
            (folder / name).rmdir()
    # The marker last: a run killed before this leaves a folder its marker still proves
    # ours, after it an empty one (`_remove_unclaimed`). Removed before the subfolders,
    # a kill between the two left `areas/` and `questions/` with no marker, a folder no
    # later run could prove its own (seen in CI: a `.partial` left after `oj report`).
    with contextlib.suppress(FileNotFoundError):
        (folder / marker_name).unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


#: Linux renameat2(2) flag: swap two paths in one step (ext4, tmpfs, xfs, btrfs have it).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders `a` and `b` atomically; False where the system or the filesystem
    cannot (the caller then renames twice)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _side_name(target: Path, slug: str, kind: str) -> Path:
    return target.parent / f".{target.name}.{slug}-{uuid.uuid4().hex[:12]}.{kind}"


def remove_leftovers(target: Path, tool: str, marker_name: str) -> list[Path]:
    """Remove the folders a killed run of `tool` left beside `target` (its staging
    `.partial` and swapped-out `.old` folders); the ones removed.

    Only what the run can be shown to have written goes: a folder named as `replace_folder`
    names them, holding `tool`'s marker, and only the files and folders that marker lists
    (a folder with anything else keeps it, and stays). A run still writing holds a lock
    on its staging folder's marker, so a concurrent run never takes its folder away; a
    folder without a marker is removed only when empty (a kill right after mkdir)."""
    slug = tool.replace(" ", "-")
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.{re.escape(slug)}-[0-9a-f]{{12}}\.(partial|old)"
    )
    removed = []
    try:
        candidates = sorted(target.parent.iterdir())
    except OSError:
        return removed
    for folder in candidates:
        if not pattern.fullmatch(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        marker = written_by(folder, tool, marker_name)
        if marker is None:
            _remove_unclaimed(folder, marker_name)
        else:
            try:
                handle = open(folder / marker_name, "rb")  # noqa: SIM115 - held while removing
            except OSError:
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live run is writing it
                remove_written(folder, marker, marker_name)
        if not folder.exists():
            removed.append(folder)
    return removed


def _remove_unclaimed(folder: Path, marker_name: str) -> None:
    """Remove a leftover folder killed before its marker was written: empty, or holding
    only an empty marker no live run locks."""
    with contextlib.suppress(OSError):
        if [p.name for p in folder.iterdir()] == [marker_name]:
            with open(folder / marker_name, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(handle.fileno()).st_size == 0:
                    (folder / marker_name).unlink()
        folder.rmdir()


def _sizes(folder: Path, files: list[str]) -> dict[str, int]:
    return {name: (folder / name).stat().st_size for name in files}


def replace_folder(
    out: Path | str,
    tool: str,
    marker_name: str,
    marker: dict[str, Any],
    write: Callable[[Path], None],
    legacy: Callable[[Path], dict[str, Any] | None] | None = None,
) -> Path:
    """Write a folder with `write(staging)` beside `out`'s folder, under a name of its own
    (never one that may be someone's), then swap it in, so a reader (or a kill) never
    leaves half of it: the folder is the previous complete one or the new complete one.
    `marker` (with "folders" and "files") is written into the staging folder first (so a
    later run can prove a killed run's leftovers are its own: `remove_leftovers`) and
    again last, with every file's size ("sizes"). Where the filesystem cannot swap two
    folders in one step, two renames replace an existing folder, and for an instant
    there is none."""
    target = check_out(out, tool, marker_name, legacy)
    parent = target.parent
    slug = tool.replace(" ", "-")
    remove_leftovers(target, tool, marker_name)
    staging = _side_name(target, slug, "partial")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as error:
        where = next((p for p in (parent, *parent.parents) if p.exists()), parent)
        raise OutFolderUnwritable(f"{out}: cannot write {where}: {error.strerror}") from None
    ours = True  # `staging` holds only what this run wrote (until a swap puts the old there)
    claim = None
    try:
        # The claim: this run's marker, locked until the process ends (a kill included:
        # the kernel drops the lock), so another run tells a live staging folder from a
        # dead one's.
        claim = open(staging / marker_name, "w", encoding="utf-8")  # noqa: SIM115
        fcntl.flock(claim, fcntl.LOCK_EX)
        claim.write(json.dumps(marker, indent=1) + "\n")
        claim.flush()
        for folder in marker["folders"]:
            (staging / folder).mkdir(parents=True, exist_ok=True)
        write(staging)
        final = {**marker, "sizes": _sizes(staging, [str(f) for f in marker["files"]])}
        claim.seek(0)
        claim.truncate()
        claim.write(json.dumps(final, indent=1) + "\n")
        claim.flush()
        os.fsync(claim.fileno())
        check_out(out, tool, marker_name, legacy)  # again: another process may have put
        # something there meanwhile
        old_marker = marker_of(target, tool, marker_name, legacy) if target.exists() else None
        if old_marker is None:  # new or empty: renaming onto an empty folder replaces it
            os.replace(staging, target)
        elif _exchange(staging, target):
            ours = False
            remove_written(staging, old_marker, marker_name)  # the old folder, now here
        else:
            old = _side_name(target, slug, "old")
            os.replace(target, old)
            try:
                os.replace(staging, target)
            except OSError:
                os.replace(old, target)  # the last folder back where it was
                raise
            remove_written(old, old_marker, marker_name)
    except OSError as error:
        raise OutFolderUnwritable(
            f"{out}: cannot write {parent}: {error.strerror or error}; nothing was replaced"
        ) from None
    finally:
        if claim is not None:
            claim.close()
        if ours and staging.exists():
            shutil.rmtree(staging)  # this run's own, fresh folder
    return target
