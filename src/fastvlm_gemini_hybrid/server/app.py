"""The FastAPI application factory.

    create_app(processor=None, settings=None) -> FastAPI

Why a factory: tests inject a processor built on fake backends; `serve` builds the real one; Ray
replicas build one each. Cross-cutting rules live here as plain ASGI middleware (cheap on the hot
path): a body-size cap enforced while bytes arrive, API keys on `/v1` and the Ollama API's `/api`, CORS
only when configured, and OpenAI-shaped errors for every failure (Ollama-shaped under `/api`), including
ones FastAPI raises itself.
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from typing import Any

from .._optional import require
from ..config import Settings, load_settings
from ..errors import HybridError, MediaTooLargeError
from .errors import HTTPProblem, body, classify
from .gate import WorkGate
from .state import ServerState

# JSON bodies carry media as base64 (4/3 larger) plus the rest of the message.
_JSON_OVERHEAD = 256 * 1024


def create_app(processor: Any = None, settings: Settings | None = None, *, retry_after_s: int = 1) -> Any:
    """Build the app. With no `processor`, one is built from `settings` and closed on shutdown."""
    fastapi = require("fastapi", "server", "the HTTP server")
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import JSONResponse

    from . import agents_api, api, jobs, ollama_api, openai_api, openai_responses, ui
    from .keep_alive import KeepAlive
    from .medical_api import router as medical_router

    settings = settings or (processor.settings if processor is not None else load_settings())
    owns = processor is None
    if processor is None:
        from ..processor import HybridVLMProcessor

        processor = HybridVLMProcessor(settings)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        keep_alive.start()  # on the server's loop: unloads idle local models (the Ollama API's keep_alive)
        yield
        await keep_alive.aclose()
        await state.jobs.aclose()
        if owns:
            await processor.aclose()

    app = fastapi.FastAPI(
        title="fastvlm-hybrid", version=_version(), lifespan=lifespan, docs_url="/docs", redoc_url=None,
        openapi_url="/openapi.json",
    )
    gate = WorkGate(settings.server_concurrency, settings.server_queue, retry_after_s)
    state = ServerState(processor=processor, settings=settings, gate=gate, jobs=None, owns_processor=owns)
    state.jobs = jobs.JobManager(state)
    app.state.hybrid = state
    keep_alive = KeepAlive(processor, settings.keep_alive_s)
    app.state.keep_alive = keep_alive

    def error_response(exc: BaseException) -> Any:
        status, payload, headers = classify(exc)
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.exception_handler(HybridError)
    async def _hybrid(_request: Any, exc: HybridError) -> Any:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _any(_request: Any, exc: Exception) -> Any:  # Starlette logs it, then re-raises to the guard
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Any, exc: Any) -> Any:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(body(str(exc.detail), "invalid_request_error", code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Any, exc: Any) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return JSONResponse(body(f"{where}: {first.get('msg', 'invalid')}", "invalid_request_error", "bad_input",
                                 where), status_code=400)

    app.include_router(api.router)
    app.include_router(openai_api.router)
    app.include_router(openai_responses.router)
    app.include_router(ollama_api.router)
    app.include_router(jobs.router)
    app.include_router(agents_api.router)
    app.include_router(medical_router)
    ui.mount(app, state)

    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    return GuardMiddleware(app, state, error_response, ollama_api.error_response)


class GuardMiddleware:
    """Plain ASGI in front of FastAPI: body cap, API keys, per-route counters.

    Pure ASGI rather than `BaseHTTPMiddleware` so streaming responses pass through untouched and the
    hot path stays a few attribute lookups.
    """

    def __init__(self, app: Any, state: ServerState, error_response: Any, ollama_error_response: Any) -> None:
        self.app = app
        self.state = state
        self.error_response = error_response
        self.ollama_error_response = ollama_error_response  # Ollama's {"error": "..."} shape under /api/
        self._keys = [k.get_secret_value().encode() for k in state.settings.api_keys]
        limit = state.settings.max_upload_bytes
        self._limit = limit + limit // 3 + _JSON_OVERHEAD

    def __getattr__(self, name: str) -> Any:  # `app.state`, `app.routes`, ... for tests and tools
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status_box = [500]
        started = [False]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                started[0] = True
            await send(message)

        path: str = scope["path"]
        ollama = path.startswith("/api/")
        try:
            # API keys guard both APIs; /api/version stays open, as Ollama clients probe it to find a server.
            guarded = path.startswith("/v1/") or (ollama and path != "/api/version")
            if self._keys and guarded and not self._authorized(scope):
                raise HTTPProblem(401, "missing or invalid API key (send 'Authorization: Bearer KEY')",
                                  code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            headers = dict(scope.get("headers") or [])
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self._limit:
                raise MediaTooLargeError(f"the request body is larger than the {self._limit / 1e6:g} MB limit")
            await self.app(scope, self._capped(receive), send_wrapper)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI-shaped error
            if started[0]:
                return  # already answered (Starlette's last-resort handler re-raises after responding)
            response = (self.ollama_error_response if ollama else self.error_response)(exc)
            status_box[0] = response.status_code
            await response(scope, receive, send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/ui/") else "other")
            self.state.http.record(scope.get("method", "GET"), label, status_box[0])

    def _authorized(self, scope: dict[str, Any]) -> bool:
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    token = token.strip()
                    # compare against every key so timing does not reveal which prefix matched
                    return any([hmac.compare_digest(token, key) for key in self._keys])
        return False

    def _capped(self, receive: Any) -> Any:
        seen = [0]
        limit = self._limit

        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise MediaTooLargeError(f"the request body is larger than the {limit / 1e6:g} MB limit")
            return message

        return wrapped


def run_uvicorn(app: Any, *, host: str, port: int, log_level: str = "info", loop: str = "asyncio") -> None:
    """Serve `app` with the settings the load test measured (`serve` and benchmarks/server_load.py).

    The event loop is the standard library's, not uvloop: libuv accepts one new connection per
    loop iteration (libuv PR #3696), so on a busy server a burst of 64 new clients waited up to 64
    iterations (0.75 s) for their first answer, and wrk's p99 read 300 ms while every request took
    under 1 ms to serve. asyncio accepts up to the backlog at once (0.94-0.98x uvloop's requests/s here, side by side).
    httptools parses HTTP when installed. Access logging is off (a log line per request costs more
    than a cached answer). Objects alive now (modules, the app, the router's rules) live for the
    whole run: `gc.freeze()` moves them out of the collector's sight so full collections stay short.
    `loop` exists for the benchmark's side-by-side run.
    """
    import gc

    uvicorn = require("uvicorn", "server", "the HTTP server")
    gc.collect()
    gc.freeze()
    uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level=log_level, loop=loop)).run()


def uvicorn_config(app: Any, *, host: str, port: int, log_level: str = "info", loop: str = "asyncio") -> Any:
    uvicorn = require("uvicorn", "server", "the HTTP server")
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, loop=loop,
                          timeout_graceful_shutdown=10)


def _version() -> str:
    from .. import __version__

    return __version__
