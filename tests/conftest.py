"""Test setup: a private Prefect home, and one Prefect test server for the whole session."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Before anything imports Prefect: a throwaway Prefect home, quiet and offline-safe.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="oj-test-prefect-")
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
