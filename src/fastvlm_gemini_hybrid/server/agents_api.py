"""The agents over HTTP: `GET /v1/agents`, `GET /v1/agents/{name}`, `POST /v1/agents/{name}`.

Every agent is listed and run through the registry (`AgentRegistry.run`), exactly as `agents run`
runs it. A run reads its inputs like `/v1/analyze` (`inputs.read_input`): JSON with `attachments`
(data: URIs; http(s) image URLs where an operator enabled fetching; YouTube links stay links) or
multipart with `file` parts. Agents take file paths, so uploads are written to a private temporary
folder for the run and removed afterwards. A client never names a path on this server: a `file`
option (the surveillance zones) carries the file's content, and options that write to or reach out
from this machine (`report`, `webhook`) are refused.

Body fields: `mode`, `sensitive`, `domain`, `latency`, `model`, `max_tokens`, `concurrency`,
`max_frames`, `params` (prompt placeholders, an object), `options` (the agent's own, an object; a
form sends it as JSON text, or each option as a field of its name), `job`, and `stream`: a live
stream URL instead of an upload, for an agent that takes one (surveillance). The server opens it only
where an operator turned `stream_sources` on and listed the host (`stream_sources.py`: 403 otherwise,
400 for a scheme such as file: or concat:), and a live run is bounded: its `duration` defaults to and may
not exceed `stream_max_s`, with a wall-clock stop shortly after; a job can be cancelled at any time.

Inline by default: the run holds one work-gate slot and answers 200 with every item. With `job=true`
it goes to the job manager instead (202, then `/v1/jobs/{id}` and its SSE events, where each item and
each surveillance alert appears as it happens): for long runs (video, surveillance) a client may
disconnect and come back. Errors are the server's JSON bodies: unknown agent 404, bad input or option
400, a privacy refusal 403 (as `/v1/analyze`); messages never show the temporary folder.
"""

from __future__ import annotations

import asyncio
import mimetypes
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..agents.base import Agent, AgentOptions, ItemResult
from ..agents.options import OptionSpec, file_content
from ..agents.registry import AgentRegistry, UnknownAgentError, load_registry
from ..config import Settings
from ..errors import BadInputError, HybridError
from ..types import Attachment, Domain, Latency, Mode
from .api import state_of
from .errors import HTTPProblem, classify
from .inputs import read_input
from .jsonbody import json_loads
from .media import parse_bool, parse_number
from .state import ServerState
from .stream_sources import StreamSource, check_stream

if TYPE_CHECKING:
    from .jobs import Job

router = APIRouter()

#: requests in flight for one run's batch (a client may ask for fewer)
MAX_CONCURRENCY = 16
#: reconnects a live run may ask for (each may wait for a connection timeout and a backoff)
MAX_STREAM_RECONNECTS = 10
#: wall-clock time a live run gets beyond its `duration` (connecting, reconnecting) before it is stopped anyway
STREAM_GRACE_S = 60.0
# What an upload is saved as: agents sniff files, but a folder scan keeps known media suffixes only.
_SUFFIXES = {"application/dicom": ".dcm", "image/jpeg": ".jpg", "image/tiff": ".tif", "video/quicktime": ".mov",
             "video/x-matroska": ".mkv", "video/x-msvideo": ".avi"}
_Enum = TypeVar("_Enum", Mode, Domain, Latency)


def _registry(state: ServerState) -> AgentRegistry:
    # Read per request (a directory listing and a few small YAML files), so a new recipe needs no restart.
    return load_registry(state.settings.home)


def _agent(registry: AgentRegistry, name: str) -> Agent:
    try:
        return registry.get(name)
    except UnknownAgentError as exc:
        raise HTTPProblem(404, str(exc), code="agent_not_found") from None


def _listing(agent: Agent) -> dict[str, Any]:
    return {**agent.describe(remote=True), "urls": {"run": f"/v1/agents/{agent.name}"}}


@router.get("/v1/agents")
async def list_agents(request: Request) -> Any:
    return JSONResponse({"agents": [_listing(a) for a in _registry(state_of(request))]})


@router.get("/v1/agents/{name}")
async def show_agent(name: str, request: Request) -> Any:
    agent = _agent(_registry(state_of(request)), name)
    return JSONResponse({**_listing(agent), "output_schema": agent.output_schema()})


