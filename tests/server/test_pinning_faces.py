"""Pinning through the HTTP faces: `/v1/analyze` `model`, the OpenAI API `model`, streaming included."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("fastapi")


@pytest.fixture
def pinned_client(app_factory: Callable[..., Any]) -> Any:
    from fastapi.testclient import TestClient

    app, proc = app_factory(local="local answer", cloud="cloud answer")
    with TestClient(app) as c:
        c.processor = proc
        yield c


def test_analyze_answers_from_the_named_model(pinned_client: Any, png_bytes: bytes) -> None:
    files = {"file": ("street.png", png_bytes, "image/png")}
    out = pinned_client.post("/v1/analyze", files=files, data={
        "prompt": "Describe the street.", "mode": "fallback", "model": "gemini-2.5-flash"}).json()
    assert out["backend"] == "gemini" and out["model"] == "gemini-2.5-flash" and out["fallbacks"] == []
    assert out["route"]["pinned"] == {"backend": "gemini", "model": "gemini-2.5-flash"}
    assert out["route"]["backends"] == ["gemini", "fastvlm"]
    gemini_calls = pinned_client.processor.backend("gemini").calls
    assert gemini_calls[-1].model == "gemini-2.5-flash"
    assert pinned_client.processor.backend("fastvlm").calls == []


def test_analyze_sensitive_request_naming_the_cloud_is_403(pinned_client: Any) -> None:
    resp = pinned_client.post("/v1/analyze", json={
        "prompt": "Patient John Doe, SSN 078-05-1120, HIV positive: summarise", "model": "gemini"})
    assert resp.status_code == 403
    assert "never leave this machine" in resp.json()["error"]["message"]
    assert pinned_client.processor.backend("gemini").calls == []


def test_openai_model_names_pin_and_unknown_ones_are_404(pinned_client: Any) -> None:
    def chat(model: str, **extra: Any) -> Any:
        return pinned_client.post("/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "Describe a street."}], **extra})

    for model, backend in (("gemini-2.5-flash", "gemini"), ("fastvlm", "fastvlm"), ("gemini/gemini-2.5-pro", "gemini")):
        body = chat(model).json()
        assert body["x_hybrid"]["backend"] == backend, (model, body)
        assert body["choices"][0]["message"]["content"] == f"{'cloud' if backend == 'gemini' else 'local'} answer"
    assert pinned_client.processor.backend("gemini").calls[-1].model == "gemini-2.5-pro"
    missing = chat("llava-13b")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_streaming_honours_the_pin_and_falls_back_in_fallback_mode(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    from fastvlm_gemini_hybrid.errors import BackendUnavailableError

    def broken(_request: Any) -> str:
        raise BackendUnavailableError("gemini is down", "gemini")

    app, proc = app_factory(local="local answer", cloud=broken)
    with TestClient(app) as c:
        def stream(**extra: Any) -> list[dict[str, Any]]:
            with c.stream("POST", "/v1/chat/completions", json={
                "model": "gemini-2.5-flash", "stream": True, **extra,
                "messages": [{"role": "user", "content": "Describe a street."}]}) as resp:
                lines = [ln[6:] for ln in resp.iter_lines() if ln.startswith("data: ") and ln != "data: [DONE]"]
            return [json.loads(ln) for ln in lines]

        chunks = stream(mode="fallback")  # the named one fails, so the local one follows
        text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch.get("choices"))
        assert text.strip() == "local answer"
        failed = c.post("/v1/chat/completions", json={
            "model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Describe a street."}]})
        assert failed.status_code >= 500  # without fallback mode the named one alone answers, or nothing does
        assert proc.backend("fastvlm").calls and all(call.model is None for call in proc.backend("fastvlm").calls)
