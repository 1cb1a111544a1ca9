"""The job manager: runs this server's jobs and answers for every job through the store (job_store.py).

    submit/asubmit(kind, work) -> Job     the work runs here, on this server's loop and processor
    read(id) / cancel(id) / stream(id)    any job in the store, whichever server runs it

A running job has two halves. `Job` is the writer's handle: the work appends results, sets `done`
and `total` and calls `emit(event)`, as it always did; `cancel` is a `threading.Event` the work
polls (worker threads too). Beside the work, a writer task sends what changed to the store as one
`Patch` per round trip: one write in flight per job keeps the job's events in order and batches
bursts (a fast batch emits faster than a remote store answers). The write's answer says whether
someone asked to cancel (a DELETE that reached another replica) and the handle's `cancel` is set.
With the in-process store a write completes at once, so readers see what the work did one loop
iteration later, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import sse
from .errors import HTTPProblem, classify
from .job_store import CALL_TIMEOUT_S, MAX_JOBS, JobStore, JobStoreUnavailable, MemoryJobStore, Patch, job_body
from .state import ServerState

log = logging.getLogger(__name__)

MAX_ACTIVE = 4  # jobs queued or running at once: per store, so per cluster with the Ray store
HEARTBEAT_S = 1.0  # a quiet job still writes this often: how soon it hears a cancel made elsewhere
KEEPALIVE_S = 15.0  # an SSE comment after this long without an event, so proxies keep the stream open

Work = Callable[["Job"], Awaitable[Any]]


@dataclass(eq=False)
class Job:
    """The running server's handle on one of its jobs (what the work writes to)."""

    id: str
    kind: str
    state: str = "queued"  # queued, running, succeeded, failed, cancelled
    done: int = 0
    total: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    emitted: int = 0
    _pending: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _sent: int = field(default=0, repr=False)  # results already written
    _wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _loop_thread: int | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def emit(self, event: dict[str, Any]) -> None:
        """Queue `event` for the store; from any thread (the loop's own objects are touched on the loop)."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self.emit, event)
            return
        self._pending.append(event)
        self.emitted += 1
        self._wake.set()

    def take_patch(self) -> Patch:
        events, self._pending = self._pending, []
        results = self.results[self._sent:]
        self._sent += len(results)
        return Patch(events, results, self.state, self.done, self.total, self.error, self.finished)

    def to_dict(self, results: bool = True) -> dict[str, Any]:
        return job_body(self.id, self.kind, self.state, self.done, self.total, self.error, self.created,
                        self.finished, self.emitted, self.results if results else None)


class JobManager:
    """Runs at most MAX_ACTIVE jobs at once (counted in the store) and keeps MAX_JOBS (the store forgets
    the oldest finished ones). `store` defaults to this process's memory (`fastvlm-hybrid serve`)."""

    def __init__(self, state: ServerState, store: JobStore | None = None) -> None:
        self.state = state
        self.store: JobStore = store if store is not None else MemoryJobStore()
        self.owned: dict[str, Job] = {}  # the jobs this server ran, newest last (its share of /metrics)
        self.runs: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.Task[None]] = set()

    def counts(self) -> dict[str, int]:
        """This server's jobs by state: with several replicas, /metrics sums the replicas' shares."""
        out = dict.fromkeys(("queued", "running", "succeeded", "failed", "cancelled"), 0)
        for job in list(self.owned.values()):
            out[job.state] += 1
        return out

    # ------------------------------------------------------------------ submitting (this server runs it)

    async def asubmit(self, kind: str, work: Work) -> Job:
        job = Job(id=uuid.uuid4().hex[:16], kind=kind)
        self._admitted(await self.store.create(job.id, kind, job.created, MAX_ACTIVE))
        return self._start(job, work)

    def submit(self, kind: str, work: Work) -> Job:
        """For callers that cannot await; with the Ray store the admission is one blocking round trip."""
        job = Job(id=uuid.uuid4().hex[:16], kind=kind)
        self._admitted(self.store.create_blocking(job.id, kind, job.created, MAX_ACTIVE))
        return self._start(job, work)

    @staticmethod
    def _admitted(created: bool) -> None:
        if not created:
            raise HTTPProblem(503, f"{MAX_ACTIVE} jobs are already running; retry later", code="overloaded",
                              type_="server_error", headers={"Retry-After": "5"})

    def _start(self, job: Job, work: Work) -> Job:
        finished = [j.id for j in self.owned.values() if not j.active]
        while len(self.owned) >= MAX_JOBS and finished:
            self.owned.pop(finished.pop(0), None)
        self.owned[job.id] = job
        job._loop, job._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        task = asyncio.ensure_future(self._run(job, work))
        self.runs.add(task)
        task.add_done_callback(self.runs.discard)
        return job

    async def _run(self, job: Job, work: Work) -> None:
        job.state = "running"
        job.emit({"type": "state", "state": "running"})
        writer = asyncio.ensure_future(self._write(job))
        self.writers.add(writer)
        writer.add_done_callback(self.writers.discard)
        try:
            await work(job)
            job.state = "cancelled" if job.cancel.is_set() else "succeeded"
        except asyncio.CancelledError:
            job.state = "cancelled"
        except Exception as exc:  # noqa: BLE001 - a job's failure is its result, never the server's
            _status, payload, _ = classify(exc)
            job.state, job.error = "failed", payload["error"]
        job.finished = time.time()
        job.emit({"type": "state", "state": job.state, "error": job.error})
        await writer  # the job's last state is in the store when its task ends

    async def _write(self, job: Job) -> None:
        """Push the job's changes to the store until its last state is there; stop the work if the store
        asks (a cancel from any replica) or lost the job."""
        while True:
            job._wake.clear()
            final = not job.active  # read with the patch, no await between: the last patch holds the last event
            try:
                ack = await self.store.write(job.id, job.take_patch())
            except JobStoreUnavailable as exc:
                log.warning("job %s: %s; stopping its work", job.id, exc)
                job.cancel.set()  # nobody can read what it would produce
                return
            if ack != "ok":
                job.cancel.set()
            if final or ack == "gone":
                job.results.clear()  # the store has them; the handle stays for counts() only
                return
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(job._wake.wait(), HEARTBEAT_S)

    # ------------------------------------------------------------------ any job in the store

    async def read(self, job_id: str, results: bool = True) -> dict[str, Any]:
        body = await self.store.get(job_id, results)
        if body is None:
            raise HTTPProblem(404, f"no job {job_id!r}{self.store.missing}", code="job_not_found")
        return body

    async def cancel(self, job_id: str) -> dict[str, Any]:
        body = await self.store.request_cancel(job_id)
        if body is None:
            raise HTTPProblem(404, f"no job {job_id!r}{self.store.missing}", code="job_not_found")
        job = self.owned.get(job_id)
        if job is not None:  # ours: stop now rather than at the next write's answer
            job.cancel.set()
        return body

    async def stream(self, job_id: str, after: int = -1) -> AsyncIterator[bytes]:
        """SSE bytes: the events after id `after`, then each new one, until the job has ended.

        If the store goes away mid-stream, a last `{"type": "error", ...}` event (without an id, so a
        client's Last-Event-ID stays the last real event) says so, and the stream ends.
        """
        quiet_since = time.monotonic()
        while True:
            try:
                page = await self.store.events(job_id, after)
                if page is None:  # forgotten (or lost) meanwhile
                    return
                for i, event in enumerate(page.events, page.first):
                    yield sse.event(event, id_=i)
                    after = i
                if page.events:
                    quiet_since = time.monotonic()
                if page.more:
                    continue
                if not page.active:
                    return
                await self.store.wait_for_change(job_id, page.version, min(self.store.wait_s, KEEPALIVE_S))
            except JobStoreUnavailable as exc:
                yield sse.event({"type": "error", "error": classify(exc)[1]["error"]})
                return
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                yield sse.KEEPALIVE
                quiet_since = time.monotonic()

    async def aclose(self) -> None:
        """Server shutdown: stop this server's jobs; their last state still goes to the store (bounded)."""
        for job in self.owned.values():
            job.cancel.set()
        for task in list(self.runs):
            task.cancel()
        await asyncio.gather(*self.runs, return_exceptions=True)
        if self.writers:
            _done, late = await asyncio.wait(list(self.writers), timeout=CALL_TIMEOUT_S)
            for task in late:
                task.cancel()
