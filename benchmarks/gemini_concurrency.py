"""Gemini path concurrency: N simultaneous requests against the fake server with injected latency.

    python benchmarks/gemini_concurrency.py [--n 64] [--latency 1.2] [--repeats 3]

Target (issue): 64 requests x 1.2 s latency finish in <= 2 s wall (a sequential design takes
76.8 s). Each request carries a small JPEG with GPS EXIF, so metadata stripping is on the path
too. Runs through GeminiBackend -> google-genai SDK -> HTTP on 127.0.0.1 -> fake server threads.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cloud.conftest import jpeg_with_gps
from cloud.fake_gemini import FakeGeminiServer
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.types import Attachment, Request


async def run(n: int, latency: float, repeats: int) -> list[float]:
    image = Attachment.from_bytes(jpeg_with_gps((320, 240)))
    with FakeGeminiServer() as fake, tempfile.TemporaryDirectory() as home:
        settings = load_settings(home=home, gemini_api_key=FakeGeminiServer.api_key,
                                 gemini_base_url=fake.base_url, gemini_timeout_s=30.0)
        backend = GeminiBackend(settings)
        try:
            await backend.generate(Request("warm-up"))  # client creation, first connection
            fake.latency_s = latency
            walls = []
            for _ in range(repeats):
                requests = [Request(f"Describe image {i}", attachments=(image,)) for i in range(n)]
                start = time.perf_counter()
                results = await asyncio.gather(*(backend.generate(r) for r in requests))
                walls.append(time.perf_counter() - start)
                assert all("inline:image/jpeg" in g.text for g in results), "fake did not see every image"
            assert b"SecretCamCorp" not in b"".join(r.body for r in fake.model_calls)
        finally:
            await backend.aclose()
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--latency", type=float, default=1.2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    walls = asyncio.run(run(args.n, args.latency, args.repeats))
    sequential = args.n * args.latency
    best, median = min(walls), statistics.median(walls)
    print(f"gemini concurrency: {args.n} requests, {args.latency:g} s injected latency each, {args.repeats} runs")
    print(f"  wall min {best:.3f} s   median {median:.3f} s   (runs: {', '.join(f'{w:.3f}' for w in walls)})")
    print(f"  sequential design would take        {sequential:.1f} s")
    print(f"  ratio wall/sequential (min)          {best / sequential:.4f}  ({sequential / best:.1f}x faster)")
    print(f"  ratio wall/single latency (min)      {best / args.latency:.2f}x one request")
    print(f"  target wall <= 2.0 s: {'PASS' if median <= 2.0 else 'FAIL'} (median)")


if __name__ == "__main__":
    main()
