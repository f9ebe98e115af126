"""Fetching snapshots into the raw archive: live pages, Wayback Machine captures, WARC files.

Plain functions (the flow's tasks wrap them). Every attempt ends as a `FetchOutcome`
(new snapshot, not modified, unchanged, already archived, refused by robots.txt, or
failed with its reason), written to the raw archive's fetch log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import requests

from flows import raw_archive
from flows.http import (
    Fetched,
    FetchError,
    FetchSettings,
    RateLimiter,
    check_url,
    get,
    host_key,
    make_session,
)
from flows.sources import Source, page_key
from parsers import PageError, decode_page

HTML_TYPES = ("text/html", "application/xhtml+xml")
OUTCOMES = (
    "new_snapshot",
    "not_modified",
    "unchanged",
    "already_archived",
    "robots_disallowed",
    "failed",
)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class FetchOutcome:
    url: str
    source: str  # live | wayback | warc
    outcome: str  # one of OUTCOMES
    attempted_at: str
    http_status: int | None = None
    reason: str | None = None
    record_id: str | None = None
    captured_at: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def allowed_hosts(sources: Iterable[Source]) -> frozenset[str]:
    """Hosts the sources list, without www. (kalmar.se and www.kalmar.se are one site)."""
    return frozenset(host_key(source.url) for source in sources)


def header_charset(content_type: str | None) -> str | None:
    match = _CHARSET.search(content_type or "")
    return match.group(1) if match else None


def _is_html(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in HTML_TYPES


def _archive(
    archive: raw_archive.ArchiveAppender,
    fetched: Fetched,
    *,
    url: str,
    municipality: str | None,
    kind: str,
    captured_at: datetime,
    note: str | None = None,
) -> raw_archive.SnapshotRecord:
    """Check a 200 response is an HTML page, then store its bytes untouched."""
    content_type = fetched.headers.get("Content-Type")
    if fetched.status != 200:
        raise FetchError(f"HTTP {fetched.status}", fetched.status)
    if not _is_html(content_type):
        raise FetchError(f"not an HTML page: Content-Type {content_type!r}", fetched.status)
    try:
        _, charset = decode_page(fetched.body, header_charset(content_type))
    except PageError as error:
        raise FetchError(f"unusable body: {error}", fetched.status) from error
    record, _ = archive.add(
        fetched.body,
        url=url,
        source=kind,
        municipality=municipality,
        captured_at=captured_at,
        http_status=fetched.status,
        content_type=content_type,
        etag=fetched.headers.get("ETag"),
        last_modified=fetched.headers.get("Last-Modified"),
        charset=charset,
        final_url=fetched.url if fetched.url != url else None,
        note=note,
    )
    return record


# --- robots.txt ----------------------------------------------------------------------------


class RobotsUnreachable(FetchError):
    """robots.txt could not be read (a network error, a timeout, a 5xx): the page is not
    fetched, and that is a failed fetch of the page, not the site's refusal."""


class RobotsCache:
    """robots.txt per site, fetched once per run (RFC 9309 2.3.1.3-2.3.1.4).

    4xx ("unavailable"): no rules, everything allowed. 5xx or a network error
    ("unreachable"): assume complete disallow, so the page is not fetched; `check` raises
    `RobotsUnreachable` and the page's fetch counts as failed: an outage of the site (or
    of ours) must reach the operator, not pass for a site that said no.
    """

    def __init__(
        self, session: requests.Session, settings: FetchSettings, limiter: RateLimiter
    ) -> None:
        self.session, self.settings, self.limiter = session, settings, limiter
        self._parsers: dict[str, RobotFileParser | RobotsUnreachable] = {}

    def check(self, url: str) -> str | None:
        """None when allowed; the reason when robots.txt disallows the page. Raises
        `RobotsUnreachable` when robots.txt could not be read."""
        parts = urlsplit(url)
        site = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        if site not in self._parsers:
            self._parsers[site] = self._load(site)
        parser = self._parsers[site]
        if isinstance(parser, RobotsUnreachable):
            raise RobotsUnreachable(parser.reason)
        if not parser.can_fetch(self.settings.user_agent, url):
            return f"disallowed by {site}/robots.txt"
        return None

    def _load(self, site: str) -> RobotFileParser | RobotsUnreachable:
        parser = RobotFileParser()
        try:
            fetched = get(self.session, f"{site}/robots.txt", self.settings, limiter=self.limiter)
        except FetchError as error:
            return RobotsUnreachable(f"robots.txt unreachable: {error.reason}")
        if 400 <= fetched.status < 500:
            parser.parse([])
        elif fetched.status != 200:
            return RobotsUnreachable(f"robots.txt unreachable: HTTP {fetched.status}")
        else:
            parser.parse(fetched.body.decode("utf-8", "replace").splitlines())
        return parser


