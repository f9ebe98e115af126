"""Polite HTTP for fetching pages: one session, timeouts, retries, rate limits, size limits.

Retries are urllib3's (`Retry` on the session's adapter): exponential backoff on
connection errors, read timeouts, 429 and 5xx, honouring `Retry-After`. A 429 without
`Retry-After` waits `rate_limit_wait` (a minute by default) instead of backing off by
seconds: the Internet Archive blocks clients that keep going after a 429.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from parsers import PARSER_VERSION

USER_AGENT = (
    f"oppna-jamforelser/{PARSER_VERSION} (open-data ETL of Öppna jämförelser pages; "
    "polite crawler: 1 request/s per host, honours robots.txt)"
)


@dataclass(frozen=True)
class FetchSettings:
    """Every knob of fetching; the defaults are the polite ones."""

    user_agent: str = USER_AGENT
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = 5_000_000  # a municipal page is ~100 KB; refuse anything huge
    retries: int = 4
    backoff_factor: float = 1.0  # 1, 2, 4, 8 s between attempts
    backoff_max: float = 120.0
    rate_limit_wait: float = 60.0  # after a 429 without Retry-After
    host_rate: float = 1.0  # live pages: requests per second per host
    cdx_rate: float = 0.4  # Wayback CDX: the Archive allows ~30 per minute per IP
    replay_rate: float = 1.0  # Wayback replays (/web/...id_/)
    max_workers: int = 4  # bounded concurrency across hosts
    max_redirects: int = 5


class FetchError(Exception):
    """A fetch that failed for good, with a reason meant for the fetch log."""

    def __init__(self, reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class PoliteRetry(Retry):
    """urllib3 Retry that waits `rate_limit_wait` on a 429 that has no Retry-After."""

    rate_limit_wait: float = 60.0

    def new(self, **kw: object) -> PoliteRetry:
        retry = super().new(**kw)
        retry.rate_limit_wait = self.rate_limit_wait
        return retry

    def sleep_for_retry(self, response) -> bool:  # type: ignore[no-untyped-def]
        if super().sleep_for_retry(response):
            return True
        if response is not None and response.status == 429:
            time.sleep(self.rate_limit_wait)
            return True
        return False


def make_session(settings: FetchSettings) -> requests.Session:
    retry = PoliteRetry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=settings.backoff_factor,
        backoff_max=settings.backoff_max,
        retry_after_max=max(settings.backoff_max, settings.rate_limit_wait),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last response comes back; we record its status
        redirect=0,  # redirects are followed by `get`, which checks every hop's host
    )
    retry.rate_limit_wait = settings.rate_limit_wait
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=max(settings.max_workers, 4))
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = settings.user_agent
    return session


class RateLimiter:
    """At most `rate` requests per second per key (a host, or "cdx"), across threads."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()
        self.tripped = False  # set when the server kept answering 429: stop asking it

    def trip(self) -> None:
        self.tripped = True

    def wait(self, key: str) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(key, now))
            self._next[key] = start + self.interval
        if start > now:
            time.sleep(start - now)


def check_url(url: str, allowed_hosts: frozenset[str]) -> None:
    """Only http(s), only hosts listed in the sources (www. or not)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"refused: only http and https URLs are fetched, not {parts.scheme!r}")
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    if host.removeprefix("www.") + port not in allowed_hosts:
        raise FetchError(f"refused: host {host}{port} is not listed in the sources")


def host_key(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return (parts.hostname or "").lower().removeprefix("www.") + port


#: urllib3 starts its messages with the connection object: "HTTPConnection(host='kalmar.se',
#: port=443): " (urllib3 2) or "<urllib3.connection.HTTPSConnection object at 0x7f..>: ".
_CONNECTION_PREFIX = re.compile(r"^(?:<[^>]*>|\w*(?:Connection|Pool)\w*\([^)]*\)): ")


def _why(error: requests.exceptions.RequestException) -> str:
    """The cause of a requests error, in words: "Failed to establish a new connection:
    [Errno 111] Connection refused", not the pool, URL and object address around it
    ("HTTPConnectionPool(host=..., port=...): Max retries exceeded with url: ... (Caused
    by NewConnectionError(...))"). The URL is named beside it already."""
    cause: object = error.args[0] if error.args else error
    cause = getattr(cause, "reason", None) or cause  # urllib3's MaxRetryError wraps it
    return _CONNECTION_PREFIX.sub("", str(cause)).strip() or type(error).__name__


@dataclass
class Fetched:
    url: str  # the final URL after redirects
    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes


def get(
    session: requests.Session,
    url: str,
    settings: FetchSettings,
    *,
    limiter: RateLimiter,
    limiter_key: str | None = None,
    allowed_hosts: frozenset[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """GET with the session's retries, a rate limit, a size limit and checked redirects.

    Raises FetchError with a reason for anything that is not a complete response.
    """
    for _hop in range(settings.max_redirects + 1):
        if allowed_hosts is not None:
            check_url(url, allowed_hosts)
        limiter.wait(limiter_key or host_key(url))
        try:
            response = session.get(
                url,
                headers=headers,
                timeout=(settings.connect_timeout, settings.read_timeout),
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.RetryError as error:
            raise FetchError(f"gave up after {settings.retries} retries: {_why(error)}") from error
        except requests.exceptions.Timeout as error:
            raise FetchError(f"timed out: {_why(error)}") from error
        except requests.exceptions.RequestException as error:
            raise FetchError(f"{type(error).__name__}: {_why(error)}") from error
        with response:
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > settings.max_bytes:
                raise FetchError(
                    f"response too large: {declared} bytes > {settings.max_bytes}",
                    response.status_code,
                )
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(chunk_size=65536):
                    size += len(chunk)
                    if size > settings.max_bytes:
                        raise FetchError(
                            f"response too large: over {settings.max_bytes} bytes",
                            response.status_code,
                        )
                    chunks.append(chunk)
            except requests.exceptions.RequestException as error:
                raise FetchError(
                    f"connection broken mid-body after {size} bytes: {type(error).__name__}",
                    response.status_code,
                ) from error
            return Fetched(response.url, response.status_code, response.headers, b"".join(chunks))
    raise FetchError(f"too many redirects (more than {settings.max_redirects})")
