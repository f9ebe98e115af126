"""The `nightly` Prefect flow: read the raw archive, parse new snapshots in batches, publish.

Tasks are thin wrappers over plain functions in `flows.pipeline` and `flows.storage`, and
each works on a batch of pages. Parse batches run on a thread pool while the flow writes
finished batches to Delta, so at most a few batches are held in memory at once.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import Counter, deque
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from flows import fetch as fetching
from flows import history, location, page_worker, pipeline, raw_archive, report, storage
from flows import notify as notifying
from flows.errors import OperatorError, StorageWriteError, UsageError
from flows.http import FetchSettings, RateLimiter
from flows.location import Location, parse_location
from flows.pipeline import summary_line
from flows.server import exit_with_parent
from flows.sources import Source, load_sources
from parsers import PARSER_VERSION

FETCH_MODES = ("none", "live", "wayback")
FETCH_BATCH_SIZE = 4  # pages per fetch task


@task(name="fetch-live", cache_policy=NO_CACHE)
def fetch_live_task(
    raw_dir: Location,
    sources: list[Source],
    all_sources: list[Source],
    settings: FetchSettings,
    limiter: RateLimiter,
) -> list[fetching.FetchOutcome]:
    return fetching.fetch_live(raw_dir, sources, all_sources, settings, limiter)


@task(name="fetch-wayback", cache_policy=NO_CACHE)
def fetch_wayback_task(
    raw_dir: Location,
    sources: list[Source],
    settings: FetchSettings,
    limiters: tuple[RateLimiter, RateLimiter],
    wayback_url: str,
    since: int | None,
) -> list[fetching.FetchOutcome]:
    cdx_limiter, replay_limiter = limiters
    return fetching.fetch_wayback(
        raw_dir, sources, settings, cdx_limiter, replay_limiter, wayback_url, since
    )


def run_fetch(
    mode: str,
    raw: Location,
    page_sources: list[Source],
    settings: FetchSettings,
    wayback_url: str,
    since: int | None,
) -> list[fetching.FetchOutcome]:
    """Fetch in batches of pages on the flow's thread pool; rate limits are shared."""
    batches = list(pipeline.batched(page_sources, FETCH_BATCH_SIZE))
    if mode == "live":
        limiter = RateLimiter(settings.host_rate)
        futures = [fetch_live_task.submit(raw, batch, page_sources, settings, limiter)
                   for batch in batches]  # fmt: skip
    else:
        limiters = (RateLimiter(settings.cdx_rate), RateLimiter(settings.replay_rate))
        futures = [fetch_wayback_task.submit(raw, batch, settings, limiters, wayback_url, since)
                   for batch in batches]  # fmt: skip
    return [outcome for future in futures for outcome in future.result()]


@task(name="plan-run", cache_policy=NO_CACHE)
def plan_run_task(
    raw_dir: Location, datasets_dir: Location, overrides_sha256: str | None, reparse: bool = False
) -> pipeline.Plan:
    return pipeline.plan_run(
        raw_dir, datasets_dir, overrides_sha256=overrides_sha256, reparse=reparse
    )


#: From this many pages to parse, batches go to worker processes (all cores but the
#: flow's, see `parse_task_runner`) instead of threads: worker start-up costs ~2.5 s
#: against a running server (more against a temporary one), and parsing 100 KB pages
#: costs ~2 ms each.
PROCESS_POOL_MIN_PAGES = 3000


def parse_task_runner(
    n_pages: int, parse_workers: int | None, dask_address: str | None = None
) -> tuple[Any, int]:
    """A process pool for large parse jobs (a backfill, a re-parse), and its size; None
    means the flow's own threads. With `dask_address`, the Dask cluster there
    (`prefect-dask`'s DaskTaskRunner) and its number of worker threads.

    `parse_workers`: None decides from the number of pages and cores; 0 or 1 never uses
    processes.

    By default the flow keeps one core for itself (it writes each parsed batch and runs
    the derivation): worker processes only where more than two cores leave one free.
    A worker holds ~230 MB before its first page (Prefect, pyarrow, polars, deltalake,
    pandas: what unpickling a task of this module imports) and ~350 MB after a few
    batches; on two cores the two workers were half of the whole tree's peak (1,482 MB
    at 30,000 captures: flow 493, workers 365 + 350, server 262) for a parse phase that
    the flow's own threads ran in about the same wall time on a loaded machine.
    """
    if dask_address:
        return dask_runner(dask_address)
    cores = os.cpu_count() or 1
    if parse_workers is None:
        parse_workers = min(cores - 1, 4) if n_pages >= PROCESS_POOL_MIN_PAGES else 1
    if parse_workers <= 1:
        return None, 1
    # Each worker exits when `oj run` dies (SIGKILL included) from the moment it starts.
    runner = ProcessPoolTaskRunner(
        max_workers=parse_workers, initializer=exit_with_parent, initargs=(os.getpid(),)
    )
    return runner, parse_workers


