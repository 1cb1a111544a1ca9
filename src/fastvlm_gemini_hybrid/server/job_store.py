"""Where job state lives: one store per server, behind a small async interface (`JobStore`).

    MemoryJobStore()                    one process: `fastvlm-hybrid serve` (what jobs.py always did)
    RayJobStore(name)                   every Ray Serve replica of an application: a client of ONE
                                        named Ray actor, which is a MemoryJobStore in its own process

    replica A (accepted the job)             store (one per app)              replica B (any request)
    Job handle --write(Patch)-----------> JobTable: records, events, <----- get / events / wait_for_change
      ^  work appends results, emits      versions, cancel flags           request_cancel (DELETE)
      +---- "cancel" in write's answer ---------------+

The replica that accepts a job runs it (the work needs that replica's processor and event loop) and
pushes every change to the store as a `Patch`: events to append, results to append, and the job's
current state, progress and error. Every replica answers reads from the store, so a job's URLs work
whichever replica Ray's proxy picks. Cancellation is a flag in the store; a write's answer carries
it back to the running replica (writes also go out every `HEARTBEAT_S` as a heartbeat, so a quiet
job hears a cancel too). A job whose heartbeat stops for `lease_s` (its replica died) is failed with
`job_lost` instead of staying "running" forever and holding one of the cluster's active slots.

The Ray store's actor: named per application and created on first use by whichever replica gets
there first (`get_if_exists`), not detached, so it is owned by that replica and its lifetime is the
application's: `serve.delete`, `serve.shutdown` and the cluster's end take it down (a detached actor
would outlive them). Ray restarts it, empty, if its own process dies; if the replica that owns it
dies, it dies too, and the next call from any replica creates a new, empty one. Either way the jobs
it held are lost: the call that finds it dead is a 503 (`JobStoreUnavailable`), later ones find the
new store, where an old job id is a 404, and a replica still running a lost job stops it. Every call
is bounded (`CALL_TIMEOUT_S`): a reader never hangs on a dead or stuck actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from .errors import HTTPProblem

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_EVENTS = 10_000  # per job; later events are counted in `dropped_events`, not kept
MAX_JOBS = 100  # per store; the oldest finished jobs are forgotten to make room
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
EVENT_PAGE = 500  # events per `events()` answer: bounded messages between processes
CALL_TIMEOUT_S = 10.0  # one call to the Ray actor, beyond any wait it was asked to do
LEASE_S = 30.0  # Ray store: a running job unheard of for this long is failed as lost
NAMESPACE = "fastvlm-hybrid"

WriteAck = Literal["ok", "cancel", "gone"]


class JobStoreUnavailable(HTTPProblem):
    """The store cannot be reached (its Ray actor died or does not answer): 503, never a hang."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, f"the job store is unavailable ({detail}); if it died, the jobs it held are lost",
                         code="job_store_unavailable", type_="server_error", headers={"Retry-After": "5"})


def job_body(job_id: str, kind: str, state: str, done: int, total: int | None, error: dict[str, Any] | None,
             created: float, finished: float | None, events: int, results: list[dict[str, Any]] | None,
             ) -> dict[str, Any]:
    """A job as the API shows it (`GET /v1/jobs/{id}`; without `results` in the 202 and DELETE answers)."""
    out: dict[str, Any] = {
        "id": job_id, "kind": kind, "state": state, "progress": {"done": done, "total": total}, "error": error,
        "created": created, "finished": finished, "events": events,
        "urls": {"self": f"/v1/jobs/{job_id}", "events": f"/v1/jobs/{job_id}/events"}}
    if results is not None:
        out["results"] = results
    return out


@dataclass
class Patch:
    """One write of the running replica: what is new since its last write, and the job's fields now."""

    events: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    state: str = "running"
    done: int = 0
    total: int | None = None
    error: dict[str, Any] | None = None
    finished: float | None = None


@dataclass
class EventPage:
    """Events `first`, `first + 1`, ... and, read at the same moment, whether more may come."""

    first: int
    events: list[dict[str, Any]]
    active: bool
    version: int
    more: bool  # the page was full: ask again at once


