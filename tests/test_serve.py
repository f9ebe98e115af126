"""`oj serve` against a test server: deployment and schedule registered, a triggered run
completes and publishes, and SIGINT stops it cleanly; and `oj serve` stops like a service
(signals, exit codes, no leftover process)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import requests
from helpers import OJ, RAW_DIR, ROOT, oj_env, stop_serving, wait_for_deployment

from flows import storage
from flows.server import free_port, wait_until_healthy


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


# --- `oj serve` as a service (issue 19): signals, exit codes, no leftover process ------------
#
# Each test starts `oj serve` with its own local Prefect server (no PREFECT_API_URL), the way
# an operator's unit file or container does, and stops everything by PID.

#: What `oj serve` may take to stop: a container manager (`docker stop`) kills after 10 s.
STOP_CONTRACT_SECONDS = 10


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home (and database) for this module's servers: created once, not per test."""
    return tmp_path_factory.mktemp("serve-prefect-home")


@dataclass
class Serving:
    """A running `oj serve`: its PID, the process that reports its exit code, its port."""

    pid: int
    waiter: subprocess.Popen  # `oj serve` itself, or the bash script that started it
    port: int
    stderr: Path
    tree: list[psutil.Process] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def wait(self, timeout: float) -> tuple[int, float]:
        """Its exit code and how long it took to exit, from now."""
        started = time.monotonic()
        code = self.waiter.wait(timeout=timeout)
        return code, time.monotonic() - started

    def server(self) -> psutil.Process:
        (server,) = [p for p in self.tree if "server" in p.cmdline() and "prefect" in p.cmdline()]
        return server


def start_serving(
    tmp_path: Path, prefect_home: Path, *, by: str, extra: tuple[str, ...] = ()
) -> Serving:
    """`oj serve` started `by` "bash" (a script's `cmd &`: SIGINT and SIGQUIT arrive
    ignored, as under many service managers and container entrypoints) or "direct" (a
    systemd-style plain start, in a process group of its own), ready once its deployment is
    registered."""
    port = free_port()
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    command = [*OJ, "serve", "--raw-dir", str(raw), "--datasets-dir", str(datasets),
               "--cron", "0 3 1 1 *", "--port", str(port), *extra]  # fmt: skip
    env = oj_env(None) | {"PREFECT_HOME": str(prefect_home)}
    stdout, stderr = tmp_path / "serve.out", tmp_path / "serve.err"
    started_at = datetime.now(UTC)
    if by == "bash":
        script = 'out=$1 err=$2; shift 2; "$@" >"$out" 2>"$err" & echo $!; wait $!'
        waiter = subprocess.Popen(
            ["bash", "-c", script, "bash", stdout, stderr, *command], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        pid = int(waiter.stdout.readline())
    else:
        with stdout.open("w") as out, stderr.open("w") as err:
            waiter = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err,
                                      start_new_session=True)  # fmt: skip
        pid = waiter.pid
    serving = Serving(pid=pid, waiter=waiter, port=port, stderr=stderr, started_at=started_at)
    serving.tree = [psutil.Process(pid)]
    try:
        wait_until_registered(serving, f"http://127.0.0.1:{port}/api")
        serving.tree += serving.tree[0].children(recursive=True)
        assert serving.server().is_running()
    except BaseException:
        serving.tree += serving.tree[0].children(recursive=True)
        clean_up(serving)
        raise
    return serving


def wait_until_registered(serving: Serving, api_url: str) -> None:
    """Until `oj serve` has registered its deployment with the server at `api_url` and its
    runner polls for the deployment's runs."""
    deadline = time.monotonic() + 240
    since = serving.started_at
    url = f"{api_url}/deployments/name/nightly/nightly"
    while True:
        if serving.waiter.poll() is not None:
            pytest.fail(
                f"oj serve exited {serving.waiter.returncode}: {serving.stderr.read_text()[-2000:]}"
            )
        try:
            response = requests.get(url, timeout=5)
            # registered, and its runner has polled for scheduled runs: it is serving
            # (the module's servers share a database: a deployment an earlier test
            # registered is there from the start)
            polled = response.json().get("last_polled") if response.ok else None
            if polled and datetime.fromisoformat(polled) > since:
                break
        except requests.RequestException:  # not up yet, or busy creating its database
            pass
        assert time.monotonic() < deadline, "oj serve never polled for its deployment's runs"
        time.sleep(0.5)
    time.sleep(1)


def assert_all_gone(serving: Serving) -> None:
    """Not one process of the tree `oj serve` had outlives it."""
    _, alive = psutil.wait_procs(serving.tree, timeout=5)
    assert not alive, [p.cmdline() for p in alive]


def clean_up(serving: Serving | None) -> None:
    """Whatever a failed test left: killed by PID."""
    if serving is None:
        return
    for process in serving.tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    if serving.waiter.poll() is None:
        serving.waiter.kill()
    serving.waiter.wait()