@router.post("/v1/agents/{name}")
async def run_agent(name: str, request: Request) -> Any:
    state = state_of(request)
    registry = _registry(state)
    agent = _agent(registry, name)  # 404 before a byte of the body is read
    state.gate.reserve()  # shed before reading a large upload when there is no room anyway
    fields, attachments = await read_input(request, state)
    source = await _stream_source(state, agent, fields, attachments)  # checked before anything is written
    spool = Spool()
    try:
        refs = [spool.stream(source)] if source is not None else spool.inputs(agent, attachments)
        options = _options(agent, fields, spool)
        if source is not None:
            _bound_live_run(options, source, state.settings)
        if parse_bool(fields.get("job"), "job"):
            job = _submit(state, registry, agent, refs, options, spool)
            spool = None  # the job removes it when it ends
            return JSONResponse(job.to_dict(results=False), status_code=202)
        notes: list[str] = []
        options.warn = notes.append
        async with state.gate.slot():
            items = await registry.run(agent.name, refs, options, processor=state.processor)
        if not agent.per_input and items and items[0].error is not None:
            raise items[0].error  # one answer: its failure is the response, as for /v1/analyze
        rows = [spool.row(item) for item in items]
        failed = sum(not row["ok"] for row in rows)
        return JSONResponse({"agent": agent.name, "ok": failed == 0, "done": len(rows) - failed, "failed": failed,
                             "items": rows, "notes": [spool.scrub(n) for n in notes]})
    except HybridError as exc:
        raise (spool.problem(exc) if spool is not None else exc) from None
    finally:
        if spool is not None:
            spool.close()


