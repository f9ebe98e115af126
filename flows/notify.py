"""Alerts, to any Apprise URL (`json://`, `mailto://`, `slack://`, `ntfy://`, ...;
https://github.com/caronc/apprise): one message per release that has changes, and one
per run that failed (fetches that failed, or an error that stopped the run), whether or
not a release changed.

What changed in a release: the `changes` rows that end at a snapshot first published in
it (whatever the derivation, incremental or full). The message names the pages, the
questions, answer flips and national figure changes in a few lines. A release with no
changes sends nothing; a notification that fails is reported, never fails the release.
"""

from __future__ import annotations

import logging
import re
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
#: A line of an alert names its question within this many characters: a mail subject
#: or a chat line, read without scrolling.
LINE_WIDTH = 120


# Page text in an alert is data, never markup: a municipality value with newlines forged
# lines ("- Evil · injected line (2099): 999 removed"), and "<!channel>", "@here",
# "<b>" and "[klicka](http://evil.example)" passed to Slack, Markdown and HTML services.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Links and images (`[klicka](http://evil.example)`, `![](...)`) and code spans; `_`, `*`
# and `~` only restyle text and are common in URLs, so they stay.
_MARKDOWN = re.compile(r"([\\`\[\]])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def clean(text: object, width: int = LINE_WIDTH) -> str:
    """Page (or server) text made safe for an alert line: control characters and line
    breaks become one space, the text is cut within `width` characters (`fit`), `&`, `<`
    and `>` are HTML-escaped (which also defuses Slack's `<!channel>`), Markdown's
    `` \\ ` [ ] `` get a backslash, and an `@` gets a zero-width space after it so
    no `@channel`/`@here`/`@everyone` mentions anyone. The one sanitiser of every piece
    of page text in a message."""
    one_line = " ".join(_CONTROL.sub(" ", "" if text is None else str(text)).split())
    safe = _MARKDOWN.sub(r"\\\1", fit(one_line, width))
    safe = "".join(_HTML.get(ch, ch) for ch in safe)
    return safe.replace("@", "@\u200b")


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

    def line(row: dict, prefix: str, change: str) -> str:
        """ "- Kalmar: <the question's subject> (2020): no → yes", within LINE_WIDTH."""
        year = f" ({row['survey_year']})" if row["survey_year"] is not None else ""
        suffix = f"{year}: {change}"
        subject = question_subject(statement_of.get(row["indicator_id"]) or "")
        return prefix + clean(subject, LINE_WIDTH - len(prefix) - len(suffix)) + suffix

    by_page: dict[tuple, dict[str, int]] = {}
    for row in rows:
        key = (clean(row["municipality"] or "?", 60), clean(row["area"] or "?", 80),
               clean(row["to_seen"], 40), row["url"])  # fmt: skip
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
            line(r, f"- {clean(r['municipality'] or '?', 60)}: ",
                 f"{clean(r['local_status_before'], 30)} → {clean(r['local_status_after'], 30)}")
            for r in flips
        )  # fmt: skip
    national = [r for r in rows if r["national_changed"]]
    if national:
        lines.append("National figures changed:")
        lines += _capped(
            line(r, "- ", f"{_percent(r['national_percent_before'])} → "
                 f"{_percent(r['national_percent_after'])}")
            for r in national
        )  # fmt: skip
    since = min(str(r["to_seen"]) for r in rows if r["to_seen"] is not None) if rows else ""
    lines.append(
        f"Details: oj changes --release {release}" + (f" --since {since}" if since else "")
    )
    title = f"oppna-jamforelser release {release}: {_count(len(rows), 'change')} on {where}"
    return Message(title, "\n".join(lines))


# --- naming a question by what tells it apart ---------------------------------------------
#
# A national statement opens with how many municipalities do something, then says what:
# "22 procent av kommunerna har en aktuell ... rutin för hur handläggare ska säkra
# skolgången för barn i skyddat boende", "Det är fortfarande relativt få kommuner, 21
# procent, som har en aktuell ... rutin ...", "Cirka 7 av 10 kommuner erbjuder ...", "Få
# kommuner uppger att de har en upprättad kontinuitetsplan ...". The opening is the same
# for every question of a page and changes with the year; an alert cut to its first 70
# characters named only that ("Det är fortfarande relativt få kommuner, 21 procent, som
# har en [...]"). `question_subject` drops the opening and keeps what was asked.

