"""Every endpoint of the HTTP contract (design.md §4), through the real app and fake backends."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.errors import RateLimitedError
from synth_media import picture

from .conftest import API_COLOR, API_SIZE, assert_error, files


def test_analyze_returns_the_ask_json_object(client: Any) -> None:
    resp = client.post("/v1/analyze", files=files(), data={"prompt": "What colour is it?", "mode": "local-only"})
    assert resp.status_code == 200
    out = resp.json()
    assert out["response"] == "local answer" and out["backend"] == "fastvlm" and out["mode"] == "local-only"
    for key in ("model", "route", "cached", "latency_ms", "usage", "confidence", "fallbacks"):
        assert key in out
    call = client.processor.backend("fastvlm").calls[-1]
    assert call.prompt == "What colour is it?" and call.attachments[0].mime == "image/png"


def test_sensitive_upload_never_reaches_the_cloud(client: Any) -> None:
    resp = client.post("/v1/analyze", files=files(), data={"prompt": "Describe", "sensitive": "true"})
    assert resp.status_code == 200 and resp.json()["backend"] == "fastvlm"
    assert client.processor.backend("gemini").calls == []
    forced = client.post("/v1/analyze", files=files(), data={"prompt": "Describe", "sensitive": "true",
                                                              "mode": "cloud-only"})
    assert_error(forced, 403, "policy_violation")
    assert client.processor.backend("gemini").calls == []


def test_analyze_accepts_json_with_data_uris(client: Any) -> None:
    uri = "data:image/png;base64," + base64.b64encode(picture(API_COLOR, API_SIZE)).decode()
    resp = client.post("/v1/analyze", json={"prompt": "Describe", "attachments": [uri], "mode": "cloud-only"})
    assert resp.status_code == 200 and resp.json()["backend"] == "gemini"
    assert client.processor.backend("gemini").calls[-1].attachments[0].data == picture(API_COLOR, API_SIZE)


def test_route_explains_without_calling_a_model(client: Any) -> None:
    resp = client.post("/v1/route", json={"prompt": "Describe", "sensitive": True})
    out = resp.json()
    assert resp.status_code == 200 and out["sensitive"] is True and out["cloud_allowed"] is False
    assert "gemini" not in out["backends"] and isinstance(out["rules"], list)
    assert client.processor.backend("fastvlm").calls == []


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"files": files(b"hello, I am text", "notes.txt"), "data": {"prompt": "x"}}, 415, "unsupported_media"),
        ({"files": files(picture(API_COLOR, API_SIZE)[:40], "cut.png"), "data": {"prompt": "x"}}, 400, "bad_input"),
        ({"files": files(), "data": {"prompt": "  "}}, 400, "bad_input"),
        ({"files": files(), "data": {"prompt": "x", "mode": "sideways"}}, 400, "bad_input"),
        ({"files": files(), "data": {"prompt": "x", "sensitive": "maybe"}}, 400, "bad_input"),
        ({"content": b"not json", "headers": {"content-type": "application/json"}}, 400, "bad_input"),
        ({"content": b"prompt", "headers": {"content-type": "text/plain"}}, 400, "bad_input"),
    ],
)
def test_bad_input_gets_one_clear_error(client: Any, kwargs: dict[str, Any], status: int, code: str) -> None:
    assert_error(client.post("/v1/analyze", **kwargs), status, code)
    assert client.processor.backend("fastvlm").calls == []


def test_upload_size_and_pixel_limits(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    app, proc = app_factory(max_upload_bytes=20_000, max_image_pixels=100 * 100)
    with TestClient(app) as c:
        big = picture(API_COLOR, (90, 90)) + b"\0" * 30_000  # valid PNG header, too many bytes
        assert_error(c.post("/v1/analyze", files=files(big), data={"prompt": "x"}), 413, "media_too_large")
        wide = picture(API_COLOR, (200, 200))  # small file, too many pixels
        err = assert_error(c.post("/v1/analyze", files=files(wide), data={"prompt": "x"}), 413, "media_too_large")
        assert "40,000 pixels" in err["message"]
        multipart = {"content-type": "multipart/form-data; boundary=b"}
        huge = c.post("/v1/analyze", content=b"x" * 400_000, headers=multipart)
        assert_error(huge, 413, "media_too_large")
        assert c.post("/v1/analyze", files=files(picture(API_COLOR, (90, 90))), data={"prompt": "x"}).status_code == 200
    assert len(proc.backend("fastvlm").calls) == 1


def test_api_keys_guard_every_v1_call(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    app, _ = app_factory(api_keys="k-one,k-two")
    with TestClient(app) as c:
        assert_error(c.get("/v1/models"), 401, "invalid_api_key")
        assert_error(c.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401, "invalid_api_key")
        assert c.get("/v1/models", headers={"Authorization": "Bearer k-two"}).status_code == 200
        assert c.get("/healthz").status_code == 200  # probes stay open
        assert c.get("/").status_code == 200


def test_cors_is_off_unless_configured(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    headers = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    app, _ = app_factory()
    with TestClient(app) as c:
        resp = c.options("/v1/analyze", headers=headers)
        assert "access-control-allow-origin" not in resp.headers
    app, _ = app_factory(cors_origins="http://elsewhere.example")
    with TestClient(app) as c:
        resp = c.options("/v1/analyze", headers=headers)
        assert resp.headers["access-control-allow-origin"] == "http://elsewhere.example"


async def test_overload_is_shed_with_503_and_retry_after(server_settings: Callable[..., Any]) -> None:
    from fastvlm_gemini_hybrid.server import create_app

    proc = make_processor(server_settings(server_concurrency=2, server_queue=3, cache_enabled=False),
                          local_kw={"delay_s": 0.3})
    app = create_app(processor=proc)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        resps = await asyncio.gather(*(
            c.post("/v1/analyze", json={"prompt": f"q{i}", "mode": "local-only"}) for i in range(12)
        ))
        codes = sorted(r.status_code for r in resps)
        assert codes.count(200) == 5 and codes.count(503) == 7, codes
        shed = next(r for r in resps if r.status_code == 503)
        assert shed.headers["retry-after"] == "1" and shed.json()["error"]["code"] == "overloaded"
        metrics = (await c.get("/metrics")).text
        assert "fastvlm_hybrid_shed_total 7" in metrics
        # once the burst is over the server answers again
        assert (await c.post("/v1/analyze", json={"prompt": "after", "mode": "local-only"})).status_code == 200
    assert len(proc.backend("fastvlm").calls) == 6


def test_backend_errors_map_to_statuses(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    from fastvlm_gemini_hybrid.backends.testing import failing

    app, _ = app_factory(cloud=failing(RateLimitedError("slow down", "gemini", retry_after_s=7)))
    with TestClient(app) as c:
        resp = c.post("/v1/analyze", json={"prompt": "x", "mode": "cloud-only"})
        assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
        assert resp.json()["error"]["type"] == "rate_limit_error"


def test_analyze_streams_server_sent_events(client: Any) -> None:
    with client.stream("POST", "/v1/analyze", data={"prompt": "x", "stream": "true", "mode": "local-only"}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    deltas = "".join(e["text"] for e in events if e["type"] == "delta")
    assert deltas.strip() == "local answer"
    assert events[-1]["type"] == "result" and events[-1]["backend"] == "fastvlm"


def test_health_ready_metrics_models(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and set(ready["backends"]) == {"fastvlm", "gemini"}
    assert ready["backends"]["gemini"]["kind"] == "cloud"
    client.post("/v1/analyze", json={"prompt": "x", "mode": "local-only"})
    text = client.get("/metrics").text
    assert 'fastvlm_hybrid_requests_total{backend="fastvlm"' in text
    assert 'fastvlm_hybrid_http_requests_total{method="POST",route="/v1/analyze",status="2xx"} 1' in text
    client.get("/no/such/path/12345")
    labels = client.get("/metrics").text
    assert "12345" not in labels  # unmatched paths share one label: cardinality stays bounded
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["hybrid", "fastvlm", "gemini"]


def test_readyz_is_503_when_no_backend_is_ready(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    from fastvlm_gemini_hybrid.backends.base import Health

    app, proc = app_factory()
    for name in ("fastvlm", "gemini"):
        async def down(name: str = name) -> Health:
            return Health(ready=False, detail=f"{name} is down")

        proc.backend(name).health = down  # type: ignore[method-assign]
    with TestClient(app) as c:
        resp = c.get("/readyz")
    assert resp.status_code == 503 and resp.json()["backends"]["gemini"]["detail"] == "gemini is down"


def test_batch_job_reports_progress_and_results(client: Any) -> None:
    parts = [("file", (f"p{i}.png", picture((i * 40, 0, 0), API_SIZE), "image/png")) for i in range(3)]
    resp = client.post("/v1/jobs", files=parts, data={"kind": "batch", "prompt": "Caption", "mode": "local-only"})
    assert resp.status_code == 202
    job_id = resp.json()["id"]
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    assert [e["state"] for e in events if e["type"] == "state"] == ["running", "succeeded"]
    progress = [e["progress"]["done"] for e in events if e["type"] == "result"]
    assert sorted(progress) == [1, 2, 3]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "succeeded" and job["progress"] == {"done": 3, "total": 3}
    assert sorted(r["input"] for r in job["results"]) == ["p0.png", "p1.png", "p2.png"]
    assert all(r["ok"] and r["response"] == "local answer" for r in job["results"])
    assert_error(client.get("/v1/jobs/nope"), 404, "job_not_found")
    assert_error(client.post("/v1/jobs", files=parts, data={"kind": "dance", "prompt": "x"}), 400, "bad_input")
