"""`POST /v1/responses`: the part of OpenAI's Responses API that a stateless vision-language router can honour.

Why: newer OpenAI SDK code and agent frameworks speak `client.responses.create`, not chat completions. The body
is read into the same `Message`s as a chat body and built by openai_api's `request_from_messages`, so model
pinning, image rules (data: URIs, http(s) URLs under the fetch settings), routing hints (`mode`, `domain`,
`sensitive`), options and the JSON checks are exactly chat's:

    input (string, or messages with input_text / input_image / output_text parts)  -> messages
    instructions -> system     max_output_tokens, temperature, top_p, model -> as chat's
    text.format (json_object / json_schema)    -> response_format, checked and retried as in chat

Nothing is stored, so what needs a stored response (`previous_response_id`, `conversation`, `prompt`,
`background`, file ids) answers 400, as do tools; a conversation goes as the `input` list itself. With
`stream: true` the answer is the SSE sequence the SDK's `responses.stream` accumulates: created, in_progress,
output_item.added, content_part.added, output_text.delta..., output_text.done, content_part.done,
output_item.done, then completed (incomplete when cut by max_output_tokens or a safety block); a failure after
the first event is an `error` event then `response.failed`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import BadInputError
from ..types import Request as HybridRequest
from ..types import Result
from . import sse
from .api import state_of, stream_response
from .errors import classify
from .jsonbody import json_object
from .openai_api import ROLES, Message, answer, hybrid_info, request_from_messages, streamed_json_problem, unsupported

router = APIRouter()
#: fields that only make sense against responses, conversations or prompts the server would have stored
STORED = ("previous_response_id", "conversation", "prompt", "background")


@router.post("/v1/responses")
async def responses(request: Request) -> Any:
    state = state_of(request)
    state.gate.reserve()
    payload = json_object(await request.body())
    chat = as_chat(payload)
    req = await request_from_messages(messages_of(payload), chat, state)
    if payload.get("stream"):
        return await stream_response(state, state.processor.astream(req), _events(payload, chat["model"], req))
    async with state.gate.slot():
        result = await answer(state, req)
    status, incomplete = _status(result)
    body = response_object(payload, chat["model"], result.request_id, status=status, incomplete=incomplete,
                           output=[_message(result.request_id, result.response, status)], result=result)
    return JSONResponse(body)


def as_chat(payload: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions fields a Responses body means (for openai_api's `_options` and `_pin`); 400 for what
    the server cannot do rather than an answer that quietly dropped it."""
    for key in STORED:
        if payload.get(key) not in (None, False):
            unsupported(f"{key} (this server stores no responses; send the whole conversation as `input`)")
    if payload.get("tools"):
        unsupported("tools (function calling, built-in tools)")
    if payload.get("tool_choice") not in (None, "none"):
        unsupported("tool_choice (function calling)")
    if payload.get("include"):
        unsupported("include (extra output data)")
    if payload.get("top_logprobs") not in (None, 0):
        unsupported("top_logprobs")
    text = payload.get("text")
    if text is not None and not isinstance(text, dict):
        raise BadInputError("text must be an object")
    fmt = (text or {}).get("format")
    if fmt is not None and not isinstance(fmt, dict):
        raise BadInputError("text.format must be an object")
    chat: dict[str, Any] = {key: payload.get(key) for key in ("temperature", "top_p", "mode", "domain", "sensitive")}
    chat["model"] = str(payload.get("model") or "hybrid")
    chat["max_tokens"] = payload.get("max_output_tokens")
    chat["user"] = payload.get("user") or payload.get("safety_identifier")
    if fmt is not None:
        # Responses puts the schema beside the type; chat nests it under json_schema.
        chat["response_format"] = {"type": fmt.get("type"), "json_schema": {"schema": fmt.get("schema")}}
    return chat


def messages_of(payload: dict[str, Any]) -> list[Message]:
    """`instructions` (system) then `input`: a string (one user message) or a list of messages, earlier turns
    (assistant `output_text` included, as the SDK hands back a previous response's output) before the last."""
    out: list[Message] = []
    instructions = payload.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise BadInputError("instructions must be a string")
    if instructions:
        out.append(Message("system", instructions))
    given = payload.get("input")
    if isinstance(given, str):
        return [*out, Message("user", given)]
    if not isinstance(given, list) or not given:
        raise BadInputError("input must be a string or a non-empty list of messages")
    for i, item in enumerate(given):
        if not isinstance(item, dict):
            raise BadInputError(f"input[{i}] must be a message object")
        if item.get("type", "message") != "message":
            unsupported(f"input[{i}] of type {item.get('type')!r} (messages only)")
        if item.get("role") not in ROLES:
            raise BadInputError(f"input[{i}] needs a role of system, developer, user or assistant")
        out.append(_message_in(item, i))
    return out


