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


ARENAS = """
import ctypes, sys, threading
if sys.argv[1] == "flows":
    import flows
blocks = []
start = threading.Barrier(6)
def allocate():
    start.wait()  # all at once: each thread that finds the arenas busy may get its own
    blocks.extend(bytearray(4096) for _ in range(2000))  # malloc, not Python's pools
threads = [threading.Thread(target=allocate) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = subprocess.run(
        [sys.executable, "-c", ARENAS, mode], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    return run.stderr.count("Arena ")


def test_importing_flows_caps_mallocs_arenas_at_two() -> None:
    # glibc gives threads that allocate at once arenas of their own, and memory freed in
    # one stays there: a first run at 1,000,000 captures peaked ~70 MB higher.
    assert _arenas("flows") <= 2
    assert _arenas("bare") > 2  # the probe does make arenas without the cap
