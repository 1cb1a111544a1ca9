"""Plain data types shared by every layer: requests, attachments, results, routing decisions.

Nothing here imports a heavy dependency; `route` and `--help` must start fast.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, ClassVar

from .attachment import SUPPORTED_MIME_PREFIXES, Attachment, sniff_mime
from .errors import BadInputError

__all__ = [  # what other modules import from here (attachment.py's names included)
    "SUPPORTED_MIME_PREFIXES", "Attachment", "Attempt", "BackendKind", "Domain", "Generation", "GenerationOptions",
    "Latency", "Mode", "Request", "Result", "RouteDecision", "RuleHit", "Task", "Turn", "Usage", "new_id",
    "sniff_mime",
]


class _StrEnum(str, Enum):
    """`enum.StrEnum` for Python 3.10: members compare equal to their string values."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def parse(cls, value: str | _StrEnum) -> Any:
        """Parse a user-supplied value, raising `BadInputError` that lists the valid choices."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower().replace("_", "-")
        for member in cls:
            if member.value == text:
                return member
        choices = ", ".join(m.value for m in cls)
        raise BadInputError(f"unknown {cls.__name__.lower()} {value!r}; choose one of: {choices}")


class Mode(_StrEnum):
    LOCAL_ONLY = "local-only"
    CLOUD_ONLY = "cloud-only"
    AUTO = "auto"
    PARALLEL = "parallel"
    FALLBACK = "fallback"


class Domain(_StrEnum):
    MEDICAL = "medical"
    FINANCIAL = "financial"
    LEGAL = "legal"
    SECURITY = "security"
    TECHNICAL = "technical"
    EDUCATIONAL = "educational"
    CREATIVE = "creative"
    GENERAL = "general"


class Latency(_StrEnum):
    REALTIME = "realtime"
    LOW_LATENCY = "low-latency"
    NORMAL = "normal"
    BATCH = "batch"


class Task(_StrEnum):
    DESCRIBE = "describe"
    CAPTION = "caption"
    OCR = "ocr"
    QUESTION = "question"
    DETECT = "detect"
    COMPARE = "compare"
    REASONING = "reasoning"
    VIDEO = "video"
    YOUTUBE = "youtube"
    STRUCTURED = "structured"


class BackendKind(_StrEnum):
    LOCAL = "local"
    CLOUD = "cloud"


# --------------------------------------------------------------------------- attachments
# `Attachment` and MIME sniffing live in attachment.py; re-exported above with every other request type.

# --------------------------------------------------------------------------- requests

_ids = itertools.count()


def new_id() -> str:
    """A 32-hex-digit id, time-ordered and unique per machine (time, process, counter).

    Request and audit ids need uniqueness, not secrecy; uuid4's random syscall showed up at ~5% of a
    loaded server's main thread."""
    return f"{time.time_ns():016x}{os.getpid() & 0xFFFF:04x}{next(_ids) & 0xFFFFFFFFFFFF:012x}"



