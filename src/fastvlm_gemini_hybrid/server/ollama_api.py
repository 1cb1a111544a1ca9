"""The Ollama API on the same server: `/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/ps`,
`/api/version`.

Why: Ollama-native clients (the `ollama` Python and JS libraries, Open WebUI's Ollama connection, editors'
Ollama integrations, `OLLAMA_HOST=... ollama run`) can then use the hybrid router unchanged. `model` reads as
in the OpenAI API: `hybrid` (the router decides), a backend, `backend/model` or a model a backend serves;
a trailing `:latest` is ignored, anything else is a 404 `{"error": "model 'x' not found"}`.

How: an Ollama body is rewritten as the OpenAI chat body it means and built by `openai_api.to_request`, so
both faces share one parser: earlier turns as context, images of every turn as attachments (base64 here,
decoded within the server's limits by `media.attachment_from_url`), sampling checks, pinning, and through
`build_request` the privacy gate. Errors are Ollama's `{"error": "..."}` with the status the rest of the
server gives (403 privacy, 400 bad input, 404 unknown model, 413/415 media). Streams are NDJSON, one JSON
object a line, `done: true` last; `stream` defaults to true as in Ollama. `keep_alive` reaches the
keep-alive (server/keep_alive.py), which unloads an idle local model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from ..errors import BadInputError, HybridError
from ..types import Result
from .api import state_of, stream_response
from .errors import HTTPProblem, classify
from .jsonbody import json_object
from .keep_alive import KeepAlive, parse_keep_alive
from .media import parse_bool
from .openai_api import HYBRID, answer, to_request
from .state import ServerState

log = logging.getLogger(__name__)

#: the Ollama release whose API this face follows (images in chat, `format` as a JSON schema); `/api/version`
COMPAT_VERSION = "0.5.0"
NDJSON = "application/x-ndjson"
_STARTED = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
_UNSUPPORTED = ("pull", "push", "create", "copy", "delete", "embed", "embeddings")


class OllamaRoute(APIRoute):
    """Ollama's error shape for every failure on these routes (API keys are the server's guard middleware's)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes {"error": "..."} with its status
                return error_response(exc)

        return route


router = APIRouter(route_class=OllamaRoute)


def error_response(exc: BaseException) -> JSONResponse:
    status, payload, headers = classify(exc)
    if not isinstance(exc, HybridError):
        log.error("unexpected failure on the Ollama API", exc_info=exc)
    return JSONResponse({"error": payload["error"]["message"]}, status_code=status, headers=headers)


# --------------------------------------------------------------------------- model calls


@router.post("/api/chat")
async def chat(request: Request) -> Any:
    state = state_of(request)
    state.gate.reserve()  # shed before reading a large body when there is no room anyway
    body = await _body(request)
    name, backend = _model(body, state)
    keep = parse_keep_alive(body.get("keep_alive"))
    messages = body.get("messages")
    if not messages:  # Ollama's load (or, with keep_alive 0, unload) request
        return await _load(request, state, name, backend, keep, chat=True)
    if not isinstance(messages, list):
        raise BadInputError("messages must be a list")
    if body.get("tools"):
        raise BadInputError("tools are not supported by this server")
    turns = [_message(m, i) for i, m in enumerate(messages)]
    return await _answer(request, state, body, turns, name, keep, chat=True)


@router.post("/api/generate")
async def generate(request: Request) -> Any:
    state = state_of(request)
    state.gate.reserve()
    body = await _body(request)
    name, backend = _model(body, state)
    keep = parse_keep_alive(body.get("keep_alive"))
    prompt, system = body.get("prompt") or "", body.get("system") or ""
    if not isinstance(prompt, str) or not isinstance(system, str):
        raise BadInputError("prompt and system must be strings")
    if not prompt and not body.get("images"):
        return await _load(request, state, name, backend, keep, chat=False)
    if body.get("suffix"):
        raise BadInputError("suffix (fill-in-the-middle) is not supported by this server")
    turns = [{"role": "system", "content": system}] if system else []
    turns.append(_message({"role": "user", "content": prompt, "images": body.get("images")}, 0, "images"))
    return await _answer(request, state, body, turns, name, keep, chat=False)


async def _answer(request: Request, state: ServerState, body: dict[str, Any], turns: list[dict[str, Any]],
                  name: str, keep: float | None, *, chat: bool) -> Any:
    req = await to_request(_openai_body(body, turns, state), state)
    stream = parse_bool(body.get("stream"), "stream")
    keep_alive = _keep_alive(request)
    if stream is None or stream:
        render = _render(name, chat, keep_alive, keep)
        response = await stream_response(state, state.processor.astream(req), render)
        response.media_type = NDJSON  # stream_response speaks SSE; the bytes here are NDJSON lines
        response.headers["content-type"] = NDJSON
        return response
    async with state.gate.slot():
        result = await answer(state, req)  # `format` asked for JSON: checked and retried as the OpenAI API does
    _used(keep_alive, result, keep)
    return JSONResponse(_line(name, chat, result.response, **_done(result)))


