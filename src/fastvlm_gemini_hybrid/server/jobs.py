"""Long work as jobs: `POST /v1/jobs` -> id; `GET /v1/jobs/{id}`; `GET /v1/jobs/{id}/events` (SSE).

Kinds: `batch` (one prompt over many uploaded images), `video` (sampled frames, then a summary) and
`surveillance` (the agent's events over an uploaded clip with a zones file). Why jobs: these run for
minutes, so a client must be able to disconnect and come back; every event is kept (bounded) and
replayed from `Last-Event-ID`. Uploaded clips are spooled to a temporary file and removed when the
job ends unless `keep_uploads` is set. Model calls from jobs go through the same gate as requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import BadInputError, HybridError
from ..files import private_dir
from ..types import Attachment
from . import sse
from .api import state_of
from .errors import HTTPProblem, classify
from .inputs import read_input, request_from
from .media import attachment_from_bytes, parse_bool, parse_number
from .state import ServerState

if TYPE_CHECKING:
    from ..types import Request as HybridRequest
    from ..types import Result, RouteDecision

router = APIRouter()
KINDS = ("batch", "video", "surveillance")
MAX_EVENTS = 10_000
MAX_JOBS = 100
MAX_ACTIVE = 4
DEFAULT_BATCH_SIZE = 4  # images per forward pass on a backend that batches (as `fastvlm-hybrid batch`)
MAX_BATCH_SIZE = 64


@dataclass
class Job:
    id: str
    kind: str
    state: str = "queued"  # queued, running, succeeded, failed, cancelled
    done: int = 0
    total: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    dropped_events: int = 0

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def emit(self, event: dict[str, Any]) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(event)
        else:
            self.dropped_events += 1
        self.changed.set()

    def to_dict(self, results: bool = True) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "state": self.state,
               "progress": {"done": self.done, "total": self.total}, "error": self.error,
               "created": self.created, "finished": self.finished, "events": len(self.events),
               "urls": {"self": f"/v1/jobs/{self.id}", "events": f"/v1/jobs/{self.id}/events"}}
        if results:
            out["results"] = self.results
        return out


class JobManager:
    """Holds at most MAX_JOBS jobs (the oldest finished ones are forgotten) and runs MAX_ACTIVE at once."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.jobs: dict[str, Job] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("queued", "running", "succeeded", "failed", "cancelled"), 0)
        for job in self.jobs.values():
            out[job.state] += 1
        return out

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise HTTPProblem(404, f"no job {job_id!r}", code="job_not_found")
        return job

    def submit(self, kind: str, work: Callable[[Job], Any]) -> Job:
        if sum(j.active for j in self.jobs.values()) >= MAX_ACTIVE:
            raise HTTPProblem(503, f"{MAX_ACTIVE} jobs are already running; retry later", code="overloaded",
                              type_="server_error", headers={"Retry-After": "5"})
        finished = sorted((j for j in self.jobs.values() if not j.active), key=lambda j: j.created)
        while len(self.jobs) >= MAX_JOBS and finished:
            self.jobs.pop(finished.pop(0).id, None)
        job = Job(id=uuid.uuid4().hex[:16], kind=kind)
        self.jobs[job.id] = job
        task = asyncio.ensure_future(self._run(job, work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return job

    async def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        job.state = "running"
        job.emit({"type": "state", "state": "running"})
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

    async def aclose(self) -> None:
        for job in self.jobs.values():
            job.cancel.set()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def manager(state: ServerState) -> JobManager:
    """The server's job manager, typed (`ServerState.jobs` is a Protocol: state.py cannot import this module)."""
    return cast(JobManager, state.jobs)


class LoopBridge:
    """A processor facade for worker threads: `run()` executes `arun()` on the server's loop.

    Why: backends keep async clients bound to one loop, and the gate's semaphore belongs to it too;
    the video and surveillance code is synchronous and runs in a thread.
    """

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop, job: Job) -> None:
        self.state, self.loop, self.job = state, loop, job

    def decide(self, request: HybridRequest) -> RouteDecision:
        return self.state.processor.decide(request)

    def run(self, request: HybridRequest, **kw: Any) -> Result:
        if self.job.cancel.is_set():
            raise BadInputError("the job was cancelled")

        async def call() -> Result:
            async with self.state.gate.slot(shed=False):
                return await self.state.processor.arun(request, **kw)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result()


@router.post("/v1/jobs", status_code=202)
async def create_job(request: Request) -> Any:
    state = state_of(request)
    fields, files = await read_input(request, state, media=False)
    kind = str(fields.get("kind") or "")
    if kind not in KINDS:
        raise BadInputError(f"kind must be one of: {', '.join(KINDS)}")
    if not files:
        raise BadInputError(f"a {kind} job needs at least one uploaded 'file'")
    if kind == "batch":
        atts = [attachment_from_bytes(data, name, state.settings) for name, data in files]
        requests = [request_from(fields, [a]) for a in atts]
        concurrency = parse_number(fields.get("concurrency"), "concurrency") or state.settings.server_concurrency
        batch_size = parse_number(fields.get("batch_size"), "batch_size")
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise BadInputError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
        job = manager(state).submit(kind, lambda job: _batch(state, job, atts, requests, concurrency, batch_size))
    else:
        if len(files) != 1:
            raise BadInputError(f"a {kind} job takes exactly one video file")
        name, data = files[0]
        att = attachment_from_bytes(data, name, state.settings)
        if att.kind != "video":
            raise BadInputError(f"{name} is not a video ({att.mime})")
        work = _video(state, fields) if kind == "video" else _surveil(state, fields)
        job = manager(state).submit(kind, lambda job: _in_thread(state, job, att, work))
    return JSONResponse(job.to_dict(results=False), status_code=202)


async def _batch(
    state: ServerState, job: Job, atts: list[Attachment], requests: list[HybridRequest], concurrency: int,
    batch_size: int,
) -> None:
    """Through the processor's one fan-out: a batching local backend gets `batch_size` images per pass."""
    job.total = len(requests)

    def record(i: int, outcome: Result | HybridError) -> None:
        row: dict[str, Any] = {"type": "result", "index": i, "input": atts[i].name}
        if isinstance(outcome, HybridError):
            row.update(ok=False, error=classify(outcome)[1]["error"])
        else:
            row.update(ok=True, **outcome.to_dict())
        job.results.append(row)
        job.done += 1
        job.emit({**row, "progress": {"done": job.done, "total": job.total}})

    await state.processor.arun_many(
        requests, concurrency=max(1, min(concurrency, 16)), batch_size=batch_size, on_result=record,
        stop=job.cancel.is_set, slot=lambda: state.gate.slot(shed=False),
    )


async def _in_thread(state: ServerState, job: Job, att: Attachment, work: Callable[..., None]) -> None:
    """Spool the clip to a file, run `work(bridge, path, emit)` in a thread, clean up."""
    loop = asyncio.get_running_loop()
    keep = state.settings.keep_uploads
    folder = state.settings.home / "uploads"
    if keep:
        private_dir(folder)  # kept clips are as private as the cache (mkstemp makes the files 0600)
    suffix = Path(att.name or "clip.mp4").suffix or ".mp4"
    fh = tempfile.NamedTemporaryFile(suffix=suffix, delete=False, dir=folder if keep else None)
    path = Path(fh.name)
    try:
        with fh:
            fh.write(att.data or b"")

        def emit(event: dict[str, Any]) -> None:
            def apply() -> None:
                if event.get("type") != "state":
                    job.results.append(event)
                job.done = event.get("done", job.done)
                job.emit(event)

            loop.call_soon_threadsafe(apply)

        await asyncio.to_thread(work, LoopBridge(state, loop, job), str(path), emit, job)
    finally:
        if not keep:
            with contextlib.suppress(OSError):
                path.unlink()


def _video(state: ServerState, fields: dict[str, Any]) -> Callable[..., None]:
    from ..video.analyze import VideoAnalyzer
    from ..video.sampling import Sampler

    probe = request_from(fields, [])  # validates prompt and hints now, so bad input is a 400
    sampler = Sampler(fps=parse_number(fields.get("fps"), "fps", float),
                      every_s=parse_number(fields.get("every_s"), "every_s", float))
    max_frames = parse_number(fields.get("max_frames"), "max_frames")

    def work(bridge: LoopBridge, path: str, emit: Callable[[dict[str, Any]], None], job: Job) -> None:
        from ..video.decode import VideoSource

        analyzer = VideoAnalyzer(bridge, probe.prompt, sampler=sampler, mode=probe.mode, sensitive=probe.sensitive,
                                 domain=probe.domain, max_upload_bytes=state.settings.max_upload_bytes)
        with VideoSource(path) as source:
            for i, event in enumerate(analyzer.frames(source, max_frames=max_frames), 1):
                emit({**event, "done": i})
                if job.cancel.is_set():
                    return
        emit(analyzer.summary(path))

    return work


def _surveil(state: ServerState, fields: dict[str, Any]) -> Callable[..., None]:
    import yaml

    from ..video.zones import parse_zones

    text = fields.get("zones")
    if not isinstance(text, str) or not text.strip():
        raise BadInputError("a surveillance job needs 'zones' (the zones YAML, as a field or a file)")
    try:
        data = yaml.safe_load(text)
    except RecursionError:  # the YAML composer recurses once per level of nesting
        raise BadInputError("malformed zones: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of over 4300 digits
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"malformed zones: {first}") from None
    zones = parse_zones(data, "zones")
    describe = bool(parse_bool(fields.get("describe"), "describe"))
    sensitive = bool(parse_bool(fields.get("sensitive"), "sensitive"))

    def work(bridge: LoopBridge, path: str, emit: Callable[[dict[str, Any]], None], job: Job) -> None:
        from ..agents.surveillance import AlertDescriber, SurveillanceAgent
        from ..video.decode import VideoSource

        describer = AlertDescriber(bridge, sensitive=sensitive, warn=lambda _m: None) if describe else None
        agent = SurveillanceAgent(zones, describer=describer)
        with VideoSource(path) as source:
            for event in agent.run(source):
                emit({"type": "event", "event": event.to_dict(), "done": agent.frames})
                if job.cancel.is_set():
                    return

    return work


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> Any:
    return manager(state_of(request)).get(job_id).to_dict()


@router.delete("/v1/jobs/{job_id}")
async def cancel_job(job_id: str, request: Request) -> Any:
    job = manager(state_of(request)).get(job_id)
    job.cancel.set()
    return job.to_dict(results=False)


@router.get("/v1/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request) -> Any:
    job = manager(state_of(request)).get(job_id)
    start = parse_number(request.headers.get("last-event-id"), "Last-Event-ID")
    start = 0 if start is None else start + 1

    async def stream() -> AsyncIterator[bytes]:
        i = start
        while True:
            job.changed.clear()
            while i < len(job.events):
                yield sse.event(job.events[i], id_=i)
                i += 1
            if not job.active and i >= len(job.events):
                return
            try:
                await asyncio.wait_for(job.changed.wait(), timeout=15.0)
            except (asyncio.TimeoutError, TimeoutError):
                yield sse.KEEPALIVE

    return StreamingResponse(stream(), media_type="text/event-stream", headers=sse.HEADERS)
