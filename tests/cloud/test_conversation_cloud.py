"""A conversation's earlier turns on the wire: Gemini `contents` (user / model, pictures in their turn) and
an OpenAI-compatible server's `messages`."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.backends.openai_compat import OpenAICompatBackend
from fastvlm_gemini_hybrid.request_builder import build_request
from fastvlm_gemini_hybrid.types import Attachment
from synth_media import picture

from .fake_gemini import FakeGeminiServer, b64decode_any, pick
from .fake_openai import FakeOpenAIServer


def conversation() -> Any:
    red = Attachment.from_bytes(picture((255, 0, 0), (8, 8)), name="red.png")
    blue = Attachment.from_bytes(picture((0, 0, 255), (8, 8)), name="blue.png")
    return build_request("And this one?", [red, blue],
                         history=[("user", "What colour is this?", 1), ("assistant", "Red.")])


def colour(data: str) -> tuple[int, int, int]:
    return Image.open(io.BytesIO(b64decode_any(data))).convert("RGB").getpixel((0, 0))


async def test_gemini_gets_one_content_per_turn(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    await gemini.generate(conversation())
    contents = pick(fake_gemini.model_calls[-1].json, "contents")
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    first, reply, last = (c["parts"] for c in contents)
    assert colour(pick(first[0], "inlineData")["data"]) == (255, 0, 0) and first[1]["text"] == "What colour is this?"
    assert reply == [{"text": "Red."}]
    assert colour(pick(last[0], "inlineData")["data"]) == (0, 0, 255) and last[1]["text"] == "And this one?"


async def test_gemini_streams_a_conversation_too(gemini: GeminiBackend, fake_gemini: FakeGeminiServer) -> None:
    text = "".join([p async for p in gemini.stream(conversation())])
    assert text
    contents = pick(fake_gemini.model_calls[-1].json, "contents")
    assert [c["role"] for c in contents] == ["user", "model", "user"]


async def test_an_openai_compatible_server_gets_one_message_per_turn(
    openai_backend: OpenAICompatBackend, fake_openai: FakeOpenAIServer
) -> None:
    await openai_backend.generate(conversation())
    messages = fake_openai.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    first, reply, last = messages
    assert first["content"][0]["type"] == "image_url" and first["content"][1]["text"] == "What colour is this?"
    assert reply["content"] == "Red."
    url = last["content"][0]["image_url"]["url"]
    assert colour(url.split(",", 1)[1]) == (0, 0, 255) and last["content"][1]["text"] == "And this one?"
