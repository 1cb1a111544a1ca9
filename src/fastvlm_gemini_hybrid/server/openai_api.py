"""OpenAI-compatible endpoints: `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`.

Why: every OpenAI SDK, LangChain, and tools built for vLLM/Ollama can then use the hybrid router
unchanged. `model` is `hybrid` (the router decides), a backend name (pinned to it), or
`backend/model-name` (pinned, with that model). Extra body fields `mode`, `domain`, `sensitive`
carry routing hints (`extra_body=` in the Python SDK). Images are `image_url` parts: data: URIs
or http(s) URLs, which the server downloads within its limits.

`stop` ends the answer (every backend: execution/call.py); `response_format` json_object / json_schema is
checked after the answer arrives, with one corrective retry (agents/structured.py's loop) and then a 502
`invalid_json_output`. What OpenAI defines but this server cannot do (`n` > 1, tools, logprobs, audio) is a 400
naming it, never silently ignored; other unknown fields are ignored, as OpenAI's own servers do.
The Responses API (openai_responses.py) shares the conversion and the checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..agents.structured import extract_json, json_instruction, retry_request
from ..errors import BadInputError, InvalidJSONOutputError
from ..request_builder import build_request
from ..types import Attachment, GenerationOptions, Result, Turn
from ..types import Request as HybridRequest
from . import sse
from .api import state_of, stream_response
from .errors import HTTPProblem, body
from .media import attachment_from_url, parse_bool
from .state import ServerState

router = APIRouter()
HYBRID = ("hybrid", "auto")
MAX_IMAGES = 16
ROLES = ("system", "developer", "user", "assistant")
#: the schema that stands for OpenAI's json_object mode (backends send it as "JSON output", no schema)
JSON_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class Message:
    """One message, whichever API it came in (chat `messages`, Responses `input`): role, text, image URLs."""

    role: str
    text: str
    images: tuple[str, ...] = ()


def _model_objects(state: ServerState) -> list[dict[str, Any]]:
    created = int(time.time())
    kinds = [("hybrid", "router")] + [(name, state.backend_kind(name)) for name in state.backend_names()]
    return [{"id": i, "object": "model", "created": created, "owned_by": "fastvlm-hybrid", "kind": k} for i, k in kinds]


@router.get("/v1/models")
async def models(request: Request) -> Any:
    return {"object": "list", "data": _model_objects(state_of(request))}


@router.get("/v1/models/{model_id:path}")  # `path`: ids such as gemini/gemini-2.5-flash hold a slash
async def model(model_id: str, request: Request) -> Any:
    """The model as `/v1/models` lists it; any other name a request may pin (`backend/model`, a model a backend
    serves) as its backend's; else 404 `model_not_found`, as `_pin` answers a chat request naming it."""
    state = state_of(request)
    objects = _model_objects(state)
    listed = next((m for m in objects if m["id"] == model_id), None)
    if listed is not None or model_id in HYBRID:
        return listed or {**objects[0], "id": model_id}
    backend = state.processor.router.pin(model_id)[0] if _pin(model_id, state) else None
    if backend is None:  # a blank name pins nothing
        raise HTTPProblem(404, f"no model {model_id!r}", code="model_not_found")
    return {**objects[0], "id": model_id, "kind": state.backend_kind(backend)}


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Any:
    from .jsonbody import json_object

    state = state_of(request)
    state.gate.reserve()
    payload = json_object(await request.body())
    refuse_unsupported(payload)
    model = str(payload.get("model") or "hybrid")
    req = await to_request(payload, state)
    if payload.get("stream"):
        include_usage = bool(_object(payload, "stream_options").get("include_usage"))
        return await stream_response(state, state.processor.astream(req), _chunks(model, req, include_usage))
    async with state.gate.slot():
        result = await answer(state, req)
    return JSONResponse(completion(model, result))


def refuse_unsupported(payload: dict[str, Any]) -> None:
    """400 for what OpenAI's chat API offers and this server cannot do: answering without it would look like
    success while dropping what the client asked for."""
    n = payload.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        unsupported("n other than 1 (this server answers with one choice; send the request n times)")
    for key in ("tools", "functions"):
        if payload.get(key):
            unsupported(f"{key} (function calling)")
    for key in ("tool_choice", "function_call"):
        if payload.get(key) not in (None, "none"):
            unsupported(f"{key} (function calling)")
    if payload.get("logprobs") not in (None, False) or payload.get("top_logprobs") not in (None, 0):
        unsupported("logprobs (the backends do not report token probabilities)")
    if payload.get("audio") is not None or payload.get("modalities") not in (None, ["text"]):
        unsupported("audio output (modalities other than text)")


