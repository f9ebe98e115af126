"""`oj report --out DIR` never deletes what it did not write (issue 19, item 1).

Each test runs the real `oj report` command in a fresh process on a real release of the
shipped pages. Before: `mkdir mine; echo notes > mine/thesis.tex; oj report --out mine`
deleted thesis.tex and exited 0; `oj report --out .` printed
"unexpected error: ValueError: PosixPath('.') has an empty name".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import publish, run_oj

REFUSED = "folder is not empty and was not written by oj report; choose a new or empty folder"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release of the shipped pages (no Prefect: the flow's plain functions)."""
    out = tmp_path_factory.mktemp("report-out") / "datasets"
    publish(out)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "unexpected error" not in stderr, stderr
    return lines[0]


def test_a_folder_it_did_not_write_is_refused_and_kept(datasets: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("notes\n", "utf-8")
    # a folder beside it named like the report's old staging folder is not the report's
    beside = tmp_path / ".mine.partial"
    beside.mkdir()
    (beside / "keep.txt").write_text("mine too\n", "utf-8")
    before = _files(tmp_path)

    result = run_oj("report", "--datasets-dir", datasets, "--out", "mine", cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert _one_line(result.stderr) == f"oj report: --out mine: {REFUSED}"
    assert _files(tmp_path) == before  # nothing deleted, nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mine.partial", "mine"]


def test_an_empty_folder_is_used_and_its_own_site_replaced(datasets: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()  # empty: used
    first = run_oj("report", "--datasets-dir", datasets, "--out", site)
    assert first.returncode == 0, first.stderr
    marker = json.loads((site / ".oj-report").read_text("utf-8"))
    assert marker["written_by"] == "oj report" and marker["release"] == 1
    written = set(marker["files"])
    assert "index.html" in written and "style.css" in written
    assert set(_files(site)) == written | {".oj-report"}

    # its own folder (the marker is there): replaced, and nothing is left beside it
    stale = site / "questions" / "gone.html"  # a page the last build wrote, listed as its
    stale.write_text("old", "utf-8")
    marker["files"].append("questions/gone.html")
    (site / ".oj-report").write_text(json.dumps(marker), "utf-8")
    second = run_oj("report", "--datasets-dir", datasets, "--out", site)
    assert second.returncode == 0, second.stderr
    assert not stale.exists()
    assert set(_files(site)) == written | {".oj-report"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]

    # a file someone added to the site: refused, the file and the site kept as they were
    (site / "areas" / "notes.txt").write_text("my notes\n", "utf-8")
    kept = _files(site)
    third = run_oj("report", "--datasets-dir", datasets, "--out", site)
    assert third.returncode == 2
    assert _one_line(third.stderr) == (
        f"oj report: --out {site}: holds files oj report did not write (areas/notes.txt); "
        "move them out or choose a new or empty folder"
    )
    assert _files(site) == kept


def test_odd_out_paths_answer_in_one_line_and_delete_nothing(
    datasets: Path, tmp_path: Path
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "thesis.tex").write_text("notes\n", "utf-8")
    (here / "a-file").write_text("data\n", "utf-8")
    before = _files(here)
    cases = {
        ".": (2, f"--out .: {REFUSED}"),
        "/": (2, "--out /: is the root folder; choose a new or empty folder"),
        "a-file": (2, "--out a-file: is a file, not a folder"),
        "a-file/site": (2, "--out a-file/site: a-file is a file, not a folder"),
        "/sys/oj-site": (74, "--out /sys/oj-site: cannot write /sys: Operation not permitted"),
    }
    for out, (code, line) in cases.items():
        result = run_oj("report", "--datasets-dir", datasets, "--out", out, cwd=here)
        assert result.returncode == code, (out, result.stderr)
        assert _one_line(result.stderr) == f"oj report: {line}", out
        assert _files(here) == before, out
        assert sorted(p.name for p in here.iterdir()) == ["a-file", "thesis.tex"], out


def test_the_folder_one_stands_in_is_not_replaced(datasets: Path, tmp_path: Path) -> None:
    # Replacing the current folder (even an empty one, or a site of its own) would leave
    # the shell in a deleted folder: refused in one line.
    site = tmp_path / "site"
    built = run_oj("report", "--datasets-dir", datasets, "--out", site)
    assert built.returncode == 0, built.stderr
    before = _files(site)
    for cwd, out in ((site, "."), (site / "areas", "..")):
        result = run_oj("report", "--datasets-dir", datasets, "--out", out, cwd=cwd)
        assert result.returncode == 2, result.stderr
        assert _one_line(result.stderr) == (
            f"oj report: --out {out}: is the folder you are in (or holds it); "
            "choose a new or empty folder elsewhere"
        )
        assert _files(site) == before
