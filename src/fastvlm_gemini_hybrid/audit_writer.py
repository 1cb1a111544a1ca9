"""The audit trail's background writer: group commit on one daemon thread.

Split from `audit.py`, which chains and writes records; this module only decides *when*: records queue
up, the thread takes whatever queued while the last group was being fsynced, hands it to one `write`
call (one fsync), then completes each waiter's future, with `AuditWriteError` when the disk refused.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable

from .errors import HybridError

log = logging.getLogger(__name__)


class AuditWriteError(HybridError):
    """The audit record could not be made durable, so the request is not answered."""

    code = "audit_unavailable"


class GroupCommitWriter:
    """Queues serialised records for `write(bodies)` on a daemon thread, started on first use.

    `linger_s` (read for each group, so it may be changed while running) waits that long after the
    first record of a group, so more can join it. `errors` counts records the disk refused.
    """

    def __init__(
        self, write: Callable[[list[str]], None], *, linger_s: float = 0.0, name: str = "fastvlm-hybrid-audit",
    ) -> None:
        self.write = write
        self.linger_s = linger_s
        self.name = name
        self.errors = 0
        self._queue: queue.Queue[tuple[str, concurrent.futures.Future[None]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, body: str) -> concurrent.futures.Future[None]:
        """A future done once `body` is on disk (or failed with `AuditWriteError`)."""
        self._ensure_thread()
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((body, future))
        return future

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name=self.name, daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None and self.linger_s:
                time.sleep(self.linger_s)
            batch = [first]
            while True:  # whatever queued while the last group was being fsynced joins this group
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [item for item in batch if item is not None]
            if items:
                try:
                    self.write([body for body, _ in items])
                except OSError as exc:
                    self.errors += len(items)
                    log.error("could not write %d audit records: %s", len(items), exc)
                    error = AuditWriteError(f"the audit trail could not be written: {exc}")
                    for _, future in items:
                        _settle(future, error)
                else:
                    for _, future in items:
                        _settle(future, None)
            for _ in batch:
                self._queue.task_done()
            if None in batch:
                return

    def flush(self) -> None:
        """Block until every queued record is on disk (returns at once when the thread never started)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the thread (a later `submit` starts a new one)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._thread = None


def _settle(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    """Complete a waiter's future unless it was cancelled (its client left); never raise in the writer.

    One waiter's cancelled future must not stop the writer from settling the rest of its group, or every
    other request of that group would wait forever.
    """
    if not future.set_running_or_notify_cancel():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
