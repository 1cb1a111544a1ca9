"""Fixtures for the cloud backends: fake servers on 127.0.0.1 and backends pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.backends.openai_compat import OpenAICompatBackend
from fastvlm_gemini_hybrid.config import Settings, load_settings
from synth_media import picture

from .fake_gemini import FakeGeminiServer
from .fake_openai import FakeOpenAIServer


class FakeClock:
    """A monotonic clock tests move by hand (circuit-breaker timing without sleeping)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def gemini_settings(fake_gemini: FakeGeminiServer, tmp_path: Any) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        gemini_api_key=FakeGeminiServer.api_key,
        gemini_base_url=fake_gemini.base_url,
        gemini_timeout_s=5.0,
        gemini_retries=0,
    )


@pytest.fixture
async def gemini(gemini_settings: Settings, clock: FakeClock) -> AsyncIterator[GeminiBackend]:
    backend = GeminiBackend(gemini_settings, clock=clock)
    backend.files_poll_interval_s = 0.01
    yield backend
    await backend.aclose()


@pytest.fixture
async def openai_backend(fake_openai: FakeOpenAIServer, tmp_path: Any, clock: FakeClock) -> AsyncIterator[
    OpenAICompatBackend
]:
    settings = load_settings(
        home=tmp_path / "home", openai_base_url=fake_openai.base_url, openai_model="fake-vlm", openai_timeout_s=5.0
    )
    backend = OpenAICompatBackend(settings, clock=clock)
    yield backend
    await backend.aclose()


def jpeg_with_gps(size: tuple[int, int] = (64, 48), orientation: int | None = None) -> bytes:
    """A JPEG carrying camera EXIF, a GPS position, XMP and a comment (all must be stripped)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "SecretCamCorp"  # Make
    exif[0x0131] = "SecretSoftware"  # Software
    if orientation is not None:
        exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>51,30N</exif:GPSLatitude></x:xmpmeta>'
    return picture((30, 140, 220), size, "jpeg", exif=exif, xmp=xmp, comment=b"home address: 1 Secret Lane",
                   quality=90)
