"""Planning from record names, and a no-op run that starts no Prefect server (issue 11)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import RAW_DIR, ROOT, publish

from flows import pipeline, raw_archive


def test_only_new_records_are_read(tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    publish(datasets)
    # A published record is never read again: even one damaged after publishing does not
    # make a plan (`oj verify` is what checks the whole archive).
    published = sorted((raw / "records").glob("*.json"))[0]
    published.write_text("{", "utf-8")
    plan = pipeline.plan_run(raw, datasets)
    assert (plan.has_work, plan.n_in_archive, plan.records, plan.bad_records) == (False, 5, [], ())
    # A new record is read and planned.
    record, _ = raw_archive.add_snapshot(
        raw, b"Ny sida", url="https://kalmar.se/ny.html", source="seed"
    )
    plan = pipeline.plan_run(raw, datasets)
    assert [r.record_id for r in plan.records] == [record.record_id]


def test_a_record_whose_id_differs_from_its_name_is_quarantined(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(RAW_DIR, raw)
    original = sorted((raw / "records").glob("*.json"))[0]
    original.rename(original.with_name("renamed.json"))
    bad: list[raw_archive.BadRecord] = []
    records = raw_archive.read_records(raw, raw_archive.record_names(raw), bad)
    assert len(records) == 4
    assert [b.record_id for b in bad] == ["renamed"]
    assert "differs from its file name" in bad[0].reason


def test_a_run_with_nothing_new_starts_no_server(prefect_server: str, tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    command = [sys.executable, "-m", "flows.cli", "run", "--raw-dir", str(raw),
               "--datasets-dir", str(datasets)]  # fmt: skip
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                           env=os.environ | {"PREFECT_API_URL": prefect_server})  # fmt: skip
    assert first.returncode == 0, first.stderr
    # Nothing new, no PREFECT_API_URL, an empty Prefect home: a server would create its
    # database there; the no-op must not start one.
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {
        "PREFECT_HOME": str(home)
    }
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == (
        "pages read: 0 (5 in archive), findings: 0, rejects: 0, failed pages: 0; "
        "no new release (latest is 1)"
    )
    assert not any(home.rglob("*.db"))


def test_published_ids_are_checked_without_a_set_of_every_id() -> None:
    # A nightly at 1,000,000 captures checks twenty new ids: the published ids stay the
    # Arrow column read (a Python set of a million ids took 0.3-0.5 s of its plan).
    ids = raw_archive.PublishedIds(pa.chunked_array([["a", "b"], ["c", None]]))
    assert ids.unpublished(["b", "x", "c", "y"]) == [False, True, False, True]
    assert ids._set is None  # a scan of the column against the four ids
    for _ in range(raw_archive.PublishedIds._SCANS_BEFORE_SET):
        ids.unpublished(["a"])
    # Many checks (a backfill of many new segments): the set is built once and kept.
    assert ids.unpublished(["a", "z"]) == [False, True] and ids._set is not None
    assert "c" in ids and "q" not in ids and len(ids) == 4
    assert raw_archive.unpublished(["a", "q"], {"a"}) == [False, True]


def test_a_run_with_work_reads_the_archive_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `oj run` looks for work before starting Prefect (a run with nothing to do starts no
    # server); on a first run that look read every record, and the flow read them all
    # again: 19 s of a first run at 1,000,000 captures. With no release, or one of another
    # parser version, there is work without reading the archive.
    from flows import cli

    plans = []
    real_plan = pipeline.plan_run
    monkeypatch.setattr(pipeline, "plan_run", lambda *a, **k: plans.append(a) or real_plan(*a, **k))
    datasets = tmp_path / "datasets"
    args = argparse.Namespace(raw_dir=RAW_DIR, datasets_dir=datasets)
    assert cli._nothing_to_do(args, None) is None and plans == []  # no release yet
    publish(datasets, parser_version="0.0-older")
    assert cli._nothing_to_do(args, None) is None and plans == []  # parsed otherwise
    publish(datasets / "current")
    current = argparse.Namespace(raw_dir=RAW_DIR, datasets_dir=datasets / "current")
    assert "no new release (latest is 1)" in (cli._nothing_to_do(current, None) or "")
    assert len(plans) == 1  # a release of this parser: the look reads what is new
