"""In-process metrics: counts, latency histograms, fallbacks and cache hits per backend.

Labels are bounded (backend names, outcomes, modes), so the Prometheus text stays small. No
dependency: the server renders `prometheus_text()` at /metrics.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from typing import Any

# Seconds; covers a cache hit (sub-ms) to a slow CPU generation (minutes).
BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.total = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.total += 1

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile q (coarse, cheap)."""
        if not self.total:
            return None
        rank, seen = q * self.total, 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return BUCKETS[i] if i < len(BUCKETS) else float("inf")
        return float("inf")


class Metrics:
    """Thread-safe counters and histograms for the processor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # (backend, mode, outcome)
        self.fallbacks: dict[tuple[str, str], int] = defaultdict(int)  # (from_backend, error_code)
        self.cache: dict[str, int] = defaultdict(int)  # hit / miss
        self.escalations = 0
        self.latency: dict[str, _Histogram] = defaultdict(_Histogram)  # backend
        self.tokens: dict[tuple[str, str], int] = defaultdict(int)  # (backend, direction)
        self.cost_usd: dict[str, float] = defaultdict(float)
        self.gauges: dict[str, float] = {}
        self.circuits: dict[str, str] = {}  # backend -> closed / open / half-open
        self.privacy: dict[str, int] = defaultdict(int)  # egress gate verdicts: allow / redact / refuse

    def record_request(self, backend: str, mode: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self.requests[(backend, mode, outcome)] += 1
            self.latency[backend].observe(seconds)

    def record_usage(self, backend: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        with self._lock:
            self.tokens[(backend, "input")] += input_tokens
            self.tokens[(backend, "output")] += output_tokens
            self.cost_usd[backend] += cost_usd

    def record_fallback(self, backend: str, code: str) -> None:
        with self._lock:
            self.fallbacks[(backend, code)] += 1

    def record_cache(self, hit: bool) -> None:
        with self._lock:
            self.cache["hit" if hit else "miss"] += 1

    def record_privacy(self, verdict: str) -> None:
        with self._lock:
            self.privacy[verdict] += 1

    def record_escalation(self) -> None:
        with self._lock:
            self.escalations += 1

    def set_circuit(self, backend: str, state: str) -> None:
        with self._lock:
            self.circuits[backend] = state

    def set_gauge(self, name: str, value: float) -> None:
        with self._lock:
            self.gauges[name] = value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": [
                    {"backend": b, "mode": m, "outcome": o, "count": c}
                    for (b, m, o), c in sorted(self.requests.items())
                ],
                "fallbacks": [{"backend": b, "error": e, "count": c} for (b, e), c in sorted(self.fallbacks.items())],
                "cache": dict(self.cache),
                "escalations": self.escalations,
                "latency_s": {
                    b: {"count": h.total, "sum": round(h.sum, 6), "p50": h.quantile(0.5), "p99": h.quantile(0.99)}
                    for b, h in self.latency.items()
                },
                "tokens": [{"backend": b, "direction": d, "count": c} for (b, d), c in sorted(self.tokens.items())],
                "cost_usd": dict(self.cost_usd),
                "gauges": dict(self.gauges),
                "circuits": dict(self.circuits),
                "privacy": dict(self.privacy),
            }

    def prometheus_text(self, prefix: str = "fastvlm_hybrid") -> str:
        """The Prometheus exposition format (text 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            lines.append(f"# TYPE {prefix}_requests_total counter")
            for (b, m, o), c in sorted(self.requests.items()):
                lines.append(f'{prefix}_requests_total{{backend="{b}",mode="{m}",outcome="{o}"}} {c}')
            lines.append(f"# TYPE {prefix}_fallbacks_total counter")
            for (b, e), c in sorted(self.fallbacks.items()):
                lines.append(f'{prefix}_fallbacks_total{{backend="{b}",error="{e}"}} {c}')
            lines.append(f"# TYPE {prefix}_cache_total counter")
            for k, c in sorted(self.cache.items()):
                lines.append(f'{prefix}_cache_total{{result="{k}"}} {c}')
            lines.append(f"# TYPE {prefix}_privacy_verdicts_total counter")
            for k, c in sorted(self.privacy.items()):
                lines.append(f'{prefix}_privacy_verdicts_total{{verdict="{k}"}} {c}')
            lines.append(f"# TYPE {prefix}_escalations_total counter")
            lines.append(f"{prefix}_escalations_total {self.escalations}")
            lines.append(f"# TYPE {prefix}_tokens_total counter")
            for (b, d), c in sorted(self.tokens.items()):
                lines.append(f'{prefix}_tokens_total{{backend="{b}",direction="{d}"}} {c}')
            lines.append(f"# TYPE {prefix}_cost_usd_total counter")
            for b, v in sorted(self.cost_usd.items()):
                lines.append(f'{prefix}_cost_usd_total{{backend="{b}"}} {v}')
            lines.append(f"# TYPE {prefix}_request_seconds histogram")
            for b, h in sorted(self.latency.items()):
                cumulative = 0
                for bound, count in zip((*BUCKETS, float("inf")), h.counts, strict=True):
                    cumulative += count
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(f'{prefix}_request_seconds_bucket{{backend="{b}",le="{le}"}} {cumulative}')
                lines.append(f'{prefix}_request_seconds_sum{{backend="{b}"}} {h.sum}')
                lines.append(f'{prefix}_request_seconds_count{{backend="{b}"}} {h.total}')
            lines.append(f"# TYPE {prefix}_circuit_state gauge")
            for b, state in sorted(self.circuits.items()):
                for candidate in ("closed", "open", "half-open"):
                    lines.append(
                        f'{prefix}_circuit_state{{backend="{b}",state="{candidate}"}} {int(state == candidate)}'
                    )
            for name, value in sorted(self.gauges.items()):
                lines.append(f"# TYPE {prefix}_{name} gauge")
                lines.append(f"{prefix}_{name} {value}")
        return "\n".join(lines) + "\n"
