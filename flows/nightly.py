"""The `nightly` Prefect flow: read the raw archive, parse new snapshots in batches, publish.

Tasks are thin wrappers over plain functions in `flows.pipeline` and `flows.storage`, and
each works on a batch of pages. Parse batches run on a thread pool while the flow writes
finished batches to Delta, so at most a few batches are held in memory at once.
"""

from __future__ import annotations

import sys
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows import pipeline, raw_archive, storage
from flows.sources import Source, load_sources
from parsers import PARSER_VERSION

FETCH_MODES = ("none",)


@task(name="plan-run", cache_policy=NO_CACHE)
def plan_run_task(raw_dir: Path, datasets_dir: Path) -> pipeline.Plan:
    return pipeline.plan_run(raw_dir, datasets_dir)


@task(name="parse-batch", cache_policy=NO_CACHE)
def parse_batch_task(
    raw_dir: Path, records: list[raw_archive.SnapshotRecord], sources: list[Source]
) -> dict[str, pa.Table]:
    return pipeline.parse_snapshots(raw_dir, records, sources)


@task(name="write-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_batch_task(writer: storage.ReleaseWriter, batch: dict[str, pa.Table]) -> None:
    # A retry after a failed commit is safe: a Delta commit is all or nothing.
    writer.write(batch)


@task(name="commit-release", cache_policy=NO_CACHE)
def commit_release_task(writer: storage.ReleaseWriter, n_pages_new: int) -> int:
    return writer.commit(n_pages_new=n_pages_new)


def _progress(total: int):
    """A terminal progress bar for long runs; silent when not on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), disable=not sys.stderr.isatty() or total < 2, transient=True,
    )  # fmt: skip
    return progress


def summary_line(summary: dict[str, Any]) -> str:
    release = (
        f"new release {summary['release']} written"
        if summary["new_release"]
        else f"no new release (latest is {summary['release']})"
        if summary["release"]
        else "no release (nothing to publish)"
    )
    return (
        f"pages read: {summary['pages_read']} ({summary['pages_in_archive']} in archive), "
        f"findings: {summary['findings']}, rejects: {summary['rejects']}, "
        f"failed pages: {summary['failed_pages']}; {release}"
    )


@flow(name="nightly", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=False)
def nightly(
    raw_dir: str = "raw",
    datasets_dir: str = "datasets",
    sources: str | None = None,
    fetch: str = "none",
    batch_size: int = pipeline.DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Read the raw archive, parse what is new, and publish a release if anything changed."""
    if fetch not in FETCH_MODES:
        raise ValueError(f"fetch must be one of {FETCH_MODES}, not {fetch!r}")
    logger = get_run_logger()
    started_at = datetime.now(UTC)
    raw, datasets = Path(raw_dir), Path(datasets_dir)
    page_sources = load_sources(sources) if sources else []

    plan = plan_run_task(raw, datasets)
    summary: dict[str, Any] = {
        "pages_in_archive": plan.n_in_archive, "pages_read": len(plan.records), "findings": 0,
        "rejects": 0, "failed_pages": 0, "release": plan.base_release, "new_release": False,
        "mode": plan.mode, "parser_version": PARSER_VERSION,
    }  # fmt: skip
    if plan.has_work:
        writer = storage.ReleaseWriter(
            datasets, mode=plan.mode, parser_version=PARSER_VERSION, run_id=uuid.uuid4().hex,
            started_at=started_at, flow_run_id=flow_run.get_id(),
        )  # fmt: skip
        batches = list(pipeline.batched(plan.records, batch_size))
        in_flight: deque = deque()
        with _progress(len(batches)) as progress:
            bar = progress.add_task("parsing", total=len(plan.records))

            def drain_one() -> None:
                batch = in_flight.popleft().result()
                write_batch_task(writer, batch)
                summary["failed_pages"] += (
                    batch["pages"]
                    .filter(pc.equal(batch["pages"]["parse_status"], "failed"))
                    .num_rows
                )
                progress.advance(bar, batch["pages"].num_rows)

            for records in batches:
                in_flight.append(parse_batch_task.submit(raw, records, page_sources))
                if len(in_flight) > 2:  # bounded: never the whole corpus in memory
                    drain_one()
            while in_flight:
                drain_one()
        summary["findings"] = writer.new_rows["findings"]
        summary["rejects"] = writer.new_rows["rejects"]
        summary["release"] = commit_release_task(writer, len(plan.records))
        summary["new_release"] = True
    line = summary_line(summary)
    logger.info(line)
    create_markdown_artifact(
        key="nightly-summary",
        markdown=(
            f"# oppna-jamforelser nightly\n\n{line}\n\n"
            f"| | |\n|---|---|\n"
            + "".join(f"| {key} | {value} |\n" for key, value in summary.items())
        ),
        description="Pages read, findings, rejects and the release written",
    )
    return summary
