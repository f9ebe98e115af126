"""Benchmark: one N-snapshot `oj run` on local folders, then the same with parsing on a
Dask cluster, with the raw archive and the datasets in a bucket, and both. Prints a
table and writes bench/results-stores.json.

    .venv/bin/python bench/stores.py            # N = 10,000 (about 12 minutes)
    .venv/bin/python bench/stores.py --n 2000

Everything runs on this machine, started here and stopped at the end (each server dies
with this script, SIGKILL included): one Prefect server, moto's S3 server (an in-memory
S3 written in Python: no network latency, but every request is a real HTTP round trip
through one Python process, whose CPU time is reported), and a Dask scheduler with two
one-thread workers. `oj run` is the real command, in a fresh process, timed wall to wall;
memory is the peak of its own process tree (the command and its parse workers) and,
apart, of the servers (Prefect, S3 with the whole archive in its memory, Dask).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import TreeMemory, prepare_corpus, start_prefect_server  # noqa: E402

RESULTS = ROOT / "bench" / "results-stores.json"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    from flows.server import die_with_parent

    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,  # never outlives the benchmark
    )  # fmt: skip


def oj_run(args: list[str], env: dict[str, str], servers: list[int], s3_pid: int) -> dict:
    """One `oj run`, timed wall to wall; peak memory of its own process tree (the command
    and its parse workers) and of the servers (Prefect, S3, Dask), and the CPU seconds
    the S3 server spent answering it."""
    import psutil

    s3_before = sum(psutil.Process(s3_pid).cpu_times()[:2])
    command = [sys.executable, "-m", "flows.cli", "run", *args]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with TreeMemory(process.pid) as own, TreeMemory(*servers) as around:
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return {
        "seconds": round(seconds, 1),
        "peak_rss_oj_tree_mb": round(own.peak_mb, 1),
        "peak_rss_servers_mb": round(around.peak_mb, 1),
        "s3_server_cpu_seconds": round(sum(psutil.Process(s3_pid).cpu_times()[:2]) - s3_before, 1),
        "summary": stdout.strip().splitlines()[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/oj-bench"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--runs", default="local,local_dask,bucket,bucket_dask",
        help="which runs (comma-separated; default all); the bucket's no-op follows 'bucket'",
    )  # fmt: skip
    args = parser.parse_args(argv)
    chosen = args.runs.split(",")

    from flows.server import free_port, stop_process

    args.workdir.mkdir(parents=True, exist_ok=True)
    raw, _ = prepare_corpus(args.workdir, args.n, args.seed)
    home = args.workdir / "prefect-home-stores"
    shutil.rmtree(home, ignore_errors=True)
    server, api_url, _ = start_prefect_server(home)
    s3_port, dask_port = free_port(), free_port()
    env = (
        os.environ
        | S3_ENV
        | {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home),
        }
    )
    bin_dir = Path(sys.executable).parent
    s3 = start([str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], env)
    address = f"tcp://127.0.0.1:{dask_port}"
    dask = [start([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                   str(dask_port), "--no-dashboard"], env)]  # fmt: skip
    dask += [start([str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                    "--no-dashboard", "--host", "127.0.0.1"], env) for _ in range(2)]  # fmt: skip
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    results: dict = {
        "n_snapshots": args.n,
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine,
    }
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        import boto3
        from distributed import Client

        from flows import location

        time.sleep(2)
        for _ in range(100):
            try:
                boto3.client("s3").create_bucket(Bucket="oj-bench")
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.3)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        clock = time.perf_counter()
        fs, path = location.filesystem("s3://oj-bench/raw")
        fs.put(f"{raw}/objects/", f"{path}/objects/", recursive=True)
        for folder in ("records", "segments"):  # the corpus keeps its records in segments
            if (raw / folder).is_dir():
                fs.put(f"{raw}/{folder}/", f"{path}/{folder}/", recursive=True)
        results["upload_raw_seconds"] = round(time.perf_counter() - clock, 1)

        servers = [server.pid, s3.pid] + [process.pid for process in dask]
        local_datasets = args.workdir / "datasets-stores-local"
        shutil.rmtree(local_datasets, ignore_errors=True)
        shutil.rmtree(f"{local_datasets}-dask", ignore_errors=True)
        runs = {
            "local": ["--raw-dir", str(raw), "--datasets-dir", str(local_datasets)],
            # the workers read the local folder (one machine): Dask's own cost, no S3
            "local_dask": ["--raw-dir", str(raw), "--datasets-dir", f"{local_datasets}-dask",
                           "--dask-address", address],
            "bucket": ["--raw-dir", "s3://oj-bench/raw", "--datasets-dir", "s3://oj-bench/ds"],
            "bucket_dask": ["--raw-dir", "s3://oj-bench/raw", "--datasets-dir",
                            "s3://oj-bench/ds-dask", "--dask-address", address],
        }  # fmt: skip
        unknown = set(chosen) - set(runs)
        if unknown:
            raise SystemExit(f"--runs: no run named {', '.join(sorted(unknown))}")
        runs = {name: run_args for name, run_args in runs.items() if name in chosen}
        for name, run_args in runs.items():
            results[name] = oj_run(run_args, env, servers, s3.pid)
            print(f"{name}: {results[name]['seconds']} s", flush=True)
        if "bucket" in runs:
            results["bucket_noop"] = oj_run(runs["bucket"], env, servers, s3.pid)

        from flows import storage

        counts = {
            name: int(storage.get_release(run_args[3])["n_findings"])
            for name, run_args in runs.items()
        }
        results["findings"] = counts
        results["same_findings"] = len(set(counts.values())) == 1
    finally:
        for process in [*reversed(dask), s3, server]:
            stop_process(process, timeout=15)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{args.n:,} snapshots, {results['machine']}")
    print(f"upload of the raw archive to the bucket: {results['upload_raw_seconds']} s")
    print(f"{'run':<14}{'wall s':>8}{'oj tree MB':>12}{'servers MB':>12}{'S3 server CPU s':>17}")
    for name in [name for name in ("local", "local_dask", "bucket", "bucket_dask", "bucket_noop")
                 if name in results]:  # fmt: skip
        row = results[name]
        print(f"{name:<14}{row['seconds']:>8}{row['peak_rss_oj_tree_mb']:>12}"
              f"{row['peak_rss_servers_mb']:>12}{row['s3_server_cpu_seconds']:>17}")  # fmt: skip
    print(f"same findings in every run: {results['same_findings']} ({results['findings']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
