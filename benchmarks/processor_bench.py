"""Processor overhead, cache-hit latency and parallel-mode wall time, with fake backends.

    python benchmarks/processor_bench.py [--n 2000]

Targets (issue 2): cache-hit p99 <= 1 ms; parallel first-wins wall <= 1.1x the faster backend.
The audit trail is on (as in production: one fsynced record per request) unless --no-audit.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import Mode, Request


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make(home: Path, audit: bool, **kw: float) -> HybridVLMProcessor:
    settings = load_settings(home=home, audit_enabled=audit)
    return HybridVLMProcessor(
        settings,
        backends={
            "fastvlm": FunctionBackend("fastvlm", "local", kind="local", delay_s=kw.get("local", 0.0), confidence=0.9),
            "gemini": FunctionBackend("gemini", "cloud", kind="cloud", delay_s=kw.get("cloud", 0.0)),
        },
    )


async def overhead(home: Path, n: int, audit: bool) -> None:
    proc = make(home / "overhead", audit)
    proc.cache = None  # every request reaches the (instant) backend
    lat: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await proc.arun(Request(prompt=f"Describe picture {i}", mode=Mode.LOCAL_ONLY))
        lat.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - start
    print(
        f"overhead   instant backend, no cache: {n / wall:8.0f} req/s   p50 {pct(lat, 0.5):.3f} ms"
        f"   p99 {pct(lat, 0.99):.3f} ms"
    )
    await proc.aclose()


async def cache_hits(home: Path, n: int, audit: bool) -> None:
    proc = make(home / "cache", audit)
    request = Request(prompt="Describe the harbour", mode=Mode.LOCAL_ONLY)
    await proc.arun(request)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        result = await proc.arun(request)
        lat.append((time.perf_counter() - t) * 1000)
        assert result.cached
    p99 = pct(lat, 0.99)
    print(
        f"cache hit  p50 {pct(lat, 0.5):.3f} ms   p99 {p99:.3f} ms   target p99 <= 1 ms"
        f"   -> {'OK' if p99 <= 1 else 'MISSED'} ({p99 / 1.0:.2f}x of target)"
    )
    await proc.aclose()


async def parallel(home: Path, runs: int) -> None:
    proc = make(home / "parallel", True, local=1.2, cloud=0.3)
    proc.cache = None
    walls = []
    for i in range(runs):
        t = time.perf_counter()
        result = await proc.arun(Request(prompt=f"q{i}", mode=Mode.PARALLEL))
        walls.append(time.perf_counter() - t)
        assert result.backend == "gemini"
    med = statistics.median(walls)
    print(
        f"parallel   fakes 0.3 s and 1.2 s: median wall {med:.3f} s = {med / 0.3:.3f}x the faster one"
        f" (target <= 1.1x) -> {'OK' if med <= 0.33 else 'MISSED'}"
    )
    await proc.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--no-audit", action="store_true")
    args = parser.parse_args()
    audit = not args.no_audit
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        print(f"audit trail: {'on (background writer, fsynced group commits)' if audit else 'off'}")
        asyncio.run(overhead(home, args.n, audit))
        asyncio.run(cache_hits(home, args.n, audit))
        asyncio.run(parallel(home, 5))


if __name__ == "__main__":
    main()
