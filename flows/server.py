"""A Prefect API for one `oj` command that dies with it, SIGKILL included.

Prefect's own temporary server is a subprocess stopped by an `atexit` hook, so a killed
`oj run` left it running (42 of 49 kills, ~200 MB each, holding a port). Here the command
starts the same server itself, as a child the kernel kills when its parent dies
(`PR_SET_PDEATHSIG`), and stops it on a normal exit. With `PREFECT_API_URL` set, that
server is used and nothing is started.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

STARTUP_TIMEOUT_SECONDS = 120
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: be killed with SIGKILL when the parent dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the atexit stop still applies
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def prefect_api(while_starting: Callable[[], object] | None = None) -> Iterator[str]:
    """The API URL to use: `PREFECT_API_URL`, or a server started for this command.

    Call before Prefect is imported, so every client sees the URL. `while_starting` runs
    while a started server boots (e.g. importing the flow, ~3 s of Prefect imports), on
    the other core instead of after it: the URL is already set then, and importing
    Prefect contacts no server.
    """
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        if while_starting is not None:
            while_starting()
        yield existing
        return
    # Prefect is not imported yet (it would read its settings now): find it on the path.
    spec = importlib.util.find_spec("prefect")
    site_packages = Path(spec.origin).parent.parent if spec and spec.origin else Path(".")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    # The server's messages go to a file, not a pipe nobody reads (a full pipe blocks it).
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(site_packages),
         "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
             "PREFECT__SERVER_FINAL": "1"},
        stdout=subprocess.DEVNULL, stderr=log, text=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, before exec
    )  # fmt: skip
    try:
        os.environ["PREFECT_API_URL"] = api_url
        if while_starting is not None:
            while_starting()
        wait_until_healthy(api_url, process, log)
        yield api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        stop_process(process)
        log.close()


def stop_process(
    process: subprocess.Popen, timeout: float = 10, stop_signal: int = signal.SIGTERM
) -> None:
    """Stop a child by its PID: `stop_signal`, then SIGKILL if it is still there after
    `timeout` seconds."""
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


#: Seconds one health request may take before it is retried (within the startup deadline).
HEALTH_REQUEST_TIMEOUT = 10.0


def wait_until_healthy(
    api_url: str, process: subprocess.Popen | None = None, log: IO[str] | None = None
) -> None:
    """Wait for a Prefect API to answer; fail early, with its messages, if `process`
    (the server started for it) exits first."""
    # Imported here: the parse helper (flows/page_worker.py) imports this module for
    # `exit_with_parent` and stays lean.
    import requests

    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            error = ""
            if log is not None:
                log.seek(0)
                error = log.read()
            raise RuntimeError(f"the Prefect server exited on start: {error[-500:].strip()}")
        try:
            # Up to 10 s per request, within the deadline: on a busy machine the server
            # took longer than 2 s to answer (`ReadTimeout ... (read timeout=2)` killed
            # 5 of 6 parallel runs at start).
            per_request = max(0.5, min(HEALTH_REQUEST_TIMEOUT, deadline - time.monotonic()))
            if requests.get(f"{api_url}/health", timeout=per_request).ok:
                return
        except requests.RequestException:
            # a read timeout too: a server creating its database answered none in time
            # (`oj serve` failed on start with "unexpected error: ReadTimeout"): retry
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no Prefect server answered at {api_url} in {STARTUP_TIMEOUT_SECONDS} s")


_watching = False


def exit_with_parent(parent: int) -> None:
    """In a worker process (Prefect's process pool, the parse helper): exit when `parent`,
    the process that started it, dies. A pool worker holds both ends of its task queue,
    so a parent killed with SIGKILL would otherwise leave it waiting forever. The
    parent's pid is passed in, not read here: the parent may already be gone when the
    worker gets this far. Idempotent."""
    global _watching
    import threading

    if _watching:
        return
    _watching = True

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="oj-exit-with-parent", daemon=True).start()
