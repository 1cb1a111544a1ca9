"""Fixtures for the video tests: synthetic clips written to a temp dir, a zones file, fake processors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakes import fake_backends
from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.types import BackendKind

from . import synth


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each synthetic clip once per session (encoding is the slow part)."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "walker": synth.make_clip(d / "walker.mp4", 12.0, synth.walker()),
        "static": synth.make_clip(d / "static.mp4", 8.0, lambda t: []),
        "flash": synth.make_clip(d / "flash.mp4", 8.0, lambda t: [], flash_at=[3.0, 5.5]),
    }


@pytest.fixture
def zones_file(tmp_path: Path) -> Path:
    path = tmp_path / "zones.yaml"
    path.write_text(synth.ZONES_YAML)
    return path


@pytest.fixture
def fake_video_backends() -> Callable[..., dict[str, FunctionBackend]]:
    """FunctionBackends shaped like the real ones: the local one takes images only, the cloud one video too."""

    def make(local: Any = "a person", cloud: Any = "cloud says", local_conf: float | None = 0.9) -> dict[str, Any]:
        caps = Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image"}), confidence=True)
        return fake_backends(local, cloud, local_kw={"confidence": local_conf, "capabilities": caps})

    return make