def _render(name: str, chat: bool, keep_alive: KeepAlive | None,
            keep: float | None) -> Callable[[AsyncIterator[str | Result]], AsyncIterator[bytes]]:
    async def render(items: AsyncIterator[str | Result]) -> AsyncIterator[bytes]:
        try:
            async for item in items:
                if isinstance(item, Result):
                    _used(keep_alive, item, keep)
                    yield _ndjson(_line(name, chat, "", **_done(item)))
                elif item:
                    yield _ndjson(_line(name, chat, item, done=False))
        except Exception as exc:  # noqa: BLE001 - headers are sent: Ollama reports a late failure in a line
            yield _ndjson({"error": classify(exc)[1]["error"]["message"]})

    return render


async def _load(request: Request, state: ServerState, name: str, backend: str | None, keep: float | None, *,
                chat: bool) -> JSONResponse:
    """An empty prompt: load the model (a pinned local backend now; `hybrid` its local backends, best effort),
    or with `keep_alive: 0` unload it, answering `done: true` as Ollama does."""
    keep_alive = _keep_alive(request)
    local = [n for n in state.backend_names() if state.backend_kind(n) == "local"]
    targets = [backend] if backend is not None else local
    if keep == 0:
        for target in targets:
            if keep_alive is not None:
                await keep_alive.unload(target)
            else:
                await state.processor.backend(target).unload()
        return JSONResponse(_line(name, chat, "", done=True, done_reason="unload"))
    for target in (t for t in targets if t in local):
        load = getattr(state.processor.backend(target), "load", None)  # the in-process backends load on demand
        if callable(load):
            try:
                async with state.gate.slot():
                    await asyncio.to_thread(load)
            except HybridError:
                if backend is not None:
                    raise  # the model this client named cannot load: say why
                log.info("keep-alive load of %s failed; the router will choose another backend", target)
                continue
        if keep_alive is not None:
            keep_alive.touch(target, keep)
    return JSONResponse(_line(name, chat, "", done=True, done_reason="load"))


# --------------------------------------------------------------------------- the Ollama body as an OpenAI one


async def _body(request: Request) -> dict[str, Any]:
    return json_object(await request.body())


def _model(body: dict[str, Any], state: ServerState) -> tuple[str, str | None]:
    """(the name as the client wrote it, the backend it pins or None for `hybrid`); 404 for an unknown one."""
    name = body.get("model") or body.get("name")  # `name`: older clients' spelling
    if not isinstance(name, str) or not name.strip():
        raise BadInputError("model is required")
    bare = _bare(name)
    if bare in HYBRID:
        return name, None
    try:
        backend, _model_name = state.processor.router.pin(bare)
    except BadInputError:
        raise HTTPProblem(404, f"model '{name}' not found", code="model_not_found") from None
    return name, backend


def _bare(name: str) -> str:
    return name.strip().removesuffix(":latest")


def _message(msg: Any, i: int, where: str | None = None) -> dict[str, Any]:
    """One Ollama message as an OpenAI one: text, then each base64 image as a data: URI part."""
    if not isinstance(msg, dict):
        raise BadInputError(f"messages[{i}] must be an object")
    role = msg.get("role")
    if role == "tool" or msg.get("tool_calls"):
        raise BadInputError("tool calls are not supported by this server")
    if role not in ("system", "user", "assistant"):
        raise BadInputError(f"messages[{i}].role must be system, user or assistant, got {role!r}")
    content = msg.get("content") or ""
    images = msg.get("images") or []
    label = where or f"messages[{i}].images"
    if not isinstance(content, str):
        raise BadInputError(f"messages[{i}].content must be a string")
    if not isinstance(images, list):
        raise BadInputError(f"{label} must be a list of base64 strings")
    parts: list[dict[str, Any]] = [{"type": "text", "text": content}]
    for j, image in enumerate(images):
        if not isinstance(image, str) or not image:
            raise BadInputError(f"{label}[{j}] must be a base64 string")
        # No media type is declared: the bytes are sniffed (Attachment.from_bytes), as for any upload.
        url = image if image.startswith("data:") else "data:;base64," + image
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": role, "content": parts}


