"""The fault campaign script (bench/fault_campaign.py) at --quick on two scenarios, as a
real process: its JSON holds the measured figures and they show the guarantees of issue 20
(slow pages grow linearly, every hostile record kind is quarantined in bounded lines)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, oj_env


def test_quick_campaign_measures_slow_pages_and_bad_records(
    prefect_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "faults.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.fault_campaign", "--quick", "--only",
         "slow_pages,bad_records", "--out", str(out)],
        cwd=ROOT, env=oj_env(prefect_server), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["slow_pages", "OK"], ["bad_records", "OK"]]
    figures = json.loads(out.read_text("utf-8"))
    assert figures["ok"] is True
    slow = figures["scenarios"]["slow_pages"]
    for name, shape in slow["shapes"].items():
        assert [size["scale"] for size in shape["sizes"]] == [1, 10], name
        assert shape["sizes"][1]["bytes"] > 5 * shape["sizes"][0]["bytes"], name
        assert len(shape["ratios"]) == 1 and shape["linear"] is True, name
    assert slow["nested_100k_or_largest_rejects"] > 0
    assert all(run["cpu_s"] < 2.0 for run in slow["number_grammar"].values())
    bad = figures["scenarios"]["bad_records"]
    assert bad["kinds"] >= 8 and "wrong type: municipality" in bad["kind_names"]
    assert bad["records_quarantined"] == bad["kinds"] == bad["lines_naming_a_bad_record"]
    assert bad["releases_readable"] == bad["releases_published"] == 1
    assert 0 < bad["longest_stderr_line_bytes"] < 400
    assert (bad["first_run_exit"], bad["second_run_exit"]) == (1, 0)
    assert not list(ROOT.glob("raw/records/h-*.json"))  # the repository's raw/ untouched
