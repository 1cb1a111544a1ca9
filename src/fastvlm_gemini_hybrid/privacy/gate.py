"""The egress gate: the one door every backend off this machine sits behind.

    cloud backend = EgressGate(GeminiBackend | remote OpenAI-compatible, inspector)

The registry builds every non-local backend inside this wrapper (backends/registry.py), and the
processor wraps cloud backends injected by callers too, so no code path, present or future, reaches
the network around it. Each call (`generate`, `stream`, `generate_batch`, `count_tokens`) first
inspects exactly what would be sent (inspector.py) and then:

- allow   -> the inner backend gets the request unchanged;
- redact  -> it gets the redacted pictures (text blacked out, faces blurred);
- refuse  -> `EgressRefusedError` (a `PolicyViolationError`: exit 2, HTTP 403 when nothing local answers).

Fail closed: a picture that cannot be inspected counts as refused. The router's early check stays,
for planning and explanations; this is the enforcement. `gate.inspections` counts what passed the
door, so a test can show the gate ran for every cloud backend the registry builds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..backends.base import Backend, Capabilities, Health
from ..errors import EgressRefusedError
from ..types import Generation, Request
from .inspector import Inspection, Inspector


class EgressGate(Backend):
    """Wraps a backend that is not on this machine; see the module docstring."""

    def __init__(self, inner: Backend, inspector: Inspector) -> None:
        if isinstance(inner, EgressGate):
            raise TypeError("the backend is already behind an egress gate")
        self.inner = inner
        self.inspector = inspector
        self.name = inner.name
        self.default_model = inner.default_model
        #: inspections made at this door (every call makes one)
        self.inspections = 0
        self.refusals = 0

    # Capabilities live on the inner backend (config overrides are applied to it).
    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self.inner.capabilities = value

    def __getattr__(self, item: str) -> Any:
        # circuit_state, model_name, retries, ...: everything but the calls is the inner backend's.
        if item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)

    async def clear(self, request: Request) -> Request:
        """What may leave for `request`: itself, its redacted form, or `EgressRefusedError`."""
        inspection = await self.inspector.ainspect(request)
        self.inspections += 1
        return self._outgoing(inspection)

    def _outgoing(self, inspection: Inspection) -> Request:
        if inspection.refused or inspection.request is None:
            self.refusals += 1
            raise EgressRefusedError(
                f"kept on this machine: {inspection.reason}; {self.name} is not on this machine",
                self.name, inspection.findings,
            )
        return inspection.request

    async def generate(self, request: Request) -> Generation:
        return await self.inner.generate(await self.clear(request))

    async def stream(self, request: Request) -> AsyncIterator[str]:
        cleared = await self.clear(request)
        async for piece in self.inner.stream(cleared):
            yield piece

    async def generate_batch(self, requests: list[Request]) -> list[Generation | BaseException]:
        out: list[Generation | BaseException | None] = [None] * len(requests)
        allowed: list[tuple[int, Request]] = []
        for i, request in enumerate(requests):
            try:
                allowed.append((i, await self.clear(request)))
            except EgressRefusedError as exc:
                out[i] = exc
        if allowed:
            answers = await self.inner.generate_batch([req for _, req in allowed])
            for (i, _), answer in zip(allowed, answers, strict=True):
                out[i] = answer
        return out  # type: ignore[return-value]

    async def count_tokens(self, request: Request) -> int:
        return await self.inner.count_tokens(await self.clear(request))  # type: ignore[attr-defined]

    async def health(self) -> Health:
        return await self.inner.health()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def check(self, request: Request) -> None:
        self.inner.check(request)

    def __repr__(self) -> str:
        return f"<EgressGate {self.inner!r}>"


def gated(backend: Backend, inspector: Inspector) -> Backend:
    """`backend` behind the gate when it is not on this machine (idempotent)."""
    if isinstance(backend, EgressGate) or not backend.capabilities.is_cloud:
        return backend
    return EgressGate(backend, inspector)


__all__ = ["EgressGate", "gated"]
