"""Errors an operator can act on: one line naming the file, URL or path, and an exit code.

`oj` prints these as one line (`oj run: ...`) and exits with the code; anything else is a
bug and prints one line too, with the full traceback under `--debug` (or `OJ_DEBUG=1`).
"""

from __future__ import annotations

#: Exit codes of `oj` (documented in the README).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "done, but some pages, records or fetches failed (each is named on stderr), or an "
    "unexpected error",
    2: "usage or configuration error: a missing raw dir, a malformed sources or overrides "
    "file, a missing file named on the command line, a bad URL or time",
    74: "the datasets location cannot be written (unwritable, full); the last release is intact",
    75: "another run holds the datasets lock and did not release it within --lock-timeout",
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
