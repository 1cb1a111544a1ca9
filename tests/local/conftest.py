"""Fixtures for the local-model tests: one tiny random FastVLM per session, built by the same
builder as `fastvlm-hybrid models make-tiny`, and loaded through the same backend users run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.models.tiny import build_tiny_model
from fastvlm_gemini_hybrid.types import Attachment
from synth_media import picture_attachment


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-fastvlm"), seed=0)


def tiny_settings(model: Path | str, home: Path, **overrides: object) -> Settings:
    """Settings pointing at `model`; float32 on CPU so outputs are exactly repeatable."""
    values: dict[str, object] = {"home": home, "local_model": str(model), "device": "cpu", "dtype": "float32"}
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FastVLMBackend:
    """One loaded backend shared by the session, as one process shares one model."""
    backend = FastVLMBackend(tiny_settings(tiny_model_dir, tmp_path_factory.mktemp("home")))
    backend.load()
    return backend


#: The local tests' picture unless they say otherwise (tests/synth_media.py draws it).
LOCAL_COLOR, LOCAL_SIZE = (200, 40, 40), (96, 64)


@pytest.fixture
def make_image() -> Callable[..., Attachment]:
    """`make(color, size)`: a plain PNG attachment named after its colour and size."""

    def make(color: tuple[int, int, int] = LOCAL_COLOR, size: tuple[int, int] = LOCAL_SIZE) -> Attachment:
        return picture_attachment(f"img-{color}-{size}.png", color=color, size=size)

    return make
