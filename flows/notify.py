"""Change alerts: one message per release that has changes, to any Apprise URL
(`json://`, `mailto://`, `slack://`, `ntfy://`, ...; https://github.com/caronc/apprise).

What changed in a release: the `changes` rows that end at a snapshot first published in
it (whatever the derivation, incremental or full). The message names the pages, the
questions, answer flips and national figure changes in a few lines. A release with no
changes sends nothing; a notification that fails is reported, never fails the release.
"""

from __future__ import annotations

import logging
import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.compute as pc

from flows import storage
from flows.errors import plural

logger = logging.getLogger(__name__)
#: At most this many lines of each kind; the rest is counted ("... and 4 more").
MAX_LINES = 5


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def release_message(datasets_dir: Path | str, release: int) -> Message | None:
    """The alert for a release; None when it changed nothing on any page."""
    pages = storage.load_arrow("pages", release, datasets_dir, ["snapshot_id"])
    new = set(pages.column("snapshot_id").to_pylist())
    if release > 1:
        before = storage.load_arrow("pages", release - 1, datasets_dir, ["snapshot_id"])
        new -= set(before.column("snapshot_id").to_pylist())
    if not new:
        return None
    changes = storage.load_arrow("changes", release, datasets_dir)
    changes = changes.filter(pc.is_in(changes["to_snapshot_id"], pc.cast(list(new), "string")))
    if not changes.num_rows:
        return None
    indicators = storage.load_arrow("indicators", release, datasets_dir)
    statement_of = dict(
        zip(
            indicators["indicator_id"].to_pylist(),
            indicators["canonical_statement"].to_pylist(),
            strict=True,
        )
    )
    rows = sorted(changes.to_pylist(), key=lambda r: (str(r["to_seen"]), r["url"]), reverse=True)

    def question(row: dict) -> str:
        year = f" ({row['survey_year']})" if row["survey_year"] is not None else ""
        return textwrap.shorten(statement_of.get(row["indicator_id"], ""), 70) + year

    by_page: dict[tuple, dict[str, int]] = {}
    for row in rows:
        key = (row["municipality"] or "?", row["area"] or "?", str(row["to_seen"]), row["url"])
        kinds = by_page.setdefault(key, {})
        kinds[row["change_kind"]] = kinds.get(row["change_kind"], 0) + 1
    n_pages = len({url for *_, url in by_page})
    where = f"{_count(n_pages, 'page')}" + (
        f" ({_count(len(by_page), 'new capture')})" if len(by_page) > n_pages else ""
    )
    lines = [f"{_count(len(rows), 'change')} on {where}:"]
    lines += _capped(
        f"- {municipality} · {area} ({seen}): "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        for (municipality, area, seen, _), kinds in by_page.items()
    )
    flips = [r for r in rows if r["local_status_flip"]]
    if flips:
        lines.append("Answer flips:")
        lines += _capped(
            f"- {r['municipality']}: {question(r)}: "
            f"{r['local_status_before']} → {r['local_status_after']}"
            for r in flips
        )
    national = [r for r in rows if r["national_changed"]]
    if national:
        lines.append("National figures changed:")
        lines += _capped(
            f"- {question(r)}: {_percent(r['national_percent_before'])} → "
            f"{_percent(r['national_percent_after'])}"
            for r in national
        )
    since = min(str(r["to_seen"]) for r in rows if r["to_seen"] is not None) if rows else ""
    lines.append(
        f"Details: oj changes --release {release}" + (f" --since {since}" if since else "")
    )
    title = f"oppna-jamforelser release {release}: {_count(len(rows), 'change')} on {where}"
    return Message(title, "\n".join(lines))


_count = plural  # "1 page", "2 pages": the one helper of every `oj` message


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:g} %"


def _capped(lines) -> list[str]:
    lines = list(lines)
    extra = len(lines) - MAX_LINES
    return lines[:MAX_LINES] + ([f"  ... and {extra} more"] if extra > 0 else [])


def redacted(url: str) -> str:
    """A notification URL without its secrets (tokens, passwords, paths), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/..." if parts.scheme else "(not a URL)"


def send(urls: list[str], message: Message) -> list[str]:
    """Send `message` to every URL, each on its own; one line per failure (never raises)."""
    try:
        import apprise
    except ImportError as error:  # pragma: no cover - apprise is a dependency
        return [f"notifications need apprise: {error}"]
    failures = []
    for url in urls:
        target = apprise.Apprise()
        try:
            if not target.add(url):
                failures.append(f"{redacted(url)}: not a notification URL Apprise knows")
                continue
            if not target.notify(title=message.title, body=message.body):
                failures.append(f"{redacted(url)}: the service did not accept the message")
        except Exception as error:  # noqa: BLE001 - a notification never fails a release
            failures.append(f"{redacted(url)}: {type(error).__name__}: {error}")
    for failure in failures:
        logger.warning("notification failed: %s", failure)
    return failures


def notify_release(datasets_dir: Path | str, release: int, urls: list[str]) -> dict:
    """Alert `urls` about a release: {"sent": n, "failures": [...]} (nothing when no
    URL is given or the release changed nothing)."""
    if not urls:
        return {"sent": 0, "failures": []}
    try:
        message = release_message(datasets_dir, release)
    except Exception as error:  # noqa: BLE001 - reading for an alert never fails a release
        return {"sent": 0, "failures": [f"cannot compose the alert: {error}"]}
    if message is None:
        return {"sent": 0, "failures": []}
    failures = send(urls, message)
    return {"sent": len(urls) - len(failures), "failures": failures}
