"""The `oj` command line."""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flows import location, raw_archive
from flows.errors import (
    EXIT_CODES,
    LockTimeout,
    OperatorError,
    UsageError,
    is_store_configuration_error,
    one_line,
    plural,
)
from flows.location import Location, parse_location
from flows.schemas import TABLES
from parsers import PARSER_VERSION, PageError, ParsedPage, parse_page

PARSE_KEYS = (
    "url",
    "municipality",
    "area",
    "page_updated",
    "page_published",
    "section",
    "survey_year",
    "survey_year_basis",
    "position",
    "national_statement",
    "national_percent",
    "national_values",
    "national_comparison",
    "local_answer",
    "local_status",
    "local_value",
    "flags",
)
LAYOUT_KEYS = ("entity_kind", "entity", "national_measure", "national_value", "comparison")


def _parse_time(value: str | None, command: str) -> datetime | None:
    """An ISO 8601 time with a time zone ("2020-07-02T10:00:00Z"); SystemExit(2) if not."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        print(f"oj {command}: --captured-at {value!r} is not an ISO 8601 time", file=sys.stderr)
        raise SystemExit(2) from None
    if parsed.tzinfo is None:
        print(
            f"oj {command}: --captured-at needs a time zone (e.g. 2020-07-02T10:00:00Z)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return parsed


def _parse_file(
    path: Path, url: str | None, municipality: str | None, captured_at: datetime | None = None
) -> ParsedPage:
    """Parse one file; metadata of the raw archive fills in what the flags leave open."""
    data = path.read_bytes()
    record = raw_archive.find_record_for_file(path)
    if record is not None:
        url = url or record.url
        municipality = municipality or record.municipality
        captured_at = captured_at or record.captured_datetime
    return parse_page(
        data,
        url=url,
        municipality=municipality,
        captured_at=captured_at,
        charset=record.charset if record else None,
    )


def _print_table(path: Path, page: ParsedPage) -> None:
    out = sys.stdout
    out.write(
        f"{path}  [{page.input_format}{', ' + page.charset if page.charset else ''}]\n"
        f"  {page.area or '?'} · {page.municipality or '?'} · "
        f"updated {page.page_updated or '?'} · published {page.page_published or '?'}\n"
    )
    heading = None
    for finding in page.findings:
        # A new header whenever the section OR its survey year changes: a page may hold two
        # "Årets resultat visar att:" sections of different years (this year's bullets above
        # last year's), and one header over both gave the second the first's year.
        if (finding.section, finding.survey_year, finding.survey_year_basis) != heading:
            heading = (finding.section, finding.survey_year, finding.survey_year_basis)
            out.write(
                f"\n  {finding.section}  "
                f"(survey year {finding.survey_year}, {finding.survey_year_basis})\n"
            )
        percent = (
            finding.national_comparison
            if finding.national_comparison
            else "–"
            if finding.national_percent is None
            else f"{finding.national_percent:g}%"
        )
        out.write(
            f"  {finding.position:>3}. {percent:>6}  "
            + textwrap.shorten(finding.national_statement, 90)
            + "\n"
        )
        local = "–" if finding.local_value is None else f"{finding.local_value:g}"
        out.write(
            f"       {(finding.local_status or 'none'):>7} {local:>6}  "
            + textwrap.shorten(finding.local_answer or "(no local answer)", 86)
            + "\n"
        )
        if finding.flags:
            out.write(f"       flags: {', '.join(finding.flags)}\n")
    for reject in page.rejects:
        out.write(f"  REJECT {reject.reason}: {textwrap.shorten(reject.text, 80)}\n")
    out.write("\n")


def cmd_parse(args: argparse.Namespace) -> int:
    captured_at = _parse_time(args.captured_at, "parse")
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            page = _parse_file(path, args.url, args.municipality, captured_at)
        except (OSError, PageError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            print(f"oj parse: {path}: {reason}", file=sys.stderr)
            status = max(status, _read_failure_code(error))
            continue
        if not page.findings:
            reasons = "; ".join(sorted({reject.reason for reject in page.rejects})) or "none"
            print(
                f"oj parse: {path}: not an Öppna jämförelser page: no findings ({reasons})",
                file=sys.stderr,
            )
            status = 1
            continue
        if args.format == "table":
            _print_table(path, page)
            continue
        for finding in page.findings:
            record = finding.to_dict()
            sys.stdout.write(
                # the layout keys (entity_kind, entity, national_measure, ...) only where
                # to_dict carries them: tables and cards, never Kalmar's pairs
                json.dumps({key: record[key] for key in PARSE_KEYS + LAYOUT_KEYS if key in record},
                           ensure_ascii=False) + "\n"  # fmt: skip
            )
    return status


def _read_failure_code(error: BaseException) -> int:
    """2 for a file named on the command line that is not there (or is a folder): a usage
    error, as flows/errors.py says; 1 for a file that is there but failed."""
    return 2 if isinstance(error, (FileNotFoundError, IsADirectoryError)) else 1


def cmd_add(args: argparse.Namespace) -> int:
    captured = _parse_time(args.captured_at, "add")
    try:
        raw_archive.check_url(args.url)
    except ValueError as error:
        print(f"oj add: --url: {error}", file=sys.stderr)
        return 2
    status = 0
    # One segment for all the files added (raw/segments/), not a record file each; the ids
    # known so a file added twice is said to be there already, not recorded again.
    known = raw_archive.record_ids(args.raw_dir)
    with raw_archive.ArchiveAppender(args.raw_dir, known_ids=known) as archive:
        for name in args.files:
            path = Path(name)
            try:
                data = path.read_bytes()
            except OSError as error:
                print(f"oj add: {path}: {error.strerror}", file=sys.stderr)
                status = max(status, _read_failure_code(error))
                continue
            record, added = archive.add(
                data,
                url=args.url,
                source=args.source,
                municipality=args.municipality,
                captured_at=captured,
                content_type=args.content_type,
                note=args.note or f"added from {path.name}",
            )
            print(
                f"{'added' if added else 'already in archive'}: {path} -> {record.record_id} "
                f"(sha256 {record.sha256[:12]})"
            )
    return status


SOURCES_FILE = "sources.toml"
OVERRIDES_FILE = "indicator_overrides.toml"


def _beside_raw_dir(raw: Location, option: str, named: str | None, default: str) -> str | None:
    """A file of the project as an absolute path: the one named (it must exist), else
    `default` beside the raw archive if it is there (never the current directory), else
    None. A raw archive in a bucket has no project folder beside it: files must be named."""
    if named is not None and not Path(named).is_file():
        raise UsageError(f"--{option} {named}: no such file")
    if named is None and not location.is_remote(raw):
        beside = Path(raw).resolve().parent / default
        named = str(beside) if beside.is_file() else None
    return str(Path(named).resolve()) if named else None


def _run_inputs(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """The sources and overrides files of a run, found the same way from any directory,
    and the overrides' sha256 (what a release records, to notice a change).

    Named files must exist. Unnamed ones are looked for beside the raw archive (the
    project folder that holds `raw/`), never in the current directory: a run started
    elsewhere once dropped the hand-made indicator links and published a re-linked
    release nobody asked for. Both files are read here, so a malformed one is one line.
    """
    from flows.history import load_overrides
    from flows.sources import load_sources

    raw = args.raw_dir
    if args.fetch == "none" and not location.is_folder(raw):
        raise UsageError(f"raw dir {raw} does not exist (pass --raw-dir)")
    found = {
        option: _beside_raw_dir(raw, option, getattr(args, option), default)
        for option, default in (("sources", SOURCES_FILE), ("overrides", OVERRIDES_FILE))
    }
    if found["sources"]:
        load_sources(found["sources"])  # SourcesError: the file, entry and line
    overrides_sha256 = load_overrides(found["overrides"]).sha256  # OverridesError likewise
    return found["sources"], found["overrides"], overrides_sha256


def _tells_failures(command: Callable[[argparse.Namespace], int]):
    """`oj run` tells `--notify` when it fails outright: a bad input, a lock not released,
    a Prefect server that does not start. Failures inside the flow (fetches, the store,
    a bug) the flow tells itself, under `oj serve` too."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except Exception as error:
            if not getattr(args, "flow_told_failures", False):
                _notify_failed_run(args, error)
            raise

    return run


