"""An output folder a command replaces whole (`oj report`'s site, `oj package`'s data
package): built beside it, swapped in by renames, and never a folder holding files the
command did not write.

Each command leaves a marker file in its folder naming the command, the release, and every
file and folder it wrote there. Only a folder with that marker is replaced, and only when it
holds nothing else (`oj report --out mine` once deleted a thesis.tex the folder held).
"""

from __future__ import annotations

import contextlib
import json
import os
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
    for name in [*marker["files"], marker_name]:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for name in sorted(marker["folders"], key=lambda n: -len(Path(n).parts)):
        with contextlib.suppress(OSError):
            (folder / name).rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


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
    Between the two renames that replace an existing folder, for an instant, there is
    none. `marker` (with "folders" and "files") is written into the folder last."""
    target = check_out(out, tool, marker_name, legacy)
    parent = target.parent
    slug = tool.replace(" ", "-")
    staging = parent / f".{target.name}.{slug}-{uuid.uuid4().hex[:12]}.partial"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as error:
        where = next((p for p in (parent, *parent.parents) if p.exists()), parent)
        raise OutFolderUnwritable(f"{out}: cannot write {where}: {error.strerror}") from None
    try:
        for folder in marker["folders"]:
            (staging / folder).mkdir(parents=True, exist_ok=True)
        write(staging)
        (staging / marker_name).write_text(json.dumps(marker, indent=1) + "\n", "utf-8")
        check_out(out, tool, marker_name, legacy)  # again: another process may have put
        # something there meanwhile
        old_marker = marker_of(target, tool, marker_name, legacy) if target.exists() else None
        if old_marker is None:  # new or empty: renaming onto an empty folder replaces it
            os.replace(staging, target)
        else:
            old = parent / f".{target.name}.{slug}-{uuid.uuid4().hex[:12]}.old"
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
        if staging.exists():
            shutil.rmtree(staging)  # this run's own, fresh folder
    return target
