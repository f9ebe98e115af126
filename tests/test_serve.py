"""`oj serve` against a test server: deployment and schedule registered, a triggered run
completes and publishes, and SIGINT stops it cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import RAW_DIR, ROOT, stop_serving, wait_for_deployment

from flows import storage


def test_serve_registers_the_nightly_schedule_and_runs(prefect_server: str, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "serve",
            "--raw-dir",
            str(raw),
            "--datasets-dir",
            str(datasets),
            "--cron",
            "0 3 * * *",
        ],
        cwd=ROOT,
        env=os.environ | {"PREFECT_API_URL": prefect_server},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deployment = wait_for_deployment(process, "nightly/nightly")
        (schedule,) = deployment.schedules
        assert schedule.schedule.cron == "0 3 * * *"
        assert schedule.schedule.timezone == "Europe/Stockholm"
        assert deployment.parameters["datasets_dir"] == str(datasets)

        flow_run = run_deployment("nightly/nightly", timeout=180)
        assert flow_run.state.is_completed(), flow_run.state
        assert storage.get_release(datasets)["release"] == 1
    finally:
        stop_serving(process)
