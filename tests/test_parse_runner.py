"""How many parse worker processes a run starts (issue 21 item 4: memory of the tree)."""

from __future__ import annotations

import pytest

from flows import nightly


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (3, 2), (4, 3), (16, 4)])
def test_a_large_parse_leaves_the_flow_a_core(
    monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    # Each worker holds ~350 MB; on two cores the flow (which writes every batch) and two
    # workers were three busy processes and half the tree's peak memory.
    monkeypatch.setattr(nightly.os, "cpu_count", lambda: cores)
    runner, workers = nightly.parse_task_runner(nightly.PROCESS_POOL_MIN_PAGES, None)
    assert workers == expected
    assert (runner is None) == (expected == 1)  # one: the flow's own threads, no pool


def test_small_parses_and_explicit_counts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nightly.os, "cpu_count", lambda: 8)
    assert nightly.parse_task_runner(nightly.PROCESS_POOL_MIN_PAGES - 1, None) == (None, 1)
    runner, workers = nightly.parse_task_runner(10, 2)  # --parse-workers 2: as asked
    assert workers == 2 and runner is not None
    assert nightly.parse_task_runner(10**6, 1) == (None, 1)
