"""Fixtures for the agents: processors over fake backends, screenshots, a tiny screen recording.

Fake backends answer with whatever JSON a test scripts (valid, invalid, partially valid) and
record every request, so tests can assert both the agent's output and what each backend saw.
Processors come from tests/fakes.py and pictures from tests/synth_media.py (tests/core/test_test_layout.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import fakes
from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import BackendKind, Request
from synth_media import make_clip, picture_file

#: the light grey of the agents' synthetic screenshots, photos and receipts
GREY = (240, 240, 240)


class ScriptedAnswers:
    """A responder that returns the scripted answers in order (the last one repeats)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = [a if isinstance(a, str) else json.dumps(a) for a in answers]
        self.prompts: list[str] = []

    def __call__(self, request: Request) -> str:
        self.prompts.append(request.prompt)
        index = min(len(self.prompts) - 1, len(self.answers) - 1)
        return self.answers[index]


@pytest.fixture(name="make_processor")
def agent_processors(tmp_path: Path) -> Iterator[Callable[..., HybridVLMProcessor]]:
    """Factory `make_processor(local="{}", cloud="{}", *, local_media=None)`: `fakes.make_processor` over a
    fake local and a fake cloud backend, without a cache, closed after the test.

    `local`/`cloud` are responders (str, callable or ScriptedAnswers); `local_media` narrows what
    the local fake takes (the real FastVLM backend takes images only).
    """
    made: list[HybridVLMProcessor] = []

    def make(local: Any = "{}", cloud: Any = "{}", *, local_media: set[str] | None = None) -> HybridVLMProcessor:
        local_kw = None
        if local_media is not None:
            caps = Capabilities(kind=BackendKind.LOCAL, media=frozenset(local_media), max_images=4)
            local_kw = {"capabilities": caps}
        processor = fakes.make_processor(load_settings(home=tmp_path / "home"), local, cloud, local_kw=local_kw,
                                         cache=False)
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


@pytest.fixture
def screenshots(tmp_path: Path) -> list[Path]:
    """Two screenshots of different sizes (so pixel boxes can be checked per image)."""
    return [picture_file(tmp_path, f"screen-{i}.png", color=(230 - 40 * i, 230, 230), size=size)
            for i, size in enumerate([(200, 100), (400, 300)])]


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-second clip: red, green, blue, two seconds each."""
    return make_clip(tmp_path_factory.mktemp("clips") / "demo.mp4", [(0, 0, 200), (0, 200, 0), (200, 0, 0)])