def _message_in(item: dict[str, Any], i: int) -> Message:
    content = item.get("content")
    if isinstance(content, str):
        return Message(item["role"], content)
    if not isinstance(content, list):
        raise BadInputError(f"input[{i}].content must be a string or a list of parts")
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "input_image":
            if part.get("file_id"):
                unsupported(f"input[{i}].content[{j}].file_id (no files are stored; send image_url)")
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str) or not url:
                raise BadInputError(f"input[{i}].content[{j}].image_url must be a data: or http(s) URL")
            images.append(url)
        else:
            raise BadInputError(f"input[{i}].content[{j}]: unsupported part type {kind!r} "
                                "(input_text, input_image, output_text)")
    return Message(item["role"], "\n".join(texts), tuple(images))


def _status(result: Result) -> tuple[str, dict[str, str] | None]:
    """("completed", None), or ("incomplete", the reason) for an answer cut by the token limit or a safety block."""
    if result.blocked:
        return "incomplete", {"reason": "content_filter"}
    if result.finish_reason in ("length", "max_tokens", "MAX_TOKENS"):
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def _message(rid: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{rid}", "status": status, "role": "assistant",
            "content": [_part(text)]}


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(
    payload: dict[str, Any], model: str, rid: str, *, status: str, output: list[dict[str, Any]],
    result: Result | None = None, incomplete: dict[str, str] | None = None, error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Response object (the SDK's `openai.types.responses.Response`), with our `x_hybrid` beside it."""
    text = payload.get("text") if isinstance(payload.get("text"), dict) else {}
    out: dict[str, Any] = {
        "id": f"resp_{rid}", "object": "response", "created_at": int(time.time()), "status": status,
        "model": model, "output": output, "error": error, "incomplete_details": incomplete,
        "instructions": payload.get("instructions"), "max_output_tokens": payload.get("max_output_tokens"),
        "temperature": payload.get("temperature"), "top_p": payload.get("top_p"),
        "parallel_tool_calls": False, "tool_choice": "none", "tools": [], "store": False,
        "previous_response_id": None, "text": {"format": text.get("format") or {"type": "text"}},
        "metadata": payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {},
        "usage": None,
    }
    if result is not None:
        u = result.usage
        out["usage"] = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                        "total_tokens": u.input_tokens + u.output_tokens,
                        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                        "output_tokens_details": {"reasoning_tokens": 0}}
        out["x_hybrid"] = hybrid_info(result)
    return out


def _events(
    payload: dict[str, Any], model: str, req: HybridRequest,
) -> Callable[[AsyncIterator[str | Result]], AsyncIterator[bytes]]:
    rid = req.request_id
    mid = f"msg_{rid}"
    at = {"item_id": mid, "output_index": 0, "content_index": 0}

    async def render(items: AsyncIterator[str | Result]) -> AsyncIterator[bytes]:
        numbers = itertools.count()

        def event(kind: str, **data: Any) -> bytes:
            return sse.event({"type": kind, "sequence_number": next(numbers), **data}, name=kind)

        def failed(exc: BaseException) -> list[bytes]:
            err = classify(exc)[1]["error"]
            shell = response_object(payload, model, rid, status="failed", output=[],
                                    error={"code": "server_error", "message": err["message"]})
            return [event("error", code=err["code"], message=err["message"], param=None),
                    event("response.failed", response=shell)]

        shell = response_object(payload, model, rid, status="in_progress", output=[])
        yield event("response.created", response=shell)
        yield event("response.in_progress", response=shell)
        yield event("response.output_item.added", output_index=0, item={**_message(rid, "", "in_progress"),
                                                                        "content": []})
        yield event("response.content_part.added", **at, part=_part(""))
        final: Result | None = None
        try:
            async for item in items:
                if isinstance(item, Result):
                    final = item
                elif item:
                    yield event("response.output_text.delta", **at, delta=item, logprobs=[])
            assert final is not None  # processor.astream always ends with the Result
            invalid = streamed_json_problem(req, final)
            if invalid is not None:  # the text is out: it cannot be retried, only reported
                raise invalid
        except Exception as exc:  # noqa: BLE001 - the stream is open: the failure goes in-band, Responses-shaped
            for chunk in failed(exc):
                yield chunk
            return
        status, incomplete = _status(final)
        yield event("response.output_text.done", **at, text=final.response, logprobs=[])
        yield event("response.content_part.done", **at, part=_part(final.response))
        message = _message(rid, final.response, status)
        yield event("response.output_item.done", output_index=0, item=message)
        whole = response_object(payload, model, rid, status=status, output=[message], result=final,
                                incomplete=incomplete)
        yield event("response.completed" if status == "completed" else "response.incomplete", response=whole)

    return render
