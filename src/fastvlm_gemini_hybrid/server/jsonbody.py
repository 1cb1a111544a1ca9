"""A request body read as JSON: one place, so every endpoint answers bad JSON the same way (400)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadInputError


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (what every API's request body is); 400 for anything else."""
    value = json_loads(raw)
    if not isinstance(value, dict):
        raise BadInputError("the request body must be a JSON object")
    return value


def json_loads(raw: bytes) -> Any:
    """The body's JSON value; `BadInputError` (400) when it is not JSON. NaN and Infinity are read, and the
    options' range checks refuse them where a number must be finite."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInputError(f"the request body is not valid JSON: {str(exc)[:200]}") from None
