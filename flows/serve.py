"""`oj serve`: the nightly flow on a cron schedule, in one command, that stops like a service.

A temporary (ephemeral) Prefect server cannot schedule runs ("Cannot schedule flows on an
ephemeral server"), so this uses the server `PREFECT_API_URL` names, or starts a local
`prefect server start` for as long as it serves, then serves the flow with its schedule.
Prefect is imported only after `PREFECT_API_URL` is set, so every client sees that server.

Stopping. SIGTERM (systemd, `docker stop`) and SIGINT (Ctrl-C) both stop it, however it
was started: a command started with `cmd &` by a script or an entrypoint inherits SIGINT
as *ignored*, and `flow.serve` then ignored `kill -INT` for minutes, so the handlers are
set here. Prefect's runner is built and started in our own event loop: `flow.serve`
answered SIGTERM by calling the runner's sync `stop()` from a signal handler
("coroutine 'Runner.astop' was never awaited") and took 16-20 s; here the loop's handler
wakes the main task, which awaits `Runner.astop()`, then the local server is stopped.

Its server gone. A server that stops answering (killed, crashed, or unreachable for
`server_grace` seconds) ends `oj serve` with exit 1 and one line, instead of a runner
polling a dead API with tracebacks forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import Any

import requests

from flows.errors import OperatorError
from flows.server import die_with_parent, stop_process, wait_until_healthy

#: How long the Prefect server may not answer before `oj serve` gives up (a restart of a
#: shared server takes a few seconds; a service manager restarts `oj serve` after that).
SERVER_GRACE_SECONDS = 30.0
#: How often the server is asked whether it is there.
HEALTH_INTERVAL_SECONDS = 1.0
#: The stop's budget, well inside the 10 s after which `docker stop` kills: the runner's
#: part (pausing the schedule, cancelling runs, flushing events), then the server's
#: (SIGTERM, then SIGKILL). Measured here: about 0.1 s and 0.3-2 s.
RUNNER_STOP_SECONDS = 4.0
SERVER_STOP_SECONDS = 3.0

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ServerGone(OperatorError):
    """The Prefect server stopped answering: exit 1, so `Restart=on-failure` restarts."""


class _StopWhileStarting(BaseException):
    """A stop signal arrived before the runner ran (a BaseException: nothing catches it on
    the way out, like KeyboardInterrupt)."""


def _stop_while_starting(signum: int, frame: FrameType | None) -> None:
    raise _StopWhileStarting(signum)


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
        # A session of its own: Ctrl-C in a terminal (or a script's `kill -INT -PGID`)
        # reaches the whole process group, and killed the server under a running
        # `oj serve`; `oj serve` stops it itself, after its runner.
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - the server dies with `oj serve`, SIGKILL included
    )  # fmt: skip
    wait_until_healthy(api_url, process, log)
    return process, api_url


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM (uvicorn shuts down gracefully on it), SIGKILL after SERVER_STOP_SECONDS."""
    stop_process(process, timeout=SERVER_STOP_SECONDS, stop_signal=signal.SIGTERM)


def answers(api_url: str, timeout: float = 2) -> bool:
    """Whether the Prefect API at `api_url` answers its health check now."""
    try:
        return requests.get(f"{api_url}/health", timeout=timeout).ok
    except requests.RequestException:
        return False


async def watch_server(api_url: str, process: subprocess.Popen | None, grace: float) -> None:
    """Return once the server is gone: `process` (a server started here) exited, or the API
    has not answered for `grace` seconds."""
    silent_since: float | None = None
    while True:
        await asyncio.sleep(HEALTH_INTERVAL_SECONDS)
        if process is not None and process.poll() is not None:
            return
        if await asyncio.to_thread(answers, api_url, min(2.0, max(grace, 0.5))):
            silent_since = None
            continue
        now = time.monotonic()
        silent_since = now if silent_since is None else silent_since
        if now - silent_since >= grace:
            return


class QuietWhileServerSilent(logging.Filter):
    """Drop Prefect's warnings and errors while its server does not answer.

    A killed server makes the runner's observers log at once, before the watcher can
    notice ("The FlowRunCancellingObserver websocket failed with an exception. Switching
    to polling mode." and three chained tracebacks); the operator's line is ServerGone's.
    Asked only for WARNING and above, which are rare while the server answers."""

    def __init__(self, api_url: str, process: subprocess.Popen | None) -> None:
        super().__init__()
        self.api_url, self.process = api_url, process

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.process is not None and self.process.poll() is not None:
            return False
        return answers(self.api_url, timeout=1)