@dataclass
class JobRecord:
    id: str
    kind: str
    created: float
    state: str = "queued"
    done: int = 0
    total: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    finished: float | None = None
    dropped_events: int = 0
    cancel_requested: bool = False
    version: int = 0  # bumped on every change: what `wait_for_change` compares
    heartbeat: float = field(default_factory=time.monotonic)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def to_dict(self, results: bool = True) -> dict[str, Any]:
        return job_body(self.id, self.kind, self.state, self.done, self.total, self.error, self.created,
                        self.finished, len(self.events), list(self.results) if results else None)


class JobTable:
    """The records and their rules, synchronous and single-threaded: the one copy of the logic both
    stores run (`MemoryJobStore` in the server's process or inside the Ray actor)."""

    def __init__(self, *, max_jobs: int = MAX_JOBS, max_events: int = MAX_EVENTS, lease_s: float | None = None,
                 on_change: Callable[[str], None] = lambda _id: None) -> None:
        self.max_jobs, self.max_events, self.lease_s = max_jobs, max_events, lease_s
        self.records: dict[str, JobRecord] = {}
        self.on_change = on_change

    def _changed(self, record: JobRecord) -> None:
        record.version += 1
        self.on_change(record.id)

    def _emit(self, record: JobRecord, event: dict[str, Any]) -> None:
        if len(record.events) < self.max_events:
            record.events.append(event)
        else:
            record.dropped_events += 1

    def expire(self) -> None:
        """Fail running jobs whose replica stopped writing (the Ray store only: `lease_s` set)."""
        if self.lease_s is None:
            return
        limit = time.monotonic() - self.lease_s
        for record in self.records.values():
            if record.active and record.heartbeat < limit:
                record.state, record.finished = "failed", time.time()
                record.error = {"message": "the replica running this job stopped answering; its work is lost",
                                "type": "server_error", "code": "job_lost", "param": None}
                self._emit(record, {"type": "state", "state": record.state, "error": record.error})
                self._changed(record)

    def find(self, job_id: str) -> JobRecord | None:
        self.expire()
        return self.records.get(job_id)

    def create(self, job_id: str, kind: str, created: float, max_active: int | None = None) -> bool:
        """A new queued record; False (nothing created) when `max_active` jobs are queued or running."""
        self.expire()
        if max_active is not None and sum(r.active for r in self.records.values()) >= max_active:
            return False
        self.forget_finished(self.max_jobs - 1)
        self.records[job_id] = JobRecord(id=job_id, kind=kind, created=created)
        return True

    def forget_finished(self, keep: int) -> int:
        """Forget the oldest finished jobs until at most `keep` records remain (or none is finished)."""
        finished = sorted((r for r in self.records.values() if not r.active), key=lambda r: r.created)
        gone = 0
        while len(self.records) > keep and finished:
            self.records.pop(finished.pop(0).id, None)
            gone += 1
        return gone

    def write(self, job_id: str, patch: Patch) -> WriteAck:
        record = self.find(job_id)
        if record is None or not record.active:  # lost (store restarted) or failed as lost: stop the work
            return "gone"
        for event in patch.events:
            self._emit(record, event)
        record.results.extend(patch.results)
        record.state, record.done, record.total = patch.state, patch.done, patch.total
        record.error, record.finished = patch.error, patch.finished
        record.heartbeat = time.monotonic()
        if patch.events or patch.results or not record.active:
            self._changed(record)  # a bare heartbeat wakes no reader
        return "cancel" if record.cancel_requested else "ok"

    def events(self, job_id: str, after: int, limit: int = EVENT_PAGE) -> EventPage | None:
        record = self.find(job_id)
        if record is None:
            return None
        first = max(after + 1, 0)
        page = record.events[first:first + limit]
        return EventPage(first, page, record.active, record.version, first + len(page) < len(record.events))

    def request_cancel(self, job_id: str) -> dict[str, Any] | None:
        record = self.find(job_id)
        if record is None:
            return None
        if record.active and not record.cancel_requested:
            record.cancel_requested = True
            self._changed(record)
        return record.to_dict(results=False)

    def counts(self) -> dict[str, int]:
        self.expire()
        out = dict.fromkeys(STATES, 0)
        for record in self.records.values():
            out[record.state] += 1
        return out


