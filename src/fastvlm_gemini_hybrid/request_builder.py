"""The one request builder: every face (CLI, `/v1/analyze`, the OpenAI API, agents, the Python API) turns
loose inputs into a `Request` here, with one set of checks.

Hints may be given as text (`mode="fallback"`, `domain="medical"`, `latency="realtime"`, as flags and form
fields carry them) or as the enums; media as paths, URLs, bytes or `Attachment`s. Every problem is a
`BadInputError` (CLI exit 2, HTTP 400) naming what to fix; `GenerationOptions` checks the sampling numbers
and `Request` the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import BadInputError
from .types import Attachment, Domain, Latency, Mode, Request, Turn

MediaInput = str | Path | bytes | Attachment
_PARSERS = {"mode": Mode.parse, "domain": Domain.parse, "latency": Latency.parse}
_EXAMPLES = {"mode": "fallback", "domain": "medical", "latency": "realtime"}


def build_request(prompt: str, media: MediaInput | Sequence[MediaInput] | None = None, **hints: Any) -> Request:
    """A `Request` from loose inputs: paths, URLs, bytes or Attachments, and hint keywords (None = absent)."""
    items: list[MediaInput]
    if media is None:
        items = []
    elif isinstance(media, (str, Path, bytes, Attachment)):
        items = [media]
    else:
        items = list(media)
    attachments = tuple(_attachment(m) for m in items)
    values = {k: v for k, v in hints.items() if v is not None}
    for key, parse in _PARSERS.items():
        if isinstance(values.get(key), str):
            values[key] = parse(values[key])
        elif key in values and not isinstance(values[key], (Mode, Domain, Latency)):
            raise BadInputError(f"{key} must be a string such as {_EXAMPLES[key]!r}, got {type(values[key]).__name__}")
    for key in ("model", "user"):
        if key in values and not isinstance(values[key], str):
            raise BadInputError(f"{key} must be a string, got {type(values[key]).__name__}")
    if "history" in values:
        values["history"] = _turns(values["history"])
    try:
        return Request(prompt=prompt, attachments=attachments, **values)
    except TypeError as exc:
        raise BadInputError(f"unknown request option: {exc}") from None


def _turns(history: Any) -> tuple[Turn, ...]:
    """Earlier turns as `Turn`s, or (role, text[, images]) pairs, or {"role", "content"[, "images"]} dicts."""
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise BadInputError("history must be a list of turns")
    turns = []
    for i, turn in enumerate(history):
        if isinstance(turn, Turn):
            turns.append(turn)
        elif isinstance(turn, dict):
            turns.append(Turn(str(turn.get("role")), turn.get("content"), turn.get("images", 0)))
        elif isinstance(turn, (tuple, list)) and len(turn) in (2, 3):
            turns.append(Turn(*turn))
        else:
            raise BadInputError(f"history[{i}] must be a turn: (role, text) or {{'role': ..., 'content': ...}}")
    return tuple(turns)


def _attachment(item: MediaInput) -> Attachment:
    if isinstance(item, Attachment):
        return item
    if isinstance(item, bytes):
        return Attachment.from_bytes(item)
    return Attachment.parse(str(item))