def assert_quiet(stderr: str) -> None:
    for word in ("Traceback", "Warning", "never awaited", "Error"):
        assert word not in stderr, stderr


@pytest.mark.parametrize(
    ("started_by", "stop", "signum"),
    [("bash", os.kill, signal.SIGINT), ("bash", os.kill, signal.SIGTERM),
     ("direct", os.killpg, signal.SIGINT)],
    ids=["script-SIGINT", "script-SIGTERM", "group-SIGINT"],
)  # fmt: skip
def test_serve_stops_on_a_signal(
    tmp_path: Path, prefect_home: Path, started_by: str, stop, signum: int
) -> None:
    """`oj serve` stops on SIGINT or SIGTERM within 10 s, exits 0, says nothing on stderr,
    and leaves no process behind:
    - started by a shell script, where SIGINT arrives ignored: it ignored SIGINT for
      minutes, and took 16-20 s on SIGTERM with a RuntimeWarning;
    - with SIGINT to its whole process group (Ctrl-C in a terminal, a script's group-wide
      SIGINT), which killed its server while `oj serve` stayed up printing tracebacks."""
    serving = None
    try:
        serving = start_serving(tmp_path, prefect_home, by=started_by)
        stop(serving.pid, signum)
        code, seconds = serving.wait(timeout=60)
        print(f"oj serve stopped {seconds:.1f} s after {signal.Signals(signum).name} "
              f"({stop.__name__})")  # fmt: skip
        assert code == 0
        assert seconds < STOP_CONTRACT_SECONDS
        assert_quiet(serving.stderr.read_text())
        assert_all_gone(serving)
    finally:
        clean_up(serving)


def test_serve_exits_1_in_one_line_when_its_prefect_server_dies(
    tmp_path: Path, prefect_home: Path
) -> None:
    """Its Prefect server killed, `oj serve` exits 1 within seconds with one line naming
    the server, instead of serving on with tracebacks."""
    serving = None
    try:
        serving = start_serving(tmp_path, prefect_home, by="direct")
        serving.server().kill()
        code, seconds = serving.wait(timeout=60)
        print(f"oj serve exited {seconds:.1f} s after its server was killed")
        assert code == 1
        assert seconds < STOP_CONTRACT_SECONDS
        assert serving.stderr.read_text().splitlines() == [
            f"oj serve: the Prefect server at http://127.0.0.1:{serving.port} stopped "
            "answering; stopping"
        ]
        assert_all_gone(serving)
    finally:
        clean_up(serving)


def test_serve_killed_takes_its_prefect_server_with_it(tmp_path: Path, prefect_home: Path) -> None:
    """SIGKILL of `oj serve` (no handler runs) still ends its Prefect server, which lives
    in a session of its own."""
    serving = None
    try:
        serving = start_serving(tmp_path, prefect_home, by="direct")
        server = serving.server()
        assert os.getsid(server.pid) != os.getsid(serving.pid)  # out of the group's reach
        os.kill(serving.pid, signal.SIGKILL)
        assert serving.wait(timeout=30)[0] == -signal.SIGKILL
        assert_all_gone(serving)
    finally:
        clean_up(serving)


def test_serve_exits_1_when_the_server_it_was_given_stops_answering(
    tmp_path: Path, prefect_home: Path
) -> None:
    """A server named by PREFECT_API_URL that stops answering for --server-grace seconds:
    `oj serve` exits 1 with one line naming it."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=oj_env(None) | {"PREFECT_HOME": str(prefect_home)}, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    serving = None
    try:
        api_url = f"http://127.0.0.1:{port}/api"
        wait_until_healthy(api_url, server)
        raw, datasets = tmp_path / "raw", tmp_path / "datasets"
        shutil.copytree(RAW_DIR, raw)
        err = tmp_path / "serve.err"
        started_at = datetime.now(UTC)
        with err.open("w") as stderr:
            process = subprocess.Popen(
                [*OJ, "serve", "--raw-dir", str(raw), "--datasets-dir", str(datasets),
                 "--cron", "0 3 1 1 *", "--server-grace", "3"],
                cwd=ROOT, env=oj_env(api_url) | {"PREFECT_HOME": str(prefect_home)},
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        serving = Serving(
            pid=process.pid, waiter=process, port=port, stderr=err, started_at=started_at
        )
        serving.tree = [psutil.Process(process.pid)]
        wait_until_registered(serving, api_url)
        serving.tree += serving.tree[0].children(recursive=True)
        server.kill()
        server.wait()
        code, seconds = serving.wait(timeout=60)
        print(f"oj serve exited {seconds:.1f} s after the server it was given stopped (grace 3 s)")
        assert code == 1
        assert seconds < 3 + STOP_CONTRACT_SECONDS
        assert err.read_text().splitlines() == [
            f"oj serve: the Prefect server at http://127.0.0.1:{port} stopped answering; stopping"
        ]
        assert_all_gone(serving)
    finally:
        clean_up(serving)
        if server.poll() is None:
            server.kill()
        server.wait()
        log.close()