class JobStore(Protocol):
    """What the job manager needs of a store. Reads return the API's JSON shapes (or None: no such job)."""

    wait_s: float  # how long one `wait_for_change` may block: short where it ties up a remote call
    missing: str  # added to a 404's message: why a job may be gone

    async def create(self, job_id: str, kind: str, created: float, max_active: int | None = None) -> bool: ...

    def create_blocking(self, job_id: str, kind: str, created: float, max_active: int | None = None) -> bool:
        """`create` for callers that cannot await (agents_api's `submit`); on Ray, one blocking round trip."""
        ...

    async def write(self, job_id: str, patch: Patch) -> WriteAck: ...

    async def get(self, job_id: str, results: bool = True) -> dict[str, Any] | None: ...

    async def events(self, job_id: str, after: int = -1, limit: int = EVENT_PAGE) -> EventPage | None: ...

    async def wait_for_change(self, job_id: str, version: int, timeout: float) -> int | None: ...

    async def request_cancel(self, job_id: str) -> dict[str, Any] | None: ...

    async def cancel_requested(self, job_id: str) -> bool | None: ...

    async def counts(self) -> dict[str, int]: ...

    async def list_jobs(self, limit: int = MAX_JOBS) -> list[dict[str, Any]]: ...

    async def forget_finished(self, keep: int) -> int: ...


class MemoryJobStore:
    """The store in this process's memory, on its event loop. Also the Ray actor's body: `RayJobStore`
    runs this very class in its own process (its methods are async, so Ray makes it an async actor and
    a blocked `wait_for_change` holds no other call up)."""

    wait_s = 15.0
    missing = ""

    def __init__(self, max_jobs: int = MAX_JOBS, max_events: int = MAX_EVENTS, lease_s: float | None = None) -> None:
        self._waiters: dict[str, asyncio.Event] = {}
        self.table = JobTable(max_jobs=max_jobs, max_events=max_events, lease_s=lease_s, on_change=self._wake)

    def _wake(self, job_id: str) -> None:
        waiter = self._waiters.pop(job_id, None)
        if waiter is not None:
            waiter.set()

    async def create(self, job_id: str, kind: str, created: float, max_active: int | None = None) -> bool:
        return self.create_blocking(job_id, kind, created, max_active)

    def create_blocking(self, job_id: str, kind: str, created: float, max_active: int | None = None) -> bool:
        made = self.table.create(job_id, kind, created, max_active)
        for gone in set(self._waiters) - set(self.table.records):  # forgotten jobs: wake their readers
            self._wake(gone)
        return made

    async def write(self, job_id: str, patch: Patch) -> WriteAck:
        return self.table.write(job_id, patch)

    async def get(self, job_id: str, results: bool = True) -> dict[str, Any] | None:
        record = self.table.find(job_id)
        return None if record is None else record.to_dict(results)

    async def events(self, job_id: str, after: int = -1, limit: int = EVENT_PAGE) -> EventPage | None:
        return self.table.events(job_id, after, limit)

    async def wait_for_change(self, job_id: str, version: int, timeout: float) -> int | None:
        """The job's version once it differs from `version`, or after `timeout` s; None: no such job."""
        record = self.table.find(job_id)
        if record is not None and record.version == version:
            waiter = self._waiters.setdefault(job_id, asyncio.Event())
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout)
            record = self.table.find(job_id)
        return None if record is None else record.version

    async def request_cancel(self, job_id: str) -> dict[str, Any] | None:
        return self.table.request_cancel(job_id)

    async def cancel_requested(self, job_id: str) -> bool | None:
        record = self.table.find(job_id)
        return None if record is None else record.cancel_requested

    async def counts(self) -> dict[str, int]:
        return self.table.counts()

    async def list_jobs(self, limit: int = MAX_JOBS) -> list[dict[str, Any]]:
        """The newest `limit` jobs, newest first, without results."""
        self.table.expire()
        records = sorted(self.table.records.values(), key=lambda r: r.created, reverse=True)
        return [r.to_dict(results=False) for r in records[:limit]]

    async def forget_finished(self, keep: int) -> int:
        return self.table.forget_finished(keep)

    async def ping(self) -> bool:
        return True


# --------------------------------------------------------------------------- Ray: one actor per application


