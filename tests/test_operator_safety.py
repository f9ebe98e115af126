"""Issue 10, with real processes: one writer per datasets dir, quarantined records,
one-line operator errors with documented exit codes, no process outliving `oj`, and
`oj verify`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock
from helpers import (
    OJ,
    RAW_DIR,
    ROOT,
    check_store,
    oj_env,
    overlapping_runs,
    publish,
    run_oj,
    seed_records,
)

from flows import raw_archive, storage
from flows.cli import main


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_two_runs_at_once_publish_each_piece_of_work_once(
    prefect_server: str, tmp_path: Path
) -> None:
    sys.path.insert(0, str(ROOT))  # bench/ is not an installed package
    from bench.corpus import build_corpus

    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    build_corpus(raw, 240)
    command = [*OJ, "run", "--raw-dir", str(raw), "--datasets-dir", str(datasets)]
    # Started together: one writes release 1, the other waits for the lock, then finds
    # nothing left to do.
    overlapping_runs(command, oj_env(prefect_server), release=1)
    check_store(datasets, raw)
    # Staggered, after more snapshots arrived: again one release for the new work.
    # (whether the later one had to wait depends on timing; waiting itself is tested with
    # a held lock in test_operator_errors_are_one_line_with_their_exit_code)
    build_corpus(raw, 120, seed=7)
    overlapping_runs(command, oj_env(prefect_server), release=2, stagger=1.5)
    assert len(storage.releases(datasets)) == 2
    check_store(datasets, raw)


BAD_RECORDS = {
    "truncated": lambda good: json.dumps(good)[:60],
    "null-url": lambda good: json.dumps(good | {"url": None}),
    "no-url": lambda good: json.dumps({k: v for k, v in good.items() if k != "url"}),
    "yesterday": lambda good: json.dumps(good | {"captured_at": "yesterday"}),
    "oops": lambda good: json.dumps(good | {"url": "http://[oops/"}),
}


def test_bad_records_are_quarantined_and_named(prefect_server: str, tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    good = json.loads(next((raw / "records").glob("*.json")).read_text("utf-8"))
    for name, make in BAD_RECORDS.items():
        (raw / "records" / f"{name}.json").write_text(make(good), "utf-8")
    first = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert "new release 1 written" in first.stdout
    for name in BAD_RECORDS:  # each bad record named in one line, with its path
        (line,) = [ln for ln in first.stderr.splitlines() if f"{name}.json" in ln]
        assert str(raw / "records" / f"{name}.json") in line
    pages = storage.load_table("pages", datasets_dir=datasets)
    assert sorted(pages["parse_status"]) == ["failed"] * 5 + ["parsed"] * 5
    rejects = storage.load_table("rejects", datasets_dir=datasets)
    assert list(rejects["reason"]) == ["unreadable_record"] * 5
    # The next run is not blocked, and publishes nothing new.
    second = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert second.returncode == 0, second.stderr
    assert "no new release" in second.stdout


@pytest.mark.parametrize(
    "url",
    [
        "http://[oops/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "",
        "kalmar.se/x",
        "https://kalmar.se/" + "x" * 120_000,
    ],  # fmt: skip
)
def test_add_refuses_a_url_that_is_not_absolute_http(tmp_path: Path, url: str) -> None:
    page = tmp_path / "page.txt"
    page.write_text("Årets resultat visar att:\n", "utf-8")
    result = run_oj("add", page, "--url", url, "--source", "seed", "--raw-dir", tmp_path / "raw")
    assert result.returncode == 2
    assert _one_line(result.stderr).startswith("oj add: --url:")
    assert not (tmp_path / "raw").exists()


def test_operator_errors_are_one_line_with_their_exit_code(
    prefect_server: str, tmp_path: Path
) -> None:
    datasets = tmp_path / "datasets"
    missing = run_oj("run", "--raw-dir", tmp_path / "nonexistent", "--datasets-dir", datasets)
    assert (missing.returncode, _one_line(missing.stderr)) == (
        2, f"oj run: raw dir {tmp_path / 'nonexistent'} does not exist (pass --raw-dir)")  # fmt: skip
    bad_toml = tmp_path / "sources.toml"
    bad_toml.write_text('[[page]]\nmunicipality = "Kalmar"\nurl = \n', "utf-8")
    malformed = run_oj("run", "--sources", bad_toml, "--datasets-dir", datasets)
    assert malformed.returncode == 2
    assert str(bad_toml) in _one_line(malformed.stderr) and "line 3" in malformed.stderr
    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text('[[page]]\nmunicipality = "Kalmar"\n', "utf-8")
    result = run_oj("run", "--sources", incomplete, "--datasets-dir", datasets)
    assert result.returncode == 2 and "#1 lacks" in _one_line(result.stderr)
    typo = run_oj("run", "--overrides", tmp_path / "indicator_overides.toml", "--datasets-dir",
               datasets)  # fmt: skip
    assert typo.returncode == 2 and "no such file" in _one_line(typo.stderr)
    # an unwritable datasets location: here a file where the folder should be
    as_file = tmp_path / "datasets-file"
    as_file.write_text("not a folder", "utf-8")
    unwritable = run_oj("run", "--datasets-dir", as_file, api_url=prefect_server)
    assert unwritable.returncode == 74
    assert _one_line(unwritable.stderr) == (
        f"oj run: cannot write {as_file}: it is a file, not a directory")  # fmt: skip
    # another run holds the lock past --lock-timeout: exit 75, nothing written
    datasets.mkdir()
    with FileLock(str(datasets / storage.LOCK_FILE)):
        locked = run_oj("run", "--datasets-dir", datasets, "--lock-timeout", "1",
                     api_url=prefect_server)  # fmt: skip
    assert locked.returncode == 75
    assert "waiting up to 1 s" in locked.stderr and "nothing was written" in locked.stderr
    assert "Traceback" not in locked.stderr
    assert storage.releases(datasets).empty
    unknown = run_oj("export", "findings", "--release", "9", "--out", tmp_path / "x.parquet",
                  "--datasets-dir", datasets)  # fmt: skip
    assert unknown.returncode == 2 and "no release" in _one_line(unknown.stderr)


def test_overrides_are_found_beside_the_raw_dir_from_any_directory(
    prefect_server: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(RAW_DIR, project / "raw")
    shutil.copy(ROOT / "indicator_overrides.toml", project)
    datasets = project / "datasets"
    first = run_oj("run", "--raw-dir", "raw", "--datasets-dir", "datasets", cwd=project,
                api_url=prefect_server)  # fmt: skip
    assert first.returncode == 0, first.stderr
    elsewhere = run_oj("run", "--raw-dir", project / "raw", "--datasets-dir", datasets,
                    cwd=tmp_path, api_url=prefect_server)  # fmt: skip
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "no new release" in elsewhere.stdout
    runs = storage.releases(datasets)
    assert len(runs) == 1 and runs["overrides_sha256"].iloc[0] is not None


def _session_processes(session: int) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True)
    return [line for line in ps.stdout.splitlines() if line.split()[1] == str(session)]


def test_no_process_outlives_a_killed_run(prefect_server: str, tmp_path: Path) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    command = [*OJ, "run", "--raw-dir", str(raw), "--datasets-dir", str(datasets)]
    # No PREFECT_API_URL: `oj run` starts its own server; kill it while the server
    # starts, once it is up, and during the flow, parsing on threads or on two worker
    # processes.
    for delay, workers in ((2.0, "1"), (7.0, "1"), (11.0, "1"), (14.0, "2"), (17.0, "2")):
        process = subprocess.Popen([*command, "--parse-workers", workers], cwd=ROOT,
                                   env=oj_env(None), start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            deadline = time.monotonic() + 20
            while _session_processes(process.pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _session_processes(process.pid) == [], f"left after a kill at {delay} s"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    # The next run publishes the whole archive, whatever the kills interrupted.
    final = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert final.returncode == 0, final.stderr
    check_store(datasets, raw)


def test_verify_names_what_is_wrong(tmp_path: Path, capsys) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    shutil.copytree(RAW_DIR, raw)
    publish(datasets)
    args = ["verify", "--raw-dir", str(raw), "--datasets-dir", str(datasets)]
    assert main(args) == 0
    assert "5 objects, 5 records, 1 release checked" in capsys.readouterr().out
    records = list(seed_records().values())
    # a flipped byte
    flipped = raw_archive.object_path(raw, records[0].sha256)
    data = bytearray(flipped.read_bytes())
    data[10] ^= 0xFF
    flipped.write_bytes(bytes(data))
    # a deleted object
    raw_archive.object_path(raw, records[1].sha256).unlink()
    # a truncated record
    truncated = raw / "records" / f"{records[2].record_id}.json"
    truncated.write_text(truncated.read_text("utf-8")[:40], "utf-8")
    assert main(args) == 1
    captured = capsys.readouterr()
    problems = captured.err.splitlines()
    assert any(str(flipped) in line and "does not match its sha256" in line for line in problems)
    assert any(records[1].record_id in line and "is missing" in line for line in problems)
    assert any(str(truncated) in line and "not valid JSON" in line for line in problems)
    assert len(problems) == 3 and "3 problems" in captured.out


def test_lock_timeout_zero_decides_before_starting_anything(tmp_path: Path) -> None:
    # `--lock-timeout 0` once started a Prefect server (~11 s), then exited 75 after 14 s
    # saying "waiting up to 0 s". Another live process holds the lock here.
    datasets, prefect_home = tmp_path / "datasets", tmp_path / "prefect-home"
    datasets.mkdir()
    prefect_home.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom filelock import FileLock\n"
         f"with FileLock({str(datasets / storage.LOCK_FILE)!r}):\n"
         "    print('locked', flush=True)\n    time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        refused = subprocess.run(
            [*OJ, "run", "--raw-dir", RAW_DIR, "--datasets-dir", datasets, "--lock-timeout", "0"],
            cwd=ROOT, env=oj_env(None) | {"PREFECT_HOME": str(prefect_home)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 75, refused.stderr
    assert _one_line(refused.stderr) == (
        f"oj run: another run holds the lock of {datasets} (pid {holder.pid}); "
        "--lock-timeout 0: not waiting"
    )
    assert "waiting up to" not in refused.stderr
    # a Prefect server alone took ~11 s; 9 s leaves room for a loaded machine
    assert elapsed < 9, elapsed
    assert list(prefect_home.iterdir()) == []  # no Prefect server (its database) started
    assert storage.releases(datasets).empty


def test_the_lock_never_says_waiting_up_to_0_s(tmp_path: Path) -> None:
    # The same decision where the lock is taken (a run that found the lock free at the
    # start, `oj vacuum`): one line, no "waiting up to 0 s".
    datasets = tmp_path / "datasets"
    publish(datasets, list(seed_records().values())[:1])
    said: list[str] = []
    with (
        FileLock(str(datasets / storage.LOCK_FILE)),
        pytest.raises(storage.LockTimeout) as error,
        storage.writer_lock(datasets, 0, on_wait=said.append),
    ):
        pass
    assert said == []
    assert str(error.value) == (
        f"another run holds the lock of {datasets} ({datasets / storage.LOCK_FILE}); "
        "--lock-timeout 0: not waiting, nothing was written"
    )