#: From this many pages to parse on the flow's threads, a parse helper process
#: (`page_worker.ParseHelper`) parses beside them: it starts in ~0.15 s, a page takes ~0.7 ms.
HELPER_MIN_PAGES = 500


def parse_helper(
    n_pages: int, parse_workers: int | None, runner: Any
) -> page_worker.ParseHelper | None:
    """A helper process for a parse on the flow's threads (`runner` None) with a core to
    spare: a first run at 150,000 captures on 2 cores parsed its 10,098 versions on one
    core (the threads share one interpreter lock) while the other was mostly idle. None
    when `parse_workers` is set (0 or 1: no processes) or there is little to parse."""
    if runner is not None or parse_workers is not None or n_pages < HELPER_MIN_PAGES:
        return None
    if (os.cpu_count() or 1) < 2:
        return None
    return page_worker.ParseHelper()


def dask_runner(address: str) -> tuple[Any, int]:
    """The DaskTaskRunner of an existing cluster, and how many batches to keep in flight
    (its worker threads). The flow's own server must be reachable from the workers: each
    task runs with the flow's Prefect settings (`PREFECT_API_URL`), never a temporary
    server of its own (~30 s each)."""
    import socket
    from urllib.parse import urlsplit

    from distributed import Client
    from prefect_dask import DaskTaskRunner

    try:
        # A quick look first: the Dask client retries a refused connection for its whole
        # timeout (30 s) before saying so.
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        socket.create_connection((parts.hostname, parts.port or 8786), timeout=10).close()
        with Client(address, timeout=30) as client:
            threads = sum(client.nthreads().values())
    except (OSError, TimeoutError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise UsageError(f"no Dask scheduler answered at {address}: {reason}") from None
    if threads == 0:
        raise UsageError(f"the Dask cluster at {address} has no workers")
    return DaskTaskRunner(address=address), threads


@task(name="notify", cache_policy=NO_CACHE)
def notify_task(datasets: Location, release: int, urls: list[str]) -> dict[str, Any]:
    return notifying.notify_release(datasets, release, urls)


@task(name="notify-failure", cache_policy=NO_CACHE)
def notify_failure_task(urls: list[str], message: notifying.Message) -> list[str]:
    return notifying.send(urls, message, failure=True)


#: Recapture `pages` rows written per Delta commit: built from the records alone (no read,
#: no parse), so a batch is cheap; fewer commits mean fewer small files.
RECAPTURE_BATCH_SIZE = 20_000


@task(name="parse-batch", cache_policy=NO_CACHE)
def parse_batch_task(
    raw_dir: Location,
    records: list[raw_archive.SnapshotRecord],
    sources: list[Source],
    helper: page_worker.ParseHelper | None = None,
) -> dict[str, pa.Table]:
    return pipeline.parse_snapshots(raw_dir, records, sources, helper=helper)


def _retry_unless_operator_error(task: Any, task_run: Any, state: Any) -> bool:
    # A full or read-only disk does not heal in five seconds: say so at once.
    return not isinstance(state.data, OperatorError)


@task(
    name="write-batch",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=_retry_unless_operator_error,
)
def write_batch_task(writer: storage.ReleaseWriter, batch: dict[str, pa.Table]) -> None:
    # A retry is safe: each Delta commit is all or nothing, and the writer skips the
    # tables a failed attempt already committed for this batch.
    writer.write(batch)


@task(name="publish-release", cache_policy=NO_CACHE)
def publish_release_task(
    writer: storage.ReleaseWriter, n_pages_new: int, rebuild_history: bool
) -> tuple[int, str, float]:
    release, derivation = pipeline.publish_release(writer, n_pages_new, rebuild_history)
    return release, derivation.mode, derivation.seconds


def _progress(total: int):
    """A terminal progress bar for long runs; silent when not on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), disable=not sys.stderr.isatty() or total < 2, transient=True,
    )  # fmt: skip
    return progress


@flow(name="nightly", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)
def nightly(
    raw_dir: str = "raw",
    datasets_dir: str = "datasets",
    sources: str | None = None,
    fetch: str = "none",
    wayback_url: str = "https://web.archive.org",
    since: int | None = None,
    fetch_settings: dict[str, Any] | None = None,
    batch_size: int | None = None,
    overrides: str | None = None,
    parse_workers: int | None = None,
    lock_timeout: float = 600.0,
    reparse: bool = False,
    rebuild_history: bool = False,
    notify: list[str] | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Fetch (optionally), read the raw archive, parse what is new, and publish a release
    if anything changed.

    fetch: "none" (read raw/ only), "live" (the pages in `sources`), or "wayback" (their
    history from `wayback_url`, captures since the year `since`). `fetch_settings`
    overrides fields of `flows.http.FetchSettings` (timeouts, rates, retries, size limit).
    `overrides` is a TOML file of indicator links made by hand (`flows.history.Overrides`).
    `parse_workers`: processes for parsing (default: all cores but one, for large jobs only).
    `batch_size`: pages per parse task (default: 1,000 on processes, 200 on threads).
    `lock_timeout`: seconds to wait for another run writing the same datasets dir.
    `reparse`: re-parse the whole archive into a new release (e.g. after fixing a record).
    `rebuild_history`: rebuild the history tables from every finding, not only what the
    new snapshots touch (the result is the same; a check, or after a manual repair).
    `dask_address`: parse on this Dask cluster (`tcp://host:port`) instead of local
    threads or processes; its workers read the raw objects from the store themselves.
    `notify`: Apprise URLs told about a new release that changed something, and about a
    run that failed (fetches that failed, or an error that stopped it) even when no
    release changed (`flows.notify`); a failed notification is reported, never fails
    the run further.

    An operator error (a lock not released in time, an unwritable datasets dir, a bad
    overrides file) ends the run in a Failed state whose data holds `error` (one line)
    and `exit_code`; nothing is published and the last release stays intact. A run whose
    fetches failed publishes what the archive holds, then ends in a Failed state whose
    data is the summary (its `fetch_failures` name each page and why): a nightly that
    cannot reach its sources must show as failed in Prefect, not as a success.
    """
    urls = list(notify or [])
    try:
        summary = _nightly(
            raw_dir, datasets_dir, sources, fetch, wayback_url, since, fetch_settings,
            batch_size, overrides, parse_workers, lock_timeout, reparse, rebuild_history,
            urls, dask_address,
        )  # fmt: skip
    except Exception as error:
        # Failed outright (a bug, a store that broke mid-run): tell the watcher, then let
        # Prefect record the failure with its traceback.
        if urls:
            notify_failure_task(urls, notifying.error_message(error))
        raise
    message = notifying.failure_message(summary)
    if urls and message is not None:
        summary["notification_failures"] = [
            *summary.get("notification_failures", []),
            *notify_failure_task(urls, message),
        ]
    if "error" in summary:
        return Failed(message=summary["error"], data=summary)
    if summary["fetch_failures"]:
        return Failed(message=notifying.fetch_failure_headline(summary), data=summary)
    return summary


def _nightly(
    raw_dir: str,
    datasets_dir: str,
    sources: str | None,
    fetch: str,
    wayback_url: str,
    since: int | None,
    fetch_settings: dict[str, Any] | None,
    batch_size: int | None,
    overrides: str | None,
    parse_workers: int | None,
    lock_timeout: float,
    reparse: bool,
    rebuild_history: bool,
    notify: list[str],
    dask_address: str | None,
) -> dict[str, Any]:
    """The flow's work; its summary (with `error` and `exit_code` after an operator
    error)."""
    if fetch not in FETCH_MODES:
        raise UsageError(f"fetch must be one of {FETCH_MODES}, not {fetch!r}")
    logger = get_run_logger()
    started_at = datetime.now(UTC)
    raw, datasets = parse_location(raw_dir), parse_location(datasets_dir)
    page_sources = load_sources(sources) if sources else []

    outcomes: list[fetching.FetchOutcome] = []
    log = None
    if fetch != "none":
        if not page_sources:
            raise UsageError(f"--fetch {fetch} needs a sources file listing the pages")
        settings = FetchSettings(**(fetch_settings or {}))
        outcomes = run_fetch(fetch, raw, page_sources, settings, wayback_url, since)
        log = fetching.write_fetch_log(
            raw, outcomes, f"{started_at:%Y%m%dT%H%M%SZ}-{fetch}-{uuid.uuid4().hex[:8]}"
        )
        for outcome in outcomes:
            if outcome.outcome == "failed":
                logger.warning("fetch failed: %s: %s", outcome.url, outcome.reason)
        logger.info("fetch log: %s", log)

    summary: dict[str, Any] = {
        "pages_in_archive": 0, "pages_read": 0, "findings": 0, "rejects": 0,
        "failed_pages": 0, "release": None, "new_release": False, "mode": "append",
        "parser_version": PARSER_VERSION,
        "fetch_outcomes": dict(Counter(outcome.outcome for outcome in outcomes)),
        "fetch_failures": [f"{o.url}: {o.reason}" for o in outcomes if o.outcome == "failed"],
        "fetch_mode": fetch, "pages_to_fetch": len(page_sources) if outcomes else 0,
        "fetch_log": str(log) if log else None,
        "failures": [],
    }  # fmt: skip
    timings: dict[str, float] = {}
    try:
        indicator_overrides = history.load_overrides(overrides)
        with storage.writer_lock(datasets, lock_timeout, on_wait=_say) as lock:
            _publish(
                raw, datasets, page_sources, indicator_overrides, batch_size, parse_workers,
                reparse, rebuild_history, started_at, summary, timings, lock, dask_address,
            )  # fmt: skip
    except OperatorError as error:
        logger.error("%s", error)
        return {**summary, "error": str(error), "exit_code": error.exit_code}
    summary["timings"] = {key: round(value, 2) for key, value in timings.items()}
    summary["notification_failures"] = []
    if notify and summary["new_release"]:
        sent = notify_task(datasets, summary["release"], list(notify))
        summary["notifications_sent"] = sent["sent"]
        summary["notification_failures"] = sent["failures"]
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


def _release_of_run(datasets: Location, run_id: str) -> int | None:
    """The release the run `run_id` committed, or None (also when the runs table cannot
    be read)."""
    try:
        runs = storage.releases(datasets)
    except Exception:  # noqa: BLE001 - the error being reported is the one that matters
        return None
    mine = runs[runs["run_id"] == run_id]
    return None if mine.empty else int(mine["release"].iloc[-1])


def _say(message: str) -> None:
    print(f"oj run: {message}", file=sys.stderr, flush=True)


def _publish(
    raw: Location,
    datasets: Location,
    page_sources: list[Source],
    indicator_overrides: history.Overrides,
    batch_size: int | None,
    parse_workers: int | None,
    reparse: bool,
    rebuild_history: bool,
    started_at: datetime,
    summary: dict[str, Any],
    timings: dict[str, float],
    lock: storage.HeldLock,
    dask_address: str | None,
) -> None:
    """Plan, parse and publish under the writer lock; fills `summary` and `timings`."""
    clock = time.perf_counter()
    plan = plan_run_task(raw, datasets, indicator_overrides.sha256, reparse)
    # What reading the archive freed goes back to the system (on glibc, Arrow's system
    # pool trims malloc's heap): 100-130 MB after planning 1,000,000 captures.
    pa.default_memory_pool().release_unused()
    timings["plan_seconds"] = time.perf_counter() - clock
    if plan.repair:  # tables a run that lost its lock wrote into (pipeline.release_damage)
        _say(f"{plan.repair}: re-parsing the raw archive into a new release")
    summary.update(
        pages_in_archive=plan.n_in_archive,
        pages_read=plan.n_captures,
        release=plan.base_release,
        mode=plan.mode,
    )
    if not plan.has_work:
        # A run that crashed after its release row left `latest/` a release behind.
        storage.publish_latest(datasets)
        return
    writer = storage.ReleaseWriter(
        datasets, mode=plan.mode, parser_version=PARSER_VERSION, run_id=uuid.uuid4().hex,
        started_at=started_at, flow_run_id=flow_run.get_id(), overrides=indicator_overrides,
        lock=lock,
    )  # fmt: skip
    clock = time.perf_counter()
    runner, workers = parse_task_runner(len(plan.records), parse_workers, dask_address)
    helper = parse_helper(len(plan.records), parse_workers, runner)
    if batch_size is None:  # see pipeline.PROCESS_BATCH_SIZE for the measurement
        batch_size = pipeline.PROCESS_BATCH_SIZE if runner else pipeline.DEFAULT_BATCH_SIZE
    batches = list(pipeline.batched(plan.records, batch_size))
    in_flight: deque = deque()

    def note_failures(pages: pa.Table) -> None:
        failed = pages.filter(pc.equal(pages["parse_status"], "failed"))
        summary["failed_pages"] += failed.num_rows
        for url, snapshot_id, error in zip(
            failed["url"].to_pylist(), failed["snapshot_id"].to_pylist(),
            failed["error"].to_pylist(), strict=True,
        ):  # fmt: skip
            # A record file's name is its snapshot id and may be 255 bytes with a newline
            # in it: shortened and escaped so a failure stays one bounded line.
            summary["failures"].append(
                f"{raw_archive.show_text(url or '(no URL)')} "
                f"[{raw_archive.show_text(snapshot_id, 40)}]: {error}"
            )

    if plan.bad_records:
        # Records that cannot be used are published as failed pages, each named.
        quarantined = pipeline.quarantined_rows(plan.bad_records)
        write_batch_task(writer, quarantined)
        note_failures(quarantined["pages"])
    with (
        _progress(len(plan.records)) as progress,
        runner or nullcontext(),
        helper or nullcontext(),
    ):
        bar = progress.add_task("parsing", total=len(plan.records))

        # Workers elsewhere (a process pool, a Dask cluster) resolve a relative folder
        # from their own working directory: give them the absolute one.
        task_raw = raw if location.is_remote(raw) else Path(raw).resolve()

        def submit(records: list[raw_archive.SnapshotRecord]) -> PrefectFuture:
            parameters = {"raw_dir": task_raw, "records": records, "sources": page_sources}
            if runner is None:
                return parse_batch_task.submit(**parameters, helper=helper)
            return runner.submit(parse_batch_task, parameters)

        def drain_one() -> None:
            batch = in_flight.popleft().result()
            write_batch_task(writer, batch)
            note_failures(batch["pages"])
            progress.advance(bar, batch["pages"].num_rows)

        window = workers + 1
        for records in batches[:window]:
            in_flight.append(submit(records))
        # Recaptures of a version published or parsed in this run are planned before any
        # batch (`pipeline.split_versions`): a `pages` row each, no parse, no object read.
        # Written while the first batches parse (and parse workers start: ~2 s), not
        # before them: 140,000 recapture rows of a first run at 150,000 captures were
        # 1-2 s of the flow with no parse going on.
        for start in range(0, plan.recaptures.num_rows, RECAPTURE_BATCH_SIZE):
            recaptures = plan.recaptures.slice(start, RECAPTURE_BATCH_SIZE)
            write_batch_task(writer, pipeline.recapture_rows(recaptures, page_sources))
        for records in batches[window:]:
            if len(in_flight) >= window:  # bounded: never the whole corpus in memory
                drain_one()
            in_flight.append(submit(records))
        while in_flight:
            drain_one()
    timings["parse_and_write_seconds"] = time.perf_counter() - clock
    n_captures = plan.n_captures
    # The derivation, the run's memory peak, needs none of the plan (its recaptures table
    # is ~60 MB at 1,000,000 captures on a first run).
    del plan, batches
    pa.default_memory_pool().release_unused()
    clock = time.perf_counter()
    summary["findings"] = writer.new_rows["findings"]
    summary["rejects"] = writer.new_rows["rejects"]
    try:
        summary["release"], summary["derivation"], timings["derive_seconds"] = (
            publish_release_task(writer, n_captures, rebuild_history)
        )
    except StorageWriteError:
        # Disk full while writing latest/ after the release was committed: the release is
        # there ("release 2 is written and intact, .../latest still holds release 1"), so
        # the run's summary names it before that line (it printed none).
        written = _release_of_run(datasets, writer.run_id)
        if written is None:
            raise
        summary["release"], summary["new_release"] = written, True
        raise
    summary["new_release"] = True
    # derive, write, commit and copy to latest/; the runs row's finished_at is the commit
    timings["release_seconds"] = time.perf_counter() - clock
    counts = report.quality_counts(datasets, summary["release"])
    summary["national_conflicts"] = counts["national_conflicts"]
    summary["first_national_conflict"] = counts["first_national_conflict"]
    summary["findings_without_year"] = counts["findings_without_year"]
    timings["publish_seconds"] = time.perf_counter() - clock
