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
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.inspector = inspector
        self.retry_in_sdk = retry_in_sdk

    @property
    def inner(self) -> Backend:
        # Asked each time (a dict lookup in the processor): plans are reused across requests, and the
        # processor's backend for a name may be replaced (a test, a reload) between them.
        return self._resolve()

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    async def prepare(self, request: Request) -> tuple[Backend, Request]:
        """The backend, and the request as it gets it: a named model only when it is this backend's, cleared
        by the egress gate when the backend is off this machine, media converted for what it reads."""
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
        return inner, request

    async def generate(self, request: Request) -> Generation:
        inner, request = await self.prepare(request)
        start = time.perf_counter()
        try:
            with contextlib.nullcontext() if self.retry_in_sdk else sdk_retries(0):
                gen = await asyncio.wait_for(inner.generate(request), timeout=self.timeout_s)
        except BaseException as exc:  # typed, counted and re-raised
            failure = self._failed(exc, "call", start)
            if failure is exc:
                raise
            raise failure from (None if _is_timeout(exc) else exc)
        self._succeeded(gen, "call", start)
        return replace(cut_at_stop(gen, request.options.stop), backend=self.name)

    async def stream_answer(self, request: Request) -> AsyncIterator[str | Generation]:
        """Pieces as they come, then the whole answer; the whole stream must end within the timeout.

        With stop sequences, text that could be the start of one is held back until the next piece says
        whether it is; the first complete one ends the answer and closes the backend's stream."""
        inner, request = await self.prepare(request)
        start = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        pieces: list[str] = []
        watch = StopWatch(request.options.stop)
        iterator = inner.stream(request).__aiter__()
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
                safe = watch.feed(piece)
                if safe or not watch.stop:  # without stop sequences every piece goes on, empty ones too
                    pieces.append(safe)
                    yield safe
                if watch.stopped:
                    break  # the `finally` closes the backend's stream: no more tokens are paid for
            rest = watch.flush()
            if rest:
                pieces.append(rest)
                yield rest
        finally:
            with contextlib.suppress(Exception):
                await iterator.aclose()  # type: ignore[attr-defined]
        gen = Generation(text="".join(pieces), model=request.model or inner.default_model, backend=self.name,
                         finish_reason="stop" if watch.stopped else None)
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


def cut_at_stop(gen: Generation, stop: tuple[str, ...]) -> Generation:
    """`gen` ending before the first of the stop sequences it contains (finish reason "stop"), else as is.

    Every backend's whole answer passes here, so `stop` holds for the ones that cannot stop natively too
    (FastVLM, MLX); a safety block's explanation is ours, not the model's, and is left whole."""
    if not stop or gen.blocked:
        return gen
    at = first_stop(gen.text, stop)
    return gen if at is None else replace(gen, text=gen.text[:at], finish_reason="stop")


def first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    """Where the earliest stop sequence in `text` begins, or None."""
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(found) if found else None


class StopWatch:
    """Stop sequences over a stream: `feed` each piece and send what it returns, `flush` at the end.

    A piece's tail that could begin a stop sequence (at most the longest one less a character) is held
    back, so no part of a stop sequence is ever sent, even one split across pieces; once a whole one has
    arrived, `stopped` is set and the text before it is the last to go out."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop = stop
        self.longest = max((len(s) for s in stop), default=0)
        self.held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if not self.stop:
            return piece
        if self.stopped:
            return ""
        text = self.held + piece
        at = first_stop(text, self.stop)
        if at is not None:
            self.stopped, self.held = True, ""
            return text[:at]
        keep = next((k for k in range(min(len(text), self.longest - 1), 0, -1)
                     if any(s.startswith(text[-k:]) for s in self.stop)), 0)
        self.held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back when the stream ended without completing a stop sequence."""
        rest, self.held = self.held, ""
        return rest


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, TimeoutError))


__all__ = ["Guarded", "Settled", "StopWatch", "adapt", "cut_at_stop", "first_stop"]
