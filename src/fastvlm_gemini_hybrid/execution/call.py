"""`Guarded`: one named backend as every mode calls it.

    Guarded(name)  =  prepare (named model, egress clearance, media conversion, check)
                      -> backend call under the processor's timeout
                      -> typed errors, metrics, circuit state

The same wrapper serves `generate` and streaming, so a streamed answer gets the same deadline, the
same metrics and the same error types as a whole one. The egress gate (privacy/gate.py) stays the
innermost wrapper of a backend off this machine; `Guarded` asks the same inspector first so that a
refusal is known before the call (and explained with the gate's findings), not inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..backends.base import Backend, Capabilities
from ..backends.circuit import sdk_retries
from ..errors import BackendTimeoutError, EgressRefusedError, HybridError, ServerError
from ..types import Generation, Request

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..privacy.inspector import Inspector

log = logging.getLogger(__name__)


class Guarded(Backend):
    """Backend `name` with the processor's timeout, metrics, typed errors and request preparation.

    `backend` builds the backend on first use. `inspector` is given for a backend off this machine: the
    request must clear it before the call.
    `retry_in_sdk=False` stops an HTTP backend from retrying inside the call, for a fallback chain where
    the next backend, not a retry loop, answers a failure.
    """

    def __init__(
        self,
        name: str,
        backend: Callable[[], Backend],
        *,
        timeout_s: float,
        metrics: Metrics,
        inspector: Inspector | None = None,
        retry_in_sdk: bool = True,
    ) -> None:
        self.name = name
        self._resolve = backend  # created on first use: building a backend can load a model or fail
        self._inner: Backend | None = None
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.inspector = inspector
        self.retry_in_sdk = retry_in_sdk

    @property
    def inner(self) -> Backend:
        if self._inner is None:
            self._inner = self._resolve()
        return self._inner

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    async def prepare(self, request: Request) -> Request:
        """The request as this backend gets it: a named model only when it is this backend's, cleared by
        the egress gate when the backend is off this machine, media converted for what it reads."""
        inner = self.inner  # built first: a backend that cannot be built (no key) says so before any inspection
        if request.backend is not None and self.name != request.backend and request.model is not None:
            request = replace(request, model=None)
        if self.inspector is not None:
            inspection = await self.inspector.ainspect(request)
            if inspection.refused or inspection.request is None:
                raise EgressRefusedError(f"kept on this machine: {inspection.reason}", self.name, inspection.findings)
            request = inspection.request
        if request.history and not inner.capabilities.conversation:
            request = request.flattened()
        request = adapt(inner, request)
        inner.check(request)
        return request

    async def generate(self, request: Request) -> Generation:
        request = await self.prepare(request)
        start = time.perf_counter()
        try:
            with contextlib.nullcontext() if self.retry_in_sdk else sdk_retries(0):
                gen = await asyncio.wait_for(self.inner.generate(request), timeout=self.timeout_s)
        except BaseException as exc:  # typed, counted and re-raised
            failure = self._failed(exc, "call", start)
            if failure is exc:
                raise
            raise failure from (None if _is_timeout(exc) else exc)
        self._succeeded(gen, "call", start)
        return replace(gen, backend=self.name)

    async def stream_answer(self, request: Request) -> AsyncIterator[str | Generation]:
        """Pieces as they come, then the whole answer; the whole stream must end within the timeout."""
        request = await self.prepare(request)
        start = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        pieces: list[str] = []
        iterator = self.inner.stream(request).__aiter__()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        piece = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                except BaseException as exc:  # typed, counted and re-raised
                    failure = self._failed(exc, "stream", start)
                    if failure is exc:
                        raise
                    raise failure from (None if _is_timeout(exc) else exc)
                pieces.append(piece)
                yield piece
        finally:
            with contextlib.suppress(Exception):
                await iterator.aclose()  # type: ignore[attr-defined]
        gen = Generation(text="".join(pieces), model=request.model or self.inner.default_model, backend=self.name)
        self._succeeded(gen, "stream", start)
        yield gen

    def _failed(self, exc: BaseException, kind: str, start: float) -> BaseException:
        """The typed error for `exc` (counted); cancellation passes through untouched."""
        seconds = time.perf_counter() - start
        if isinstance(exc, asyncio.CancelledError) and not _is_timeout(exc):
            return exc
        if _is_timeout(exc):
            self.metrics.record_request(self.name, kind, "timeout", seconds)
            return BackendTimeoutError(f"no answer within {self.timeout_s:g} s", self.name)
        if isinstance(exc, HybridError):
            self.metrics.record_request(self.name, kind, exc.code, seconds)
            self._note_circuit()
            return exc
        if not isinstance(exc, Exception):
            return exc  # KeyboardInterrupt, SystemExit, GeneratorExit
        log.warning("backend %s raised %s: %s", self.name, type(exc).__name__, exc)
        self.metrics.record_request(self.name, kind, "error", seconds)
        return ServerError(f"{type(exc).__name__}: {exc}", self.name)

    def _succeeded(self, gen: Generation, kind: str, start: float) -> None:
        self.metrics.record_request(self.name, kind, "blocked" if gen.blocked else "ok", time.perf_counter() - start)
        self._note_circuit()
        self.metrics.record_usage(self.name, gen.usage.input_tokens, gen.usage.output_tokens, gen.usage.cost_usd)

    def _note_circuit(self) -> None:
        """Copy an HTTP backend's circuit-breaker state into the metrics (closed, open, half-open)."""
        state = getattr(self.inner, "circuit_state", None)
        if isinstance(state, str):
            self.metrics.set_circuit(self.name, state)


class Settled(Backend):
    """A backend call already made (a batch computed the primary backend's answer): its outcome, replayed."""

    def __init__(self, name: str, outcome: Generation | BaseException) -> None:
        self.name = name
        self.outcome = outcome

    async def generate(self, request: Request) -> Generation:
        if isinstance(self.outcome, Generation):
            return replace(self.outcome, backend=self.name)
        if isinstance(self.outcome, HybridError):
            raise self.outcome
        raise ServerError(f"{type(self.outcome).__name__}: {self.outcome}", self.name) from self.outcome


def adapt(backend: Backend, request: Request) -> Request:
    """Render DICOM, and sample video frames, for a backend that reads pictures only (the router counted
    on this when it listed the backend: backends/catalogue.py `routable`)."""
    media = backend.capabilities.media
    kinds = {a.kind for a in request.attachments}
    converts = ("dicom" in kinds and "dicom" not in media) or ("video" in kinds and "video" not in media)
    if converts and any(t.images for t in request.history):
        # One study or clip becomes several pictures: they all go with the prompt, the turns keep their text.
        request = replace(request, history=tuple(replace(t, images=0) for t in request.history))
    if "dicom" in kinds and "dicom" not in media:
        from ..media.dicom import as_images

        request = as_images(request)
    if "video" in kinds and "video" not in media:
        from ..media.keyframes import as_frames

        request = as_frames(request, backend.capabilities.max_images)
    return request


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, TimeoutError))


__all__ = ["Guarded", "Settled", "adapt"]