# --- live pages ------------------------------------------------------------------------------


def fetch_live(
    raw_dir: Path,
    sources: list[Source],
    all_sources: list[Source],
    settings: FetchSettings,
    limiter: RateLimiter,
) -> list[FetchOutcome]:
    """Fetch the current version of each page; a new snapshot only when it changed.

    Conditional GET with the ETag / Last-Modified of the page's last live snapshot: a 304,
    or the same bytes as that snapshot, makes no new snapshot.
    """
    hosts = allowed_hosts(all_sources)
    session = make_session(settings)
    robots = RobotsCache(session, settings, limiter)
    latest = raw_archive.latest_by_page(raw_dir, source="live")
    outcomes = []
    with raw_archive.ArchiveAppender(raw_dir) as archive:
        for source in sources:
            attempted = _now()
            try:
                check_url(source.url, hosts)
                refused = robots.check(source.url)
                if refused:
                    outcomes.append(
                        FetchOutcome(
                            source.url, "live", "robots_disallowed", attempted, reason=refused
                        )
                    )
                    continue
                last = latest.get(page_key(source.url))
                headers = {}
                if last and last.etag:
                    headers["If-None-Match"] = last.etag
                if last and last.last_modified:
                    headers["If-Modified-Since"] = last.last_modified
                fetched = get(
                    session,
                    source.url,
                    settings,
                    limiter=limiter,
                    allowed_hosts=hosts,
                    headers=headers,
                )
                if fetched.status == 304:
                    outcomes.append(
                        FetchOutcome(
                            source.url,
                            "live",
                            "not_modified",
                            attempted,
                            304,
                            record_id=last.record_id if last else None,
                        )
                    )
                    continue
                if (
                    last
                    and fetched.status == 200
                    and raw_archive.sha256_hex(fetched.body) == last.sha256
                ):
                    outcomes.append(
                        FetchOutcome(
                            source.url,
                            "live",
                            "unchanged",
                            attempted,
                            200,
                            record_id=last.record_id,
                        )
                    )
                    continue
                record = _archive(
                    archive,
                    fetched,
                    url=source.url,
                    municipality=source.municipality,
                    kind="live",
                    captured_at=datetime.now(UTC),
                )
                outcomes.append(
                    FetchOutcome(
                        source.url,
                        "live",
                        "new_snapshot",
                        attempted,
                        200,
                        record_id=record.record_id,
                        captured_at=record.captured_at,
                    )
                )
            except FetchError as error:
                outcomes.append(
                    FetchOutcome(
                        source.url, "live", "failed", attempted, error.http_status, error.reason
                    )
                )
    return outcomes