def unsupported(what: str) -> None:
    """400 `unsupported_parameter`: `what` is not supported by this server."""
    raise HTTPProblem(400, f"{what} is not supported by this server", code="unsupported_parameter")


async def to_request(payload: dict[str, Any], state: ServerState) -> HybridRequest:
    """An OpenAI chat body as a hybrid `Request` (see `request_from_messages`)."""
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadInputError("messages must be a non-empty list")
    parsed: list[Message] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise BadInputError(f"messages[{i}] needs a role of system, developer, user or assistant")
        text, images = _content(msg.get("content"), i)
        parsed.append(Message(msg["role"], text, tuple(images)))
    return await request_from_messages(parsed, payload, state)


async def request_from_messages(messages: list[Message], payload: dict[str, Any], state: ServerState) -> HybridRequest:
    """Messages as a hybrid `Request`: the last user turn is the prompt, the earlier ones its `history` (each with
    its own images), system and developer messages the system text. `payload` holds the chat body's other
    fields (model, sampling, stop, response_format, mode, domain, sensitive, user)."""
    system: list[str] = []
    turns: list[Turn] = []
    refs: list[str] = []
    for msg in messages:
        if msg.role in ("system", "developer"):
            system.append(msg.text)
        else:
            turns.append(Turn(msg.role, msg.text, len(msg.images)))
            refs.extend(msg.images)
    if not turns or turns[-1].role != "user":
        raise BadInputError("the last message must come from the user")
    if len(refs) > MAX_IMAGES:
        raise BadInputError(f"at most {MAX_IMAGES} images per request")
    attachments: list[Attachment] = [await attachment_from_url(r, state.settings) for r in refs]
    options = _options(payload, "\n\n".join(s for s in system if s) or None)
    prompt = turns[-1].text
    if options.json_schema is not None:
        # As the agents do: the shape in words too, for a backend without constrained decoding (FastVLM).
        prompt = f"{prompt.rstrip()}\n\n{_instruction(options.json_schema)}"
    return build_request(
        prompt, attachments, history=tuple(turns[:-1]) or None,
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
    schema = json_schema_of(payload.get("response_format"))
    stop = payload.get("stop")
    if stop is not None and not isinstance(stop, str | list):
        raise BadInputError("stop must be a string or a list of up to 4 strings")
    try:
        numbers = {
            "max_tokens": _whole(max_tokens), "temperature": float(payload.get("temperature") or 0.0),
            "top_p": float(payload.get("top_p") if payload.get("top_p") is not None else 1.0),
            "seed": _whole(payload["seed"]) if payload.get("seed") is not None else None,
        }
    except (TypeError, ValueError, OverflowError):
        raise BadInputError("max_tokens, temperature, top_p and seed must be numbers") from None
    return GenerationOptions(**numbers, system=system, json_schema=schema,  # range checks: BadInputError (400)
                             stop=(stop,) if isinstance(stop, str) else tuple(stop or ()))


def json_schema_of(fmt: Any) -> dict[str, Any] | None:
    """`response_format` as `GenerationOptions.json_schema`: None for text, `JSON_OBJECT` for json_object (and
    json_schema without a schema), else the client's schema, checked against its metaschema (400 if invalid)."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise BadInputError('response_format must be {"type": "text" | "json_object" | "json_schema", ...}')
    if fmt["type"] == "text":
        return None
    schema = _object(fmt, "json_schema", "response_format.json_schema").get("schema")
    if fmt["type"] == "json_object" or schema is None:
        return JSON_OBJECT
    if not isinstance(schema, dict):
        raise BadInputError("response_format.json_schema.schema must be an object")
    try:
        _validator(schema)
    except ValueError as exc:
        raise BadInputError(f"response_format.json_schema.schema is not a usable JSON schema: {exc}") from None
    return schema


def _validator(schema: dict[str, Any]) -> Any:
    """A jsonschema validator for `schema`; `ValueError` with the reason when the schema is not valid."""
    from .._optional import require

    jsonschema = require("jsonschema", "server", "response_format json_schema")
    from referencing.exceptions import Unresolvable  # jsonschema's own dependency

    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema)
        any(validator.iter_errors({}))  # a `$ref` at the root that leads nowhere shows now, not after the answer
        return validator
    except jsonschema.SchemaError as exc:
        raise ValueError(str(exc.message)[:300]) from None
    except (Unresolvable, RecursionError, TypeError, LookupError) as exc:  # also an odd `$schema`, deep nesting
        raise ValueError(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _instruction(schema: dict[str, Any]) -> str:
    if schema == JSON_OBJECT:
        return "Answer with one JSON object only, no prose."
    if schema.get("type") == "object" or "properties" in schema:
        try:
            return json_instruction(schema)
        except (AttributeError, TypeError, ValueError, RecursionError):
            pass  # a schema the agents' sketch cannot draw (tuple `items`, boolean subschemas): the schema itself
    return f"Answer with JSON only, no prose, valid against this JSON schema: {json.dumps(schema)}"


def json_problem(text: str, schema: dict[str, Any], *, exact: bool = False) -> tuple[str, str | None]:
    """(text to send, None) when `text` is the JSON `schema` asks for; (text, why not) otherwise.

    A whole answer may wrap its JSON in a ```json fence or prose (agents/structured.py `extract_json`): the
    JSON alone is then sent. `exact`: a streamed answer, already out as it is, must itself be the JSON."""
    try:
        value, bare = json.loads(text), True
    except ValueError as exc:
        if exact:
            return text, f"invalid JSON ({exc})"
        try:
            value, bare = extract_json(text), False
        except ValueError as reason:
            return text, str(reason)
    problem = _schema_problem(value, schema)
    if problem is None and not bare:
        text = json.dumps(value, ensure_ascii=False)  # the JSON without the fence or prose around it
    return text, problem


def _schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    if schema == JSON_OBJECT:
        return None if isinstance(value, dict) else f"expected a JSON object, got {type(value).__name__}"
    from jsonschema.exceptions import best_match

    try:
        error = best_match(_validator(schema).iter_errors(value))
    except Exception as exc:  # noqa: BLE001 - a `$ref` that leads nowhere: the client's schema, told as such
        raise BadInputError(f"response_format.json_schema.schema cannot be applied: {str(exc)[:200]}") from None
    if error is None:
        return None
    return f"{'.'.join(str(p) for p in error.absolute_path) or 'answer'}: {error.message[:200]}"


async def answer(state: ServerState, req: HybridRequest) -> Result:
    """`processor.arun(req)`, and for asked-for JSON the agents' loop: an answer that is not that JSON is asked
    once more with the reason, a second miss is `InvalidJSONOutputError` (502). A safety block stays the answer."""
    result: Result = await state.processor.arun(req)
    schema = req.options.json_schema
    if schema is None or result.blocked:
        return result
    text, problem = json_problem(result.response, schema)
    if problem is None:
        return replace(result, response=text)
    second: Result = await state.processor.arun(retry_request(req, result.response, problem))
    text, again = (second.response, None) if second.blocked else json_problem(second.response, schema)
    if again is None:
        return replace(second, response=text)
    raise InvalidJSONOutputError(f"{second.backend} answered with invalid JSON twice (first: {problem}; "
                                 f"after retry: {again})", second.backend)


def streamed_json_problem(req: HybridRequest, result: Result) -> InvalidJSONOutputError | None:
    """The error to send in-band when a streamed answer (already out, so not retried) is not the JSON asked for."""
    schema = req.options.json_schema
    if schema is None or result.blocked:
        return None
    _, problem = json_problem(result.response, schema, exact=True)
    return None if problem is None else InvalidJSONOutputError(
        f"{result.backend} streamed invalid JSON: {problem}", result.backend)


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


def hybrid_info(result: Result) -> dict[str, Any]:
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
        "x_hybrid": hybrid_info(result),
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
                invalid = streamed_json_problem(req, item)
                if invalid is not None:  # the text is out: say in-band that it is not the JSON asked for
                    yield sse.event({"type": "error", **body(str(invalid), "server_error", invalid.code)},
                                    name="error")
                    break
                yield chunk({}, _finish(item), x_hybrid=hybrid_info(item))
                if include_usage:
                    yield sse.event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                     "choices": [], "usage": _usage(item)})
            elif item:
                yield chunk({"content": item})
        yield sse.event("[DONE]")

    return render
