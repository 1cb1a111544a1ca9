"""Time to first streamed token: our GeminiBackend.stream vs the google-genai SDK called directly.

    python benchmarks/stream_overhead.py [--n 300]

Target (issue): our overhead over the SDK <= 5 ms (median of many). Both paths use one warm
client against the same fake server, which sends the first chunk at once and the rest later
(`chunk_delay_s`), so time-to-first-token is the client-side cost plus one local round trip. The
two paths alternate call by call so background load on a shared machine hits both alike.
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

from cloud.fake_gemini import FakeGeminiServer
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.types import Request


async def ttft_ours(backend: GeminiBackend, prompt: str) -> float:
    start = time.perf_counter()
    stream = backend.stream(Request(prompt))
    first = await anext(stream)
    elapsed = time.perf_counter() - start
    assert first
    async for _ in stream:  # drain outside the timing
        pass
    return elapsed


async def ttft_sdk(client: object, model: str, prompt: str) -> float:
    start = time.perf_counter()
    chunks = await client.aio.models.generate_content_stream(model=model, contents=prompt)  # type: ignore[attr-defined]
    first = await anext(chunks)
    elapsed = time.perf_counter() - start
    assert first.text
    async for _ in chunks:
        pass
    return elapsed


async def run(n: int) -> tuple[list[float], list[float]]:
    from google import genai
    from google.genai import types

    with FakeGeminiServer() as fake, tempfile.TemporaryDirectory() as home:
        fake.chunk_delay_s = 0.002
        settings = load_settings(home=home, gemini_api_key=FakeGeminiServer.api_key, gemini_base_url=fake.base_url)
        backend = GeminiBackend(settings)
        client = genai.Client(
            api_key=FakeGeminiServer.api_key,
            http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1beta"),
        )
        ours: list[float] = []
        sdk: list[float] = []
        try:
            for i in range(20):  # warm both clients and connections
                await ttft_ours(backend, f"warm {i} a b c")
                await ttft_sdk(client, settings.gemini_model, f"warm {i} a b c")
            for i in range(n):
                prompt = f"question {i} about the picture"
                if i % 2:
                    ours.append(await ttft_ours(backend, prompt))
                    sdk.append(await ttft_sdk(client, settings.gemini_model, prompt))
                else:
                    sdk.append(await ttft_sdk(client, settings.gemini_model, prompt))
                    ours.append(await ttft_ours(backend, prompt))
        finally:
            await backend.aclose()
            await client.aio.aclose()
            client.close()
    return ours, sdk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    ours, sdk = asyncio.run(run(args.n))
    med_o, med_s = statistics.median(ours) * 1000, statistics.median(sdk) * 1000
    p90 = lambda xs: sorted(xs)[int(0.9 * len(xs))] * 1000  # noqa: E731
    overhead = med_o - med_s
    print(f"time to first token, {args.n} streams each, same fake server, interleaved")
    print(f"  SDK directly        median {med_s:7.3f} ms   p90 {p90(sdk):7.3f} ms   min {min(sdk) * 1000:7.3f} ms")
    print(f"  GeminiBackend       median {med_o:7.3f} ms   p90 {p90(ours):7.3f} ms   min {min(ours) * 1000:7.3f} ms")
    print(f"  overhead (median)   {overhead:+.3f} ms   ratio ours/SDK {med_o / med_s:.3f}")
    print(f"  target overhead <= 5 ms: {'PASS' if overhead <= 5.0 else 'FAIL'}")


if __name__ == "__main__":
    main()
