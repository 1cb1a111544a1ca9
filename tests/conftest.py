"""Fixtures shared by every test area: an isolated home directory, sample media, processors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloud.fake_gemini import FakeGeminiServer
from fakes import fake_backends as _fake_backends
from fakes import make_processor
from fastvlm_gemini_hybrid.backends.base import Backend
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from synth_media import picture, picture_file


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the developer's settings, keys or cache."""
    home = tmp_path_factory.mktemp("home")
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "FASTVLM_HYBRID_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    import os

    for var in list(os.environ):
        if var.startswith("FASTVLM_HYBRID_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FASTVLM_HYBRID_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def fake_gemini() -> Iterator[FakeGeminiServer]:
    """The fake Gemini REST server on 127.0.0.1 (tests/cloud/fake_gemini.py), recording every byte."""
    with FakeGeminiServer() as server:
        yield server


@pytest.fixture
def cloud_env(fake_gemini: FakeGeminiServer, monkeypatch: pytest.MonkeyPatch) -> FakeGeminiServer:
    """GEMINI_API_KEY and GOOGLE_GEMINI_BASE_URL pointing the real SDK (and the CLI) at the fake."""
    monkeypatch.setenv("GEMINI_API_KEY", FakeGeminiServer.api_key)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake_gemini.base_url)
    monkeypatch.setenv("FASTVLM_HYBRID_GEMINI_RETRIES", "0")
    return fake_gemini


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def png_bytes() -> bytes:
    """A plain 64x48 red PNG (tests/synth_media.py's `picture()` defaults)."""
    return picture()


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    """That PNG as tmp_path/photo.png."""
    return picture_file(tmp_path, "photo.png")


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """`picture(color, size, fmt, ...)` from tests/synth_media.py: encoded picture bytes."""
    return picture


@pytest.fixture
def processor_factory() -> Callable[..., HybridVLMProcessor]:
    """`make_processor(settings, local=..., cloud=..., *, local_kw, cloud_kw, backends, **processor_kw)`
    from tests/fakes.py: a HybridVLMProcessor over FunctionBackends (see that module for every option)."""
    return make_processor


@pytest.fixture
def fake_backends() -> Callable[..., dict[str, Backend]]:
    """Factory: the local ("fastvlm") and cloud ("gemini") FunctionBackends `processor_factory` builds."""
    return _fake_backends


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's chromium for Playwright. CI must have it (.ci/install-browser.sh): there a missing
    browser fails the run instead of skipping the browser tests."""
    import os

    path = os.environ.get("FASTVLM_HYBRID_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no chromium at {path}; .ci/install-browser.sh installs it")
        pytest.skip(f"no chromium at {path} (apt-get install chromium, or bash .ci/install-browser.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed; pip install 'fastvlm-gemini-hybrid[browser]'")
        pytest.skip("playwright is not installed: pip install 'fastvlm-gemini-hybrid[browser]'")
    return path
