"""A model server's "this model cannot take this input" is a reason to ask the next backend (LiteLLM's
fallback on capability and content-policy errors); a malformed request is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.backends.circuit import CircuitBreaker, error_for_status, unsupported_input
from fastvlm_gemini_hybrid.backends.openai_compat import OpenAICompatBackend
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import (
    AllBackendsFailedError,
    BackendRejectedError,
    InputNotSupportedError,
    fallback_allowed,
)
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.request_builder import build_request
from fastvlm_gemini_hybrid.types import Attachment
from synth_media import picture

from .fake_openai import FakeOpenAIServer

# What servers really say (vLLM, Ollama, llama.cpp, OpenAI, Gemini, proxies).
CANNOT_TAKE = [
    "At most 1 image(s) may be provided in one request.",
    "this model is missing data required for image input",
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
    "Invalid content type. image_url is only supported by certain models.",
    "This model's maximum context length is 8192 tokens. However, your messages resulted in 9120 tokens.",
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    "The model does not support video input",
    "Your request was rejected as a result of our safety system.",
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "Model llama3 is not a multimodal model",
    "Image is too large: 25 MB exceeds the limit",
]
MALFORMED = [
    "temperature must be <= 2",
    "model 'x' not found, try pulling it first",
    "messages must be a non-empty list",
    "Invalid JSON payload received. Unknown name \"foo\"",
    "Additional properties are not allowed ('stream_option' was unexpected)",
]


@pytest.mark.parametrize("message", CANNOT_TAKE)
def test_what_servers_say_when_a_model_cannot_take_an_input(message: str) -> None:
    assert unsupported_input(message)
    error = error_for_status(400, message, "openai")
    assert isinstance(error, InputNotSupportedError) and fallback_allowed(error) and error.exit_code == 2


@pytest.mark.parametrize("message", MALFORMED)
def test_a_malformed_request_is_still_the_callers_to_fix(message: str) -> None:
    assert not unsupported_input(message)
    error = error_for_status(400, message, "openai")
    assert type(error) is BackendRejectedError and not fallback_allowed(error)


def test_413_is_always_too_large_for_this_backend() -> None:
    assert isinstance(error_for_status(413, "Request Entity Too Large", "openai"), InputNotSupportedError)


def test_a_capability_error_does_not_open_the_circuit() -> None:
    circuit = CircuitBreaker("openai", failure_threshold=2)
    for _ in range(5):
        circuit.record_failure(error_for_status(400, "image input is not supported", "openai"))
    assert circuit.state.value == "closed"


@pytest.fixture
async def behind_a_text_only_server(
    fake_openai: FakeOpenAIServer, tmp_path: Path
) -> AsyncIterator[tuple[HybridVLMProcessor, FunctionBackend]]:
    """A processor whose OpenAI-compatible backend (the fake server) comes first and a local fake second."""
    settings = load_settings(home=tmp_path / "home", openai_base_url=fake_openai.base_url, openai_model="m",
                             openai_timeout_s=5.0)
    other = FunctionBackend("fastvlm", "a local answer")
    proc = make_processor(settings, None, None, backends={"openai": OpenAICompatBackend(settings), "fastvlm": other},
                          cache=False)
    yield proc, other
    await proc.aclose()


async def test_fallback_moves_past_a_server_whose_model_takes_no_images(
    fake_openai: FakeOpenAIServer, behind_a_text_only_server: tuple[HybridVLMProcessor, FunctionBackend]
) -> None:
    proc, _ = behind_a_text_only_server
    fake_openai.fail(400, "this model is missing data required for image input")
    picture_request = build_request("Describe it", [Attachment.from_bytes(picture())], mode="fallback",
                                    model="openai")
    result = await proc.arun(picture_request)
    assert (result.backend, result.response) == ("fastvlm", "a local answer")
    assert result.fallbacks[0].backend == "openai" and "image input" in result.fallbacks[0].error


async def test_a_malformed_request_stops_the_fallback(
    fake_openai: FakeOpenAIServer, behind_a_text_only_server: tuple[HybridVLMProcessor, FunctionBackend]
) -> None:
    proc, other = behind_a_text_only_server
    fake_openai.fail(400, "temperature must be <= 2")
    with pytest.raises((BackendRejectedError, AllBackendsFailedError)) as caught:
        await proc.arun(build_request("Describe it", mode="fallback", model="openai"))
    assert type(caught.value) is BackendRejectedError and other.calls == []
