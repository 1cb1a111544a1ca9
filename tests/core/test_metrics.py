from __future__ import annotations

from fastvlm_gemini_hybrid.metrics import Metrics


def test_counts_and_prometheus_text() -> None:
    m = Metrics()
    m.record_request("fastvlm", "call", "ok", 0.2)
    m.record_request("fastvlm", "call", "ok", 0.4)
    m.record_request("gemini", "call", "timeout", 3.0)
    m.record_fallback("gemini", "timeout")
    m.record_cache(True)
    m.record_cache(False)
    m.record_usage("gemini", 10, 5, 0.001)
    snap = m.snapshot()
    assert {"backend": "fastvlm", "mode": "call", "outcome": "ok", "count": 2} in snap["requests"]
    assert snap["cache"] == {"hit": 1, "miss": 1}
    assert snap["latency_s"]["fastvlm"]["count"] == 2
    text = m.prometheus_text()
    assert 'fastvlm_hybrid_requests_total{backend="fastvlm",mode="call",outcome="ok"} 2' in text
    assert 'fastvlm_hybrid_request_seconds_bucket{backend="fastvlm",le="0.5"} 2' in text
    assert 'fastvlm_hybrid_request_seconds_bucket{backend="fastvlm",le="0.1"} 0' in text
    assert 'fastvlm_hybrid_fallbacks_total{backend="gemini",error="timeout"} 1' in text
