"""Admission control: at most N model calls at once, at most Q waiting, everything else shed.

Why: an unbounded queue turns overload into ever-growing memory and latency for everyone. With a
bounded one, a burst past capacity gets an immediate 503 + Retry-After (cheap for the server and
honest to the client) while the requests already admitted keep their latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import overloaded


class WorkGate:
    """`async with gate.slot():` runs the body when a slot is free, or raises a 503 if the queue is full."""

    def __init__(self, concurrency: int, queue: int, retry_after_s: int = 1) -> None:
        self.concurrency = max(1, concurrency)
        self.queue = max(0, queue)
        self.retry_after_s = retry_after_s
        self._sem = asyncio.Semaphore(self.concurrency)
        self.running = 0
        self.waiting = 0
        self.shed = 0
        self.admitted = 0

    @property
    def capacity(self) -> int:
        return self.concurrency + self.queue

    def _check(self) -> None:
        if self.running + self.waiting >= self.capacity:
            self.shed += 1
            raise overloaded(self.retry_after_s)

    @asynccontextmanager
    async def slot(self, *, shed: bool = True) -> AsyncIterator[None]:
        """`shed=False` waits however long it takes (jobs: already bounded by the job manager)."""
        if shed:
            self._check()
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        self.admitted += 1
        try:
            yield
        finally:
            self.running -= 1
            self._sem.release()

    def reserve(self) -> None:
        """Fail fast (503) before reading a large upload when there is no room anyway."""
        self._check()

    def snapshot(self) -> dict[str, int]:
        return {"running": self.running, "waiting": self.waiting, "concurrency": self.concurrency,
                "queue": self.queue, "shed": self.shed, "admitted": self.admitted}