_APPROX = r"(?:cirka|ca\.?|drygt|knappt|nästan|närmare|över|omkring|runt|endast|bara|hela)"
_SHARE = (
    rf"(?:{_APPROX}\s+)?"
    r"(?:\d+(?:[,.]\d+)?\s?(?:%|procent\b)"  # "22 procent", "12,5 %"
    r"|(?:\d+|en|ett|två|tre|fyra|fem|sex|sju|åtta|nio)\s+av\s+(?:\d+|tio|fem|fyra|tre)\b"
    r"|(?:en|två|tre)\s+(?:tredjedel|fjärdedel|femtedel|tiondel)(?:ar)?"  # "En tredjedel"
    r"|hälften|majoriteten|merparten|flertalet"
    r"|var(?:t)?\s?(?:annan|annat|tredje|fjärde|femte|tionde))"
)
_QUANTIFIER = (
    r"(?:allt\s+)?(?:fler|färre|få|många|de\s+flesta|flera|några|nästan\s+alla|alla|samtliga)"
)
_MUNICIPALITIES = (
    r"(?:(?:alla|sveriges|landets)\s+)?kommun(?:er(?:na)?)?(?:\s+i\s+(?:sverige|landet|riket))?\b"
)
_LEAD = re.compile(
    # "Däremot har 4 av 5 kommuner inte ...": a connective puts the verb first
    r"^(?:(?:däremot|dock|samtidigt|vidare|men|även|också)\s+(?:har\s+|finns\s+)?)?"
    r"(?:"
    r"(?:i\s+)?(?:det\s+är\s+)?(?:(?:fortfarande|relativt|ganska|mycket|endast|bara)\s+)*"
    rf"(?:{_SHARE}(?:\s+av)?(?:\s+{_MUNICIPALITIES})?"  # "22 procent av kommunerna"
    rf"|{_QUANTIFIER}(?:\s+av)?\s+{_MUNICIPALITIES})"  # "Få kommuner", "De flesta kommuner"
    rf"(?:\s*,\s*{_SHARE}\s*,?)?"  # "Det är ... få kommuner, 21 procent, som"
    rf"|andel(?:en)?\s+(?:av\s+)?{_MUNICIPALITIES}"  # "Andelen kommuner som ..."
    r")"
    r"\s*,?\s*(?:som\s+)?"
    r"(?:(?:uppger|anger|svarar)\s+att\s+de\s+)?"
    r"(?:(?:har|hade|finns)\s+(?:(?:en|ett)\s+)?)?",  # "har en", the verb of every routine
    re.IGNORECASE,
)
# A sentence ends before a capital or a figure, not after "ca." ("ca. 10 procent").
_SENTENCE_END = re.compile(r"(?<!\bca\.)(?<=[.!?])\s+(?=[A-ZÅÄÖ0-9])")
_HAS_FIGURE = re.compile(rf"\d|{_SHARE}", re.IGNORECASE)
# How the share moved says nothing about what was asked: "..., vilket är en ökning med ca
# 10 procentenheter från föregående år", "... har minskat med sju procentenheter, från 22
# till 15 procent 2019", "..., jämfört med 2019".
_TREND = re.compile(
    r",?\s*(?:vilket\s+(?:är|innebär)\s+en\s+(?:ökning|minskning)"
    r"|(?:har|hade)\s+(?:ökat|minskat)"
    r"|(?:jämfört|i\s+jämförelse)\s+med\s+(?:föregående\s+år|förra\s+året|(?:19|20)\d\d))"
    r"\b.*$",
    re.IGNORECASE,
)


def question_subject(statement: str) -> str:
    """What a national statement asks, without how many municipalities said yes: the
    leading share or quantifier clause ("22 procent av kommunerna har en", "Det är
    fortfarande relativt få kommuner, 21 procent, som har en", "Cirka 7 av 10 kommuner",
    "Få kommuner uppger att de har en") and the trend around the figure are dropped.

    Of several sentences, the first that opens with such a clause and holds a figure is
    the question ("Fler kommuner har X. Däremot har 4 av 5 kommuner inte Y": Y); else the
    first that opens with one; else the statement's first sentence, as printed.
    """
    sentences = [s.strip() for s in _SENTENCE_END.split(statement.strip()) if s.strip()]
    if not sentences:
        return ""
    led = [s for s in sentences if _lead_end(s)]
    with_figure = [s for s in led if _HAS_FIGURE.search(s)]
    sentence = (with_figure or led or sentences)[0]
    subject = _TREND.sub("", sentence[_lead_end(sentence) :]).strip(" ,.;:")
    if len(subject.split()) < 2:  # nothing left that names a question: say it whole
        return sentence.rstrip(".")
    return subject


def _lead_end(sentence: str) -> int:
    """Where the opening share or quantifier clause of `sentence` ends (0: none)."""
    match = _LEAD.match(sentence)
    return match.end() if match else 0


