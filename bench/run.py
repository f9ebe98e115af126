"""Benchmark: parse speed against lxml's bare parse and a naive baseline, the full flow's
cost and memory at N and N/5, and a no-op nightly run. Prints a table and writes
bench/results.json.

    .venv/bin/python bench/run.py            # N = 10,000 (a few minutes on 2 cores)
    .venv/bin/python bench/run.py --n 2000

Timings are measured side by side in one run on the same synthetic corpus
(bench/corpus.py). The flow runs against one Prefect server started first, as a nightly
deployment does; its start-up is reported on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results.json"
NAIVE_SAMPLE_EVERY = 20  # the naive baseline is ~50x slower: time it on every 20th page


def prepare_corpus(workdir: Path, n: int, seed: int) -> tuple[Path, Path]:
    """The N corpus, and an N/5 corpus of its first fifth (hard links: no copies)."""
    from bench.corpus import build_corpus
    from flows import raw_archive

    raw = workdir / f"raw-{n}-{seed}"
    marker = raw / ".complete"
    if not marker.exists():
        shutil.rmtree(raw, ignore_errors=True)
        build_corpus(raw, n, seed)
        marker.write_text("ok")
    small = workdir / f"raw-{n // 5}-of-{n}-{seed}"
    if not (small / ".complete").exists():
        shutil.rmtree(small, ignore_errors=True)
        records = sorted(raw_archive.iter_records(raw), key=lambda r: r.captured_at or "")
        for record in records[: n // 5]:
            for relative in (
                Path("objects") / record.sha256[:2] / record.sha256,
                Path("records") / f"{record.record_id}.json",
            ):
                target = small / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.link(raw / relative, target)
        (small / ".complete").write_text("ok")
    return raw, small


def time_parsers(raw: Path) -> dict[str, float]:
    """Pages/s of the parser, lxml's bare parse and the naive baseline, page by page from
    disk (reading is not timed; the corpus is never held in memory)."""
    import lxml.html
    from bs4 import BeautifulSoup

    from flows import raw_archive
    from parsers import parse_page

    naive_bullet = re.compile(r"^\s*(?:[•\-*]\s*)?(.*(?:procent|kommuner).*)$", re.MULTILINE)
    totals = {"parse": 0.0, "lxml": 0.0, "naive": 0.0}
    pages = naive_pages = findings = 0
    for index, record in enumerate(raw_archive.iter_records(raw)):
        data = raw_archive.read_object(raw, record.sha256)
        start = time.perf_counter()
        page = parse_page(data, url=record.url, municipality=record.municipality)
        totals["parse"] += time.perf_counter() - start
        findings += len(page.findings)
        start = time.perf_counter()
        lxml.html.fromstring(data)
        totals["lxml"] += time.perf_counter() - start
        if index % NAIVE_SAMPLE_EVERY == 0:
            start = time.perf_counter()
            text = BeautifulSoup(data, "html.parser").get_text("\n")
            naive_bullet.findall(text)
            totals["naive"] += time.perf_counter() - start
            naive_pages += 1
        pages += 1
    return {
        "pages": pages,
        "findings": findings,
        "parse_seconds": totals["parse"],
        "parse_pages_per_s": pages / totals["parse"],
        "lxml_pages_per_s": pages / totals["lxml"],
        "naive_pages_per_s": naive_pages / totals["naive"],
        "naive_sample_pages": naive_pages,
    }


def start_prefect_server(home: Path) -> tuple[subprocess.Popen, str, float]:
    from flows.server import die_with_parent, free_port, wait_until_healthy

    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = os.environ | {"PREFECT_HOME": str(home)}
    start = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=die_with_parent,  # never outlives the benchmark
    )
    wait_until_healthy(api_url, process)
    return process, api_url, time.perf_counter() - start


def run_flow_child(raw: Path, datasets: Path, api_url: str, noop: bool) -> dict:
    """The flow in a fresh process (its own peak RSS), as a nightly deployment runs it."""
    shutil.rmtree(datasets, ignore_errors=True)
    command = [sys.executable, str(Path(__file__)), "--child", str(raw), str(datasets)]
    if noop:
        command.append("--child-noop")
    result = subprocess.run(
        command,
        env=os.environ | {"PREFECT_API_URL": api_url},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flow run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_noop_command(raw: Path, datasets: Path) -> float:
    """Wall time of a fresh `oj run` process when nothing is new, as a nightly cron or a
    person runs it: no PREFECT_API_URL, so any Prefect server it started would count."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--raw-dir", str(raw),
         "--datasets-dir", str(datasets)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if result.returncode != 0 or "no new release" not in result.stdout:
        raise RuntimeError(f"the no-op run did not say so:\n{result.stdout}{result.stderr}")
    return seconds


