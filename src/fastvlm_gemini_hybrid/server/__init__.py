"""The HTTP face of the processor: `/v1` API, OpenAI-compatible API, jobs, metrics and the web UI.

FastAPI is an optional extra (`server`), so nothing is imported here until `create_app` is called.
"""

from __future__ import annotations

from typing import Any


def create_app(processor: Any = None, settings: Any = None, **kwargs: Any) -> Any:
    """Build the FastAPI application; see `server.app.create_app`."""
    from .app import create_app as _create

    return _create(processor=processor, settings=settings, **kwargs)


__all__ = ["create_app"]