def fit(text: str, width: int) -> str:
    """`text` within `width` characters, words cut from the middle when needed (" … ").

    A sixth of the room goes to the head and the rest to the tail: questions of one page
    share their opening frame ("aktuell skriftlig och på ledningsnivå beslutad rutin för
    hur handläggare") and differ at the end ("... ska säkra skolgången för barn i skyddat
    boende", "... ska gå tillväga vid indikation på att en vuxen person utsatts för våld"),
    and the noun the frame leads to ("rutin") sits near its end.
    """
    width = max(width, 20)
    if len(text) <= width:
        return text
    words = text.split()
    head: list[str] = []
    for word in words:
        if len(" ".join([*head, word])) > width // 6:
            break
        head.append(word)
    room = width - len(" ".join(head)) - len(" … ")
    tail: list[str] = []
    for word in reversed(words[len(head) :]):
        if len(" ".join([word, *tail])) > room:
            break
        tail.insert(0, word)
    if not tail:  # one long word: cut it
        return text[: width - 1] + "…"
    return " ".join(head) + " … " + " ".join(tail) if head else "… " + " ".join(tail)


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


def send(urls: list[str], message: Message, failure: bool = False) -> list[str]:
    """Send `message` to every URL, each on its own; one line per failure (never raises).
    `failure` sends it as Apprise's "failure" type (services show it as an error)."""
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
            kind = apprise.NotifyType.FAILURE if failure else apprise.NotifyType.INFO
            if not target.notify(title=message.title, body=message.body, notify_type=kind):
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


# --- a run that failed ---------------------------------------------------------------------


def fetch_failure_headline(summary: dict) -> str:
    """The headline "2 of 5 pages could not be fetched": pages, not attempts (a Wayback
    page has one attempt per capture)."""
    failed = {line.split(": ", 1)[0] for line in summary["fetch_failures"]}
    total = max(summary.get("pages_to_fetch") or 0, len(failed))
    return f"{len(failed)} of {plural(total, 'page')} could not be fetched"


def _published(summary: dict) -> str:
    if summary.get("new_release"):
        return f"new release {summary['release']} written"
    if summary.get("release"):
        return f"no new release (latest is {summary['release']})"
    return "no release yet"


def failure_message(summary: dict) -> Message | None:
    """The alert for a run that failed: an operator error that stopped it (`error` in
    the summary: a lock timeout, unwritable storage, ...) or fetches that failed, named
    page by page; None when nothing failed."""
    if summary.get("error"):
        error = " ".join(str(summary["error"]).split())  # our own message, one line
        release = summary.get("release")
        return Message(
            f"oppna-jamforelser run failed: {error}",
            "\n".join([
                f"The run stopped: {error}",
                "Nothing was published"
                + (f"; the last release ({release}) is intact." if release else "."),
                "Details: `oj run` prints this error on stderr and exits "
                f"{summary.get('exit_code', 1)}; under `oj serve`, the flow run's log in "
                "Prefect.",
            ]),
        )  # fmt: skip
    if not summary.get("fetch_failures"):
        return None
    headline = fetch_failure_headline(summary)
    mode = summary.get("fetch_mode")
    lines = [f"{headline}" + (f" ({mode})" if mode else "") + ":"]
    lines += _capped(f"- {clean(failure, 300)}" for failure in summary["fetch_failures"])
    lines.append(f"Published what the raw archive holds: {_published(summary)}.")
    log = summary.get("fetch_log")
    lines.append(
        "Details: " + (f"the fetch log {log}; " if log else "")
        + "`oj run` prints each failure on stderr (`oj run: fetch failed: URL: reason`) "
        "and exits 1; under `oj serve`, the failed flow run's log in Prefect."
    )  # fmt: skip
    return Message(f"oppna-jamforelser run: {headline}", "\n".join(lines))


def error_message(error: BaseException) -> Message:
    """The alert for a run stopped by an unexpected error (a bug, a failure of the store
    or of Prefect)."""
    from flows.errors import one_line

    what = clean(f"{type(error).__name__}: {one_line(error)}", 500)
    return Message(
        f"oppna-jamforelser run failed: {textwrap.shorten(what, 200)}",
        f"The run stopped with an unexpected error: {what}\n"
        "A release is published whole or not at all; the last complete one is intact.\n"
        "Details: `oj run --debug` prints the traceback; under `oj serve`, the failed flow "
        "run's log in Prefect.",
    )


def notify_failure(urls: list[str], message: Message | None) -> list[str]:
    """Send a failure alert to `urls` (nothing without URLs or message); the failures
    to send, one line each (never raises)."""
    if not urls or message is None:
        return []
    return send(urls, message, failure=True)
