"""Errors an operator can act on: one line naming the file, URL or path, and an exit code.

`oj` prints these as one line (`oj run: ...`) and exits with the code; anything else is a
bug and prints one line too, with the full traceback under `--debug` (or `OJ_DEBUG=1`).
"""

from __future__ import annotations

import re

#: Exit codes of `oj` (`oj --help` prints them; the README's table is this one).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "done, but some pages, records or fetches failed (each named on stderr); or an "
    "unexpected error",
    2: "usage or configuration error: a missing raw or datasets dir, a malformed sources or "
    "overrides file, a named file or release that does not exist, a bad URL or time",
    74: "the datasets location or an output folder cannot be written (unwritable, full); the "
    "last release is intact",
    75: "another run holds the datasets lock and did not release it within --lock-timeout; "
    "nothing was written",
}


class OperatorError(Exception):
    """An error with a one-line message and the exit code `oj` ends with."""

    exit_code = 1


class UsageError(OperatorError):
    exit_code = 2


class StorageWriteError(OperatorError):
    exit_code = 74


class LockTimeout(OperatorError):
    exit_code = 75


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """ "1 row", "2 rows": a count and its noun, for the one-line messages of `oj`."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural_form or noun + 's'}"


#: What to set, for errors of an object store (delta-rs, obstore, s3fs) that name a
#: configuration problem. delta-rs says "URL scheme is not allowed" for an http endpoint
#: without AWS_ALLOW_HTTP, and asks a cloud metadata service (IMDS) for missing keys.
_STORE_HINTS = (
    ("URL scheme is not allowed", "a plain-http endpoint needs AWS_ALLOW_HTTP=true"),
    ("IMDS", "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ("Connection refused", "nothing answers at the endpoint (AWS_ENDPOINT_URL)"),
)
#: The hints above that a setting fixes: a configuration error (exit 2), not a bug.
_CONFIGURATION_NEEDLES = ("URL scheme is not allowed", "IMDS")


def is_store_configuration_error(error: BaseException) -> bool:
    """An object store refused for want of a setting (credentials, AWS_ALLOW_HTTP)."""
    return any(needle in str(error) for needle in _CONFIGURATION_NEEDLES)


def one_line(error: BaseException) -> str:
    """An error's message in one line. delta-rs and obstore chain their causes over
    several lines ("Generic S3 error / ↳ Error performing list request / ... / ↳ URL scheme
    is not allowed"): the first and the last say what failed and why, with what to set
    when the cause is a known configuration problem."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    lines = [line.strip().lstrip("↳").strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    xml = re.search(r"<Code>(.*?)</Code>\s*<Message>(.*?)</Message>", last)
    if xml:  # an S3 error document: its code and message, not its request ids
        last = f"{xml.group(1)}: {xml.group(2)}"
    message = lines[0] if len(lines) == 1 else f"{lines[0]}: {last}"
    for needle, hint in _STORE_HINTS:
        if needle in text:
            return f"{message} ({hint})"
    return message
