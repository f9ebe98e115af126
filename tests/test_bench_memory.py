"""bench/run.py's tree memory sampler: where the peak is, per process, with real processes."""

from __future__ import annotations

import subprocess
import sys
import time

from helpers import ROOT

sys.path.insert(0, str(ROOT))

from bench.run import TreeMemory  # noqa: E402

# A parent that starts one child holding ~120 MB, then the parent itself takes ~60 MB
# after the child is gone: the tree's peak is while the child lives.
SCRIPT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import time; b = bytearray(120 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(2)"])
child.wait()
held = bytearray(60 * 2**20); held[::4096] = b'x' * len(held[::4096])
time.sleep(1.5)
"""


def test_tree_memory_names_each_process_at_the_peak() -> None:
    process = subprocess.Popen([sys.executable, "-c", SCRIPT])
    try:
        with TreeMemory(process.pid) as memory:
            process.wait(timeout=60)
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    breakdown = memory.breakdown()
    roles = {entry["role"] for entry in breakdown["at_peak_mb"]}
    assert roles == {"flow", "workers"}  # the peak came while the child lived
    worker = max(e["mb"] for e in breakdown["at_peak_mb"] if e["role"] == "workers")
    assert worker >= 120
    assert breakdown["role_peaks_mb"]["flow"] >= 60  # the parent's own later peak
    assert memory.peak_mb >= worker
    # proportional set sizes: shared library pages counted once, not in every process
    assert 0 < breakdown["peak_pss_mb"] <= memory.peak_mb
    assert max(total for _, total, _ in memory.timeline) == memory.peak_bytes
