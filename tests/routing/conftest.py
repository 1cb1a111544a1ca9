"""Fixtures for the routing tests: backend descriptions and request builders (no models involved)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fastvlm_gemini_hybrid.routing import STATIC_CAPABILITIES, BackendInfo, Router
from fastvlm_gemini_hybrid.types import Attachment, Request

MIME = {"image": "image/png", "video": "video/mp4", "dicom": "application/dicom"}


def attachment(kind: str, name: str | None = None, size: int = 16) -> Attachment:
    """An attachment of `kind` without real media: the router only reads kind, name and size."""
    if kind == "youtube":
        return Attachment.from_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    return Attachment(mime=MIME[kind], data=b"\0" * size, name=name, sha256="0" * 64)


def make_request(prompt: str, *kinds: str | dict[str, Any], **hints: Any) -> Request:
    atts = []
    for k in kinds:
        spec = {"kind": k} if isinstance(k, str) else k
        atts.append(attachment(spec["kind"], spec.get("name"), spec.get("size", 16)))
    return Request(prompt=prompt, attachments=tuple(atts), **hints)


def both_backends(gemini_available: bool = True) -> list[BackendInfo]:
    return [
        BackendInfo("fastvlm", STATIC_CAPABILITIES["fastvlm"]),
        BackendInfo(
            "gemini", STATIC_CAPABILITIES["gemini"], available=gemini_available,
            unavailable_reason="" if gemini_available else "gemini needs an API key: set GEMINI_API_KEY",
        ),
    ]


@pytest.fixture
def router() -> Router:
    return Router(both_backends())


@pytest.fixture
def req() -> Callable[..., Request]:
    return make_request


@pytest.fixture
def backends() -> Callable[..., list[BackendInfo]]:
    return both_backends
