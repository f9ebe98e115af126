"""`oj serve`: the nightly flow on a cron schedule, in one command.

A temporary (ephemeral) Prefect server cannot schedule runs ("Cannot schedule flows on an
ephemeral server"), so this uses the server `PREFECT_API_URL` names, or starts a local
`prefect server start` for as long as it serves, then serves the flow with its schedule.
Prefect is imported only after `PREFECT_API_URL` is set, so every client sees that server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

import requests

from flows.server import die_with_parent, stop_process, wait_until_healthy


def start_local_server(port: int) -> tuple[subprocess.Popen, str]:
    """Start `prefect server start` on 127.0.0.1:port and wait until it answers."""
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        requests.get(f"{api_url}/health", timeout=2)
    except requests.ConnectionError:
        pass
    else:
        raise RuntimeError(
            f"port {port} is taken by a running server: set PREFECT_API_URL={api_url} to use "
            "it, or pass --port"
        )
    # Messages go to a file, not a pipe nobody reads once it runs (a full pipe blocks it).
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=log, text=True,
        preexec_fn=die_with_parent,  # the server dies with `oj serve`, SIGKILL included
    )  # fmt: skip
    wait_until_healthy(api_url, process, log)
    return process, api_url


def stop_server(process: subprocess.Popen) -> None:
    # SIGINT: SIGTERM did not stop Prefect within 13 s here
    stop_process(process, timeout=30, stop_signal=signal.SIGINT)


def serve(*, cron: str, timezone: str, parameters: dict[str, Any], port: int = 4200) -> int:
    """Serve the `nightly` flow as deployment `nightly/nightly` until interrupted."""
    server = None
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url:
        wait_until_healthy(api_url)
    else:
        server, api_url = start_local_server(port)
        os.environ["PREFECT_API_URL"] = api_url
        print(f"started a local Prefect server: UI at {api_url.removesuffix('/api')}")
    try:
        from prefect.schedules import Cron

        from flows.nightly import nightly

        nightly.serve(
            name="nightly",
            schedules=[Cron(cron, timezone=timezone)],
            parameters=parameters,
            description="Parse new raw snapshots and publish a release when something changed",
        )
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            stop_server(server)
    return 0