def _openai_body(body: dict[str, Any], turns: list[dict[str, Any]], state: ServerState) -> dict[str, Any]:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadInputError("options must be an object")
    out: dict[str, Any] = {"model": _bare(str(body.get("model") or body.get("name"))), "messages": turns}
    # num_predict: Ollama's -1 (the default) and -2 mean "no limit": here, the server's ceiling
    limit = options.get("num_predict")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)):
        raise BadInputError(f"options.num_predict must be a number, got {limit!r}")
    out["max_tokens"] = limit if limit is not None and limit > 0 else state.settings.max_tokens_limit
    for key in ("temperature", "top_p", "seed", "stop"):  # other options (top_k, num_ctx, ...) are ignored
        if options.get(key) is not None:
            out[key] = options[key]
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt}}
    elif fmt not in (None, ""):
        raise BadInputError('format must be "json" or a JSON schema object')
    for key in ("mode", "domain", "sensitive"):  # routing hints, at the top level or (Ollama clients) in options
        value = body.get(key, options.get(key))
        if value is not None:
            out[key] = value
    return out


# --------------------------------------------------------------------------- answers


def _line(name: str, chat: bool, text: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": name, "created_at": _now()}
    if chat:
        out["message"] = {"role": "assistant", "content": text}
    else:
        out["response"] = text
    out.update(extra)
    return out


def _done(result: Result) -> dict[str, Any]:
    """The last line's figures, in nanoseconds. Only the whole latency is measured, so it is also the eval time
    (prompt processing included); load time is not known apart from it (0)."""
    ns = int(result.latency_ms * 1e6)
    return {"done": True, "done_reason": "length" if result.finish_reason in ("length", "max_tokens") else "stop",
            "total_duration": ns, "load_duration": 0, "prompt_eval_count": result.usage.input_tokens,
            "prompt_eval_duration": 0, "eval_count": result.usage.output_tokens, "eval_duration": ns}


def _ndjson(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, default=str) + "\n").encode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _keep_alive(request: Request) -> KeepAlive | None:
    return getattr(request.app.state, "keep_alive", None)


def _used(keep_alive: KeepAlive | None, result: Result, keep: float | None) -> None:
    if keep_alive is not None and result.backend:
        keep_alive.touch(result.backend, keep)  # 0: the keep-alive task unloads it at once


# --------------------------------------------------------------------------- models


@router.get("/api/tags")
async def tags(request: Request) -> Any:
    state = state_of(request)
    return {"models": [_entry(name, state) for name in ("hybrid", *state.backend_names())]}


@router.post("/api/show")
async def show(request: Request) -> Any:
    state = state_of(request)
    name, backend = _model(await _body(request), state)
    entry = _entry(backend or "hybrid", state)
    return {"modelfile": "", "parameters": "", "template": "", "license": "", "details": entry["details"],
            "model_info": {"general.architecture": entry["details"]["family"], "general.basename": _bare(name),
                           "hybrid.kind": entry["x_hybrid"]["kind"], "hybrid.backend": backend},
            "capabilities": ["completion", "vision"], "modified_at": _STARTED}


@router.get("/api/ps")
async def ps(request: Request) -> Any:
    """Local backends holding a model now (a backend says `loaded: false` in its health when it does not)."""
    state = state_of(request)
    keep_alive = _keep_alive(request)
    if keep_alive is not None:
        keep_alive.refresh()
    models = []
    for name, info in (await state.processor.health()).items():
        if state.backend_kind(name) != "local" or not info.get("ready") or info.get("loaded") is False:
            continue
        expires = keep_alive.expires_at(name) if keep_alive is not None else None
        entry = _entry(name, state)
        models.append({**entry, "expires_at": expires.isoformat() if expires else None, "size_vram": 0,
                       "context_length": 0})
    return {"models": models}


@router.get("/api/version")
async def version() -> Any:
    from .. import __version__

    return {"version": COMPAT_VERSION, "x_hybrid": {"version": __version__}}


def _unsupported(action: str) -> Callable[[], Coroutine[Any, Any, Any]]:
    why = ("this server answers questions about pictures, it makes no embeddings" if action.startswith("embed")
           else "this server's models are its configured backends (GET /api/tags lists them)")

    async def endpoint() -> Any:
        raise HTTPProblem(501, f"/api/{action} is not supported: {why}", code="not_supported", type_="server_error")

    return endpoint


for _action in _UNSUPPORTED:  # a clear answer for model management and embeddings rather than a bare 404
    router.add_api_route(f"/api/{_action}", _unsupported(_action), methods=["POST", "DELETE"],
                         include_in_schema=False)


def _entry(name: str, state: ServerState) -> dict[str, Any]:
    kind = "router" if name == "hybrid" else state.backend_kind(name)
    return {"name": name, "model": name, "modified_at": _STARTED, "size": 0,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {"parent_model": "", "format": "", "family": name, "families": [name], "parameter_size": "",
                        "quantization_level": ""},
            "x_hybrid": {"kind": kind}}


__all__ = ["COMPAT_VERSION", "router"]
