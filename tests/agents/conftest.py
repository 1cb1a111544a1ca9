"""Fixtures for the agents: processors over fake backends, screenshots, a tiny screen recording.

Fake backends answer with whatever JSON a test scripts (valid, invalid, partially valid) and
record every request, so tests can assert both the agent's output and what each backend saw.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import BackendKind, Request
from synth_media import make_clip


class ScriptedAnswers:
    """A responder that returns the scripted answers in order (the last one repeats)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = [a if isinstance(a, str) else json.dumps(a) for a in answers]
        self.prompts: list[str] = []

    def __call__(self, request: Request) -> str:
        self.prompts.append(request.prompt)
        index = min(len(self.prompts) - 1, len(self.answers) - 1)
        return self.answers[index]


@pytest.fixture
def make_processor(tmp_path: Path) -> Iterator[Callable[..., HybridVLMProcessor]]:
    """Factory: a real HybridVLMProcessor over a fake local and a fake cloud backend.

    `local`/`cloud` are responders (str, callable or ScriptedAnswers); `local_media` narrows what
    the local fake takes (the real FastVLM backend takes images only).
    """
    made: list[HybridVLMProcessor] = []

    def make(
        local: Any = "{}", cloud: Any = "{}", *, local_media: set[str] | None = None, cloud_key: bool = True,
    ) -> HybridVLMProcessor:
        caps = None
        if local_media is not None:
            caps = Capabilities(kind=BackendKind.LOCAL, media=frozenset(local_media), max_images=4)
        backends = {
            "fastvlm": FunctionBackend("fastvlm", local, kind="local", capabilities=caps),
            "gemini": FunctionBackend("gemini", cloud, kind="cloud"),
        }
        processor = HybridVLMProcessor(load_settings(home=tmp_path / "home"), backends=backends, cache=False)
        made.append(processor)
        return processor

    yield make
    for processor in made:
        processor.close()


def calls(processor: HybridVLMProcessor, name: str) -> list[Request]:
    backend = processor.backend(name)
    backend = getattr(backend, "inner", backend)  # cloud fakes sit behind the egress gate
    assert isinstance(backend, FunctionBackend)
    return backend.calls


def png(size: tuple[int, int] = (200, 100), color: tuple[int, int, int] = (240, 240, 240)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def screenshots(tmp_path: Path) -> list[Path]:
    """Two screenshots of different sizes (so pixel boxes can be checked per image)."""
    out = []
    for i, size in enumerate([(200, 100), (400, 300)]):
        path = tmp_path / f"screen-{i}.png"
        path.write_bytes(png(size, (230 - 40 * i, 230, 230)))
        out.append(path)
    return out


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-second clip: red, green, blue, two seconds each."""
    return make_clip(tmp_path_factory.mktemp("clips") / "demo.mp4", [(0, 0, 200), (0, 200, 0), (200, 0, 0)])
