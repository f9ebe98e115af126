"""A release pins table versions, so no commit file of any table may ever be deleted.

delta-rs deletes, after a commit, the commit files older than `delta.logRetentionDuration`
(30 days) up to the newest checkpoint, unless `delta.enableExpiredLogCleanup` is false;
every release before that checkpoint could then no longer be read ("No files in log
segment"). Checkpoints themselves are wanted (every `storage.CHECKPOINT_EVERY` commits),
so that opening a table does not replay its whole history.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable
from helpers import publish

from flows import storage, verify
from flows.schemas import VERSIONED_TABLES

FORTY_DAYS = 40 * 86400


def _age_logs(datasets: Path) -> None:
    """Every file of every table's log made 40 days old, past the 30-day retention."""
    old = time.time() - FORTY_DAYS
    for log in datasets.glob("*/_delta_log"):
        for entry in log.iterdir():
            os.utime(entry, (old, old))


def _releases_readable(datasets: Path, upto: int) -> None:
    for release in range(1, upto + 1):
        for name in VERSIONED_TABLES:
            storage.load_arrow(name, release, datasets)  # raises if its log is gone


def test_old_releases_stay_readable_across_checkpoints(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    first = publish(datasets)
    findings_release_1 = storage.load_arrow("findings", first, datasets)
    release = first
    # Re-parses commit to every table; enough of them to pass a checkpoint of `findings`
    # with a log that is all older than the retention.
    while DeltaTable(str(datasets / "findings")).version() < 2 * storage.CHECKPOINT_EVERY:
        _age_logs(datasets)
        release = publish(datasets, [], mode="reparse")
    log = datasets / "findings" / "_delta_log"
    assert list(log.glob("*.checkpoint.parquet")), "no checkpoint was written"
    assert (log / f"{0:020d}.json").exists(), "the log's first commit was deleted"
    _releases_readable(datasets, release)
    assert storage.load_arrow("findings", first, datasets).equals(findings_release_1)
    problems, _ = verify.verify_releases(datasets)
    assert problems == []


def test_an_older_dataset_gets_the_table_properties_at_its_next_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset written before the properties existed (delta-rs' defaults: expired logs
    cleaned up, a checkpoint every 100 commits): the next release gives its tables the
    properties, with a checkpoint of the log so far."""
    datasets = tmp_path / "datasets"
    with monkeypatch.context() as patch:
        patch.setattr(storage, "TABLE_PROPERTIES", {})
        publish(datasets)
    assert "delta.enableExpiredLogCleanup" not in (
        DeltaTable(str(datasets / "findings")).metadata().configuration
    )
    release = publish(datasets, [], mode="reparse")
    for name in VERSIONED_TABLES:
        configuration = DeltaTable(str(datasets / name)).metadata().configuration
        for key, value in storage.table_properties(name).items():
            assert configuration.get(key) == value, (name, key)
        assert list((datasets / name / "_delta_log").glob("*.checkpoint.parquet")), name
    _releases_readable(datasets, release)


@pytest.mark.parametrize("name", VERSIONED_TABLES)
def test_a_new_table_is_created_with_its_properties(tmp_path: Path, name: str) -> None:
    datasets = tmp_path / "datasets"
    publish(datasets)
    configuration = DeltaTable(str(datasets / name)).metadata().configuration
    assert {key: configuration.get(key) for key in storage.table_properties(name)} == (
        storage.table_properties(name)
    )
