"""Metrics: cheap in-process counts, exported through prometheus-client's own text format."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from fastvlm_gemini_hybrid.metrics import Metrics


def families(text: str) -> dict[str, Any]:
    """Parsed families by name; the parser raises on malformed text, a repeated name fails here."""
    parser = pytest.importorskip("prometheus_client.parser")
    out: dict[str, Any] = {}
    for fam in parser.text_string_to_metric_families(text):
        assert fam.name not in out, f"family {fam.name} written twice"
        out[fam.name] = fam
    return out


def value(fams: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    matches = [s.value for s in fams[family].samples if s.name == sample and s.labels == labels]
    assert len(matches) == 1, (sample, labels, fams[family].samples)
    return matches[0]


def test_counts_and_prometheus_text() -> None:
    m = Metrics()
    m.record_request("fastvlm", "call", "ok", 0.2)
    m.record_request("fastvlm", "call", "ok", 0.4)
    m.record_request("gemini", "call", "timeout", 3.0)
    m.record_fallback("gemini", "timeout")
    m.record_cache(True)
    m.record_cache(False)
    m.record_usage("gemini", 10, 5, 0.001)
    m.record_privacy("redact")
    m.record_escalation()
    m.set_circuit("gemini", "open")
    m.set_gauge("loaded_models", 2)
    snap = m.snapshot()
    assert {"backend": "fastvlm", "mode": "call", "outcome": "ok", "count": 2} in snap["requests"]
    assert snap["cache"] == {"hit": 1, "miss": 1}
    assert snap["latency_s"]["fastvlm"]["count"] == 2
    assert snap["escalations"] == 1 and snap["circuits"] == {"gemini": "open"}

    text = m.prometheus_text()
    fams = families(text)
    p = "fastvlm_hybrid"
    assert value(fams, f"{p}_requests", f"{p}_requests_total", backend="fastvlm", mode="call", outcome="ok") == 2
    assert value(fams, f"{p}_fallbacks", f"{p}_fallbacks_total", backend="gemini", error="timeout") == 1
    assert value(fams, f"{p}_cache", f"{p}_cache_total", result="hit") == 1
    assert value(fams, f"{p}_privacy_verdicts", f"{p}_privacy_verdicts_total", verdict="redact") == 1
    assert value(fams, f"{p}_escalations", f"{p}_escalations_total") == 1
    assert value(fams, f"{p}_tokens", f"{p}_tokens_total", backend="gemini", direction="output") == 5
    assert value(fams, f"{p}_cost_usd", f"{p}_cost_usd_total", backend="gemini") == pytest.approx(0.001)
    assert value(fams, f"{p}_circuit_state", f"{p}_circuit_state", backend="gemini", state="open") == 1
    assert value(fams, f"{p}_circuit_state", f"{p}_circuit_state", backend="gemini", state="closed") == 0
    assert value(fams, f"{p}_loaded_models", f"{p}_loaded_models") == 2
    # Histogram: cumulative buckets up to +Inf, which equals _count; _sum is the seconds.
    seconds = f"{p}_request_seconds"
    assert fams[seconds].type == "histogram"
    assert value(fams, seconds, f"{seconds}_bucket", backend="fastvlm", le="0.1") == 0
    assert value(fams, seconds, f"{seconds}_bucket", backend="fastvlm", le="0.25") == 1
    assert value(fams, seconds, f"{seconds}_bucket", backend="fastvlm", le="0.5") == 2
    assert value(fams, seconds, f"{seconds}_bucket", backend="fastvlm", le="+Inf") == 2
    assert value(fams, seconds, f"{seconds}_count", backend="fastvlm") == 2
    assert value(fams, seconds, f"{seconds}_sum", backend="fastvlm") == pytest.approx(0.6)
    for fam in fams.values():
        assert fam.documentation and fam.type in {"counter", "gauge", "histogram"}, fam
        assert f"# HELP {fam.name}" in text or f"# HELP {fam.name}_total" in text
    # Counters are exposed with the `_total` suffix, and only with it.
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line


def test_label_values_are_escaped_by_the_library() -> None:
    m = Metrics()
    odd = 'we"ird\\back\nslash'
    m.record_fallback(odd, "timeout")
    fams = families(m.prometheus_text())
    assert value(fams, "fastvlm_hybrid_fallbacks", "fastvlm_hybrid_fallbacks_total", backend=odd, error="timeout") == 1


def test_each_instance_has_its_own_registry() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    a, b = Metrics(), Metrics()
    a.record_cache(True)
    assert a.registry is not b.registry and a.registry is not prometheus_client.REGISTRY
    assert value(families(a.prometheus_text()), "fastvlm_hybrid_cache", "fastvlm_hybrid_cache_total", result="hit") == 1
    assert not families(b.prometheus_text())["fastvlm_hybrid_cache"].samples
    assert b"fastvlm_hybrid" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def test_prefix_is_honoured() -> None:
    m = Metrics()
    m.record_escalation()
    assert value(families(m.prometheus_text(prefix="other")), "other_escalations", "other_escalations_total") == 1


def test_a_gauge_name_prometheus_would_reject_is_refused_when_set() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="not a Prometheus metric name"):
        m.set_gauge("bad-name", 1)
    assert m.snapshot()["gauges"] == {}


def test_core_works_without_prometheus_client() -> None:
    """The processor and the CLI import and count without the extra; rendering names it."""
    script = textwrap.dedent("""
        import sys
        sys.modules["prometheus_client"] = None  # as if not installed
        import fastvlm_gemini_hybrid.cli, fastvlm_gemini_hybrid.processor
        from fastvlm_gemini_hybrid.errors import MissingDependencyError
        from fastvlm_gemini_hybrid.metrics import Metrics
        m = Metrics()
        m.record_request("fastvlm", "call", "ok", 0.1)
        assert m.snapshot()["requests"][0]["count"] == 1
        try:
            m.prometheus_text()
        except MissingDependencyError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'fastvlm-gemini-hybrid[server]'" in out.stdout
