"""The `oj` command line."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from flows import raw_archive
from parsers import PageError, ParsedPage, parse_page

PARSE_KEYS = (
    "url", "municipality", "area", "page_updated", "page_published", "section", "survey_year",
    "survey_year_basis", "position", "national_statement", "national_percent",
    "national_values", "local_answer", "local_status", "local_value", "flags",
)  # fmt: skip


def _parse_file(path: Path, url: str | None, municipality: str | None) -> ParsedPage:
    """Parse one file; metadata of the raw archive fills in what the flags leave open."""
    data = path.read_bytes()
    record = raw_archive.find_record_for_file(path)
    captured_at = None
    if record is not None:
        url = url or record.url
        municipality = municipality or record.municipality
        if record.captured_at:
            captured_at = datetime.fromisoformat(record.captured_at.replace("Z", "+00:00"))
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
    section = None
    for finding in page.findings:
        if finding.section != section:
            section = finding.section
            out.write(
                f"\n  {section}  (survey year {finding.survey_year}, {finding.survey_year_basis})\n"
            )
        percent = "–" if finding.national_percent is None else f"{finding.national_percent:g}%"
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
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            page = _parse_file(path, args.url, args.municipality)
        except (OSError, PageError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            print(f"oj parse: {path}: {reason}", file=sys.stderr)
            status = 1
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
                json.dumps({key: record[key] for key in PARSE_KEYS}, ensure_ascii=False) + "\n"
            )
    return status


def cmd_add(args: argparse.Namespace) -> int:
    captured = None
    if args.captured_at:
        captured = datetime.fromisoformat(args.captured_at.replace("Z", "+00:00"))
        if captured.tzinfo is None:
            print(
                "oj add: --captured-at needs a time zone (e.g. 2020-07-02T10:00:00Z)",
                file=sys.stderr,
            )
            return 2
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as error:
            print(f"oj add: {path}: {error.strerror}", file=sys.stderr)
            status = 1
            continue
        record, added = raw_archive.add_snapshot(
            Path(args.raw_dir), data, url=args.url, source=args.source,
            municipality=args.municipality, captured_at=captured,
            content_type=args.content_type, note=args.note or f"added from {path.name}",
        )  # fmt: skip
        print(
            f"{'added' if added else 'already in archive'}: {path} -> {record.record_id} "
            f"(sha256 {record.sha256[:12]})"
        )
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oj", description="Öppna jämförelser pages to a versioned dataset."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser(
        "parse", help="parse page files (HTML or text extracts) into findings"
    )
    parse.add_argument("files", nargs="+", metavar="FILE")
    parse.add_argument("--url", help="URL of the page (default: from the raw archive)")
    parse.add_argument("--municipality", help="municipality name (default: from the page)")
    parse.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    parse.set_defaults(func=cmd_parse)

    add = commands.add_parser("add", help="add local page files to the raw archive")
    add.add_argument("files", nargs="+", metavar="FILE")
    add.add_argument("--url", required=True)
    add.add_argument("--source", choices=raw_archive.SOURCES, required=True)
    add.add_argument("--municipality")
    add.add_argument("--captured-at", help="ISO 8601 with time zone; omit when unknown")
    add.add_argument("--content-type")
    add.add_argument("--note")
    add.add_argument("--raw-dir", default="raw")
    add.set_defaults(func=cmd_add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `oj parse ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