# --- the Wayback Machine -----------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    timestamp: str  # YYYYMMDDhhmmss, UTC
    original: str  # the URL as captured

    @property
    def captured_at(self) -> datetime:
        return datetime.strptime(self.timestamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def _host_variants(url: str) -> list[str]:
    """The page under both spellings of its host: kalmar.se and www.kalmar.se."""
    parts = urlsplit(url)
    bare = (parts.hostname or "").removeprefix("www.")
    port = f":{parts.port}" if parts.port else ""
    return [
        f"{host}{port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        for host in (bare, f"www.{bare}")
    ]


def cdx_captures(
    session: requests.Session,
    wayback_url: str,
    url: str,
    settings: FetchSettings,
    limiter: RateLimiter,
    since: int | None = None,
    page_size: int = 500,
) -> list[Capture]:
    """Distinct captures of a page (HTTP 200, one per content digest), oldest first.

    Pages through the CDX API with its resume key: with `showResumeKey=true` a page of
    rows ends with an empty row, then a row holding the key for the next page.
    """
    captures: dict[str, Capture] = {}
    for variant in _host_variants(url):
        params: dict[str, str | int] = {
            "url": variant,
            "output": "json",
            "filter": "statuscode:200",
            "collapse": "digest",
            "showResumeKey": "true",
            "limit": page_size,
        }
        if since:
            params["from"] = str(since)
        while True:
            fetched = get(
                session,
                f"{wayback_url}/cdx/search/cdx?{urlencode(params)}",
                settings,
                limiter=limiter,
                limiter_key="cdx",
            )
            if fetched.status != 200:
                raise FetchError(f"CDX answered HTTP {fetched.status}", fetched.status)
            try:
                rows = json.loads(fetched.body or b"[]")
            except ValueError as error:
                raise FetchError(f"CDX answer is not JSON: {error}", fetched.status) from error
            resume_key = None
            if len(rows) >= 2 and rows[-2] == [] and len(rows[-1]) == 1:
                resume_key = rows[-1][0]
                rows = rows[:-2]
            if rows:
                header, *body = rows
                ts_at, original_at = header.index("timestamp"), header.index("original")
                for row in body:
                    if row:
                        captures.setdefault(row[ts_at], Capture(row[ts_at], row[original_at]))
            if not resume_key:
                break
            params["resumeKey"] = resume_key
    return [captures[key] for key in sorted(captures)]


def fetch_wayback(
    raw_dir: Path,
    sources: list[Source],
    settings: FetchSettings,
    cdx_limiter: RateLimiter,
    replay_limiter: RateLimiter,
    wayback_url: str = "https://web.archive.org",
    since: int | None = None,
) -> list[FetchOutcome]:
    """Backfill each page's history from the Wayback Machine; captures already in the
    archive are not fetched again."""
    wayback_url = wayback_url.rstrip("/")
    session = make_session(settings)
    have = raw_archive.captures_by_page(raw_dir, source="wayback")
    outcomes = []
    with raw_archive.ArchiveAppender(raw_dir) as archive:
        for source in sources:
            if cdx_limiter.tripped:
                # Still rate-limited after waiting and retrying: the Archive blocks clients
                # that keep going after a 429, so this run asks it nothing more.
                outcomes.append(
                    FetchOutcome(source.url, "wayback", "failed", _now(), 429,
                                 "CDX: not asked: the Archive rate-limited this run (HTTP 429)")
                )  # fmt: skip
                continue
            try:
                captures = cdx_captures(
                    session, wayback_url, source.url, settings, cdx_limiter, since
                )
            except FetchError as error:
                if error.http_status == 429:
                    cdx_limiter.trip()
                outcomes.append(
                    FetchOutcome(
                        source.url,
                        "wayback",
                        "failed",
                        _now(),
                        error.http_status,
                        f"CDX: {error.reason}",
                    )
                )
                continue
            known = have.get(page_key(source.url), set())
            for capture in captures:
                captured = raw_archive.iso(capture.captured_at)
                if captured in known:
                    outcomes.append(
                        FetchOutcome(
                            source.url, "wayback", "already_archived", _now(), captured_at=captured
                        )
                    )
                    continue
                attempted = _now()
                replay = f"{wayback_url}/web/{capture.timestamp}id_/{capture.original}"
                try:
                    fetched = get(
                        session, replay, settings, limiter=replay_limiter, limiter_key="replay"
                    )
                    record = _archive(
                        archive,
                        fetched,
                        url=source.url,
                        municipality=source.municipality,
                        kind="wayback",
                        captured_at=capture.captured_at,
                        note=f"wayback {capture.timestamp} {capture.original}",
                    )
                except FetchError as error:
                    outcomes.append(
                        FetchOutcome(
                            source.url,
                            "wayback",
                            "failed",
                            attempted,
                            error.http_status,
                            f"{replay}: {error.reason}",
                            captured_at=captured,
                        )
                    )
                    continue
                known.add(captured)
                outcomes.append(
                    FetchOutcome(
                        source.url,
                        "wayback",
                        "new_snapshot",
                        attempted,
                        200,
                        record_id=record.record_id,
                        captured_at=captured,
                    )
                )
    return outcomes


# --- WARC files ---------------------------------------------------------------------------------


def _check_warc_magic(path: Path) -> None:
    """warcio reads almost anything with warnings; refuse a file that is not WARC or ARC."""
    import gzip

    with open(path, "rb") as handle:
        head = handle.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as handle:
            start = handle.read(10)
    except OSError as error:
        raise ValueError(f"unreadable: {error}") from error
    if not start.startswith((b"WARC/", b"filedesc:")):
        raise ValueError(f"does not start like a WARC record: {start[:10]!r}")


def _read_capped(stream: BinaryIO, max_bytes: int) -> bytes | None:
    """At most `max_bytes` of a decoded payload; None when it holds more.

    warcio's `content_stream()` undoes the response's Content-Encoding: a 2,352-byte
    .warc.gz whose payload is gzip-encoded decoded to a 1 GiB raw object (2.2 GB of
    memory) when read whole. Reading in blocks stops one block past the cap.
    """
    blocks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        block = stream.read(min(65536, max_bytes + 1 - size))
        if not block:
            return b"".join(blocks)
        blocks.append(block)
        size += len(block)
    return None


def import_warc(
    raw_dir: Path,
    path: Path,
    sources: list[Source] | None,
    max_bytes: int = FetchSettings.max_bytes,
) -> list[FetchOutcome]:
    """Add the HTML responses of a WARC file (Heritrix, Browsertrix, wget --warc-file, ...)
    with their capture time. With `sources`, only the pages they list are added. A payload
    over `max_bytes` once decoded (the fetch settings' limit) is a failed outcome, never
    stored."""
    from warcio.archiveiterator import ArchiveIterator

    by_page = {page_key(source.url): source for source in sources or []}
    outcomes = []
    _check_warc_magic(path)
    n_records = 0
    known = raw_archive.record_ids(raw_dir)  # importing a WARC again adds nothing
    with (
        open(path, "rb") as handle,
        raw_archive.ArchiveAppender(raw_dir, known_ids=known) as archive,
    ):
        for record in ArchiveIterator(handle):
            n_records += 1
            if record.rec_type != "response" or record.http_headers is None:
                continue
            uri = record.rec_headers.get_header("WARC-Target-URI") or ""
            try:
                # A crawl's own URIs are not checked by a sources file: one that is not
                # absolute http(s) ("http://[oops/") fails its record, not the whole file.
                raw_archive.check_url(uri)
            except ValueError as error:
                if sources is None:  # asked for every response: say why this one is not
                    outcomes.append(FetchOutcome(uri, "warc", "failed", _now(), None,
                                                 f"{path}: refused URL: {error}"))  # fmt: skip
                continue  # else it cannot be one of the pages we follow
            source = by_page.get(page_key(uri))
            if sources is not None and source is None:
                continue  # a crawl holds much more than the pages we follow
            content_type = record.http_headers.get_header("Content-Type")
            status = int(record.http_headers.get_statuscode() or 0)
            if not _is_html(content_type) or status != 200:
                continue  # images, scripts, redirects of a crawl: not pages
            captured = datetime.fromisoformat(
                record.rec_headers.get_header("WARC-Date").replace("Z", "+00:00")
            )
            headers = requests.structures.CaseInsensitiveDict(record.http_headers.headers)
            attempted = _now()
            body = _read_capped(record.content_stream(), max_bytes)
            if body is None:
                outcomes.append(FetchOutcome(
                    uri, "warc", "failed", attempted, status,
                    f"{path}: {uri[:200]}: payload over {max_bytes} bytes after "
                    "decompression",
                ))  # fmt: skip
                continue
            fetched = Fetched(uri, status, headers, body)
            try:
                stored = _archive(
                    archive,
                    fetched,
                    url=source.url if source else uri,
                    municipality=source.municipality if source else None,
                    kind="warc",
                    captured_at=captured,
                    note=f"warc {path.name}",
                )
            except FetchError as error:
                outcomes.append(
                    FetchOutcome(
                        uri, "warc", "failed", attempted, status, f"{path}: {error.reason}"
                    )
                )
                continue
            outcomes.append(
                FetchOutcome(
                    uri,
                    "warc",
                    "new_snapshot",
                    attempted,
                    status,
                    record_id=stored.record_id,
                    captured_at=stored.captured_at,
                )
            )
    if not n_records:
        # warcio skips what it cannot read with a warning; a file of nothing is an error.
        raise ValueError("no WARC records found")
    return outcomes


def write_fetch_log(raw_dir: Path, outcomes: list[FetchOutcome], label: str) -> Path | None:
    """Append-only log of every fetch attempt: raw/fetch-log/<label>.jsonl."""
    if not outcomes:
        return None
    lines = "".join(json.dumps(asdict(o), ensure_ascii=False) + "\n" for o in outcomes)
    return raw_archive.write_log(raw_dir, label, lines.encode("utf-8"))