def child(raw: str, datasets: str, noop: bool) -> None:
    from flows.nightly import nightly

    out = {}
    start = time.perf_counter()
    summary = nightly(raw_dir=raw, datasets_dir=datasets)
    out["e2e_seconds"] = time.perf_counter() - start
    out["e2e_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["release"] = summary["release"]
    out["timings"] = summary.get("timings", {})
    out["findings"] = summary["findings"]
    if noop:
        start = time.perf_counter()
        again = nightly(raw_dir=raw, datasets_dir=datasets)
        out["noop_seconds"] = time.perf_counter() - start
        out["noop_new_release"] = again["new_release"]
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="page snapshots (default 10000)")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument(
        "--workdir",
        default=str(ROOT / "bench" / "corpus"),
        help="where the corpus and datasets go (default bench/corpus/)",
    )
    parser.add_argument("--prefect-api-url", help="use this running Prefect server instead")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-noop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, noop=args.child_noop)
        return 0

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"building the corpus ({args.n} pages) in {workdir} ...", flush=True)
    raw, small = prepare_corpus(workdir, args.n, args.seed)
    corpus_seconds = time.perf_counter() - started
    print("timing the parsers ...", flush=True)
    speeds = time_parsers(raw)

    server = None
    if args.prefect_api_url:
        api_url, server_seconds = args.prefect_api_url, 0.0
    else:
        print("starting a Prefect server ...", flush=True)
        server, api_url, server_seconds = start_prefect_server(workdir / "prefect-home")
    try:
        # N/5 first: it also warms the server up, as a long-running deployment's is.
        print("running the flow at N/5 ...", flush=True)
        fifth = run_flow_child(small, workdir / "datasets-n5", api_url, noop=False)
        print("running the flow at N, then a no-op run ...", flush=True)
        full = run_flow_child(raw, workdir / "datasets-n", api_url, noop=True)
        print("timing a fresh `oj run` with nothing new ...", flush=True)
        noop_wall = time_noop_command(raw, workdir / "datasets-n")
    finally:
        if server is not None:
            from flows.serve import stop_server

            stop_server(server)

    results = {
        "n": args.n,
        "pages_parsed": speeds["pages"],
        "findings": speeds["findings"],
        "parse_pages_per_s": round(speeds["parse_pages_per_s"], 1),
        "lxml_pages_per_s": round(speeds["lxml_pages_per_s"], 1),
        "naive_pages_per_s": round(speeds["naive_pages_per_s"], 1),
        "naive_sample_pages": speeds["naive_sample_pages"],
        "parse_vs_lxml": round(speeds["parse_pages_per_s"] / speeds["lxml_pages_per_s"], 3),
        "parse_vs_naive": round(speeds["parse_pages_per_s"] / speeds["naive_pages_per_s"], 1),
        "parse_only_seconds": round(speeds["parse_seconds"], 2),
        "e2e_seconds": round(full["e2e_seconds"], 2),
        "e2e_vs_parse_only": round(full["e2e_seconds"] / speeds["parse_seconds"], 2),
        "e2e_outside_parse_share": round(1 - speeds["parse_seconds"] / full["e2e_seconds"], 3),
        "e2e_peak_rss_mb": round(full["e2e_peak_rss_mb"], 1),
        "e2e_phase_seconds": full["timings"],
        "e2e_findings": full["findings"],
        "e2e_small_n": args.n // 5,
        "e2e_small_seconds": round(fifth["e2e_seconds"], 2),
        "e2e_small_peak_rss_mb": round(fifth["e2e_peak_rss_mb"], 1),
        "rss_growth_n_over_n5": round(full["e2e_peak_rss_mb"] / fifth["e2e_peak_rss_mb"], 2),
        "noop_seconds": round(full["noop_seconds"], 2),
        "noop_vs_e2e": round(full["noop_seconds"] / full["e2e_seconds"], 3),
        "noop_new_release": full["noop_new_release"],
        "noop_wall_seconds": round(noop_wall, 2),
        "prefect_server_start_seconds": round(server_seconds, 2),
        "corpus_build_seconds": round(corpus_seconds, 1),
        "benchmark_seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    targets = {
        "parse_vs_lxml >= 0.5": results["parse_vs_lxml"] >= 0.5,
        "parse_vs_naive > 10": results["parse_vs_naive"] > 10,
        "e2e <= 2x parse-only": results["e2e_vs_parse_only"] <= 2,
        "peak RSS < 1 GB": results["e2e_peak_rss_mb"] < 1024,
        "RSS grows sublinearly (N/N5 RSS < 5)": results["rss_growth_n_over_n5"] < 5,
        "no-op <= 10% of full run": results["noop_vs_e2e"] <= 0.10,
        "no-op writes no release": results["noop_new_release"] is False,
        "fresh no-op `oj run` <= 3 s wall": results["noop_wall_seconds"] <= 3,
    }
    results["targets_met"] = targets
    width = max(map(len, results))
    for key, value in results.items():
        if key != "targets_met":
            print(f"{key:<{width}}  {value}")
    for target, met in targets.items():
        print(f"{'met' if met else 'MISSED':<6}  {target}")
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