@_tells_failures
def cmd_run(args: argparse.Namespace) -> int:
    from flows.server import prefect_api

    sources, overrides, overrides_sha256 = _run_inputs(args)
    _refuse_a_held_lock(args)
    if args.fetch == "none" and not args.reparse:
        noop = _nothing_to_do(args, overrides_sha256)
        if noop is not None:
            print(noop)
            return 0
    with prefect_api(while_starting=lambda: importlib.import_module("flows.nightly")):
        state, result = _run_flow(args, sources, overrides)
    args.flow_told_failures = True  # the flow alerted on its own failures
    from flows.nightly import summary_line

    if state.is_failed():
        if isinstance(result, dict) and "error" in result:
            for failure in result.get("notification_failures", []):
                print(f"oj run: notification failed: {failure}", file=sys.stderr)
            if result.get("new_release"):
                # The release was written and a later step failed (latest/ on a full
                # disk): the summary says what the run did, the error line what it did not.
                print(summary_line(result), flush=True)
            print(f"oj run: {result['error']}", file=sys.stderr)
            return int(result["exit_code"])
        if not (isinstance(result, dict) and result.get("fetch_failures")):
            if isinstance(result, BaseException):
                raise result  # main() prints it as one line (the traceback with --debug)
            raise RuntimeError(state.message or "the run failed")
        # Fetches failed: the flow run is Failed (so Prefect shows it), yet it published
        # what the archive holds and its data is the summary, reported as for any run.
    summary = result
    for failure in summary["fetch_failures"]:
        print(f"oj run: fetch failed: {failure}", file=sys.stderr)
    for failure in summary.get("failures", []):
        print(f"oj run: failed page: {failure}", file=sys.stderr)
    for failure in summary.get("notification_failures", []):
        print(f"oj run: notification failed: {failure}", file=sys.stderr)
    print(summary_line(summary))
    return 1 if summary["failed_pages"] or summary["fetch_failures"] else 0


