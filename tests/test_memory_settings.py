"""Allocator settings that bound a run's memory (issue 21 item 4), in a fresh process as
`oj` and the parse workers start: importing `flows` sets them before pyarrow or polars
load (a full derivation at 30,000 captures: 711 -> 547 MB peak RSS, tables identical)."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import ROOT

PROBE = """
import flows
import pyarrow as pa
import polars
import os
print(pa.default_memory_pool().backend_name)
print(os.environ["_RJEM_MALLOC_CONF"])
"""


def _probe(env: dict[str, str]) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    return run.stdout.split()


def test_importing_flows_puts_arrow_on_the_system_allocator_and_jemalloc_purging() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ARROW_DEFAULT_MEMORY_POOL", "_RJEM_MALLOC_CONF")}  # fmt: skip
    backend, jemalloc = _probe(env)
    assert backend == "system"
    # polars appends our setting to its own defaults: the last value wins in jemalloc
    assert jemalloc.endswith("dirty_decay_ms:0,muzzy_decay_ms:0")


def test_an_operators_allocator_settings_win() -> None:
    env = os.environ | {"ARROW_DEFAULT_MEMORY_POOL": "mimalloc", "_RJEM_MALLOC_CONF": "abort:false"}
    backend, jemalloc = _probe(env)
    assert backend == "mimalloc"
    assert jemalloc.endswith("abort:false") and "dirty_decay_ms:0" not in jemalloc
