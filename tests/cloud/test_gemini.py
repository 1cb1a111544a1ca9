"""GeminiBackend against the fake Gemini server, through the real google-genai SDK."""

from __future__ import annotations

import functools
import io
import json
import logging
import subprocess
import sys

import pytest
from PIL import Image

from fastvlm_gemini_hybrid.backends.circuit import sdk_retries
from fastvlm_gemini_hybrid.backends.gemini import (
    GeminiBackend,
    price_of,
    price_table,
    quota_window,
    seconds_until_quota_reset,
)
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import (
    BackendRejectedError,
    BackendTimeoutError,
    BackendUnavailableError,
    BadInputError,
    ConfigurationError,
    MissingCredentialsError,
    PolicyViolationError,
    RateLimitedError,
    ServerError,
)
from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions, Request
from synth_media import picture_attachment

from .conftest import FakeClock, jpeg_with_gps
from .fake_gemini import FakeGeminiServer, b64decode_any, pick

_png = functools.partial(picture_attachment, "x.png", size=(8, 8))  # _png(color=...): an 8x8 PNG attachment


def _video(size: int) -> Attachment:
    return Attachment.from_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (size - 12), name="clip.mp4")


def _parts(fake: FakeGeminiServer) -> list[dict]:
    return fake.model_calls[-1].json["contents"][0]["parts"]


# ------------------------------------------------------------------ inputs