def _submit(
    state: ServerState, registry: AgentRegistry, agent: Agent, refs: list[str], options: AgentOptions, spool: Spool,
) -> Job:
    """Run the agent as a job: items, alerts and notes become job events as they happen."""
    import asyncio

    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def on_loop(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        # Job events wake asyncio waiters, so they are emitted on the loop, whichever thread reports them.
        def call(data: dict[str, Any]) -> None:
            if threading.get_ident() == loop_thread:
                fn(data)
            else:
                loop.call_soon_threadsafe(fn, data)

        return call

    async def work(job: Job) -> None:
        recorded: set[int] = set()

        def record(item: ItemResult) -> None:
            if id(item) not in recorded:
                recorded.add(id(item))
                row = spool.row(item)
                job.results.append(row)
                job.done += 1
                job.emit({"type": "item", **row})

        emit = on_loop(job.emit)
        bound = options.should_stop  # a live run's wall-clock stop
        options.on_item, options.on_event = record, emit
        options.should_stop = (lambda: job.cancel.is_set() or bound()) if bound else job.cancel.is_set
        options.warn = lambda note: emit({"type": "note", "message": spool.scrub(note)})
        try:
            async with state.gate.slot(shed=False):
                items = await registry.run(agent.name, refs, options, processor=state.processor)
            if not agent.per_input and items and items[0].error is not None:
                raise items[0].error
            for item in items:
                record(item)
        except HybridError as exc:
            raise spool.problem(exc) from None
        finally:
            spool.close()

    return state.jobs.submit(f"agent:{agent.name}", work)


# --------------------------------------------------------------------------- live streams


async def _stream_source(
    state: ServerState, agent: Agent, fields: dict[str, Any], attachments: list[Attachment],
) -> StreamSource | None:
    """The `stream` field checked by the server's stream policy (resolved off the loop), or None."""
    url = _text(fields.get("stream"), "stream")
    if url is None:
        return None
    if "stream" not in agent.accepts:
        raise BadInputError(f"the {agent.name} agent takes no stream URL")
    if attachments:
        raise BadInputError("send a clip or a stream URL, not both")
    return await asyncio.to_thread(check_stream, url, state.settings)


def _bound_live_run(options: AgentOptions, source: StreamSource, settings: Settings) -> None:
    """A live run ends: `duration` (default and ceiling `stream_max_s`), a reconnect ceiling, and a
    wall-clock stop `STREAM_GRACE_S` after `duration` in case the stream's clock stalls."""
    cap = settings.stream_max_s
    duration = options.extra.get("duration")
    if duration is None:
        duration = cap
    elif isinstance(duration, int | float) and duration > cap:
        raise BadInputError(f"duration must be at most {cap:g} s for a stream on this server (stream_max_s)")
    reconnects = options.extra.get("reconnects")
    if isinstance(reconnects, int) and reconnects > MAX_STREAM_RECONNECTS:
        raise BadInputError(f"reconnects must be at most {MAX_STREAM_RECONNECTS} for a stream on this server")
    options.extra["duration"] = duration
    options.source_options = dict(source.options)
    limit = float(duration) + STREAM_GRACE_S
    started: list[float] = []

    def over() -> bool:  # polled by the frame thread from the first frame on
        now = time.monotonic()
        if not started:
            started.append(now)
        return now - started[0] > limit

    options.should_stop = over


# --------------------------------------------------------------------------- request fields


def _options(agent: Agent, fields: dict[str, Any], spool: Spool) -> AgentOptions:
    """The common fields and the agent's own options, checked: every problem is a 400."""
    raw = _object(fields.get("options"), "options")
    for key in sorted({s.name for s in agent.option_specs} & fields.keys()):
        if key in raw:
            raise BadInputError(f"option {key!r} is given twice: in 'options' and as a field")
        raw[key] = fields[key]
    params = _object(fields.get("params"), "params")
    if not all(isinstance(v, str) for v in params.values()):
        raise BadInputError("params values must be strings")
    concurrency = _count(fields, "concurrency") or 4
    return AgentOptions(
        mode=_enum(Mode, fields.get("mode"), "mode"),
        sensitive=parse_bool(fields.get("sensitive"), "sensitive"),
        domain=_enum(Domain, fields.get("domain"), "domain"),
        latency=_enum(Latency, fields.get("latency"), "latency"),
        model=_text(fields.get("model"), "model"),
        max_tokens=_count(fields, "max_tokens"),
        concurrency=min(concurrency, MAX_CONCURRENCY),
        max_frames=_count(fields, "max_frames"),
        params=params,
        extra=agent.parse_options(raw, remote=True, materialize=spool.option_file),
        progress=False,
    )


def _object(value: object, field: str) -> dict[str, Any]:
    """A JSON object field; a form sends it as JSON text."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = json_loads(value.encode())
    if not isinstance(value, dict):
        raise BadInputError(f"{field} must be a JSON object")
    return dict(value)


def _text(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadInputError(f"{field} must be a string, got {type(value).__name__}")
    return value


def _enum(cls: type[_Enum], value: object, field: str) -> _Enum | None:
    text = _text(value, field)
    return None if text is None else cls.parse(text)


def _count(fields: dict[str, Any], field: str) -> int | None:
    value = parse_number(fields.get(field), field)
    if value is not None and value < 1:
        raise BadInputError(f"{field} must be at least 1, got {value}")
    return value


# --------------------------------------------------------------------------- the run's private folder


class Spool:
    """A private temporary folder for one run: uploads as files, `file` options' content, and the
    mapping back from those paths to what the client called them (results and errors use it)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fastvlm-agent-"))  # 0700
        self.labels: dict[str, str] = {}

    def inputs(self, agent: Agent, attachments: list[Attachment]) -> list[str]:
        """File paths (and links kept as links) for the agent; several files for an agent that takes one
        input (a DICOM study's slices) become the one folder that holds them."""
        folder = self.root / "inputs"
        folder.mkdir()
        refs: list[str] = []
        for i, att in enumerate(attachments, 1):
            if att.data is None:  # a YouTube link: the agent decides what it may do with it
                if "stream" in agent.accepts:  # ... but a video agent would open it: only `stream` is opened
                    raise BadInputError(f"the {agent.name} agent opens no links: upload the clip, or send a live "
                                        "stream URL as 'stream'")
                refs.append(att.url or "")
                continue
            path = folder / f"input-{i}{_suffix(att.mime)}"
            path.write_bytes(att.data)
            self.labels[str(path)] = att.name if att.name not in (None, "data-uri") else f"attachment-{i}"
            refs.append(str(path))
        if agent.max_inputs == 1 and len(refs) > 1 and len(self.labels) == len(refs):
            self.labels[str(folder)] = "uploads"
            return [str(folder)]
        return refs

    def stream(self, source: StreamSource) -> str:
        """The checked stream's URL for the agent; results and errors name it as the client wrote it."""
        self.labels[source.url] = source.label
        return source.url

    def option_file(self, spec: OptionSpec, content: str | dict[str, Any] | list[Any]) -> str:
        folder = self.root / "options"
        folder.mkdir(exist_ok=True)
        path = folder / spec.name
        path.write_text(file_content(content), encoding="utf-8")
        return str(path)

    def scrub(self, text: str) -> str:
        for path in sorted(self.labels, key=len, reverse=True):
            text = text.replace(path, self.labels[path])
        return text.replace(str(self.root), "upload")

    def row(self, item: ItemResult) -> dict[str, Any]:
        """The item as JSON, with inputs named as the client named them."""
        data = item.to_dict()
        data["input"] = [self.scrub(r) for r in data["input"]] if isinstance(data["input"], list) else (
            self.scrub(str(data["input"])))
        if data["error"] is not None:
            data["error"]["message"] = self.scrub(data["error"]["message"])
        return data

    def problem(self, exc: HybridError) -> HTTPProblem:
        """`exc` as the status and body the server would send, its message scrubbed of this folder."""
        status, payload, headers = classify(exc)
        err = payload["error"]
        return HTTPProblem(status, self.scrub(err["message"]), code=err["code"], type_=err["type"], headers=headers)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _suffix(mime: str) -> str:
    return _SUFFIXES.get(mime) or mimetypes.guess_extension(mime) or ""
