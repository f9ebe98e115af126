"""Test setup: a private Prefect home, and one Prefect test server for the whole session."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Before anything imports Prefect: a throwaway Prefect home, quiet and offline-safe.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="oj-test-prefect-")
# Removed when the session ends: each run left a ~5 MB folder in /tmp (342 seen).
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)  # never a developer's real server

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server() -> str:
    """A temporary Prefect server (Prefect's test harness); yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium, installed when missing (the tests run as root on a
    fresh machine; a browser test never skips for want of a browser)."""
    import shutil
    import subprocess

    found = shutil.which("chromium")
    if found is None:
        install = (
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"
        )
        result = subprocess.run(
            ["bash", "-c", install], capture_output=True, text=True, check=False
        )
        found = shutil.which("chromium")
        if found is None:
            pytest.fail(f"chromium is needed and could not be installed:\n{result.stderr[-2000:]}")
    return found


# --- real servers for object storage and a Dask cluster (issue 13) --------------------------

#: Dummy credentials of the local S3 server; the same variables a real bucket is set by.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",  # delta-rs and polars refuse plain http without it
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask a cloud metadata service
}


def _start(command: list[str], log: Path, env: dict[str, str] | None = None):
    """A server process that dies with this test session, SIGKILL included."""
    import subprocess

    from flows.server import die_with_parent

    handle = log.open("w")
    return subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, env=env or os.environ.copy(),
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, before exec
    )  # fmt: skip


def _stop(process) -> None:
    """Stop a server by its PID: SIGTERM, then SIGKILL if it lingers."""
    from flows.server import stop_process

    stop_process(process, timeout=15)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    """A local S3-compatible server (moto's, `moto_server`) on 127.0.0.1; its URL."""
    import time

    import requests

    from flows.server import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = Path(sys.executable).with_name("moto_server")
    process = _start([str(server), "-H", "127.0.0.1", "-p", str(port)], log)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(endpoint, timeout=2)
            break
        # A server still starting may accept the connection and answer late: a read
        # timeout (not a ConnectionError in requests) on a loaded machine, seen here.
        except (requests.ConnectionError, requests.Timeout):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        _stop(process)


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the local S3 server, with the AWS_* variables that reach it
    set for this test and the commands it starts; its URL, `s3://<name>`."""
    import uuid

    import boto3

    for key, value in (S3_ENV | {"AWS_ENDPOINT_URL": s3_endpoint}).items():
        monkeypatch.setenv(key, value)
    name = f"oj-{uuid.uuid4().hex[:16]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def dask_cluster(s3_endpoint: str, tmp_path_factory) -> str:
    """A Dask scheduler and two one-thread workers on 127.0.0.1, started as the real
    `dask scheduler` / `dask worker` commands; the scheduler's address. The workers see
    the local S3 server through the same AWS_* variables as the tests."""
    from distributed import Client

    from flows.server import free_port

    logs = tmp_path_factory.mktemp("dask")
    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{free_port()}"
    env = os.environ.copy() | S3_ENV | {"AWS_ENDPOINT_URL": s3_endpoint}
    processes = [
        _start(
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                address.rsplit(":", 1)[1],
                "--no-dashboard",
            ],
            logs / "scheduler.log",
            env,
        )  # fmt: skip
    ]
    try:
        for n in (1, 2):
            # --no-nanny: the worker is the process started here, so it dies with the
            # session (a nanny's child would not get the parent-death signal).
            processes.append(
                _start(
                    [
                        dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"worker-{n}",
                    ],
                    logs / f"worker-{n}.log",
                    env,
                )  # fmt: skip
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
