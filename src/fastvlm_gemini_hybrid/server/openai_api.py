"""OpenAI-compatible endpoints: `POST /v1/chat/completions` and `GET /v1/models`.

Why: every OpenAI SDK, LangChain, and tools built for vLLM/Ollama can then use the hybrid router
unchanged. `model` is `hybrid` (the router decides), a backend name (pinned to it), or
`backend/model-name` (pinned, with that model). Extra body fields `mode`, `domain`, `sensitive`
carry routing hints (`extra_body=` in the Python SDK). Images are `image_url` parts: data: URIs
or http(s) URLs, which the server downloads within its limits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import BadInputError
from ..request_builder import build_request
from ..types import Attachment, GenerationOptions, Result, Turn
from ..types import Request as HybridRequest
from . import sse
from .api import state_of, stream_response
from .errors import HTTPProblem
from .media import attachment_from_url, parse_bool
from .state import ServerState

router = APIRouter()
HYBRID = ("hybrid", "auto")
MAX_IMAGES = 16


@router.get("/v1/models")
async def models(request: Request) -> Any:
    state = state_of(request)
    created = int(time.time())
    data = [{"id": "hybrid", "object": "model", "created": created, "owned_by": "fastvlm-hybrid", "kind": "router"}]
    for name in state.backend_names():
        data.append({"id": name, "object": "model", "created": created, "owned_by": "fastvlm-hybrid",
                     "kind": state.backend_kind(name)})
    return {"object": "list", "data": data}


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Any:
    from .jsonbody import json_loads

    state = state_of(request)
    state.gate.reserve()
    payload = json_loads(await request.body())
    if not isinstance(payload, dict):
        raise BadInputError("the request body must be a JSON object")
    model = str(payload.get("model") or "hybrid")
    req = await to_request(payload, state)
    if payload.get("stream"):
        include_usage = bool(_object(payload, "stream_options").get("include_usage"))
        return await stream_response(state, state.processor.astream(req), _chunks(model, req, include_usage))
    async with state.gate.slot():
        result = await state.processor.arun(req)
    return JSONResponse(completion(model, result))


async def to_request(payload: dict[str, Any], state: ServerState) -> HybridRequest:
    """An OpenAI chat body as a hybrid `Request`: the last user turn is the prompt, the earlier ones its
    `history` (each with its own images), system and developer messages the system text."""
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadInputError("messages must be a non-empty list")
    system: list[str] = []
    turns: list[Turn] = []
    refs: list[str] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "developer", "user", "assistant"):
            raise BadInputError(f"messages[{i}] needs a role of system, developer, user or assistant")
        text, images = _content(msg.get("content"), i)
        if msg["role"] in ("system", "developer"):
            system.append(text)
        else:
            turns.append(Turn(msg["role"], text, len(images)))
            refs.extend(images)
    if not turns or turns[-1].role != "user":
        raise BadInputError("the last message must come from the user")
    if len(refs) > MAX_IMAGES:
        raise BadInputError(f"at most {MAX_IMAGES} images per request")
    attachments: list[Attachment] = [await attachment_from_url(r, state.settings) for r in refs]
    options = _options(payload, "\n\n".join(s for s in system if s) or None)
    return build_request(
        turns[-1].text, attachments, history=tuple(turns[:-1]) or None,
        model=_pin(str(payload.get("model") or "hybrid"), state), options=options,
        mode=payload.get("mode") or None, domain=payload.get("domain") or None,
        sensitive=parse_bool(payload.get("sensitive"), "sensitive"),
        user=payload.get("user") if isinstance(payload.get("user"), str) else None,
    )


def _content(content: Any, i: int) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadInputError(f"messages[{i}].content must be a string or a list of parts")
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str) or not url:
                raise BadInputError(f"messages[{i}].content[{j}].image_url needs a url")
            images.append(url)
        else:
            raise BadInputError(f"messages[{i}].content[{j}]: unsupported part type {kind!r} (text, image_url)")
    return "\n".join(texts), images


def _pin(model: str, state: ServerState) -> str | None:
    """`hybrid` -> None (the router decides); a backend, `backend/model` or a model a backend serves -> that
    string, which pins the request (routing/router.py `pin`); anything else is a 404 as OpenAI answers it."""
    if model in HYBRID:
        return None
    try:
        state.processor.router.pin(model)
    except BadInputError as exc:
        raise HTTPProblem(404, str(exc), code="model_not_found") from None
    return model


def _options(payload: dict[str, Any], system: str | None) -> GenerationOptions:
    # `is None`, not `or`: an explicit 0 is a client error (400), not a request for the default
    max_tokens = next((payload[k] for k in ("max_completion_tokens", "max_tokens") if payload.get(k) is not None), 256)
    schema = None
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = _object(fmt, "json_schema", "response_format.json_schema").get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise BadInputError("response_format.json_schema.schema must be an object")
    try:
        numbers = {
            "max_tokens": _whole(max_tokens), "temperature": float(payload.get("temperature") or 0.0),
            "top_p": float(payload.get("top_p") if payload.get("top_p") is not None else 1.0),
            "seed": _whole(payload["seed"]) if payload.get("seed") is not None else None,
        }
    except (TypeError, ValueError, OverflowError):
        raise BadInputError("max_tokens, temperature, top_p and seed must be numbers") from None
    return GenerationOptions(**numbers, system=system, json_schema=schema)  # range checks: BadInputError (400)


def _object(parent: dict[str, Any], key: str, label: str | None = None) -> dict[str, Any]:
    """`parent[key]` when it is a JSON object, {} when absent or null; anything else is the client's error (400)."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInputError(f"{label or key} must be an object, got {type(value).__name__}")
    return value


def _whole(value: Any) -> int:
    """A JSON number that is a whole number ("1e30" is one, but too large for any limit: kept as is)."""
    number = float(value) if not isinstance(value, int) else value
    if isinstance(number, float) and (not number.is_integer()):
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _finish(result: Result) -> str:
    if result.blocked:
        return "content_filter"
    return "length" if result.finish_reason in ("length", "max_tokens") else "stop"


def _usage(result: Result) -> dict[str, int]:
    u = result.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def _hybrid_info(result: Result) -> dict[str, Any]:
    return {"backend": result.backend, "model": result.model, "route": result.route.to_dict(),
            "cached": result.cached, "latency_ms": round(result.latency_ms, 3), "confidence": result.confidence,
            "fallbacks": [{"backend": a.backend, "error": a.error} for a in result.fallbacks],
            "cost_usd": result.usage.cost_usd}


def completion(model: str, result: Result) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{result.request_id}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.response},
                     "finish_reason": _finish(result), "logprobs": None}],
        "usage": _usage(result),
        "x_hybrid": _hybrid_info(result),
    }


def _chunks(
    model: str, req: HybridRequest, include_usage: bool,
) -> Callable[[AsyncIterator[str | Result]], AsyncIterator[bytes]]:
    cid, created = f"chatcmpl-{req.request_id}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return sse.event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

    async def render(items: AsyncIterator[str | Result]) -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        async for item in items:
            if isinstance(item, Result):
                yield chunk({}, _finish(item), x_hybrid=_hybrid_info(item))
                if include_usage:
                    yield sse.event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                     "choices": [], "usage": _usage(item)})
            elif item:
                yield chunk({"content": item})
        yield sse.event("[DONE]")

    return render
