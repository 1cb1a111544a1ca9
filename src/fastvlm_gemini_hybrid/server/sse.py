"""Server-sent events: one `data:` line per JSON object, a comment as keep-alive."""

from __future__ import annotations

import json
from typing import Any

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(data: Any, *, name: str | None = None, id_: int | None = None) -> bytes:
    head = ""
    if id_ is not None:
        head += f"id: {id_}\n"
    if name:
        head += f"event: {name}\n"
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)
    return (head + f"data: {text}\n\n").encode()


KEEPALIVE = b": keep-alive\n\n"
