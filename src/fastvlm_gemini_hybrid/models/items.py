"""What goes into and comes out of the local runtime: plain data, shared by `runtime` and `decoding`
(kept apart so that neither has to import the other for its types)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..types import GenerationOptions


@dataclass(frozen=True)
class ImageInput:
    data: bytes
    sha256: str
    name: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, name: str | None = None) -> ImageInput:
        return cls(data=data, sha256=hashlib.sha256(data).hexdigest(), name=name)


@dataclass(frozen=True)
class GenItem:
    """One prompt with its images and generation options."""

    prompt: str
    images: tuple[ImageInput, ...] = ()
    options: GenerationOptions = field(default_factory=GenerationOptions)
    #: earlier turns: (role, text, how many of `images` are theirs, taken from the front in order)
    history: tuple[tuple[str, str, int], ...] = ()


@dataclass
class GenOutput:
    text: str
    token_ids: list[int]
    input_tokens: int
    confidence: float | None
    finish_reason: str
    ttft_s: float
    total_s: float

    @property
    def output_tokens(self) -> int:
        return len(self.token_ids)
