"""The official `openai` Python client against the real server on 127.0.0.1 (uvicorn, real sockets)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from synth_media import picture

openai = pytest.importorskip("openai")


def data_uri() -> str:
    return "data:image/png;base64," + base64.b64encode(picture((1, 2, 3), (16, 16))).decode()


def messages(text: str = "What is in the image?") -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": text},
                                     {"type": "image_url", "image_url": {"url": data_uri()}}]},
    ]


def test_openai_client_chat_models_stream_and_errors(app_factory: Callable[..., Any], live_server: Any) -> None:
    app, proc = app_factory(cloud="the cloud saw a dark square", api_keys="sk-test")
    srv = live_server(app)
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-test", max_retries=0, timeout=10)

    assert [m.id for m in client.models.list()] == ["hybrid", "fastvlm", "gemini"]

    done = client.chat.completions.create(model="gemini", messages=messages())
    assert done.choices[0].message.content == "the cloud saw a dark square"
    assert done.choices[0].finish_reason == "stop"
    seen = proc.backend("gemini").calls[-1]
    assert seen.options.system == "Answer briefly." and seen.attachments[0].mime == "image/png"

    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="hybrid", messages=messages(), stream=True, extra_body={"sensitive": True}) if c.choices]
    assert "".join(pieces).strip() == "local answer"  # sensitive: answered locally, streamed
    assert len(proc.backend("gemini").calls) == 1

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-nope", messages=messages())
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="hybrid", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    with pytest.raises(openai.PermissionDeniedError):  # a sensitive request pinned to the cloud
        client.chat.completions.create(model="gemini", messages=messages(), extra_body={"sensitive": True})
    bad_key = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()


def test_image_urls_are_not_fetched_unless_enabled(app_factory: Callable[..., Any], live_server: Any) -> None:
    """Through the real OpenAI client: an http image_url is refused with a message naming the fix, and even
    with downloads on, a URL of this machine is refused (SSRF); tests/server/test_ssrf.py covers the rest."""
    from fastvlm_gemini_hybrid.server import media

    for enabled, message in ((False, media.FETCH_DISABLED), (True, media.FETCH_FAILED)):
        app, proc = app_factory(cloud="fetched", fetch_image_urls=enabled)
        srv = live_server(app)
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=10)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": {"url": f"{srv.url}/models/pics/x.png"}}]}])
        assert message in str(caught.value)
        assert proc.backend("gemini").calls == []
