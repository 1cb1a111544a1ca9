"""The processor with the REAL Gemini backend (against the fake server) failing in every way.

The local side is a test-only FunctionBackend; the cloud side is `GeminiBackend` talking HTTP to
`FakeGeminiServer`, so "zero bytes reached the cloud" is measured at the socket, not assumed.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.backends.testing import failing
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.errors import (
    AllBackendsFailedError,
    ConfigurationError,
    HybridError,
    PolicyViolationError,
    ServerError,
)
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions, Mode, Request
from synth_media import picture_attachment

from .conftest import jpeg_with_gps
from .fake_gemini import FakeGeminiServer

PROMPT = "Describe this photo"
STRUCTURED = GenerationOptions(json_schema={"type": "object", "properties": {"caption": {"type": "string"}}})


_image = functools.partial(picture_attachment, "photo.png", color=(120, 10, 10), size=(16, 16))


@pytest.fixture
def proc_settings(fake_gemini: FakeGeminiServer, tmp_path: Any) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        gemini_api_key=FakeGeminiServer.api_key,
        gemini_base_url=fake_gemini.base_url,
        gemini_timeout_s=0.5,
        gemini_retries=2,
        cache_enabled=False,
        request_timeout_s=5.0,
    )


@pytest.fixture
async def make_proc(proc_settings: Settings) -> AsyncIterator[Callable[..., HybridVLMProcessor]]:
    """Factory: a processor whose local backend answers "local answer" (with `confidence`)."""
    made: list[HybridVLMProcessor] = []

    def make(
        settings: Settings | None = None, confidence: float | None = 0.9, local_fails: bool = False
    ) -> HybridVLMProcessor:
        settings = settings or proc_settings
        gemini = GeminiBackend(settings)
        gemini.retry_initial_delay_s = 0.01
        gemini.files_poll_interval_s = 0.01
        answer: Any = failing(ServerError("local model crashed", "fastvlm")) if local_fails else "local answer"
        proc = make_processor(settings, answer, gemini, local_kw={"confidence": confidence})
        made.append(proc)
        return proc

    yield make
    for proc in made:
        await proc.aclose()


CLOUD_FAILURES: dict[str, Callable[[FakeGeminiServer], None]] = {
    "server-500": lambda f: f.fail(500, times=10),
    "unavailable-503": lambda f: f.fail(503, times=10),
    "quota-per-minute": lambda f: f.quota_exceeded(per_day=False, retry_after_s=30, times=10),
    "quota-per-day": lambda f: f.quota_exceeded(per_day=True, times=10),
    "timeout": lambda f: setattr(f, "latency_s", 1.0),
}


@pytest.mark.parametrize("mode", [Mode.FALLBACK, Mode.AUTO])
@pytest.mark.parametrize("failure", list(CLOUD_FAILURES))
async def test_cloud_first_route_falls_back_to_local(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer, failure: str, mode: Mode
) -> None:
    proc = make_proc()
    CLOUD_FAILURES[failure](fake_gemini)
    request = Request(PROMPT, attachments=(_image(),), mode=mode, options=STRUCTURED)
    assert proc.decide(request).backends[0] == "gemini"  # structured output prefers the cloud
    result = await proc.arun(request)
    assert result.backend == "fastvlm" and result.response == "local answer"
    assert [a.backend for a in result.fallbacks] == ["gemini"]
    assert fake_gemini.model_calls  # the cloud really was tried


async def test_fallback_mode_leaves_retrying_to_the_router(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer
) -> None:
    """gemini_retries=2 in settings, but in fallback mode the SDK must not retry: the next
    backend is tried at once (the processor wraps the call in `circuit.sdk_retries(0)`)."""
    proc = make_proc()
    fake_gemini.fail(503, times=10)
    result = await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.FALLBACK, options=STRUCTURED))
    assert result.backend == "fastvlm"
    assert len(fake_gemini.model_calls) == 1


@pytest.mark.parametrize("failure", list(CLOUD_FAILURES))
async def test_fallback_mode_both_failing_reports_both(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer, failure: str
) -> None:
    proc = make_proc(local_fails=True)
    CLOUD_FAILURES[failure](fake_gemini)
    request = Request(PROMPT, attachments=(_image(),), mode=Mode.FALLBACK)
    with pytest.raises(AllBackendsFailedError) as info:
        await proc.arun(request)
    assert [name for name, _ in info.value.attempts] == list(proc.decide(request).backends)
    assert {name for name, _ in info.value.attempts} == {"fastvlm", "gemini"}


async def test_local_failure_is_answered_by_the_cloud(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer
) -> None:
    proc = make_proc(local_fails=True)
    result = await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.FALLBACK))
    assert result.backend == "gemini" and "inline:image/png" in result.response
    assert [a.backend for a in result.fallbacks] == ["fastvlm"]


@pytest.mark.parametrize("failure", list(CLOUD_FAILURES))
async def test_cloud_only_mode_reports_the_cloud_failure(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer, failure: str
) -> None:
    proc = make_proc()
    CLOUD_FAILURES[failure](fake_gemini)
    with pytest.raises(AllBackendsFailedError) as info:
        await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.CLOUD_ONLY))
    assert [name for name, _ in info.value.attempts] == ["gemini"]
    assert info.value.exit_code == 1


@pytest.mark.parametrize("failure", list(CLOUD_FAILURES))
async def test_parallel_mode_local_wins_when_the_cloud_fails(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer, failure: str
) -> None:
    proc = make_proc()
    CLOUD_FAILURES[failure](fake_gemini)
    result = await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.PARALLEL))
    assert result.backend == "fastvlm" and result.response == "local answer"


@pytest.mark.parametrize("failure", list(CLOUD_FAILURES))
async def test_auto_mode_keeps_the_local_answer_when_escalation_fails(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer, failure: str
) -> None:
    proc = make_proc(confidence=0.05)  # low confidence: auto escalates to the cloud when allowed
    CLOUD_FAILURES[failure](fake_gemini)
    request = Request(PROMPT, attachments=(_image(),), mode=Mode.AUTO)
    assert proc.decide(request).backends == ("fastvlm", "gemini")
    result = await proc.arun(request)
    assert result.backend == "fastvlm" and result.response == "local answer"
    assert fake_gemini.model_calls  # escalation really reached the cloud


async def test_local_only_mode_never_touches_the_cloud(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer
) -> None:
    proc = make_proc()
    result = await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.LOCAL_ONLY))
    assert result.backend == "fastvlm"
    assert fake_gemini.requests == []


async def test_cloud_only_success_and_safety_block(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer
) -> None:
    proc = make_proc()
    result = await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.CLOUD_ONLY))
    assert result.backend == "gemini" and "inline:image/png" in result.response
    assert result.usage.cost_usd > 0
    fake_gemini.block_next("SAFETY")
    blocked = await proc.arun(Request(PROMPT + " again", attachments=(_image(),), mode=Mode.CLOUD_ONLY))
    assert blocked.blocked and blocked.backend == "gemini" and "SAFETY" in blocked.response


async def test_bad_key_stops_with_a_configuration_error(
    make_proc: Callable[..., HybridVLMProcessor], proc_settings: Settings
) -> None:
    settings = proc_settings.model_copy(update={"gemini_api_key": type(proc_settings.gemini_api_key)("wrong")})
    proc = make_proc(settings)
    with pytest.raises((ConfigurationError, AllBackendsFailedError)) as info:
        await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.CLOUD_ONLY))
    assert info.value.exit_code == 2


async def test_missing_key_falls_back_to_local(
    make_proc: Callable[..., HybridVLMProcessor], proc_settings: Settings, fake_gemini: FakeGeminiServer
) -> None:
    proc = make_proc(proc_settings.model_copy(update={"gemini_api_key": None}))
    result = await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.FALLBACK))
    assert result.backend == "fastvlm"
    assert fake_gemini.requests == []


async def test_open_circuit_skips_the_cloud_without_network(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer
) -> None:
    proc = make_proc()
    fake_gemini.quota_exceeded(per_day=True)
    with pytest.raises(AllBackendsFailedError):
        await proc.arun(Request(PROMPT, attachments=(_image(),), mode=Mode.CLOUD_ONLY))
    sent = len(fake_gemini.requests)
    result = await proc.arun(Request(PROMPT + "?", attachments=(_image(),), mode=Mode.FALLBACK))
    assert result.backend == "fastvlm"
    assert len(fake_gemini.requests) == sent
    health = await proc.health()
    assert "open" in str(health)
    assert proc.metrics.snapshot()["circuits"]["gemini"] == "open"
    assert 'fastvlm_hybrid_circuit_state{backend="gemini",state="open"} 1' in proc.metrics.prometheus_text()


@pytest.mark.parametrize("mode", list(Mode))
async def test_sensitive_request_sends_zero_bytes_in_every_mode(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer, mode: Mode
) -> None:
    proc = make_proc(confidence=0.01)  # even a hopeless local answer must not escalate
    request = Request(PROMPT, attachments=(Attachment.from_bytes(jpeg_with_gps()),), mode=mode, sensitive=True)
    try:
        result = await proc.arun(request)
    except HybridError as exc:
        assert mode is Mode.CLOUD_ONLY, f"{mode}: unexpected {exc!r}"
        assert isinstance(exc, (PolicyViolationError, AllBackendsFailedError)) and exc.exit_code == 2
    else:
        assert mode is not Mode.CLOUD_ONLY
        assert result.backend == "fastvlm"
    assert fake_gemini.requests == [] and fake_gemini.bytes_received == 0


@pytest.mark.parametrize("mode", [Mode.AUTO, Mode.FALLBACK, Mode.PARALLEL])
async def test_detected_phi_sends_zero_bytes(
    make_proc: Callable[..., HybridVLMProcessor], fake_gemini: FakeGeminiServer, mode: Mode
) -> None:
    proc = make_proc(confidence=0.01)
    prompt = "Patient John Smith, DOB 1961-04-12, MRN 4471932: summarise the MRI findings"
    result = await proc.arun(Request(prompt, attachments=(_image(),), mode=mode))
    assert result.backend == "fastvlm" and result.route.sensitive
    assert fake_gemini.requests == []