def _run_flow(args: argparse.Namespace, sources: str | None, overrides: str | None):
    """The `nightly` flow run of `oj run`: its final state and that state's data."""
    import logging

    from flows.nightly import nightly

    _quiet_prefect(args.debug)
    if not args.debug:
        # urllib3 warns of every retry ("Retrying (...) after connection broken by ..."),
        # Apprise and flows.notify of a notification not sent: `oj run` says each outcome
        # in one line of its own (`oj run: fetch failed: ...`, `... notification failed`).
        for name in ("urllib3", "apprise", "flows.notify"):
            logging.getLogger(name).setLevel(logging.ERROR)
    state = nightly(
        raw_dir=str(args.raw_dir),
        datasets_dir=str(args.datasets_dir),
        sources=sources,
        fetch=args.fetch,
        wayback_url=args.wayback_url,
        since=args.since,
        fetch_settings=_fetch_settings(args),
        batch_size=args.batch_size,
        overrides=overrides,
        lock_timeout=args.lock_timeout,
        reparse=args.reparse,
        rebuild_history=args.rebuild_history,
        parse_workers=args.parse_workers,
        notify=args.notify,
        dask_address=args.dask_address,
        return_state=True,
    )
    return state, state.result(raise_on_failure=False)


def _notify_failed_run(args: argparse.Namespace, error: BaseException) -> None:
    """Tell `--notify` that a run failed outside its flow; a notification that fails is
    printed, never raised."""
    if not args.notify:
        return
    from flows import notify

    message = (
        notify.failure_message({"error": str(error), "exit_code": error.exit_code})
        if isinstance(error, OperatorError)
        else notify.error_message(error)
    )
    for failure in notify.notify_failure(list(args.notify), message):
        print(f"oj run: notification failed: {failure}", file=sys.stderr)


def _refuse_a_held_lock(args: argparse.Namespace) -> None:
    """With --lock-timeout 0 and the datasets' lock held by another run: LockTimeout (75)
    at once, before a Prefect server starts (that alone took ~11 s, then the flow found
    the lock taken). The flow still takes the lock itself; this is only the early no."""
    if args.lock_timeout > 0:
        return
    from flows import storage

    holder = storage.lock_holder(args.datasets_dir)
    if holder is not None:
        raise LockTimeout(
            f"another run holds the lock of {args.datasets_dir} ({holder}); "
            "--lock-timeout 0: not waiting"
        )


