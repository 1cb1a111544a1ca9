"""The HTTP face of the processor: `/v1` API, OpenAI-compatible API, jobs, metrics and the web UI.

FastAPI is an optional extra (`server`), so nothing is imported here until `create_app` is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..config import Settings
    from ..processor import HybridVLMProcessor


def create_app(
    processor: HybridVLMProcessor | None = None, settings: Settings | None = None, **kwargs: Any
) -> FastAPI:
    """Build the FastAPI application; see `server.app.create_app`."""
    from .app import create_app as _create

    return _create(processor=processor, settings=settings, **kwargs)


__all__ = ["create_app"]