@dataclass(frozen=True)
class GenerationOptions:
    """Knobs every backend understands; part of the cache key."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    system: str | None = None
    json_schema: dict[str, Any] | None = None
    #: where the answer ends (OpenAI's `stop`): it is cut before the first of these, which never appears in it
    stop: tuple[str, ...] = ()
    #: stop sequences per request, as OpenAI allows (not a field)
    MAX_STOP: ClassVar[int] = 4

    def __post_init__(self) -> None:
        # One place for every face (CLI, HTTP, OpenAI API, agents): a NaN or a negative count must be a
        # 400 / exit 2 here, never a backend's stack trace later. The upper bound on max_tokens is the
        # settings' (`max_tokens_limit`), checked by the processor.
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise BadInputError(f"max_tokens must be a positive whole number, got {self.max_tokens!r}")
        for name, value, low, high, low_open in (("temperature", self.temperature, 0.0, 2.0, False),
                                                 ("top_p", self.top_p, 0.0, 1.0, True)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise BadInputError(f"{name} must be a finite number, got {value!r}")
            if value > high or value < low or (low_open and value == low):
                raise BadInputError(f"{name} must lie in {'(' if low_open else '['}{low:g}, {high:g}], got {value:g}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise BadInputError(f"seed must be a whole number, got {self.seed!r}")
        if isinstance(self.stop, list):  # a list from JSON or YAML is the same sequences; kept hashable
            object.__setattr__(self, "stop", tuple(self.stop))
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) and s for s in self.stop):
            raise BadInputError(f"stop must be a list of non-empty strings, got {self.stop!r}")
        if len(self.stop) > self.MAX_STOP:
            raise BadInputError(f"stop takes at most {self.MAX_STOP} sequences, got {len(self.stop)}")

    def key(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Turn:
    """An earlier turn of a conversation: who said it, what, and how many of the request's attachments are
    its pictures (taken in order from the front of `Request.attachments`; the rest belong to the prompt)."""

    role: str  # user or assistant
    text: str
    images: int = 0

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise BadInputError(f"a turn's role is user or assistant, got {self.role!r}")
        if not isinstance(self.text, str):
            raise BadInputError("a turn's text must be a string")
        if isinstance(self.images, bool) or not isinstance(self.images, int) or self.images < 0:
            raise BadInputError(f"a turn's image count must be a whole number >= 0, got {self.images!r}")


@dataclass(frozen=True)
class Request:
    """What a user asks: a prompt, media and hints. Hints left as None are detected by the router.

    `history` holds a conversation's earlier turns; the prompt is the last user turn. Every attachment
    stays in `attachments` (so every check, the privacy gate included, sees every picture), and each turn
    says how many of them are its own.
    """

    prompt: str
    attachments: tuple[Attachment, ...] = ()
    mode: Mode | None = None
    domain: Domain | None = None
    sensitive: bool | None = None
    latency: Latency | None = None
    max_latency_ms: int | None = None
    #: a backend (`gemini`), `backend/model` or a model one backend serves (`gemini-2.5-flash`): pins the request
    model: str | None = None
    #: the backend the request is pinned to, once the router resolved `model` (or set by the caller)
    backend: str | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)
    user: str | None = None
    request_id: str = field(default_factory=lambda: new_id())
    #: a stricter face policy for this request than the settings' (allow < redact < local); never looser
    privacy_faces: str | None = None
    #: earlier turns of a conversation, oldest first
    history: tuple[Turn, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise BadInputError("the prompt is empty")
        if self.history and sum(t.images for t in self.history) > len(self.attachments):
            raise BadInputError("the conversation's turns claim more pictures than the request has")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise BadInputError("max latency must be a positive number of milliseconds")
        if self.privacy_faces not in (None, "allow", "redact", "local"):
            raise BadInputError(f"unknown face policy {self.privacy_faces!r}; choose one of: allow, redact, local")

    def conversation_text(self) -> str:
        """The prompt with the earlier turns written before it: for a backend that takes one message, and
        for what identifies the request (cache key, audit)."""
        if not self.history:
            return self.prompt
        earlier = "\n".join(f"{t.role.capitalize()}: {t.text}" for t in self.history)
        return f"Conversation so far:\n{earlier}\n\nUser: {self.prompt}"

    def flattened(self) -> Request:
        """This request as one message (what a backend without `Capabilities.conversation` gets)."""
        if not self.history:
            return self
        return replace(self, prompt=self.conversation_text(), history=())

    def turn_images(self) -> list[tuple[Attachment, ...]]:
        """The pictures of each earlier turn, then the prompt's own (one entry more than `history`)."""
        out, start = [], 0
        for turn in self.history:
            out.append(self.attachments[start : start + turn.images])
            start += turn.images
        out.append(self.attachments[start:])
        return out


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RuleHit:
    name: str
    reason: str


@dataclass(frozen=True)
class RouteDecision:
    """The router's answer: which backends may see the request, in order, and why."""

    mode: Mode
    domain: Domain
    sensitive: bool
    latency: Latency
    task: Task
    backends: tuple[str, ...]
    cloud_allowed: bool
    rules: tuple[RuleHit, ...] = ()
    escalate_below: float | None = None
    sensitivity_reasons: tuple[str, ...] = ()
    #: what the egress gate found in the pictures and did (privacy/inspector.py), once it has looked
    privacy: dict[str, Any] | None = field(default=None, compare=False)
    #: the backend the request names (it answers; in fallback mode the others follow), and its model
    pinned: str | None = None
    pinned_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode.value,
            "domain": self.domain.value,
            "sensitive": self.sensitive,
            "latency": self.latency.value,
            "task": self.task.value,
            "backends": list(self.backends),
            "cloud_allowed": self.cloud_allowed,
            "rules": [{"name": r.name, "reason": r.reason} for r in self.rules],
            "escalate_below": self.escalate_below,
            "sensitivity_reasons": list(self.sensitivity_reasons),
        }
        if self.privacy is not None:
            out["privacy"] = self.privacy
        if self.pinned is not None:
            out["pinned"] = {"backend": self.pinned, "model": self.pinned_model}
        return out


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Generation:
    """What a backend returns for one request."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    confidence: float | None = None
    finish_reason: str | None = None
    blocked: bool = False
    #: set by the execution plan (execution/): the backend that answered, what failed before it, and in
    #: parallel mode with `return_all` the other answers
    backend: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    alternatives: list[Generation] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence}")


@dataclass(frozen=True)
class Attempt:
    backend: str
    error: str


@dataclass
class Result:
    """The answer to a request, with everything needed to explain it (the `ask --json` object)."""

    response: str
    backend: str
    model: str
    mode: Mode
    route: RouteDecision
    cached: bool = False
    latency_ms: float = 0.0
    usage: Usage = field(default_factory=Usage)
    confidence: float | None = None
    fallbacks: list[Attempt] = field(default_factory=list)
    blocked: bool = False
    finish_reason: str | None = None
    request_id: str = ""
    alternatives: list[Result] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "response": self.response,
            "backend": self.backend,
            "model": self.model,
            "mode": self.mode.value,
            "route": self.route.to_dict(),
            "cached": self.cached,
            "latency_ms": round(self.latency_ms, 3),
            "usage": asdict(self.usage),
            "confidence": self.confidence,
            "fallbacks": [asdict(a) for a in self.fallbacks],
            "blocked": self.blocked,
            "finish_reason": self.finish_reason,
            "request_id": self.request_id,
        }
        if self.alternatives:
            out["alternatives"] = [a.to_dict() for a in self.alternatives]
        return out