def actor_name(app_name: str) -> str:
    return f"job-store:{app_name}"


def start_actor(name: str, *, namespace: str = NAMESPACE, max_jobs: int = MAX_JOBS, max_events: int = MAX_EVENTS,
                lease_s: float = LEASE_S) -> Any:
    """The named store actor: the existing one, or a new one owned by the caller (it dies with the caller's
    process), restarted empty by Ray if its own process dies. No CPU reserved: it only keeps dictionaries."""
    import ray

    remote = ray.remote(MemoryJobStore).options(
        name=name, namespace=namespace, get_if_exists=True, lifetime=None, max_restarts=-1, num_cpus=0)
    return remote.remote(max_jobs, max_events, lease_s)


class RayJobStore:
    """The client every replica uses: forwards each call to the named actor, bounded, never hanging."""

    wait_s = 5.0  # a reader's blocking call on the actor: short, so a dead actor is noticed soon
    missing = "; jobs live in the application's job store, which loses them if it restarts"

    def __init__(self, name: str, namespace: str = NAMESPACE, *, call_timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.name, self.namespace, self.call_timeout_s = name, namespace, call_timeout_s
        self._handle: Any = None

    def _actor(self) -> Any:
        if self._handle is None:  # on first use, and again after a failure: the actor may be a new one
            try:
                self._handle = start_actor(self.name, namespace=self.namespace)
            except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the store is not there
                detail = f"Ray actor {self.name!r} could not be started: {type(exc).__name__}"
                raise JobStoreUnavailable(detail) from None
        return self._handle

    def _failed(self, exc: BaseException) -> JobStoreUnavailable:
        self._handle = None
        kind = "no answer in time" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else type(exc).__name__
        return JobStoreUnavailable(f"Ray actor {self.name!r}: {kind}")

    async def _call(self, method: str, *args: Any, wait_s: float = 0.0) -> Any:
        actor = self._actor()
        try:
            ref = getattr(actor, method).remote(*args)
            return await asyncio.wait_for(_awaited(ref), self.call_timeout_s + wait_s)
        except Exception as exc:  # noqa: BLE001 - RayActorError, ActorUnavailableError, timeouts: all "unavailable"
            raise self._failed(exc) from None

    async def create(self, job_id: str, kind: str, created: float, max_active: int | None = None) -> bool:
        return bool(await self._call("create", job_id, kind, created, max_active))

    def create_blocking(self, job_id: str, kind: str, created: float, max_active: int | None = None) -> bool:
        import ray

        actor = self._actor()
        try:
            return bool(ray.get(actor.create.remote(job_id, kind, created, max_active), timeout=self.call_timeout_s))
        except Exception as exc:  # noqa: BLE001 - as `_call`
            raise self._failed(exc) from None

    async def write(self, job_id: str, patch: Patch) -> WriteAck:
        return cast("WriteAck", await self._call("write", job_id, patch))

    async def get(self, job_id: str, results: bool = True) -> dict[str, Any] | None:
        return cast("dict[str, Any] | None", await self._call("get", job_id, results))

    async def events(self, job_id: str, after: int = -1, limit: int = EVENT_PAGE) -> EventPage | None:
        return cast("EventPage | None", await self._call("events", job_id, after, limit))

    async def wait_for_change(self, job_id: str, version: int, timeout: float) -> int | None:
        return cast("int | None", await self._call("wait_for_change", job_id, version, timeout, wait_s=timeout))

    async def request_cancel(self, job_id: str) -> dict[str, Any] | None:
        return cast("dict[str, Any] | None", await self._call("request_cancel", job_id))

    async def cancel_requested(self, job_id: str) -> bool | None:
        return cast("bool | None", await self._call("cancel_requested", job_id))

    async def counts(self) -> dict[str, int]:
        return cast("dict[str, int]", await self._call("counts"))

    async def list_jobs(self, limit: int = MAX_JOBS) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", await self._call("list_jobs", limit))

    async def forget_finished(self, keep: int) -> int:
        return int(await self._call("forget_finished", keep))


async def _awaited(ref: Any) -> Any:
    """`await` an ObjectRef inside a coroutine, so `asyncio.wait_for` can bound it."""
    return await ref
