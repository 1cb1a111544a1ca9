"""Long work as jobs: `POST /v1/jobs` -> id; `GET /v1/jobs/{id}`; `GET /v1/jobs/{id}/events` (SSE).

Kinds: `batch` (one prompt over many uploaded images), `video` (sampled frames, then a summary) and
`surveillance` (the agent's events over an uploaded clip with a zones file). Why jobs: these run for
minutes, so a client must be able to disconnect and come back; every event is kept (bounded) and
replayed from `Last-Event-ID`. Uploaded clips are spooled to a temporary file and removed when the
job ends unless `keep_uploads` is set. Model calls from jobs go through the same gate as requests.

This module is the kinds' work and the routes; job_manager.py runs jobs and job_store.py keeps their
state: this process's memory for `serve`, one Ray actor per application for `serve --ray`, where the
replica that accepted a job runs it and every replica answers its URLs (DELETE included).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import BadInputError, HybridError
from ..files import private_dir
from ..types import Attachment
from . import sse
from .api import state_of
from .errors import classify
from .inputs import read_input, request_from
from .job_manager import MAX_ACTIVE, Job, JobManager
from .job_store import MAX_EVENTS, MAX_JOBS
from .media import attachment_from_bytes, parse_bool, parse_number
from .state import ServerState

if TYPE_CHECKING:
    from ..types import Request as HybridRequest
    from ..types import Result, RouteDecision

__all__ = ["MAX_ACTIVE", "MAX_EVENTS", "MAX_JOBS", "Job", "JobManager", "LoopBridge", "manager", "router"]

router = APIRouter()
KINDS = ("batch", "video", "surveillance")
DEFAULT_BATCH_SIZE = 4  # images per forward pass on a backend that batches (as `fastvlm-hybrid batch`)
MAX_BATCH_SIZE = 64


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
        job = await manager(state).asubmit(
            kind, lambda job: _batch(state, job, atts, requests, concurrency, batch_size))
    else:
        if len(files) != 1:
            raise BadInputError(f"a {kind} job takes exactly one video file")
        name, data = files[0]
        att = attachment_from_bytes(data, name, state.settings)
        if att.kind != "video":
            raise BadInputError(f"{name} is not a video ({att.mime})")
        work = _video(state, fields) if kind == "video" else _surveil(state, fields)
        job = await manager(state).asubmit(kind, lambda job: _in_thread(state, job, att, work))
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
    return await manager(state_of(request)).read(job_id)


@router.delete("/v1/jobs/{job_id}")
async def cancel_job(job_id: str, request: Request) -> Any:
    return await manager(state_of(request)).cancel(job_id)


@router.get("/v1/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request) -> Any:
    jobs = manager(state_of(request))
    last = parse_number(request.headers.get("last-event-id"), "Last-Event-ID")
    await jobs.read(job_id, results=False)  # 404 (or 503) before the stream starts
    stream = jobs.stream(job_id, -1 if last is None else last)
    return StreamingResponse(stream, media_type="text/event-stream", headers=sse.HEADERS)