def _nothing_to_do(args: argparse.Namespace, overrides_sha256: str | None) -> str | None:
    """The run summary when the archive holds nothing new and neither the parser version
    nor the overrides changed; None when there is work. A read-only look, without the
    lock and without Prefect: a nightly run with nothing to do starts no server (that
    alone took ~11 s). A run that finds work plans again under the lock, in the flow."""
    from flows import pipeline

    if pipeline.work_without_reading(args.datasets_dir):
        return None  # a first run, or a re-parse: the flow reads the archive once
    plan = pipeline.plan_run(args.raw_dir, args.datasets_dir, overrides_sha256=overrides_sha256)
    if plan.has_work or plan.base_release is None:
        return None
    from flows import storage

    if storage.latest_problems(args.datasets_dir, plan.base_release, deep=False):
        # the plain Parquet copies lag (a crash after the release row) or were edited
        # since (their sha256s differ from latest/release.json): heal. Hashing every file
        # costs ~3 ms per MB (sha256 ran at ~330 MB/s here, under load), against ~11 s for
        # a run's Prefect server.
        return None

    return pipeline.summary_line(
        {"pages_in_archive": plan.n_in_archive, "pages_read": 0, "findings": 0, "rejects": 0,
         "failed_pages": 0, "release": plan.base_release, "new_release": False}
    )  # fmt: skip


def _quiet_prefect(debug: bool) -> None:
    """Prefect logs a failed task or flow with its traceback; `oj` says it in one line
    instead, unless --debug."""
    if debug:
        return
    import logging

    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine",
                 "prefect.task_engine", "prefect.engine"):  # fmt: skip
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _fetch_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Only the settings given on the command line; the rest keep their polite defaults."""
    names = (
        "host_rate",
        "cdx_rate",
        "replay_rate",
        "rate_limit_wait",
        "read_timeout",
        "connect_timeout",
        "retries",
        "backoff_factor",
        "max_bytes",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def cmd_import_warc(args: argparse.Namespace) -> int:
    from flows import fetch
    from flows.sources import SourcesError, load_sources

    # The same sources file as `oj run` reads: named, or the one beside the raw dir (it
    # was ./sources.toml: started elsewhere, import-warc added every page of a crawl).
    named = None if args.all else _beside_raw_dir(args.raw_dir, "sources", args.sources,
                                                  SOURCES_FILE)  # fmt: skip
    try:
        sources = load_sources(named) if named else None
    except SourcesError as error:
        print(f"oj import-warc: {error}", file=sys.stderr)
        return 2
    status = 0
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            reason = "Is a directory" if path.is_dir() else "No such file or directory"
            print(f"oj import-warc: {path}: {reason}", file=sys.stderr)
            status = 2
            continue
        try:
            outcomes = fetch.import_warc(args.raw_dir, path, sources)
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
            print(f"oj import-warc: {path}: not a readable WARC file: {error}", file=sys.stderr)
            status = 1
            continue
        fetch.write_fetch_log(
            args.raw_dir,
            outcomes,
            f"import-warc-{path.name}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}",
        )
        added = [o for o in outcomes if o.outcome == "new_snapshot"]
        failed = [o for o in outcomes if o.outcome == "failed"]
        for outcome in failed:
            print(f"oj import-warc: {outcome.reason}", file=sys.stderr)
        print(f"{path}: {plural(len(added), 'HTML response')} added, {len(failed)} failed")
        status = max(status, 1 if failed else 0)
    return status


def cmd_versions(args: argparse.Namespace) -> int:
    from flows import storage

    where = args.datasets_dir
    if not location.is_remote(where) and not Path(where).is_dir():
        # A typo is not "no release yet" (exit 0); a bucket prefix exists once written.
        raise UsageError(f"datasets dir {where} does not exist (pass --datasets-dir)")
    runs = storage.releases(where)
    if runs.empty:
        print(f"{where}: no release yet (run `oj run`)")
        return 0
    print(
        f"{'release':>7}  {'finished (UTC)':<19}  {'parser':<8} {'mode':<8}"
        f"{'pages':>7} {'findings':>9} {'rejects':>8}  new pages"
    )
    for row in runs.itertuples():
        print(
            f"{row.release:>7}  {row.finished_at:%Y-%m-%d %H:%M:%S}  {row.parser_version:<8} "
            f"{row.mode:<8}{row.n_pages:>7} {row.n_findings:>9} {row.n_rejects:>8}  "
            f"{row.n_pages_new}"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from flows import storage

    try:
        release, rows = storage.export_table(
            args.table, args.out, release=args.release, datasets_dir=args.datasets_dir
        )
    except KeyError as error:  # an unknown table (NoReleaseError is one line via main)
        print(f"oj export: {error.args[0]}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {plural(rows, 'row')} of `{args.table}` as of release {release}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from flows.outfolder import OutFolderError, OutFolderUnwritable
    from flows.package import write_package

    try:
        descriptor = write_package(args.datasets_dir, args.out, release=args.release)
    except (OutFolderError, OutFolderUnwritable) as error:  # they name the path as given
        raise type(error)(f"--out {error}") from None
    meta = descriptor["oppna-jamforelser"]
    print(
        f"wrote {Path(args.out) / 'datapackage.json'} and CITATION.cff: release "
        f"{meta['release']}, {plural(len(descriptor['resources']), 'table')} as CSV\n"
        f"cite as: {descriptor['citation']}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from flows.site import OutFolderError, OutFolderUnwritable, build_site

    try:
        built = build_site(args.datasets_dir, args.out, release=args.release)
    except (OutFolderError, OutFolderUnwritable) as error:  # they name the path as given
        raise type(error)(f"--out {error}") from None
    print(
        f"wrote {built['files']} pages of release {built['release']} "
        f"({built['questions']} questions) to {args.out}; open {built['index']}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.serve import serve

    sources, overrides, _ = _run_inputs(args)
    return serve(
        cron=args.cron,
        timezone=args.timezone,
        parameters={
            "raw_dir": _absolute(args.raw_dir),
            "datasets_dir": _absolute(args.datasets_dir),
            "sources": sources,
            "fetch": args.fetch,
            "wayback_url": args.wayback_url,
            "since": args.since,
            "fetch_settings": _fetch_settings(args),
            "overrides": overrides,
            "lock_timeout": args.lock_timeout,
            "notify": args.notify,
            "dask_address": args.dask_address,
        },
        port=args.port,
        server_grace=args.server_grace,
    )


def _absolute(where: Location) -> str:
    """A deployment's parameter: the same place whatever folder its runs start in."""
    return str(where) if location.is_remote(where) else str(Path(where).resolve())


