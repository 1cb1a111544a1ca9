"""Ray Serve scale-out: two replicas, each with its own processor, behind the same HTTP API.

Slow (Ray starts a local cluster: ~20-60 s on a small box), so marked `slow`; skipped when the
`ray` extra is not installed. Replicas get fake backends through `processor_factory` (test-only
injection: product code builds the configured backends).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastvlm_gemini_hybrid.config import Settings, load_settings

from .conftest import free_port

pytestmark = pytest.mark.slow


def fake_processor(settings: Settings) -> Any:
    """Runs inside each replica: a processor over fake backends that name their process."""
    import os

    from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
    from fastvlm_gemini_hybrid.processor import HybridVLMProcessor

    backends = {
        "fastvlm": FunctionBackend("fastvlm", lambda req: f"fake local answer from pid {os.getpid()}"),
        "gemini": FunctionBackend("gemini", "fake cloud answer", kind="cloud"),
    }
    return HybridVLMProcessor(settings, backends=backends)


def _png(shade: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (shade, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def ray_cluster() -> Any:
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    from ray import cloudpickle

    # The fake factory lives in this test module, which replicas cannot import: ship it by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        yield serve
    finally:
        serve.shutdown()
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_two_replicas_answer_behind_one_http_api(ray_cluster: Any, tmp_path: Path) -> None:
    from fastvlm_gemini_hybrid.server.ray_serve import build_deployment

    serve = ray_cluster
    port = free_port()
    settings = load_settings(home=tmp_path / "home", cache_enabled=False, audit_enabled=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_deployment(settings, 2, processor_factory=fake_processor, num_cpus=0.5),
              name="hybrid-test", route_prefix="/")

    url = f"http://127.0.0.1:{port}"
    replicas: set[str] = set()
    pids: set[str] = set()
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while len(replicas) < 2 and time.monotonic() < deadline:
            i += 1
            resp = client.post("/v1/analyze", data={"prompt": "Describe", "mode": "local-only"},
                               files={"file": ("a.png", _png(i % 250), "image/png")})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["backend"] == "fastvlm" and body["response"].startswith("fake local answer from pid ")
            replicas.add(resp.headers["x-hybrid-replica"])
            pids.add(body["response"].rsplit(" ", 1)[-1])
        # the same contract as the single-process server: errors, health
        bad = client.post("/v1/analyze", data={"prompt": ""}, files={"file": ("a.png", _png(1), "image/png")})
        health = client.get("/healthz")
    assert len(replicas) == 2, f"only {replicas} answered in {i} requests"
    assert len(pids) == 2  # each replica owns its processor, in its own process
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_input"
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["x-hybrid-replica"] in replicas
