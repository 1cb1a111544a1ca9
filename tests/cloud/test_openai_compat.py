"""OpenAICompatBackend against a fake vLLM/Ollama-style server."""

from __future__ import annotations

import base64
import functools

import pytest

from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.openai_compat import OpenAICompatBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import (
    BackendRejectedError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigurationError,
    PolicyViolationError,
    RateLimitedError,
    ServerError,
)
from fastvlm_gemini_hybrid.types import Attachment, BackendKind, GenerationOptions, Request
from synth_media import picture_attachment

from .conftest import FakeClock, jpeg_with_gps
from .fake_openai import FakeOpenAIServer

_png = functools.partial(picture_attachment, None, color=(9, 8, 7), size=(6, 6))  # a 6x6 PNG, no name


def _image_urls(fake: FakeOpenAIServer) -> list[str]:
    content = fake.requests[-1].json["messages"][-1]["content"]
    return [p["image_url"]["url"] for p in content if p["type"] == "image_url"]


async def test_text_and_usage(openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer) -> None:
    gen = await openai_backend.generate(Request("hello"))
    assert gen.text == "seen text:5" and gen.finish_reason == "stop" and gen.model == "fake-vlm"
    assert gen.usage.input_tokens == len(fake_openai.requests[-1].body) // 4
    assert gen.usage.output_tokens == 2 and gen.usage.cost_usd == 0.0
    assert fake_openai.requests[-1].path == "/v1/chat/completions"


async def test_images_travel_as_data_uris(openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer) -> None:
    att = _png()
    gen = await openai_backend.generate(Request("Describe", attachments=(att, att)))
    urls = _image_urls(fake_openai)
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
    assert base64.b64decode(urls[0].split(",", 1)[1]) == att.data  # local server: bytes unchanged
    assert gen.text.count("image:image/png") == 2


async def test_system_and_json_schema(openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    await openai_backend.generate(Request("x", options=GenerationOptions(system="be terse", json_schema=schema)))
    body = fake_openai.requests[-1].json
    assert body["messages"][0] == {"role": "system", "content": "be terse"}
    assert body["response_format"]["json_schema"]["schema"] == schema


async def test_streaming_over_sse(openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer) -> None:
    pieces = [p async for p in openai_backend.stream(Request("stream please", attachments=(_png(),)))]
    assert len(pieces) >= 3
    assert "".join(pieces) == fake_openai.describe(fake_openai.requests[-1].json)
    assert fake_openai.requests[-1].json["stream"] is True


async def test_mid_stream_error(openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.stream_error_after(1)
    got = []
    with pytest.raises(ServerError, match="mid-stream"):
        async for piece in openai_backend.stream(Request("a b c", attachments=(_png(),))):
            got.append(piece)
    assert len(got) == 1


async def test_content_filter_is_blocked(openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.content_filter_next()
    gen = await openai_backend.generate(Request("x"))
    assert gen.blocked and "content filter" in gen.text


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, BackendRejectedError), (404, BackendRejectedError), (401, ConfigurationError), (429, RateLimitedError),
     (500, ServerError), (503, ServerError), (504, BackendTimeoutError)],
)
async def test_error_mapping(
    openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer, status: int, expected: type
) -> None:
    fake_openai.fail(status, message=f"nope {status}", headers={"Retry-After": "7"} if status == 429 else None)
    with pytest.raises(expected, match=f"nope {status}") as info:
        await openai_backend.generate(Request("x"))
    if status == 429:
        assert info.value.retry_after_s == 7.0


async def test_stream_http_error(openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.fail(503, message="overloaded")
    with pytest.raises(ServerError, match="overloaded"):
        async for _ in openai_backend.stream(Request("x")):
            pass


async def test_timeout(fake_openai: FakeOpenAIServer, tmp_path) -> None:
    settings = load_settings(home=tmp_path, openai_base_url=fake_openai.base_url, openai_model="m",
                             openai_timeout_s=0.3)
    backend = OpenAICompatBackend(settings)
    fake_openai.latency_s = 1.0
    try:
        with pytest.raises(BackendTimeoutError):
            await backend.generate(Request("x"))
    finally:
        fake_openai.latency_s = 0.0
        await backend.aclose()


async def test_circuit_opens_and_recovers(
    openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer, clock: FakeClock
) -> None:
    for _ in range(openai_backend.circuit.failure_threshold):
        fake_openai.fail(500)
        with pytest.raises(ServerError):
            await openai_backend.generate(Request("x"))
    assert openai_backend.circuit_state == "open"
    sent = len(fake_openai.requests)
    with pytest.raises(BackendUnavailableError):
        await openai_backend.generate(Request("x"))
    assert len(fake_openai.requests) == sent
    assert not (await openai_backend.health()).ready
    clock.advance(31)
    assert (await openai_backend.generate(Request("x"))).text
    assert openai_backend.circuit_state == "closed"


async def test_missing_settings_are_configuration_errors(tmp_path) -> None:
    backend = OpenAICompatBackend(load_settings(home=tmp_path))
    with pytest.raises(ConfigurationError, match="OPENAI_BASE_URL"):
        await backend.generate(Request("x"))
    assert not (await backend.health()).ready
    backend = OpenAICompatBackend(load_settings(home=tmp_path, openai_base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ConfigurationError, match="OPENAI_MODEL"):
        await backend.generate(Request("x"))
    await backend.aclose()


async def test_local_by_default_cloud_when_configured(
    openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer
) -> None:
    assert openai_backend.capabilities.kind is BackendKind.LOCAL
    secret = jpeg_with_gps()
    request = Request("x", attachments=(Attachment.from_bytes(secret),), sensitive=True)
    await openai_backend.generate(request)  # the user's own server may see sensitive data
    assert base64.b64decode(_image_urls(fake_openai)[0].split(",", 1)[1]) == secret

    openai_backend.capabilities = Capabilities(kind=BackendKind.CLOUD, media=frozenset({"image"}), max_images=8)
    sent = len(fake_openai.requests)
    with pytest.raises(PolicyViolationError):
        await openai_backend.generate(request)
    assert len(fake_openai.requests) == sent
    await openai_backend.generate(Request("x", attachments=(Attachment.from_bytes(secret),)))
    sent_bytes = base64.b64decode(_image_urls(fake_openai)[0].split(",", 1)[1])
    assert b"SecretCamCorp" not in sent_bytes and b"Secret Lane" not in sent_bytes


async def test_api_key_is_sent_as_bearer(fake_openai: FakeOpenAIServer, tmp_path) -> None:
    settings = load_settings(home=tmp_path, openai_base_url=fake_openai.base_url, openai_model="m",
                             openai_api_key="sk-local")
    backend = OpenAICompatBackend(settings)
    try:
        await backend.generate(Request("x"))
    finally:
        await backend.aclose()
    assert fake_openai.requests[-1].headers["authorization"] == "Bearer sk-local"
