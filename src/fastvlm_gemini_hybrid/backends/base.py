"""The backend contract: one required async method, capabilities as data, a health probe.

A backend turns a `Request` into a `Generation` or raises a `BackendError` subclass (see
`errors.py` for which of those let the processor fall back). Everything else has a default.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import BadInputError
from ..types import BackendKind, Generation, Request

if TYPE_CHECKING:
    from ..config import Settings


@dataclass(frozen=True)
class Capabilities:
    """What a backend can take, as data (overridable per backend in config)."""

    kind: BackendKind
    media: frozenset[str] = frozenset({"image"})  # of: image, video, youtube, dicom
    max_images: int = 1
    streaming: bool = False
    batching: bool = False
    json_schema: bool = False
    confidence: bool = False
    #: takes a conversation's earlier turns as turns (else they arrive written into one prompt)
    conversation: bool = False
    #: model-name prefixes this backend serves (lower case): `--model gemini-2.5-flash` pins Gemini
    models: tuple[str, ...] = ()

    @property
    def is_cloud(self) -> bool:
        return self.kind is BackendKind.CLOUD

    def serves(self, model: str) -> bool:
        """Whether `model` is one of this backend's models (by prefix, case-insensitive)."""
        name = model.lower()
        return any(name.startswith(prefix) for prefix in self.models)

    def accepts(self, request: Request) -> str | None:
        """None if the request fits; otherwise why not (one short phrase)."""
        kinds = [a.kind for a in request.attachments]
        for kind in kinds:
            if kind not in self.media:
                return f"cannot take {kind} input"
        images = sum(1 for k in kinds if k in ("image", "dicom"))
        if images > self.max_images:
            return f"takes at most {self.max_images} image(s), got {images}"
        return None

    def with_overrides(self, overrides: dict[str, Any]) -> Capabilities:
        data = dict(overrides)
        if "media" in data:
            data["media"] = frozenset(data["media"])
        if "kind" in data:
            data["kind"] = BackendKind.parse(data["kind"])
        if "models" in data:
            data["models"] = tuple(str(m).lower() for m in data["models"])
        return replace(self, **data)


@dataclass
class Health:
    """A backend's state, for `/readyz`, `models list` and the router."""

    ready: bool
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "detail": self.detail, **self.extra}


class Backend(ABC):
    """Base class of every backend. Subclasses set `name`, `capabilities` and `generate`."""

    name: str = "backend"
    capabilities: Capabilities = Capabilities(kind=BackendKind.LOCAL)
    #: the model name reported in results when the request names none
    default_model: str = ""

    @abstractmethod
    async def generate(self, request: Request) -> Generation:
        """Answer one request. Raise a `BackendError` subclass on failure, never return None."""

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield the answer in pieces. The default yields the whole answer once."""
        result = await self.generate(request)
        yield result.text

    async def stream_answer(self, request: Request) -> AsyncIterator[str | Generation]:
        """Pieces as `stream` yields them, then the whole answer as a `Generation` (always last).

        What the execution plan consumes: a composite (fallback, parallel, escalation) must say at the end
        which backend answered and what failed first. A backend that knows more (usage) may override it.
        """
        pieces: list[str] = []
        async for piece in self.stream(request):
            pieces.append(piece)
            yield piece
        yield Generation(text="".join(pieces), model=request.model or self.default_model, backend=self.name)

    async def generate_batch(self, requests: list[Request]) -> list[Generation | BaseException]:
        """Answer several requests; backends with real batching override this."""
        out: list[Generation | BaseException] = []
        for req in requests:
            try:
                out.append(await self.generate(req))
            except Exception as exc:  # noqa: BLE001 - each item reports its own failure
                out.append(exc)
        return out

    async def health(self) -> Health:
        return Health(ready=True)

    async def unload(self) -> bool:
        """Free the loaded model's memory now; the next request loads it again. True when something was freed.

        The keep-alive (server/keep_alive.py, the Ollama API's `keep_alive`) calls it when the backend has
        been idle long enough. The default has nothing to free: a cloud backend or a remote server holds
        no model here. A backend that is busy answering may decline (False); it is asked again later.
        """
        return False

    async def aclose(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release clients, models and files. Safe to call twice."""

    def check(self, request: Request) -> None:
        """Raise `BadInputError` if this backend cannot take the request's media."""
        why = self.capabilities.accepts(request)
        if why:
            raise BadInputError(f"{self.name} {why}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.capabilities.kind.value}>"


def settings_or_default(settings: Settings | None) -> Settings:
    """`settings`, or the effective ones (flags > env > file > defaults) when a backend is built alone."""
    if settings is not None:
        return settings
    from ..config import load_settings

    return load_settings()


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
