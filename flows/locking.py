"""The one-writer lock of a datasets folder on an object store (`s3://`, `gs://`, `az://`).

A local folder is locked with an OS file lock (`flows.storage.writer_lock`), which the
kernel releases when its holder dies. An object store has no such lock and no atomic
rename, so the store itself arbitrates: the lock is an object, `<datasets>/.oj-write.lock`,
created with a conditional PUT (`If-None-Match: *`): of two runs starting together
exactly one creates it, the other gets "precondition failed" and waits.

A holder killed with SIGKILL cannot delete its lock, so the lock is a lease: the holder
rewrites it every `lease / 3` seconds with a new expiry, each time conditional on the
ETag it last wrote (`If-Match`). A waiting run takes over a lock whose expiry has passed,
again conditional on that lock's ETag, so of two runs taking over one stale lock only one
wins. A holder whose renewal fails (another run took over after it stalled longer than
its lease) knows it lost the lock, and `check()` refuses its release commit.

Delta commits themselves are safe without this lock: delta-rs writes each commit file
with a conditional PUT, so two writers never overwrite each other's commit. The lock
keeps release numbers and the roll-back of a crashed run's commits to one run at a time,
as on a local disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.errors import LockTimeout, StorageWriteError, one_line

LOCK_OBJECT = ".oj-write.lock"
#: Seconds a lock stays valid without renewal: how long a run killed with SIGKILL keeps
#: the next run waiting. `OJ_LOCK_LEASE_SECONDS` overrides it (tests use a few seconds).
DEFAULT_LEASE_SECONDS = 60.0
POLL_SECONDS = 1.0


def lease_seconds() -> float:
    return float(os.environ.get("OJ_LOCK_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


class ObjectStoreLock:
    """A lease on `<url>/.oj-write.lock`; `acquire`, then `check` before committing, then
    `release`."""

    def __init__(self, url: str, lease: float | None = None) -> None:
        from obstore.store import from_url

        self.url = url
        self.where = f"{url.rstrip('/')}/{LOCK_OBJECT}"
        self.lease = lease if lease is not None else lease_seconds()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        # Each request of the lock must end well inside the lease: obstore's default
        # retries a failed request for up to 3 minutes, longer than the whole lease.
        # Client options given here replace those of the environment, so AWS_ALLOW_HTTP
        # is carried over by hand (delta-rs and polars read it themselves).
        step = timedelta(seconds=max(self.lease / 6, 1))
        client: dict[str, Any] = {"connect_timeout": step, "timeout": step}
        if os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true":
            client["allow_http"] = True
        self._store = from_url(
            url, client_options=client, retry_config={"max_retries": 2, "retry_timeout": step}
        )
        self._etag: str | None = None
        self._lost: str | None = None
        self._renewed_at = time.monotonic()  # when the lease was last written
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        now = datetime.now(UTC)
        return json.dumps(
            {
                "owner": self.owner,
                "written_at": now.isoformat(),
                "expires_at": (now + timedelta(seconds=self.lease)).isoformat(),
            }
        ).encode("utf-8")

    def _put(self, mode: Any) -> str:
        import obstore

        result = obstore.put(self._store, LOCK_OBJECT, self._body(), mode=mode)
        return result["e_tag"]

    def holder(self) -> dict[str, Any] | None:
        """The lock object's content and ETag; None when nobody holds it."""
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            found = obstore.get(self._store, LOCK_OBJECT)
            data = bytes(found.bytes())
        except (NotFoundError, FileNotFoundError):
            return None
        try:
            content = json.loads(data)
            expires = datetime.fromisoformat(content["expires_at"])
        except (ValueError, KeyError, TypeError):
            # Not ours or cut short: treat as expired at its write time plus a lease.
            content = {"owner": "unknown"}
            expires = found.meta["last_modified"] + timedelta(seconds=self.lease)
        return {**content, "expires": expires, "e_tag": found.meta["e_tag"]}

    def try_acquire(self) -> bool:
        """One attempt: create the lock, or take over an expired one."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            self._etag = self._put("create")
            return True
        except AlreadyExistsError:
            pass
        held = self.holder()
        if held is None:
            return False  # released meanwhile: the next attempt creates it
        if held["expires"] > datetime.now(UTC):
            return False
        try:  # a stale lease (its holder died): take it over, if nobody else did first
            self._etag = self._put({"e_tag": held["e_tag"]})
            return True
        except (PreconditionError, AlreadyExistsError):
            return False

    def acquire(self, timeout: float, on_wait: Any = None) -> None:
        try:
            if not self.try_acquire():
                held = self.holder() or {}
                if timeout <= 0:  # never "waiting up to 0 s": refuse, in one line
                    raise LockTimeout(
                        f"another run ({held.get('owner', 'unknown')}) holds the lock of "
                        f"{self.url} ({self.where}); --lock-timeout 0: not waiting, nothing "
                        "was written"
                    )
                if on_wait is not None:
                    on_wait(
                        f"another run ({held.get('owner', 'unknown')}) is writing {self.url}: "
                        f"waiting up to {timeout:g} s for its lock ({self.where})"
                    )
                deadline = time.monotonic() + timeout
                while True:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"another run kept {self.url} locked for {timeout:g} s "
                            f"({self.where}); nothing was written"
                        )
                    time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.05)))
                    if self.try_acquire():
                        break
        except LockTimeout:
            raise
        except Exception as error:  # noqa: BLE001 - the store's own errors, in one line
            raise StorageWriteError(
                f"cannot lock {self.url}: {type(error).__name__}: {one_line(error)}; "
                "nothing was written"
            ) from None
        self._renewed_at = time.monotonic()
        self._renewer = threading.Thread(target=self._renew, name="oj-lock-renewal", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            if not self.renew():
                return

    def renew(self) -> bool:
        """Extend the lease, if the lock object is still the one this holder wrote last.

        False once the lease is lost: another run rewrote the lock (the conditional PUT
        fails), or no renewal got through for a whole lease (the store unreachable: a
        waiting run may have taken over meanwhile). A failed renewal inside the lease is
        retried at the next tick.
        """
        from obstore.exceptions import PreconditionError

        started = time.monotonic()
        try:
            self._etag = self._put({"e_tag": self._etag})
            self._renewed_at = started
            return True
        except PreconditionError as error:
            if self._still_mine(started):
                return True
            self._lost = f"another run rewrote it: {one_line(error)[:200]}"
            return False
        except Exception as error:  # noqa: BLE001 - the store's errors, retried in the lease
            if time.monotonic() - self._renewed_at >= self.lease:
                self._lost = f"not renewed for {self.lease:g} s: {one_line(error)[:200]}"
                return False
            return True

    def _still_mine(self, started: float) -> bool:
        """After a refused renewal: is the lock object one this holder wrote? A renewal
        that timed out on a busy store can land after all, and the client's retry of it
        then fails its `If-Match` (seen with a 4 s lease on a loaded 2-core machine: the
        run that held the lock exited 74 "another run rewrote it" though nobody had)."""
        try:
            held = self.holder()
        except Exception:  # noqa: BLE001 - unreadable now: judged again at the next tick
            return False
        if held is None or held.get("owner") != self.owner:
            return False
        self._etag = held["e_tag"]
        self._renewed_at = started  # it was written after this renewal started
        return True

    def check(self) -> None:
        """Raise StorageWriteError if the lease was lost (another run may have taken it)."""
        if self._lost is None and time.monotonic() - self._renewed_at >= self.lease:
            self._lost = f"not renewed for {self.lease:g} s"
        if self._lost is not None:
            raise StorageWriteError(
                f"lost the write lock of {self.url} ({self._lost}): another run may be "
                "writing; this run publishes nothing"
            )

    def release(self) -> None:
        import obstore

        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        if self._lost is not None:
            return
        held = self.holder()
        if held is not None and held.get("owner") == self.owner:
            # A failed delete is harmless: the lease expires and is taken over.
            with contextlib.suppress(Exception):
                obstore.delete(self._store, LOCK_OBJECT)
