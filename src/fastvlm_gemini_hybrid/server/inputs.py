"""Read `/v1/analyze`, `/v1/route` and `/v1/jobs` inputs: multipart forms or JSON, into a `Request`.

Multipart carries files (`file`, repeatable) and string fields; JSON carries `attachments` as URLs
or data: URIs. Both produce the same fields, so the endpoints and the web UI share one contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from ..errors import BadInputError, MediaTooLargeError
from ..types import Attachment, GenerationOptions, Request
from . import multipart
from .media import attachment_from_bytes, attachment_from_url, parse_bool, parse_number, read_upload
from .state import ServerState

if TYPE_CHECKING:
    from starlette.requests import Request as HTTPRequest

MAX_FILES = 16
MAX_FIELDS = 64
ZONES_LIMIT = 1 << 20
# Multipart bodies up to this size are parsed in memory in one pass; larger ones are streamed.
FAST_BODY_LIMIT = 1 << 20
HINT_FIELDS = ("mode", "domain", "latency", "model")


@overload
async def read_input(
    request: HTTPRequest, state: ServerState, *, media: Literal[True] = ..., fetch_urls: bool = ...,
) -> tuple[dict[str, Any], list[Attachment]]: ...


@overload
async def read_input(
    request: HTTPRequest, state: ServerState, *, media: Literal[False], fetch_urls: bool = ...,
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]: ...


async def read_input(
    request: HTTPRequest, state: ServerState, *, media: bool = True, fetch_urls: bool = True,
) -> tuple[dict[str, Any], list[Attachment]] | tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """(fields, attachments). `media=False` keeps uploads as (name, bytes) pairs for jobs to spool.

    `fetch_urls=False` keeps http(s) attachments as unfetched URLs: `/v1/route` answers without any
    network access, so it cannot be used to make this server connect anywhere.
    """
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        from .jsonbody import json_loads

        data = json_loads(await request.body())
        if not isinstance(data, dict):
            raise BadInputError("the JSON body must be an object")
        refs = data.get("attachments") or []
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise BadInputError("attachments must be a list of URL or data: URI strings")
        if len(refs) > MAX_FILES:
            raise BadInputError(f"at most {MAX_FILES} attachments per request")
        atts = [await attachment_from_url(r, state.settings, fetch_urls=fetch_urls) for r in refs]
        return data, atts
    if ctype.startswith("multipart/form-data") and _small(request):
        items = _fast_form(await request.body(), ctype)
    elif ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        items = await _streamed_form(request, state)
    else:
        raise BadInputError("send multipart/form-data (with 'file' parts) or application/json")
    fields: dict[str, Any] = {}
    files: list[tuple[str, bytes]] = []
    for key, value in items:
        if isinstance(value, str):
            fields[key] = value
        elif key in ("file", "files", "files[]"):
            filename, data = value
            limit = state.settings.max_upload_bytes
            if len(data) > limit:
                raise MediaTooLargeError(f"{filename or 'upload'} is larger than the {limit / 1e6:g} MB upload limit")
            files.append((filename or f"upload-{len(files) + 1}", data))
        elif key == "zones":
            fields[key] = value[1].decode("utf-8", "replace")
    if len(files) > MAX_FILES:
        raise BadInputError(f"at most {MAX_FILES} files per request")
    if media:
        checked = state.checked_media
        return fields, [attachment_from_bytes(data, name, state.settings, checked) for name, data in files]
    return fields, files


FormItem = tuple[str, "str | tuple[str | None, bytes]"]


def _small(request: HTTPRequest) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) <= FAST_BODY_LIMIT


def _fast_form(body: bytes, ctype: str) -> list[FormItem]:
    """Small multipart bodies: parsed in memory (see `multipart` for why)."""
    items: list[FormItem] = []
    for part in multipart.parse(body, multipart.boundary_of(ctype), max_parts=MAX_FILES + MAX_FIELDS):
        if part.is_file:
            items.append((part.name, (part.filename, part.data)))
            continue
        try:
            items.append((part.name, part.data.decode("utf-8")))
        except UnicodeDecodeError:
            raise BadInputError(f"malformed form data: field {part.name!r} is not UTF-8 text") from None
    return items


async def _streamed_form(request: HTTPRequest, state: ServerState) -> list[FormItem]:
    """Large or url-encoded bodies: Starlette's streaming parser, which spools big files to disk."""
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the multipart parser's own errors are the client's
        raise BadInputError(f"malformed form data: {exc}") from None
    items: list[FormItem] = []
    try:
        for key, value in form.multi_items():
            if isinstance(value, str):  # a field; anything else is an `UploadFile`
                items.append((key, value))
            elif key in ("file", "files", "files[]"):
                items.append((key, (value.filename, await read_upload(value, state.settings.max_upload_bytes))))
            elif key == "zones":
                items.append((key, (value.filename, await read_upload(value, ZONES_LIMIT))))
    finally:
        await form.close()
    return items


def options_from(fields: dict[str, Any]) -> GenerationOptions:
    values = {
        "max_tokens": parse_number(fields.get("max_tokens"), "max_tokens"),
        "temperature": parse_number(fields.get("temperature"), "temperature", float),
        "system": _text(fields.get("system"), "system"),
    }
    return GenerationOptions(**{k: v for k, v in values.items() if v is not None})


def request_from(fields: dict[str, Any], attachments: list[Attachment], *, user: str | None = None) -> Request:
    """Fields as the CLI would take them; bad values raise `BadInputError` (400)."""
    from ..request_builder import build_request

    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInputError("the prompt is empty")
    hints: dict[str, Any] = {k: fields[k] for k in HINT_FIELDS if isinstance(fields.get(k), str) and fields[k]}
    sensitive = parse_bool(fields.get("sensitive"), "sensitive")
    if sensitive is not None:
        hints["sensitive"] = sensitive
    budget = parse_number(fields.get("max_latency_ms"), "max_latency_ms")
    if budget is not None:
        hints["max_latency_ms"] = budget
    return build_request(prompt, list(attachments), options=options_from(fields), user=user, **hints)


def _text(value: Any, field: str) -> str | None:
    """A text field: a string (empty means absent); a JSON number, list or object is the client's error."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadInputError(f"{field} must be a string, got {type(value).__name__}")
    return value
