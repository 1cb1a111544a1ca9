"""The egress gate: built around every cloud backend, fail closed, zero bytes for what it refuses.

The cloud side is the real google-genai SDK talking to the fake Gemini on 127.0.0.1 (or the real
OpenAI-compatible backend talking to its fake), so "nothing reached the cloud" is counted at the socket.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest

from cloud.fake_gemini import FakeGeminiServer
from cloud.fake_openai import FakeOpenAIServer
from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.backends.openai_compat import OpenAICompatBackend
from fastvlm_gemini_hybrid.backends.registry import create_backend
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.errors import ConfigurationError, EgressRefusedError
from fastvlm_gemini_hybrid.privacy import ocr
from fastvlm_gemini_hybrid.privacy.gate import EgressGate
from fastvlm_gemini_hybrid.privacy.inspector import Inspector, PrivacyPolicy
from fastvlm_gemini_hybrid.privacy.locality import is_loopback_url
from fastvlm_gemini_hybrid.types import Attachment, Request
from synth_media import encode


def _settings(tmp_path: Any, **extra: Any) -> Settings:
    return load_settings(home=tmp_path / "home", cache_enabled=False, **extra)


@pytest.fixture
def gemini_settings(fake_gemini: FakeGeminiServer, tmp_path: Any) -> Settings:
    return _settings(tmp_path, gemini_api_key=FakeGeminiServer.api_key, gemini_base_url=fake_gemini.base_url,
                     gemini_retries=0, gemini_timeout_s=10.0)



# --------------------------------------------------------------------------- the registry builds the door


@pytest.mark.parametrize(
    ("url", "trusted", "gated"),
    [
        ("http://127.0.0.1:8000/v1", False, False),
        ("http://localhost:11434/v1", False, False),
        ("http://[::1]:8000/v1", False, False),
        ("http+unix://%2Frun%2Fvllm.sock/v1", False, False),
        ("http://10.0.0.7:8000/v1", False, True),
        ("https://api.example.com/v1", False, True),
        ("http://gpu-box.lan:8000/v1", True, False),
    ],
)
def test_openai_is_local_only_on_this_machine_or_when_trusted(tmp_path: Any, url: str, trusted: bool,
                                                              gated: bool) -> None:
    settings = _settings(tmp_path, openai_base_url=url, openai_model="m", openai_trusted=trusted)
    backend = create_backend("openai", settings)
    assert isinstance(backend, EgressGate) is gated
    assert backend.capabilities.is_cloud is gated
    from fastvlm_gemini_hybrid.routing import configured_backends

    planned = {b.name: b for b in configured_backends(settings)}["openai"]
    assert planned.is_cloud is gated  # the router plans it exactly as the registry builds it


def test_every_cloud_backend_from_the_registry_is_behind_the_gate(gemini_settings: Settings) -> None:
    gemini = create_backend("gemini", gemini_settings)
    assert isinstance(gemini, EgressGate) and isinstance(gemini.inner, GeminiBackend)
    local = create_backend("fastvlm", gemini_settings)
    assert isinstance(local, FastVLMBackend)  # in-process: nothing to guard


def test_a_remote_server_cannot_be_declared_local_by_a_capabilities_override(tmp_path: Any) -> None:
    settings = _settings(tmp_path, openai_base_url="http://10.0.0.7:8000/v1", openai_model="m",
                         capabilities={"openai": {"kind": "local"}})
    with pytest.raises(ConfigurationError, match="OPENAI_TRUSTED"):
        create_backend("openai", settings)


def test_loopback_detection() -> None:
    assert is_loopback_url("http://127.9.9.9:1/v1") and is_loopback_url("unix:///tmp/s.sock")
    assert not is_loopback_url("http://192.168.1.2/v1") and not is_loopback_url("http://localhost.evil.com/")
    assert not is_loopback_url(None)


# --------------------------------------------------------------------------- the gate runs, and refuses


async def test_the_gate_runs_on_every_call_of_a_registry_gemini(gemini_settings: Settings,
                                                                fake_gemini: FakeGeminiServer, benign_png: bytes,
                                                                card_png: bytes) -> None:
    gate = create_backend("gemini", gemini_settings)
    assert isinstance(gate, EgressGate)
    try:
        ok = await gate.generate(Request("What does this say?", attachments=(Attachment.from_bytes(benign_png),)))
        assert ok.text.startswith("seen ") and gate.inspections == 1 and len(fake_gemini.model_calls) == 1
        before = fake_gemini.bytes_received
        with pytest.raises(EgressRefusedError, match="payment card") as info:
            await gate.generate(Request("What does this say?", attachments=(Attachment.from_bytes(card_png),)))
        assert info.value.exit_code == 2 and info.value.fallback_allowed
        pieces = []
        with pytest.raises(EgressRefusedError):
            async for piece in gate.stream(Request("Summarise this.", attachments=(Attachment.from_bytes(card_png),))):
                pieces.append(piece)
        card = Attachment.from_bytes(card_png)
        outcomes = await gate.generate_batch([Request("Describe this image.", attachments=(card,))])
        assert isinstance(outcomes[0], EgressRefusedError)
        assert pieces == [] and gate.inspections == 4 and gate.refusals == 3
        assert fake_gemini.bytes_received == before and len(fake_gemini.model_calls) == 1
    finally:
        await gate.aclose()


async def test_a_remote_openai_server_is_gated_too(fake_openai: FakeOpenAIServer, tmp_path: Any,
                                                  card_png: bytes) -> None:
    # The fake listens on loopback, so the override marks it as the hosted service it stands for.
    settings = _settings(tmp_path, openai_base_url=fake_openai.base_url, openai_model="fake-vlm",
                         capabilities={"openai": {"kind": "cloud"}})
    gate = create_backend("openai", settings)
    assert isinstance(gate, EgressGate) and isinstance(gate.inner, OpenAICompatBackend)
    try:
        with pytest.raises(EgressRefusedError):
            await gate.generate(Request("What does this say?", attachments=(Attachment.from_bytes(card_png),)))
        assert fake_openai.requests == []
    finally:
        await gate.aclose()


@pytest.fixture
def fake_openai() -> Any:
    with FakeOpenAIServer() as server:
        yield server


async def test_sensitive_system_text_is_refused_at_the_door(gemini_settings: Settings,
                                                           fake_gemini: FakeGeminiServer) -> None:
    from fastvlm_gemini_hybrid.types import GenerationOptions

    gate = create_backend("gemini", gemini_settings)
    try:
        request = Request("Say hello.", options=GenerationOptions(system="Patient John Doe, SSN 078-05-1120."))
        with pytest.raises(EgressRefusedError, match="system instructions"):
            await gate.generate(request)
        assert fake_gemini.requests == []
    finally:
        await gate.aclose()


# --------------------------------------------------------------------------- fail closed


def test_no_ocr_means_no_picture_leaves(monkeypatch: pytest.MonkeyPatch, benign_png: bytes) -> None:
    def missing() -> Any:
        raise ocr.OcrUnavailable(f"no local OCR is installed (rapidocr_onnxruntime); run: {ocr.INSTALL_HINT}")

    monkeypatch.setattr(ocr, "engine", missing)
    inspector = Inspector()
    try:
        verdict = inspector.inspect(Request("What does this say?", attachments=(Attachment.from_bytes(benign_png),)))
    finally:
        inspector.close()
    assert verdict.refused and "pip install 'rapidocr-onnxruntime" in verdict.reason
    assert len(verdict.reason.splitlines()) == 1


def test_an_unfetched_url_cannot_be_inspected_but_youtube_is_public() -> None:
    inspector = Inspector()
    try:
        url = inspector.inspect(Request("What is this?", attachments=(Attachment.from_url("https://example.com/a.png"),)))
        yt = inspector.inspect(Request("Summarise", attachments=(
            Attachment.from_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ"),)))
    finally:
        inspector.close()
    assert url.refused and "cannot be inspected" in url.reason
    assert yt.verdict == "allow"


def test_a_picture_that_does_not_decode_stays_here() -> None:
    broken = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    inspector = Inspector()
    try:
        verdict = inspector.inspect(Request("What is this?", attachments=(Attachment.from_bytes(broken),)))
    finally:
        inspector.close()
    assert verdict.refused and "could not be inspected" in verdict.reason


def test_each_picture_is_read_once_per_process(benign_png: bytes) -> None:
    inspector = Inspector()
    try:
        att = Attachment.from_bytes(benign_png)
        for prompt in ("What does this say?", "Translate it", "Summarise"):
            assert inspector.inspect(Request(prompt, attachments=(att,))).verdict == "allow"
    finally:
        inspector.close()
    assert inspector.pictures_read == 1


def test_an_animated_picture_is_read_frame_by_frame(card_png: bytes, benign_png: bytes) -> None:
    from PIL import Image

    frames = [Image.open(io.BytesIO(benign_png)).convert("RGB"), Image.open(io.BytesIO(card_png)).convert("RGB")]
    gif = encode(frames, "gif", duration=500)
    inspector = Inspector()
    try:
        verdict = inspector.inspect(Request("What is this?", attachments=(Attachment.from_bytes(gif),)))
    finally:
        inspector.close()
    assert verdict.refused and any(f.kind == "card" for f in verdict.findings)


# --------------------------------------------------------------------------- redaction


async def test_image_text_redact_blacks_out_only_the_card_number(gemini_settings: Settings,
                                                                 fake_gemini: FakeGeminiServer,
                                                                 card_png: bytes) -> None:
    import numpy as np
    from PIL import Image

    settings = gemini_settings.model_copy(update={"privacy_image_text": "redact"})
    inspector = Inspector(PrivacyPolicy.from_settings(settings))
    gate = create_backend("gemini", settings, inspector)
    try:
        await gate.generate(Request("What does this say?", attachments=(Attachment.from_bytes(card_png),)))
    finally:
        await gate.aclose()
    [sent] = fake_gemini.inline_images()
    before = np.asarray(Image.open(io.BytesIO(card_png)).convert("RGB"), dtype=np.int16)
    after = np.asarray(Image.open(io.BytesIO(sent)).convert("RGB"), dtype=np.int16)
    changed = np.abs(after - before).max(axis=2) > 0
    assert 0.01 < changed.mean() < 0.5  # something was blacked out, most of the picture is untouched
    second = Inspector()
    try:
        again = second.inspect(Request("What does this say?", attachments=(Attachment.from_bytes(sent),)))
    finally:
        second.close()
    assert not any(f.kind == "card" for f in again.findings)  # what reached the cloud no longer shows it


def test_route_style_explanations_name_categories_not_values(card_png: bytes) -> None:
    inspector = Inspector()
    try:
        verdict = inspector.inspect(Request("What does this say?", attachments=(Attachment.from_bytes(card_png),)),
                                    explain=True)
    finally:
        inspector.close()
    text = str(verdict.to_dict())
    assert "payment card" in text and "4539" not in text and "MORGAN" not in text.upper().replace("CARD", "")


def test_the_data_uri_of_a_redacted_picture_is_not_inspected_twice(card_png: bytes) -> None:
    inspector = Inspector(PrivacyPolicy(image_text="redact"))
    try:
        first = inspector.inspect(Request("What does this say?", attachments=(Attachment.from_bytes(card_png),)))
        assert first.verdict == "redact" and first.request is not None
        reads = inspector.pictures_read
        second = inspector.inspect(first.request)
    finally:
        inspector.close()
    assert second.verdict == "allow" and inspector.pictures_read == reads
    assert base64.b64encode(first.request.attachments[0].data or b"")  # a real picture, not a placeholder
