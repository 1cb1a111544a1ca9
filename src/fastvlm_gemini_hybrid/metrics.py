"""In-process metrics: counts, latency histograms, fallbacks and cache hits per backend.

Recording is a dict increment under a lock: `record_*` run on every request. Labels are bounded
(backend names, outcomes, modes). Prometheus families are built from these dicts only when scraped
(`metrics_export`, which needs the `server` extra's prometheus-client); in multi-process mode each
record is also written to prometheus_client's shared files, so one scrape sums every process.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from . import metrics_export as export
from .metrics_export import BUCKETS, CIRCUIT_STATES

__all__ = ["BUCKETS", "Metrics"]


class _Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.total = 0

    def observe(self, seconds: float) -> int:
        """Count `seconds`; returns the bucket index (the last one is +Inf)."""
        index = bisect.bisect_left(BUCKETS, seconds)
        self.counts[index] += 1
        self.sum += seconds
        self.total += 1
        return index

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
        self._registry: Any = None
        # Multi-process mode only (PROMETHEUS_MULTIPROC_DIR): the shared files other processes' scrapes read.
        self._sink = export.process_sink()
        if self._sink is not None:
            self._sink.inc(export.ESCALATIONS, amount=0)  # present at 0, as in one process

    def record_request(self, backend: str, mode: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self.requests[(backend, mode, outcome)] += 1
            bucket = self.latency[backend].observe(seconds)
        if self._sink is not None:
            self._sink.inc(export.REQUESTS, (backend, mode, outcome))
            self._sink.observe(export.LATENCY, (backend,), bucket, seconds)

    def record_usage(self, backend: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        with self._lock:
            self.tokens[(backend, "input")] += input_tokens
            self.tokens[(backend, "output")] += output_tokens
            self.cost_usd[backend] += cost_usd
        if self._sink is not None:
            self._sink.inc(export.TOKENS, (backend, "input"), input_tokens)
            self._sink.inc(export.TOKENS, (backend, "output"), output_tokens)
            self._sink.inc(export.COST, (backend,), cost_usd)

    def record_fallback(self, backend: str, code: str) -> None:
        with self._lock:
            self.fallbacks[(backend, code)] += 1
        if self._sink is not None:
            self._sink.inc(export.FALLBACKS, (backend, code))

    def record_cache(self, hit: bool) -> None:
        result = "hit" if hit else "miss"
        with self._lock:
            self.cache[result] += 1
        if self._sink is not None:
            self._sink.inc(export.CACHE, (result,))

    def record_privacy(self, verdict: str) -> None:
        with self._lock:
            self.privacy[verdict] += 1
        if self._sink is not None:
            self._sink.inc(export.PRIVACY, (verdict,))

    def record_escalation(self) -> None:
        with self._lock:
            self.escalations += 1
        if self._sink is not None:
            self._sink.inc(export.ESCALATIONS)

    def set_circuit(self, backend: str, state: str) -> None:
        with self._lock:
            self.circuits[backend] = state
        if self._sink is not None:
            for candidate in CIRCUIT_STATES:
                self._sink.set(export.CIRCUIT, (backend, candidate), float(state == candidate))

    def set_gauge(self, name: str, value: float) -> None:
        """A free-form gauge, exported as `fastvlm_hybrid_<name>`; `name` must be a Prometheus name."""
        spec = export.gauge_family(name)  # a bad name fails here, not every later scrape
        with self._lock:
            self.gauges[name] = value
        if self._sink is not None:
            self._sink.set(spec, (), value)

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

    def collect(self, prefix: str = export.PREFIX) -> Iterator[Any]:
        """This instance's counters as prometheus_client metric families (copied under the lock)."""
        with self._lock:
            requests = sorted(self.requests.items())
            fallbacks = sorted(self.fallbacks.items())
            cache = sorted(self.cache.items())
            privacy = sorted(self.privacy.items())
            escalations = self.escalations
            tokens = sorted(self.tokens.items())
            cost = sorted(self.cost_usd.items())
            latency = [((b,), list(h.counts), h.sum) for b, h in sorted(self.latency.items())]
            circuits = sorted(self.circuits.items())
            gauges = sorted(self.gauges.items())
        yield export.family(export.REQUESTS, requests, prefix)
        yield export.family(export.FALLBACKS, fallbacks, prefix)
        yield export.family(export.CACHE, (((k,), c) for k, c in cache), prefix)
        yield export.family(export.PRIVACY, (((k,), c) for k, c in privacy), prefix)
        yield export.family(export.ESCALATIONS, [((), escalations)], prefix)
        yield export.family(export.TOKENS, tokens, prefix)
        yield export.family(export.COST, (((b,), v) for b, v in cost), prefix)
        yield export.histogram(export.LATENCY, latency, prefix)
        yield export.family(export.CIRCUIT, (((b, s), float(state == s)) for b, state in circuits
                                             for s in CIRCUIT_STATES), prefix)
        for name, value in gauges:
            yield export.family(export.gauge_family(name), [((), value)], prefix)

    @property
    def registry(self) -> Any:
        """This instance's own `CollectorRegistry` (the library's global one would mix processors)."""
        if self._registry is None:
            self._registry = export.registry(self.collect)
        return self._registry

    def prometheus_text(self, prefix: str = export.PREFIX) -> str:
        """This processor's counters in this process, in the Prometheus text format (0.0.4).

        Needs prometheus-client (`MissingDependencyError` otherwise). The server's `/metrics` adds
        its own families and, in multi-process mode, every process's counters.
        """
        reg = self.registry if prefix == export.PREFIX else export.registry(lambda: self.collect(prefix))
        return export.client().generate_latest(reg).decode("utf-8")