def serve(
    *,
    cron: str,
    timezone: str,
    parameters: dict[str, Any],
    port: int = 4200,
    server_grace: float = SERVER_GRACE_SECONDS,
) -> int:
    """Serve the `nightly` flow as deployment `nightly/nightly` until SIGTERM or SIGINT (0),
    or until its Prefect server stops answering (ServerGone, exit 1)."""
    previous = {signum: signal.signal(signum, _stop_while_starting) for signum in _STOP_SIGNALS}
    server = None
    gone = False
    api_url = os.environ.get("PREFECT_API_URL", "")
    try:
        if api_url:
            wait_until_healthy(api_url)
        else:
            server, api_url = start_local_server(port)
            os.environ["PREFECT_API_URL"] = api_url
            print(f"started a local Prefect server: UI at {api_url.removesuffix('/api')}",
                  flush=True)  # fmt: skip
        gone = asyncio.run(
            _serve(cron=cron, timezone=timezone, parameters=parameters, api_url=api_url,
                   server=server, grace=server_grace)
        )  # fmt: skip
    except _StopWhileStarting:
        pass
    finally:
        # A second signal while stopping changes nothing: the stop is bounded already.
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if server is not None:
            stop_server(server)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if gone:
        raise ServerGone(
            f"the Prefect server at {api_url.removesuffix('/api')} stopped answering; stopping"
        )
    return 0


async def _serve(
    *,
    cron: str,
    timezone: str,
    parameters: dict[str, Any],
    api_url: str,
    server: subprocess.Popen | None,
    grace: float,
) -> bool:
    """Run the runner until a stop signal (False) or the server is gone (True)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)

    from prefect.runner import Runner
    from prefect.schedules import Cron

    from flows.nightly import nightly

    class ServiceRunner(Runner):
        def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
            # `Runner.start` installs this with signal.signal; Prefect's calls the sync
            # `stop()` from the handler and `sys.exit`. The loop's handler above is woken
            # by the same signal and stops the runner from the main task instead.
            return

    quiet = QuietWhileServerSilent(api_url, server)
    for handler in {*logging.getLogger().handlers, *logging.getLogger("prefect").handlers}:
        handler.addFilter(quiet)

    runner = ServiceRunner(name="nightly", pause_on_shutdown=True)

    async def run() -> None:
        await runner.aadd_flow(
            nightly,
            name="nightly",
            schedules=[Cron(cron, timezone=timezone)],
            parameters=parameters,
            description="Parse new raw snapshots and publish a release when something changed",
        )
        print(
            f"serving deployment nightly/nightly on {cron!r} ({timezone}); stop with "
            "SIGTERM or SIGINT",
            flush=True,
        )
        await runner.start()

    watching = asyncio.create_task(watch_server(api_url, server, grace))
    stop_asked = asyncio.create_task(stopping.wait())
    running = asyncio.create_task(run())
    await asyncio.wait({running, stop_asked, watching}, return_when=asyncio.FIRST_COMPLETED)
    if running.done() and not watching.done() and running.exception() is not None:
        # Registering or running fails first on a dead server ("ConnectError: All
        # connection attempts failed"): the watcher decides, within its grace, whether
        # the server is gone or this is the runner's own error.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(watching), grace + 2 * HEALTH_INTERVAL_SECONDS + 2
            )
    gone = watching.done()
    stop_asked.cancel()
    watching.cancel()
    if gone:
        # Nothing to tell a dead server (pausing the schedule, flushing events): every
        # call would fail with a traceback after retries. Its one line is ServerGone's.
        logging.disable(logging.CRITICAL)
        loop.set_exception_handler(lambda loop, context: None)
        runner.pause_on_shutdown = False
    if running.done():
        if not gone:
            running.result()  # the runner failed on its own: its error, in one line
        return gone
    deadline = loop.time() + RUNNER_STOP_SECONDS
    if runner.started and not gone:
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(runner.astop(), RUNNER_STOP_SECONDS)
    else:  # still registering or starting, or nobody to tell: no goodbyes
        running.cancel()
    try:
        await asyncio.wait_for(running, max(deadline - loop.time(), 0.5))
    except (TimeoutError, asyncio.CancelledError):
        pass
    except Exception:
        if not gone:
            raise
    return gone
