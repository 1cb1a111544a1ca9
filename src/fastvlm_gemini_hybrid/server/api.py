"""The native API: `/v1/analyze`, `/v1/route`, `/healthz`, `/readyz`, `/metrics`.

`/v1/analyze` answers with exactly the `ask --json` object (or, with `stream=true`, server-sent
events: `delta` pieces, then the `result`); `/v1/route` with the `route --json` object. Model work
goes through the gate, so overload is a 503 with Retry-After rather than an ever-longer queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..errors import MissingDependencyError
from ..metrics_export import CONTENT_TYPE
from ..types import Result
from . import sse
from .errors import body, classify
from .inputs import read_input, request_from
from .media import parse_bool
from .state import ServerState

router = APIRouter()


def state_of(request: Request) -> ServerState:
    return request.app.state.hybrid


@router.post("/v1/analyze")
async def analyze(request: Request) -> Any:
    state = state_of(request)
    state.gate.reserve()  # shed before reading a large upload when there is no room anyway
    fields, attachments = await read_input(request, state)
    req = request_from(fields, attachments)
    if parse_bool(fields.get("stream"), "stream"):
        return await stream_response(state, state.processor.astream(req), _analyze_events)
    return_all = bool(parse_bool(fields.get("all"), "all"))
    async with state.gate.slot():
        result = await state.processor.arun(req, return_all=return_all)
    return JSONResponse(result.to_dict())


async def _analyze_events(items: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    async for item in items:
        if isinstance(item, Result):
            yield sse.event({"type": "result", **item.to_dict()}, name="result")
        else:
            yield sse.event({"type": "delta", "text": item}, name="delta")


async def stream_response(
    state: ServerState, items: AsyncIterator[Any], render: Any, first_hook: Any = None,
) -> StreamingResponse:
    """Stream `items` through `render` as SSE, holding a gate slot until the last byte.

    The first item is awaited before answering, so routing errors, policy violations and a backend
    that fails at once become ordinary HTTP errors; a failure after that is sent as an `error` event.
    """
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(state.gate.slot())
    try:
        first = await items.__anext__()
    except StopAsyncIteration:
        first = None
    except BaseException:
        await stack.aclose()
        raise

    async def chain() -> AsyncIterator[Any]:
        if first is not None:
            yield first
        async for item in items:
            yield item

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in render(chain()):
                yield chunk
        except Exception as exc:  # noqa: BLE001 - headers are sent: report the failure in-band
            _status, payload, _headers = classify(exc)
            yield sse.event({"type": "error", **payload}, name="error")
        finally:
            with contextlib.suppress(Exception):
                await items.aclose()  # type: ignore[attr-defined]
            await stack.aclose()

    return StreamingResponse(body(), media_type="text/event-stream", headers=sse.HEADERS)


@router.post("/v1/route")
async def route(request: Request) -> Any:
    state = state_of(request)
    fields, attachments = await read_input(request, state, fetch_urls=False)  # routing never fetches a URL
    # With pictures, the egress gate's local inspection names what they show (no model is called).
    decision = await state.processor.aexplain(request_from(fields, attachments))
    return JSONResponse(decision.to_dict())


@router.get("/healthz")
async def healthz() -> Any:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Any:
    """Each backend's state; 200 when at least one backend can answer, else 503."""
    state = state_of(request)
    backends = await state.processor.health()
    for name, info in backends.items():
        info.setdefault("kind", state.backend_kind(name))
    ready = any(b.get("ready") for b in backends.values())
    payload = {
        "ready": ready,
        "backends": backends,
        "browser_models": browser_models(state),
        "queue": state.gate.snapshot(),
        "auth": bool(state.settings.api_keys),
    }
    return JSONResponse(payload, status_code=200 if ready else 503)


def browser_models(state: ServerState) -> list[str]:
    """ONNX bundles present for in-browser inference (a directory with `onnx/` and `config.json`)."""
    root = state.browser_models_dir
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file() and (p / "onnx").is_dir())


@router.get("/metrics")
async def metrics(request: Request) -> Any:
    """Prometheus text: every worker process's counters when there are several (docs/server.md, "Metrics").

    Without prometheus-client (the `server` extra) a 501 names the install command, not a traceback.
    """
    try:
        payload = state_of(request).prometheus()
    except MissingDependencyError as exc:
        return JSONResponse(body(str(exc), "server_error", exc.code), status_code=501)
    return Response(payload, media_type=CONTENT_TYPE)
