"""The tiny FastVLM through the product's own processor and backend registry, as users run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import Attachment, Mode, Request
from synth_media import picture_file

from .conftest import tiny_settings


async def test_sensitive_request_is_answered_by_the_local_model(
        tiny_model_dir: Path, tmp_path: Path, make_image) -> None:
    settings = tiny_settings(tiny_model_dir, tmp_path / "home")
    processor = HybridVLMProcessor(settings=settings)
    # the registry builds FastVLMBackend(settings) itself; only the cloud side is a test double
    processor._backends["gemini"] = FunctionBackend("gemini", "cloud answer (test double)", kind="cloud")
    try:
        result = await processor.arun(Request(prompt="What does this scan show?", attachments=(make_image(),),
                                              sensitive=True, mode=Mode.LOCAL_ONLY))
    finally:
        await processor.aclose()
    assert result.backend == "fastvlm"
    assert result.response.strip() and result.usage.output_tokens > 0
    assert result.confidence is not None
    assert processor._backends["gemini"].calls == []  # type: ignore[attr-defined]


async def test_missing_local_weights_surface_the_pull_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              make_image) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    processor = HybridVLMProcessor(settings=tiny_settings("fastvlm-0.5b", tmp_path / "home"))
    image: Attachment = make_image()
    try:
        with pytest.raises(Exception) as info:
            await processor.arun(Request(prompt="Describe", attachments=(image,), sensitive=True,
                                         mode=Mode.LOCAL_ONLY))
    finally:
        await processor.aclose()
    assert "fastvlm-hybrid models pull fastvlm-0.5b" in str(info.value)
    assert getattr(info.value, "exit_code", None) == 2


def test_ask_in_a_subprocess_answers_locally(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The whole product path: CLI -> processor -> registry -> FastVLMBackend -> tiny model."""
    import json
    import os
    import subprocess
    import sys

    image = picture_file(tmp_path, "wide.png", color=(20, 160, 60), size=(300, 120))
    env = {**os.environ, "FASTVLM_HYBRID_HOME": str(tmp_path / "home"),
           "FASTVLM_HYBRID_LOCAL_MODEL": str(tiny_model_dir), "FASTVLM_HYBRID_DTYPE": "float32",
           "FASTVLM_HYBRID_CACHE_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid", "ask", "What is this?", "-a", str(image),
                           "--mode", "local-only", "--sensitive", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["backend"] == "fastvlm" and answer["model"] == tiny_model_dir.name
    assert answer["usage"]["output_tokens"] > 0 and answer["usage"]["cost_usd"] == 0.0
    assert 0.0 <= answer["confidence"] <= 1.0
