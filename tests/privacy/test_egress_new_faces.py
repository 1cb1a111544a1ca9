"""Zero bytes of a sensitive request reach the (fake) cloud through the faces added with issue 15: the Ollama API,
`/v1/responses`, streamed chat with a picture in an earlier turn, the agents API and the `llm` plugin.

Each runs over the REAL Gemini backend (google-genai SDK) pointed at the fake Gemini server, which counts what
reaches its socket; the request names the cloud model, so nothing but the egress gate stands in the way.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.fake_gemini import FakeGeminiServer
from fakes import make_processor
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor

IBAN_TURNS = [{"role": "user", "content": "My IBAN is DE89 3704 0044 0532 0130 00."},
              {"role": "assistant", "content": "Noted."},
              {"role": "user", "content": "Now write a haiku."}]


@pytest.fixture
def cloud_settings(fake_gemini: FakeGeminiServer, tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", gemini_api_key=FakeGeminiServer.api_key,
                         gemini_base_url=fake_gemini.base_url, gemini_retries=0, cache_enabled=False)


@pytest.fixture
def processor(cloud_settings: Settings) -> HybridVLMProcessor:
    """A never-confident local fake and the real Gemini backend (pointed at the fake server)."""
    return make_processor(cloud_settings, "a local answer", GeminiBackend(cloud_settings),
                          local_kw={"confidence": 0.05})


@pytest.fixture
def http(processor: HybridVLMProcessor) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from fastvlm_gemini_hybrid.server import create_app

    with TestClient(create_app(processor=processor)) as client:
        yield client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_ollama_api_keeps_a_card_picture_here(http: Any, fake_gemini: FakeGeminiServer, card_png: bytes,
                                               path: str) -> None:
    body: dict[str, Any] = {"model": "gemini", "stream": False}
    if path == "/api/chat":
        body["messages"] = [{"role": "user", "content": "What does this say?", "images": [b64(card_png)]}]
    else:
        body.update(prompt="What does this say?", images=[b64(card_png)])
    response = http.post(path, json=body)
    assert response.status_code == 403 and "payment card" in response.json()["error"]
    assert fake_gemini.bytes_received == 0


def test_ollama_api_keeps_a_sensitive_earlier_turn_here(http: Any, fake_gemini: FakeGeminiServer) -> None:
    response = http.post("/api/chat", json={"model": "gemini", "stream": False, "messages": IBAN_TURNS})
    assert response.status_code == 403, response.text
    streamed = http.post("/api/chat", json={"model": "gemini", "messages": IBAN_TURNS})  # NDJSON by default
    assert streamed.status_code == 403
    assert fake_gemini.bytes_received == 0


@pytest.mark.parametrize("stream", [False, True])
def test_responses_api_keeps_a_card_picture_here(http: Any, fake_gemini: FakeGeminiServer, card_png: bytes,
                                                  stream: bool) -> None:
    response = http.post("/v1/responses", json={"model": "gemini", "stream": stream, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "What does this say?"},
                                     {"type": "input_image", "image_url": f"data:image/png;base64,{b64(card_png)}"}]}]})
    assert response.status_code == 403, response.text
    assert fake_gemini.bytes_received == 0


def test_responses_api_keeps_a_sensitive_earlier_turn_here(http: Any, fake_gemini: FakeGeminiServer) -> None:
    response = http.post("/v1/responses", json={"model": "gemini", "input": IBAN_TURNS})
    assert response.status_code == 403, response.text
    assert fake_gemini.bytes_received == 0


def test_a_card_in_an_earlier_turn_of_a_streamed_chat_stays_here(http: Any, fake_gemini: FakeGeminiServer,
                                                                  card_png: bytes) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Keep this for me."},
                                             {"type": "image_url",
                                              "image_url": {"url": f"data:image/png;base64,{b64(card_png)}"}}]},
                {"role": "assistant", "content": "Kept."},
                {"role": "user", "content": "Write a haiku about autumn."}]
    response = http.post("/v1/chat/completions", json={"model": "gemini", "stream": True, "messages": messages})
    assert response.status_code == 403, response.text
    routed = http.post("/v1/chat/completions", json={"model": "hybrid", "messages": messages})
    assert routed.status_code == 200 and routed.json()["x_hybrid"]["backend"] == "fastvlm"
    assert fake_gemini.bytes_received == 0


def test_agents_api_keeps_a_card_picture_here(http: Any, fake_gemini: FakeGeminiServer, card_png: bytes) -> None:
    response = http.post("/v1/agents/caption", data={"mode": "cloud-only"},
                         files={"file": ("IMG_4517.png", card_png, "image/png")})
    # A per-item agent reports the refusal on the item: the run answers, the picture stays here.
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["failed"] == 1 and run["done"] == 0
    (item,) = run["items"]
    assert not item["ok"] and item["error"]["type"] == "policy_violation" and "payment card" in item["error"]["message"]
    assert fake_gemini.bytes_received == 0


def test_llm_plugin_keeps_a_card_picture_here(processor: HybridVLMProcessor, fake_gemini: FakeGeminiServer,
                                               card_png: bytes, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llm")
    from click.testing import CliRunner
    from llm.cli import cli

    from fastvlm_gemini_hybrid import llm_plugin

    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    card = tmp_path / "IMG_4517.png"
    card.write_bytes(card_png)
    llm_plugin.set_processor(processor)
    try:
        result = CliRunner().invoke(cli, ["-m", "hybrid-cloud", "-a", str(card), "What does this say?"])
    finally:
        llm_plugin.set_processor(None)
    assert result.exit_code != 0 and "payment card" in result.output
    assert "Traceback" not in result.output
    assert fake_gemini.bytes_received == 0
