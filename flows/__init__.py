"""Orchestration and all IO: fetching, the raw archive, storage of the published tables.

Importing this package sets quiet, offline-safe Prefect defaults (see
../shared/notes/stack.md) before Prefect is imported; settings already in the
environment win.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

for _name, _value in {
    "PREFECT_HOME": str(PROJECT_ROOT / ".prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # The default 20 s was exceeded on a first run here, while the database is created.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # deltalake's Rust runtime prints a stack backtrace note on a panic (a full disk);
    # `oj` says what happened in one line.
    "RUST_BACKTRACE": "0",
    # delta-rs logs every failed credential lookup as a WARN line on stderr (three
    # "failed to load region from IMDS" lines before the error itself): the error, in
    # one line, says what to set.
    "RUST_LOG": "error",
    # Memory (issue 21 item 4): Arrow's default mimalloc pool and polars' jemalloc (freed
    # pages purged after 0.5-1 s) kept freed memory through a derivation's phases; with
    # Arrow on the system allocator and jemalloc purging at once, a full derivation at
    # 30,000 captures peaked at 547 MB instead of 711 MB, tables identical. Read when
    # pyarrow and polars load, so set here, before either is imported.
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0",
}.items():
    os.environ.setdefault(_name, _value)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
    memory freed in one stays with it: a first run at 1,000,000 captures, whose Arrow,
    polars, deltalake and Prefect threads all allocate, peaked 70 MB higher (1,136 MB
    for the tree, flow time unchanged) than with two arenas. Same as MALLOC_ARENA_MAX=2,
    which wins when set; a no-op off glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes

    try:
        # the process's own symbols, libc's among them: no library search at import
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_arena_max = -8  # glibc's malloc.h
    mallopt(m_arena_max, arenas)


_limit_malloc_arenas()
