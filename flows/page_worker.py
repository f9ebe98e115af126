"""A helper process that parses pages beside the flow's own thread.

On two cores the flow parses on its own threads (`nightly.parse_task_runner`): a Prefect
process-pool worker imports what unpickling a task of `flows.nightly` imports (Prefect,
pyarrow, polars, deltalake, pandas: ~230 MB before its first page, ~350 MB after a few
batches), and two of them were half of the process tree's memory. Threads share one
interpreter lock, so the flow's parse ran on one core while the other sat mostly idle: at
150,000 captures the parse-and-write phase took 11.3 s for 7.3 s of single-core parsing.

This helper imports the parser, the standard library and the object reader only (~55 MB
at its peak). The flow sends it chunks of pages over a pipe (from a local raw archive
their objects' paths and sha256, read and checked here; from an object store their
bytes) and parses other chunks itself meanwhile (`pipeline.parse_snapshots`); the helper
sends back plain tuples, not `ParsedPage` objects: unpickling frozen slotted dataclasses
cost ~130 µs a page, about a fifth of its parse.

The helper exits when its standard input closes (the flow closed it, or died) and when
the flow's process is gone (SIGKILL included): it never outlives `oj run`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import IO, Any, NamedTuple

from flows import location, objects, server
from parsers import parse_page
from parsers.records import Finding, ParsedPage, Reject

#: Field order of the tuples a parsed page's findings and rejects come back as.
FINDING_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(Finding))
REJECT_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(Reject))
_finding_values = attrgetter(*FINDING_FIELDS)
_reject_values = attrgetter(*REJECT_FIELDS)


class PageInput(NamedTuple):
    """What the parser needs of one capture: its bytes, or (a local raw archive) the
    object's path and sha256, read and checked by whoever parses it."""

    data: bytes | None
    url: str | None
    municipality: str | None
    captured_at: datetime | None
    charset: str | None
    path: str | None = None
    sha256: str | None = None


class ParsedRows(NamedTuple):
    """A parsed page as plain values: `ParsedPage`'s fields, findings and rejects as
    tuples in `FINDING_FIELDS` and `REJECT_FIELDS` order."""

    municipality: str | None
    area: str | None
    page_updated: Any
    page_published: Any
    input_format: str
    charset: str | None
    findings: list[tuple[Any, ...]]
    rejects: list[tuple[Any, ...]]


class FailedPage(NamedTuple):
    """A page that could not be parsed: `limit` is the reject reason of a page limit
    (`parse_timeout`), None for an error of the page itself; `reason` is the message."""

    limit: str | None
    reason: str


def failure(error: BaseException) -> FailedPage:
    """A page whose object could not be read or whose parse raised `error`."""
    return FailedPage(None, f"{type(error).__name__}: {error}")


def too_large(size: int, max_bytes: int) -> FailedPage:
    """A page over the size limit (`pipeline.MAX_PAGE_BYTES`), not parsed."""
    return FailedPage("page_too_large", f"page_too_large: {size} bytes (limit {max_bytes} bytes)")


