"""`oj serve` against a test server: deployment and schedule registered, a triggered run
completes and publishes, and SIGINT stops it cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import RAW_DIR, ROOT

from flows import storage


def test_serve_registers_the_nightly_schedule_and_runs(prefect_server: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

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
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while True:
                assert process.poll() is None, process.stdout.read()
                try:
                    deployment = client.read_deployment_by_name("nightly/nightly")
                    break
                except ObjectNotFound:
                    assert time.monotonic() < deadline, "deployment never registered"
                    time.sleep(1)
        (schedule,) = deployment.schedules
        assert schedule.schedule.cron == "0 3 * * *"
        assert schedule.schedule.timezone == "Europe/Stockholm"
        assert deployment.parameters["datasets_dir"] == str(datasets)

        flow_run = run_deployment("nightly/nightly", timeout=180)
        assert flow_run.state.is_completed(), flow_run.state
        assert storage.get_release(datasets)["release"] == 1
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, process.stdout.read()
