"""Smoke test of the benchmark at a tiny N, so it cannot rot (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

REQUIRED = (
    "n", "parse_pages_per_s", "lxml_pages_per_s", "naive_pages_per_s", "parse_vs_lxml",
    "parse_vs_naive", "e2e_seconds", "e2e_peak_rss_mb", "e2e_small_seconds",
    "e2e_small_peak_rss_mb", "noop_seconds", "noop_new_release", "noop_wall_seconds",
    "prefect_server_start_seconds", "incremental_seconds", "incremental_small_seconds",
    "peak_rss_tree_mb", "peak_rss_tree_small_mb", "derive_seconds",
    # issue 21's figures: flow time of a +20-page nightly, end to end against parsing
    # each distinct page once, and the tree's proportional memory
    "incremental_flow_seconds", "incremental_small_flow_seconds",
    "parse_distinct_only_seconds", "e2e_vs_parse_distinct_only", "peak_pss_tree_mb",
)  # fmt: skip


def test_benchmark_runs_at_tiny_n(prefect_server: str, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--n", "25", "--workdir",
         str(tmp_path / "work"), "--prefect-api-url", prefect_server, "--results", str(results)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(results.read_text("utf-8"))
    assert set(REQUIRED) <= set(figures)
    assert figures["n"] == 25 and figures["pages_parsed"] == 25
    assert figures["e2e_findings"] == figures["findings"] > 0  # the flow published every page
    assert figures["noop_new_release"] is False
    # The whole tree includes at least the flow process itself.
    assert figures["peak_rss_tree_mb"] >= figures["e2e_peak_rss_mb"] * 0.9
    assert "parse_vs_lxml" in run.stdout and "wrote" in run.stdout


def test_store_benchmark_runs_at_tiny_n(tmp_path: Path) -> None:
    # bench/stores.py starts its own Prefect, S3 and Dask servers and stops them by PID.
    results = tmp_path / "results-stores.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "stores.py"), "--n", "30", "--workdir",
         str(tmp_path / "work"), "--results", str(results)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(results.read_text("utf-8"))
    assert figures["same_findings"] is True
    assert figures["bucket"]["s3_server_cpu_seconds"] > 0  # the bucket run used the server
    assert "new release 1 written" in figures["bucket_dask"]["summary"]
    assert "no new release" in figures["bucket_noop"]["summary"]
    assert "same findings in every run: True" in run.stdout


def test_store_benchmark_runs_only_the_runs_asked_for(tmp_path: Path) -> None:
    # --runs bucket: the bucket's full run and its no-op alone (how it runs at 1,000,000)
    results = tmp_path / "results-stores.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "stores.py"), "--n", "30", "--workdir",
         str(tmp_path / "work"), "--results", str(results), "--runs", "bucket"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(results.read_text("utf-8"))
    assert {"bucket", "bucket_noop"} <= set(figures)
    assert not {"local", "local_dask", "bucket_dask"} & set(figures)
    assert "no new release" in figures["bucket_noop"]["summary"]