async def test_text_prompt(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    gen = await gemini.generate(Request("What is in the picture?"))
    assert gen.text == f"seen text:{len('What is in the picture?')}"
    assert gen.model == "gemini-2.5-flash" and gen.finish_reason == "STOP" and not gen.blocked
    call = fake_gemini.model_calls[-1]
    assert call.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert call.headers["x-goog-api-key"] == "test-key"


async def test_image_inline_then_prompt(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    att = _png(color=(255, 0, 0))
    await gemini.generate(Request("Describe", attachments=(att,)))
    parts = _parts(fake_gemini)
    inline = pick(parts[0], "inlineData")
    assert pick(inline, "mimeType") == "image/png"
    sent = Image.open(io.BytesIO(b64decode_any(inline["data"])))
    assert sent.size == (8, 8) and sent.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert parts[1]["text"] == "Describe"


async def test_multi_image(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    atts = tuple(_png(color=c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    gen = await gemini.generate(Request("Compare these", attachments=atts))
    assert gen.text.count("inline:image/png") == 3
    colours = [
        Image.open(io.BytesIO(b64decode_any(pick(p, "inlineData")["data"]))).convert("RGB").getpixel((0, 0))
        for p in _parts(fake_gemini)[:3]
    ]
    assert colours == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


async def test_exif_and_gps_never_reach_the_cloud(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    original = jpeg_with_gps()
    await gemini.generate(Request("Where was this taken?", attachments=(Attachment.from_bytes(original),)))
    raw = fake_gemini.model_calls[-1].body
    sent = b64decode_any(pick(_parts(fake_gemini)[0], "inlineData")["data"])
    for secret in (b"SecretCamCorp", b"Secret Lane", b"GPSLatitude"):
        assert secret in original and secret not in sent and secret not in raw
    image = Image.open(io.BytesIO(sent))
    assert len(image.getexif()) == 0 and "xmp" not in image.info


async def test_small_video_goes_inline(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    gen = await gemini.generate(Request("What happens?", attachments=(_video(4096),)))
    assert "inline:video/mp4:4096" in gen.text
    assert not fake_gemini.file_events


async def test_large_video_uses_files_api(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    gemini.inline_limit_bytes = 1000
    fake_gemini.processing_polls = 2
    gen = await gemini.generate(Request("What happens?", attachments=(_video(5000),)))
    assert fake_gemini.file_events == [
        "upload-start",
        "upload-finalize files/fake1 5000",
        "get files/fake1 PROCESSING",
        "get files/fake1 PROCESSING",
        "get files/fake1 ACTIVE",
        "delete files/fake1",
    ]
    assert "file:" in gen.text and "/files/fake1" in gen.text
    assert not any("inlineData" in p or "inline_data" in p for p in _parts(fake_gemini))
    assert fake_gemini.files["files/fake1"]["data"] == _video(5000).data


async def test_default_threshold_uploads_a_20mb_video(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    fake_gemini.processing_polls = 0
    await gemini.generate(Request("Summarise", attachments=(_video(20 * 1024 * 1024),)))
    assert fake_gemini.file_events[0] == "upload-start"
    assert fake_gemini.file_events[-1] == "delete files/fake1"
    assert fake_gemini.model_calls[-1].size < 10_000  # the request names the file, no inline bytes


async def test_upload_is_deleted_even_when_generation_fails(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer
) -> None:
    gemini.inline_limit_bytes = 100
    fake_gemini.fail(500, path_contains=":generateContent")
    with pytest.raises(ServerError):
        await gemini.generate(Request("x", attachments=(_video(500),)))
    assert fake_gemini.file_events[-1] == "delete files/fake1"


async def test_failed_processing_is_rejected(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    gemini.inline_limit_bytes = 100
    fake_gemini.file_state_after_processing = "FAILED"
    with pytest.raises(BackendRejectedError, match="could not process"):
        await gemini.generate(Request("x", attachments=(_video(500),)))
    assert not fake_gemini.model_calls
    assert fake_gemini.file_events[-1] == "delete files/fake1"


async def test_processing_wait_is_bounded(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    gemini.inline_limit_bytes = 100
    gemini.files_max_wait_s = 0.05
    fake_gemini.processing_polls = 10_000
    with pytest.raises(BackendTimeoutError, match="still processing"):
        await gemini.generate(Request("x", attachments=(_video(500),)))
    assert fake_gemini.file_events[-1] == "delete files/fake1"


async def test_youtube_clip_as_file_data(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=1m30s&end=120&fps=0.5"
    gen = await gemini.generate(Request("Summarise", attachments=(Attachment.from_url(url),)))
    part = _parts(fake_gemini)[0]
    assert pick(pick(part, "fileData"), "fileUri") == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    meta = pick(part, "videoMetadata")
    assert (pick(meta, "startOffset"), pick(meta, "endOffset"), pick(meta, "fps")) == ("90s", "120s", 0.5)
    assert "clip:90s-120s@0.5" in gen.text


async def test_youtube_without_clip_has_no_metadata(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    await gemini.generate(Request("Summarise", attachments=(Attachment.from_url("https://youtu.be/abc"),)))
    assert pick(_parts(fake_gemini)[0], "videoMetadata") is None


async def test_system_instruction_and_generation_options(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    options = GenerationOptions(max_tokens=77, temperature=0.3, seed=5, system="Answer in French.")
    gen = await gemini.generate(Request("Hi", options=options))
    body = fake_gemini.model_calls[-1].json
    assert pick(body, "systemInstruction")["parts"][0]["text"] == "Answer in French."
    config = pick(body, "generationConfig")
    assert (pick(config, "maxOutputTokens"), pick(config, "temperature"), pick(config, "seed")) == (77, 0.3, 5)
    assert gen.text.endswith("system")


async def test_json_schema_output(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    schema = {
        "type": "object",
        "properties": {"caption": {"type": "string"}, "objects": {"type": "array", "items": {"type": "string"}}},
        "required": ["caption", "objects"],
    }
    gen = await gemini.generate(Request("Caption", options=GenerationOptions(json_schema=schema)))
    config = pick(fake_gemini.model_calls[-1].json, "generationConfig")
    assert pick(config, "responseMimeType") == "application/json"
    assert pick(config, "responseJsonSchema") == schema
    data = json.loads(gen.text)
    assert set(data) == {"caption", "objects"} and isinstance(data["objects"], list)


async def test_request_model_is_used_only_when_it_is_a_gemini_model(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer
) -> None:
    await gemini.generate(Request("x", model="gemini-2.5-pro"))
    assert fake_gemini.model_calls[-1].path.endswith("/models/gemini-2.5-pro:generateContent")
    await gemini.generate(Request("x", model="fastvlm-0.5b"))
    assert fake_gemini.model_calls[-1].path.endswith("/models/gemini-2.5-flash:generateContent")


async def test_count_tokens(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    assert await gemini.count_tokens(Request("one two three")) == 3
    assert fake_gemini.requests[-1].path.endswith(":countTokens")


# ------------------------------------------------------------------ outputs


async def test_usage_counts_thinking_as_output_and_prices_it(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer
) -> None:
    fake_gemini.thoughts_tokens = 40
    gen = await gemini.generate(Request("a b c d"))
    sent = fake_gemini.responses[-1]["usageMetadata"]
    assert gen.usage.input_tokens == sent["promptTokenCount"]
    assert gen.usage.output_tokens == sent["candidatesTokenCount"] + 40
    row = price_table()["models"]["gemini-2.5-flash"]
    expected = (gen.usage.input_tokens * row["input"] + gen.usage.output_tokens * row["output"]) / 1e6
    assert gen.usage.cost_usd == pytest.approx(expected)
    assert gen.usage.cost_usd > 0


def test_price_table_is_versioned_and_matches_longest_prefix() -> None:
    table = price_table()
    assert table["version"] and all({"input", "output"} <= set(r) for r in table["models"].values())
    lite = table["models"]["gemini-2.5-flash-lite"]
    assert price_of("gemini-2.5-flash-lite-preview-09-2025", 1_000_000, 0) == pytest.approx(lite["input"])
    pro = table["models"]["gemini-2.5-pro"]
    assert price_of("gemini-2.5-pro", 300_000, 0) == pytest.approx(0.3 * pro["above_input"])
    assert price_of("models/gemini-2.5-pro", 100_000, 0) == pytest.approx(0.1 * pro["input"])


def test_unknown_model_costs_zero_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert price_of("gemini-99-ultra-x", 1000, 1000) == 0.0
    assert "gemini-99-ultra-x" in caplog.text and "no price" in caplog.text


@pytest.mark.parametrize("where", ["prompt", "candidate"])
async def test_safety_block_is_a_blocked_generation(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer, where: str
) -> None:
    fake_gemini.block_next("SAFETY", where=where)
    gen = await gemini.generate(Request("something nasty"))
    assert gen.blocked and gen.finish_reason == "SAFETY"
    assert "blocked" in gen.text and "SAFETY" in gen.text
    assert gemini.circuit_state == "closed"


async def test_streaming_yields_pieces(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    pieces = [p async for p in gemini.stream(Request("hello there", attachments=(_png(color=(1, 2, 3)),)))]
    assert len(pieces) >= 3
    assert "".join(pieces) == fake_gemini.describe(fake_gemini.model_calls[-1].json)
    assert fake_gemini.model_calls[-1].path.endswith(":streamGenerateContent")
    assert fake_gemini.model_calls[-1].query["alt"] == ["sse"]
    assert len(fake_gemini.model_calls) == 1


async def test_stream_closed_early_leaves_the_backend_usable(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer
) -> None:
    stream = gemini.stream(Request("a b c d e", attachments=(_png(color=(1, 2, 3)), _png(color=(3, 2, 1)))))
    first = await anext(stream)
    await stream.aclose()
    assert first == "seen"
    assert gemini.circuit_state == "closed"
    assert (await gemini.generate(Request("again"))).text == "seen text:5"


async def test_streaming_safety_block_explains(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    fake_gemini.block_next("PROHIBITED_CONTENT")
    pieces = [p async for p in gemini.stream(Request("x"))]
    assert len(pieces) == 1 and "PROHIBITED_CONTENT" in pieces[0]


async def test_mid_stream_error_maps_to_server_error(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    fake_gemini.stream_error_after(2)
    got: list[str] = []
    request = Request("one two three", attachments=(_png(color=(1, 1, 1)), _png(color=(2, 2, 2))))
    with pytest.raises(ServerError, match="500"):
        async for piece in gemini.stream(request):
            got.append(piece)
    assert len(got) == 2  # the good chunks arrived before the error


# ------------------------------------------------------------------ errors


async def test_missing_key_fails_before_any_client(tmp_path) -> None:
    backend = GeminiBackend(load_settings(home=tmp_path))
    with pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY"):
        await backend.generate(Request("x"))
    assert backend._client is None
    health = await backend.health()
    assert not health.ready and "API key" in health.detail


def test_construction_creates_no_client_and_imports_no_sdk() -> None:
    code = (
        "import sys; from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend;"
        "from fastvlm_gemini_hybrid.config import load_settings;"
        "b = GeminiBackend(load_settings(gemini_api_key='k'));"
        "assert b._client is None; assert 'google.genai' not in sys.modules, 'sdk imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


async def test_sensitive_request_is_refused_before_any_byte_leaves(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer
) -> None:
    request = Request("Describe the patient's scan", attachments=(_png(color=(5, 5, 5)),), sensitive=True)
    with pytest.raises(PolicyViolationError, match="sensitive"):
        await gemini.generate(request)
    with pytest.raises(PolicyViolationError):
        async for _ in gemini.stream(request):
            pass
    with pytest.raises(PolicyViolationError):
        await gemini.count_tokens(request)
    assert fake_gemini.requests == [] and fake_gemini.bytes_received == 0
    assert gemini._client is None  # not even a connection pool was built


async def test_unsupported_media_is_bad_input(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    dicom = Attachment(mime="application/dicom", data=b"\x00" * 200, sha256="x")
    with pytest.raises(BadInputError, match="dicom"):
        await gemini.generate(Request("x", attachments=(dicom,)))
    assert not fake_gemini.requests


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "Request contains an invalid argument.", BackendRejectedError),
        (403, "The caller does not have permission", BackendRejectedError),
        (404, "Requested entity was not found.", BackendRejectedError),
        (404, "models/gemini-nope is not found for API version v1beta", ConfigurationError),
        (500, "Internal error", ServerError),
        (503, "The model is overloaded.", ServerError),
        (504, "Deadline exceeded", BackendTimeoutError),
    ],
)
async def test_http_errors_map_to_our_tree(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer, status: int, message: str, expected: type
) -> None:
    fake_gemini.fail(status, message=message)
    with pytest.raises(expected) as info:
        await gemini.generate(Request("x"))
    assert type(info.value) is expected
    assert getattr(info.value, "backend", "gemini") == "gemini"


async def test_bad_key_is_a_configuration_error(gemini_settings, fake_gemini: FakeGeminiServer) -> None:
    settings = gemini_settings.model_copy(update={"gemini_api_key": type(gemini_settings.gemini_api_key)("wrong")})
    backend = GeminiBackend(settings)
    try:
        with pytest.raises(ConfigurationError, match="API key"):
            await backend.generate(Request("x"))
    finally:
        await backend.aclose()
    assert fake_gemini.requests[-1].headers["x-goog-api-key"] == "wrong"


async def test_per_minute_quota(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    fake_gemini.quota_exceeded(per_day=False, retry_after_s=17)
    with pytest.raises(RateLimitedError) as info:
        await gemini.generate(Request("x"))
    assert not info.value.per_day and info.value.retry_after_s == 17.0
    assert "per-minute" in str(info.value)
    assert gemini.circuit_state == "closed"
    assert (await gemini.generate(Request("x"))).text  # the next minute works
    assert len(fake_gemini.model_calls) == 2  # 429 is never retried by the SDK


async def test_per_day_quota_opens_the_circuit_until_reset(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer, clock: FakeClock
) -> None:
    fake_gemini.quota_exceeded(per_day=True, retry_after_s=20)
    with pytest.raises(RateLimitedError) as info:
        await gemini.generate(Request("x"))
    assert info.value.per_day and info.value.retry_after_s > 60  # until midnight Pacific, not 20 s
    assert gemini.circuit_state == "open"
    calls = len(fake_gemini.requests)
    with pytest.raises(BackendUnavailableError, match="circuit open"):
        await gemini.generate(Request("x"))
    assert len(fake_gemini.requests) == calls  # refused without a network call
    health = await gemini.health()
    assert not health.ready and health.extra["circuit"] == "open"
    clock.advance(info.value.retry_after_s + 1)
    assert (await gemini.generate(Request("x"))).text
    assert gemini.circuit_state == "closed"


async def test_circuit_opens_on_repeated_5xx_and_recovers(
    gemini: GeminiBackend, fake_gemini: FakeGeminiServer, clock: FakeClock
) -> None:
    fake_gemini.fail(503, times=5)
    for _ in range(5):
        with pytest.raises(ServerError):
            await gemini.generate(Request("x"))
    assert gemini.circuit_state == "open"
    with pytest.raises(BackendUnavailableError):
        await gemini.generate(Request("x"))
    assert len(fake_gemini.model_calls) == 5
    clock.advance(gemini.circuit.reset_s + 0.1)
    assert gemini.circuit_state == "half-open"
    assert (await gemini.health()).extra["circuit"] == "half-open"
    assert (await gemini.generate(Request("x"))).text
    assert gemini.circuit_state == "closed"


async def test_sdk_retries_follow_the_retries_attribute(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    gemini.retries = 2
    gemini.retry_initial_delay_s = 0.01
    fake_gemini.fail(503, times=2)
    assert (await gemini.generate(Request("x"))).text  # third attempt succeeds
    assert len(fake_gemini.model_calls) == 3
    fake_gemini.clear()
    fake_gemini.fail(503, times=1)
    with sdk_retries(0), pytest.raises(ServerError):  # what the processor does in fallback mode
        await gemini.generate(Request("x"))
    assert len(fake_gemini.model_calls) == 1
    fake_gemini.clear()
    gemini.retries = 0
    fake_gemini.fail(503, times=1)
    with pytest.raises(ServerError):
        await gemini.generate(Request("x"))
    assert len(fake_gemini.model_calls) == 1


async def test_timeout_maps_to_backend_timeout(gemini_settings, fake_gemini: FakeGeminiServer) -> None:
    settings = gemini_settings.model_copy(update={"gemini_timeout_s": 0.3})
    backend = GeminiBackend(settings)
    fake_gemini.latency_s = 1.0
    try:
        with pytest.raises(BackendTimeoutError, match="in time"):
            await backend.generate(Request("x"))
    finally:
        fake_gemini.latency_s = 0.0
        await backend.aclose()


async def test_unreachable_server_is_a_server_error(tmp_path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings(
        home=tmp_path, gemini_api_key="k", gemini_base_url=f"http://127.0.0.1:{port}", gemini_retries=0
    )
    backend = GeminiBackend(settings)
    try:
        with pytest.raises(ServerError, match="could not reach gemini"):
            await backend.generate(Request("x"))
    finally:
        await backend.aclose()


async def test_aclose_releases_the_client(gemini: GeminiBackend) -> None:
    await gemini.generate(Request("x"))
    client = gemini._client
    assert client is not None
    await gemini.aclose()
    assert gemini._client is None
    await gemini.aclose()  # safe twice


def test_quota_window_parsing() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "X-PerDay-Y"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4.5s"},
    ]
    assert quota_window(details) == (True, 4.5)
    assert quota_window([]) == (False, None)
    assert 0 < seconds_until_quota_reset() <= 24 * 3600 + 3600
