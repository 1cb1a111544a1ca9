"""Fixtures for the local-model tests: one tiny random FastVLM per session, built by the same
builder as `fastvlm-hybrid models make-tiny`, and loaded through the same backend users run."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.models.tiny import build_tiny_model
from fastvlm_gemini_hybrid.types import Attachment


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


def image_bytes(color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (96, 64),
                fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def make_image() -> Callable[..., Attachment]:
    def make(color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (96, 64)) -> Attachment:
        return Attachment.from_bytes(image_bytes(color, size), name=f"img-{color}-{size}.png")

    return make