def parse_to_rows(
    page: PageInput, timeout_seconds: float, max_bytes: int
) -> ParsedRows | FailedPage:
    """Parse one page into plain values; a failure is returned with its reason, never
    raised. A parse slower than `timeout_seconds` is a failure (`parse_timeout`): it is
    measured after the fact, because a pure parser has no clock to stop itself. A page
    given by its object's path is read and checked here (`objects.read_object`'s errors:
    missing, unreadable, corrupted), and one over `max_bytes` is not parsed."""
    data = page.data
    if data is None:
        assert page.path is not None and page.sha256 is not None
        try:
            data = objects.checked_object(
                page.path, page.sha256, location.read_many([page.path])[0]
            )
        except objects.ArchiveError as error:
            return failure(error)
        if len(data) > max_bytes:
            return too_large(len(data), max_bytes)
    try:
        started = time.perf_counter()
        parsed: ParsedPage = parse_page(
            data, url=page.url, municipality=page.municipality,
            captured_at=page.captured_at, charset=page.charset,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    except Exception as error:  # noqa: BLE001 - one bad page must not stop the others
        return failure(error)
    if seconds > timeout_seconds:
        message = f"parsing took {seconds:.1f} s (limit {timeout_seconds:g} s)"
        return FailedPage("parse_timeout", f"parse_timeout: {message}")
    return ParsedRows(
        parsed.municipality, parsed.area, parsed.page_updated, parsed.page_published,
        parsed.input_format, parsed.charset,
        [_finding_values(finding) for finding in parsed.findings],
        [_reject_values(reject) for reject in parsed.rejects],
    )  # fmt: skip


# --- the pipe between the flow and its helper ---------------------------------------------

# A message is its request number and length (8 + 4 bytes, little-endian), then a pickle.
_HEADER = struct.Struct("<QI")


def _send(stream: IO[bytes], number: int, payload: object) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(number, len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> tuple[int, Any] | None:
    """The next message, or None at the end of the stream (a message cut short too)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    number, length = _HEADER.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        return None
    return number, pickle.loads(data)  # noqa: S301 - our own child's pipe


_HELPER_MAIN = "import sys; from flows.page_worker import main; sys.exit(main(sys.argv[1:]))"


class HelperGone(RuntimeError):
    """The helper process exited; what it had not answered must be parsed elsewhere."""


class ParseHelper:
    """The flow's side of one helper process: `submit` a chunk of pages, get a Future of
    their outcomes. Thread-safe: the flow's batch threads share one helper."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            # Not `-m flows.page_worker`: run as __main__, the helper would pickle its
            # answers as `__main__.ParsedRows`, which the flow cannot unpickle.
            [sys.executable, "-c", _HELPER_MAIN, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._lock = threading.Lock()  # the pending answers and `gone`
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()  # None: no more requests
        self._pending: dict[int, Future] = {}
        self._next = 0
        self.gone: str | None = None  # why the helper is not usable, once it is not
        self._reader = threading.Thread(
            target=self._read_answers, name="oj-parse-helper-reader", daemon=True
        )
        self._reader.start()
        self._writer = threading.Thread(
            target=self._write_requests, name="oj-parse-helper-writer", daemon=True
        )
        self._writer.start()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, pages: list[PageInput], timeout_seconds: float, max_bytes: int) -> Future:
        """Queue `pages` for the helper (`parse_to_rows` with these limits); returns at
        once (the pipe holds 64 KB and a chunk of pages' bytes is 1-2 MB: a write blocks
        until the helper has read it, so a thread of its own writes, and the caller
        parses meanwhile)."""
        future: Future = Future()
        with self._lock:
            if self.gone:
                future.set_exception(HelperGone(self.gone))
                return future
            number = self._next
            self._next += 1
            self._pending[number] = future
        self._outbox.put((number, (pages, timeout_seconds, max_bytes)))
        return future

    def _write_requests(self) -> None:
        # Never under `_lock`: with it held through a write, the reader could not hand
        # over an answer, the helper would block writing the next one and never read
        # this chunk.
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while (request := self._outbox.get()) is not None:
                number, payload = request
                _send(stdin, number, payload)
        except (OSError, ValueError) as error:  # a closed pipe: the helper exited
            with self._lock:
                self._fail(f"parse helper (pid {self.process.pid}) gone: {error}")
        with contextlib.suppress(OSError):
            stdin.close()  # the helper exits once it has answered what it read

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        try:
            while (message := _receive(self.process.stdout)) is not None:
                number, outcomes = message
                with self._lock:
                    future = self._pending.pop(number, None)
                if future is not None:
                    future.set_result(outcomes)
        except Exception as error:  # noqa: BLE001 - whatever ends the pipe ends the helper
            reason = f"parse helper (pid {self.process.pid}) unreadable: {error}"
        else:
            code = self.process.poll()
            reason = f"parse helper (pid {self.process.pid}) exited" + (
                f" with code {code}" if code is not None else ""
            )
        with self._lock:
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        """Mark the helper gone and fail what it had not answered (lock held)."""
        if self.gone is None:
            self.gone = reason
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(HelperGone(self.gone))

    def close(self) -> None:
        """End the helper: close its input (it exits after the chunk it is on), then kill
        it by PID if it has not exited within a few seconds."""
        with self._lock:
            if self.gone is None:
                self.gone = "closed"
        self._outbox.put(None)
        self._writer.join(timeout=5)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> ParseHelper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# --- the helper's side --------------------------------------------------------------------


def main(argv: list[str]) -> int:
    # Exits as soon as the flow is gone, even in the middle of a page: after a SIGKILL of
    # the flow its end of the pipe may stay open in a process it forked.
    server.exit_with_parent(int(argv[0]))
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while (message := _receive(source)) is not None:
        number, (pages, timeout_seconds, max_bytes) = message
        _send(sink, number, [parse_to_rows(page, timeout_seconds, max_bytes) for page in pages])
    return 0
