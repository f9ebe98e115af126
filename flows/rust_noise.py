"""Keep Rust panic text off the terminal of an `oj` command.

On a full disk, deltalake's tokio runtime printed, in 5 of 10 runs, before our one-line
error:

    thread 'tokio-rt-worker' (554) panicked at .../object_store-0.13.2/src/buffered.rs:369:41:
    Already shut down
    note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.

Rust writes it to file descriptor 2 itself (no Python stream, no setting silences a
panic), so `oj` points descriptor 2 at a pipe (a pseudo-terminal when stderr is one, so
progress bars and colours stay) and relays every line to the real stderr except such a
block. `--debug` relays nothing: everything reaches the terminal as written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import sys
import termios
import threading
import tty

#: The first line of Rust's default panic message ("thread 'X' (tid) panicked at F:L:C:").
_PANIC = re.compile(rb"^thread '[^'\n]*'(?: \(\d+\))? panicked at ")
#: The lines that follow it: backtrace frames and the closing note about RUST_BACKTRACE.
_TAIL = re.compile(rb"^(stack backtrace:|\s+\d+: |\s+at |note: .*backtrace|\s*$)", re.IGNORECASE)


class PanicFilter:
    """Feed bytes, get back the bytes to show: whole lines of a panic block are dropped
    (its header, its one message line, backtrace frames and notes); any other line passes
    at once, even before its newline (a progress bar redraws with carriage returns)."""

    def __init__(self) -> None:
        self._line = b""  # the current line's bytes not yet shown or dropped
        self._shown = False  # part of the current line was passed on already
        self._state = "text"  # "text", "message" (the line after a header), "tail"

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for line in data.splitlines(keepends=True):
            self._line += line
            if line.endswith((b"\n", b"\r\n")):
                out += self._whole(self._line)
                self._line, self._shown = b"", False
            elif self._shown or not _could_be_panic(self._line, self._state):
                out += self._line  # a partial line that no panic block can start with
                self._line, self._shown = b"", True
        return bytes(out)

    def flush(self) -> bytes:
        rest, self._line = self._line, b""
        return b"" if self._state != "text" or _PANIC.match(rest) else rest

    def _whole(self, line: bytes) -> bytes:
        if self._shown:
            return line
        if _PANIC.match(line):
            self._state = "message"
            return b""
        if self._state == "message":
            self._state = "tail"
            return b""
        if self._state == "tail" and _TAIL.match(line):
            return b""
        self._state = "text"
        return line


def _could_be_panic(partial: bytes, state: str) -> bool:
    if state != "text":
        return True  # inside a block: wait for the whole line
    head = b"thread '"
    return head.startswith(partial[: len(head)]) if len(partial) < len(head) else (
        partial.startswith(head)
    )


def shown(data: bytes) -> bytes:
    """What the terminal shows of `data` written to stderr."""
    panic_filter = PanicFilter()
    return panic_filter.feed(data) + panic_filter.flush()


class StderrRelay:
    """Descriptor 2 through a `PanicFilter` while it is started."""

    def __init__(self) -> None:
        self._original = -1
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        sys.stderr.flush()
        self._original = os.dup(2)
        if os.isatty(self._original):
            reader, writer = os.openpty()
            tty.setraw(writer)  # bytes as written: no "\n" to "\r\n" twice
            with contextlib.suppress(OSError):
                size = fcntl.ioctl(self._original, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(writer, termios.TIOCSWINSZ, size)
        else:
            reader, writer = os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
        self._thread = threading.Thread(target=self._relay, args=(reader,), daemon=True)
        self._thread.start()

    def _relay(self, reader: int) -> None:
        panic_filter = PanicFilter()
        while True:
            # Read the flag before select: stop() sets it only after everything was
            # written, so an empty select that began after it means drained. Checked after
            # select instead, a select that timed out just before the last line arrived
            # ended the relay with that line unread (4 of 40 concurrent `oj` errors empty).
            stopping = self._stopping.is_set()
            ready, _, _ = select.select([reader], [], [], 0.05)
            if not ready and stopping:
                data = b""  # drained; a child still holding the pipe is not waited for
            elif not ready:
                continue
            else:
                try:
                    data = os.read(reader, 65536)
                except OSError:  # a pseudo-terminal's reader gets EIO once no writer is left
                    data = b""
            shown = panic_filter.feed(data) if data else panic_filter.flush()
            with contextlib.suppress(OSError):
                if shown:
                    os.write(self._original, shown)
            if not data:
                os.close(reader)
                return

    def stop(self, timeout: float = 2.0) -> None:
        """Everything written so far shown, descriptor 2 the real stderr again. A child
        process that still holds the pipe (a Prefect server ending with us) is not waited
        for: the relay ends once nothing more is ready to read."""
        if self._thread is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self._original, 2)  # closes our end of the pipe: the relay reads its end
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None
