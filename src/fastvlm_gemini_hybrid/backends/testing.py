"""Backends for tests only. Product configuration cannot name these (see `backends.registry`).

`FunctionBackend` wraps a plain function (sync or async) so a test can decide, per request, what
answer, error or delay a backend produces, and counts every call it receives.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..types import BackendKind, Generation, Request
from .base import Backend, Capabilities

Responder = Callable[[Request], Any]


class FunctionBackend(Backend):
    """A backend whose answer comes from `fn(request)`.

    `fn` may return a `Generation`, a string (wrapped in one), raise any exception, or be async.
    `delay_s` sleeps before answering (cancellable), to test timeouts and parallel mode.
    """

    def __init__(
        self,
        name: str,
        fn: Responder | str,
        *,
        kind: BackendKind | str = BackendKind.LOCAL,
        delay_s: float = 0.0,
        capabilities: Capabilities | None = None,
        confidence: float | None = None,
        model: str | None = None,
    ) -> None:
        self.name = name
        self._fn: Responder = (lambda _req, _text=fn: _text) if isinstance(fn, str) else fn
        kind = BackendKind.parse(kind)
        media = frozenset({"image", "video", "dicom"} | ({"youtube"} if kind is BackendKind.CLOUD else set()))
        self.capabilities = capabilities or Capabilities(
            kind=kind, media=media, max_images=8, streaming=True, confidence=confidence is not None
        )
        self.delay_s = delay_s
        self.confidence = confidence
        self.default_model = model or f"{name}-model"
        self.calls: list[Request] = []
        self.cancelled = 0
        self.closed = False

    async def generate(self, request: Request) -> Generation:
        self.calls.append(request)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        out = self._fn(request)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, Generation):
            return out
        return Generation(text=str(out), model=request.model or self.default_model, confidence=self.confidence)

    async def stream(self, request: Request) -> AsyncIterator[str]:
        result = await self.generate(request)
        for word in result.text.split(" "):
            yield word + " "

    async def aclose(self) -> None:
        self.closed = True


def failing(error: BaseException) -> Callable[[Request], Awaitable[Any]]:
    """A responder that raises `error` every time."""

    async def _raise(_request: Request) -> Any:
        raise error

    return _raise