def cmd_changes(args: argparse.Namespace) -> int:
    from flows import report

    print(
        report.changes_report(
            args.datasets_dir,
            release=args.release,
            since=args.since,
            area=args.area,
            municipality=args.municipality,
        ),
        end="",
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import time

    from flows import verify

    started = time.perf_counter()
    raw, datasets = args.raw_dir, args.datasets_dir
    if not location.is_folder(raw):
        raise UsageError(f"raw dir {raw} does not exist (pass --raw-dir)")
    problems, counts = verify.verify_raw(raw)
    notes: list[str] = []  # facts, not failures: an old damaged release repaired since
    release_problems, release_counts = verify.verify_releases(datasets, notes)
    problems += release_problems
    problems += verify.verify_sequence(datasets)
    problems += verify.verify_log(datasets)
    problems += verify.verify_files(datasets)
    problems += verify.verify_latest(datasets)
    problems += verify.verify_archive_covers(raw, datasets)
    for note in notes:
        print(f"oj verify: {note}")
    for problem in problems:
        print(f"oj verify: {problem}", file=sys.stderr)
    print(
        f"{plural(counts['objects'], 'object')}, {plural(counts['records'], 'record')}, "
        f"{plural(release_counts['releases'], 'release')} checked in "
        f"{time.perf_counter() - started:.1f} s: "
        + (plural(len(problems), "problem") if problems else "all hold")
    )
    return 1 if problems else 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    from flows import storage

    datasets = args.datasets_dir
    storage.get_release(datasets, None)
    with storage.writer_lock(datasets, args.lock_timeout, on_wait=_say_vacuum):
        deleted = storage.vacuum(datasets, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    total = sum(len(files) for files in deleted.values())
    detail = ", ".join(f"{name} {len(files)}" for name, files in deleted.items() if files)
    print(
        f"{verb} {plural(total, 'file')} no release needs" + (f" ({detail})" if detail else "")
        + "; every release stays readable"
    )  # fmt: skip
    return 0


def _say_vacuum(message: str) -> None:
    print(f"oj vacuum: {message}", file=sys.stderr, flush=True)


def cmd_check(args: argparse.Namespace) -> int:
    from flows import report

    text, _counts = report.check_report(args.datasets_dir, release=args.release)
    print(text, end="")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from flows import report

    table = report.diff_releases(args.datasets_dir, args.release_a, args.release_b)
    print(f"A = release {args.release_a}, B = release {args.release_b}")
    print(table.to_string(index=False))
    return 0


def _location(text: str) -> Location:
    try:
        return parse_location(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_STORE_HELP = (
    "; a folder, or an object-store prefix (s3://bucket/prefix, gs://, az://) configured "
    "by the AWS_* (GOOGLE_*, AZURE_*) environment variables"
)


def _add_datasets_dir(command: argparse.ArgumentParser) -> None:
    """--datasets-dir, the same for every command that reads or writes the tables."""
    command.add_argument(
        "--datasets-dir",
        type=_location,
        default="datasets",
        help="published tables (default: datasets)" + _STORE_HELP,
    )


def _add_raw_dir(command: argparse.ArgumentParser) -> None:
    """--raw-dir, the same for every command that reads or writes the raw archive."""
    command.add_argument(
        "--raw-dir", type=_location, default="raw", help="raw archive (default: raw)" + _STORE_HELP
    )


def _package_version() -> str:
    try:
        return importlib.metadata.version("oppna-jamforelser")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _add_run_options(command: argparse.ArgumentParser) -> None:
    _add_raw_dir(command)
    _add_datasets_dir(command)
    command.add_argument(
        "--sources",
        help="pages to follow (default: sources.toml beside the raw dir, if there is one)",
    )
    command.add_argument(
        "--overrides",
        help="indicator links made by hand (default: indicator_overrides.toml beside the raw "
        "dir, if there is one); a named file must exist",
    )
    command.add_argument(
        "--lock-timeout",
        type=float,
        default=600.0,
        help="seconds to wait while another run writes the same datasets dir, then exit 75 "
        "(default: 600; 0 refuses at once)",
    )
    command.add_argument(
        "--fetch",
        choices=("none", "live", "wayback"),
        default="none",
        help="fetch first: live pages, or their Wayback Machine history (default: none)",
    )
    command.add_argument(
        "--wayback-url",
        default="https://web.archive.org",
        help="Wayback Machine (or a mirror) base URL",
    )
    command.add_argument("--since", type=int, help="wayback: captures from this year on")
    command.add_argument(
        "--dask-address",
        metavar="tcp://HOST:PORT",
        help="parse on this running Dask cluster (its workers read the raw archive "
        "themselves: use an object-store --raw-dir, or a folder every worker sees)",
    )
    command.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="Apprise URL (json://, mailto://, slack://, ntfy://, ...) told about each new "
        "release that changed something, and about a run that failed (fetches that failed, "
        "or an error that stopped it); repeatable. A failed notification is reported and "
        "never fails the run further",
    )
    polite = command.add_argument_group("fetch settings (polite defaults: flows/http.py)")
    polite.add_argument("--host-rate", type=float, help="live requests/s per host (1)")
    polite.add_argument("--cdx-rate", type=float, help="Wayback CDX requests/s (0.4)")
    polite.add_argument("--replay-rate", type=float, help="Wayback replay requests/s (1)")
    polite.add_argument(
        "--rate-limit-wait", type=float, help="seconds to wait on a 429 without Retry-After (60)"
    )
    polite.add_argument("--read-timeout", type=float, help="seconds (30)")
    polite.add_argument("--connect-timeout", type=float, help="seconds (10)")
    polite.add_argument("--retries", type=int, help="retries per request (4)")
    polite.add_argument("--backoff-factor", type=float, help="exponential backoff base (1)")
    polite.add_argument("--max-bytes", type=int, help="largest response accepted (5000000)")


def _exit_code_table() -> str:
    """flows/errors.py's EXIT_CODES as `oj --help` prints them: one code a line (in one
    wrapped paragraph "--lock-timeout" was cut at its hyphen)."""
    lines = ["exit codes:"]
    for code, meaning in EXIT_CODES.items():
        lines += textwrap.wrap(meaning, 79, initial_indent=f"  {code:<4}",
                               subsequent_indent=" " * 6, break_on_hyphens=False)  # fmt: skip
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oj",
        description="Öppna jämförelser pages to a versioned dataset.",
        epilog=_exit_code_table(),
        # the table's lines as written; the options' help is still wrapped by argparse
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"oj {_package_version()} (parser {PARSER_VERSION})",
        help="print the version of oj and of its parser, then exit",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the full traceback of an error (also: OJ_DEBUG=1)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser(
        "parse", help="parse page files (HTML or text extracts) into findings"
    )
    parse.add_argument("files", nargs="+", metavar="FILE", help="page files (HTML or text)")
    parse.add_argument("--url", help="URL of the page (default: from the raw archive)")
    parse.add_argument("--municipality", help="municipality name (default: from the page)")
    parse.add_argument(
        "--captured-at",
        help="when the page was captured, ISO 8601 with time zone: evidence of the survey year "
        "when the page has no dates (default: from the raw archive)",
    )
    parse.add_argument(
        "--format",
        choices=("jsonl", "table"),
        default="jsonl",
        help="one JSON record per line, or an aligned table for reading (default: jsonl)",
    )
    parse.set_defaults(func=cmd_parse)

    add = commands.add_parser("add", help="add local page files to the raw archive")
    add.add_argument("files", nargs="+", metavar="FILE", help="page files to store as captured")
    add.add_argument("--url", required=True, help="the URL the files are captures of")
    add.add_argument(
        "--source", choices=raw_archive.SOURCES, required=True, help="where the files came from"
    )
    add.add_argument("--municipality", help="municipality name (default: from the page)")
    add.add_argument("--captured-at", help="ISO 8601 with time zone; omit when unknown")
    add.add_argument(
        "--content-type", help="e.g. 'text/html; charset=utf-8' (default: from the file)"
    )
    add.add_argument("--note", help="free text kept with the record (e.g. where it came from)")
    _add_raw_dir(add)
    add.set_defaults(func=cmd_add)
    run = commands.add_parser("run", help="run the nightly flow locally: parse, publish")
    _add_run_options(run)
    run.add_argument(
        "--batch-size", type=int,
        help="pages per parse task (default: 1000)",
    )  # fmt: skip
    run.add_argument(
        "--parse-workers",
        type=int,
        help="worker processes for parsing, ~350 MB each (default: all cores but one from "
        "3,000 pages; else the flow's threads, with one lean parse helper process (~55 MB) "
        "from 500 pages; 1: the flow's threads only)",
    )
    run.add_argument(
        "--reparse",
        action="store_true",
        help="re-parse the whole archive into a new release (e.g. after fixing a record that "
        "was quarantined)",
    )
    run.add_argument(
        "--rebuild-history",
        action="store_true",
        help="derive the history tables of the new release from every finding instead of "
        "updating only what the new snapshots touch (same rows; for checks and repairs)",
    )
    run.set_defaults(func=cmd_run)

    warc = commands.add_parser("import-warc", help="add the HTML pages of WARC files to raw/")
    warc.add_argument("files", nargs="+", metavar="FILE", help="WARC files (.warc, .warc.gz)")
    _add_raw_dir(warc)
    warc.add_argument(
        "--sources",
        help="only pages listed here (default: sources.toml beside the raw dir, if there is "
        "one, as for `oj run`; without one, every HTML response)",
    )
    warc.add_argument("--all", action="store_true", help="every HTML response, not only sources")
    warc.set_defaults(func=cmd_import_warc)

    changes = commands.add_parser("changes", help="what changed on the pages, newest first")
    changes.add_argument("--since", type=date.fromisoformat, help="only from this date (ISO)")
    changes.add_argument("--area", help="only areas containing this text")
    changes.add_argument("--municipality", help="only this municipality")
    changes.add_argument("--release", type=int, help="as of this release (default: latest)")
    _add_datasets_dir(changes)
    changes.set_defaults(func=cmd_changes)

    diff = commands.add_parser("diff", help="rows added, removed, changed between releases")
    diff.add_argument("release_a", type=int, help="the earlier release (A)")
    diff.add_argument("release_b", type=int, help="the later release (B)")
    _add_datasets_dir(diff)
    diff.set_defaults(func=cmd_diff)

    check = commands.add_parser(
        "check",
        help="national-figure conflicts and findings without a survey year, with counts",
    )
    check.add_argument("--release", type=int, help="release number (default: the latest)")
    _add_datasets_dir(check)
    check.set_defaults(func=cmd_check)

    verify = commands.add_parser(
        "verify",
        help="check raw objects against their sha256, every record, and every release's "
        "tables and row counts; exit 0 only when all hold",
    )
    _add_raw_dir(verify)
    _add_datasets_dir(verify)
    verify.set_defaults(func=cmd_verify)

    vacuum = commands.add_parser(
        "vacuum",
        help="delete table files no release needs (superseded intermediate versions, files "
        "of crashed runs); every release stays readable",
    )
    _add_datasets_dir(vacuum)
    vacuum.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    vacuum.add_argument(
        "--lock-timeout", type=float, default=600.0,
        help="seconds to wait for a run writing the same datasets dir (default 600)",
    )  # fmt: skip
    vacuum.set_defaults(func=cmd_vacuum)

    versions = commands.add_parser("versions", help="list releases")
    _add_datasets_dir(versions)
    versions.set_defaults(func=cmd_versions)

    export = commands.add_parser("export", help="one Parquet file of a table as of a release")
    export.add_argument("table", choices=tuple(TABLES), help="the table to write")
    export.add_argument("--release", type=int, help="release number (default: the latest)")
    export.add_argument("--out", required=True, help="output .parquet file")
    _add_datasets_dir(export)
    export.set_defaults(func=cmd_export)

    package = commands.add_parser(
        "package",
        help="a release as a Frictionless data package (datapackage.json, CSV, CITATION.cff)",
    )
    package.add_argument("--release", type=int, help="release number (default: the latest)")
    package.add_argument("--out", required=True, help="folder to write the package to")
    _add_datasets_dir(package)
    package.set_defaults(func=cmd_package)

    site = commands.add_parser(
        "report", help="a static site of a release (charts, questions, changes), for a browser"
    )
    site.add_argument("--release", type=int, help="release number (default: the latest)")
    site.add_argument(
        "--out",
        required=True,
        help="folder to write the site to: a new or empty folder, or one an earlier `oj "
        "report` wrote (replaced whole); any other folder is refused, nothing is deleted",
    )
    _add_datasets_dir(site)
    site.set_defaults(func=cmd_report)

    serve = commands.add_parser("serve", help="run the flow on a nightly schedule")
    _add_run_options(serve)
    serve.add_argument("--cron", default="0 3 * * *", help='cron schedule (default "0 3 * * *")')
    serve.add_argument(
        "--timezone",
        default="Europe/Stockholm",
        help="time zone of the cron schedule (default: Europe/Stockholm)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=4200,
        help="port of the local Prefect server started when PREFECT_API_URL "
        "is not set (default 4200)",
    )
    serve.add_argument(
        "--server-grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="exit 1 when the Prefect server has not answered for this long (default 30; "
        "a local server that exits ends it at once)",
    )
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.debug = args.debug or os.environ.get("OJ_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except BrokenPipeError:  # `oj parse ... | head`
        sys.stderr.close()
        return 0
    except OperatorError as error:
        if args.debug:
            traceback.print_exc()
        print(f"oj {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except Exception as error:  # noqa: BLE001 - one line, not a traceback, unless --debug
        if args.debug:
            raise
        message = one_line(error)
        if is_store_configuration_error(error):  # a setting away from working: say which
            print(f"oj {args.command}: {message}", file=sys.stderr)
            return UsageError.exit_code
        print(
            f"oj {args.command}: unexpected error: {type(error).__name__}: {message} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def entry() -> None:
    """The `oj` console script: main(), then exit without interpreter teardown.

    deltalake's Rust runtime can abort during Python's shutdown while its threads still
    run ("terminate called without an active exception", 2 of ~150 `oj versions`);
    everything `oj` writes is committed and flushed before this point, so the process
    ends with os._exit and skips that teardown.
    """
    from flows.rust_noise import StderrRelay

    relay = StderrRelay()
    # Rust panic text from deltalake's runtime kept off the terminal (flows/rust_noise.py);
    # with --debug everything is shown as written.
    if "--debug" not in sys.argv[1:] and os.environ.get("OJ_DEBUG", "") in ("", "0"):
        relay.start()
    try:
        code = main()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):
            pass
        relay.stop()
    os._exit(code)


if __name__ == "__main__":
    entry()
