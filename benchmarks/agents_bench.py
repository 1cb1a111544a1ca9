"""What the agent layer costs on top of the processor, and what batch concurrency buys.

    python benchmarks/agents_bench.py [--n 300] [--images 40] [--delay-ms 20]

1. Per-request overhead of `ux-review` (prompt, JSON schema, parse, pydantic validation, `check`,
   post-processing with image sizes) against a bare `processor.arun` + `json.loads` of the same
   answer, both over a fake backend that answers instantly (the model's time is excluded on purpose:
   this is the agent layer alone). Target: well under 1 ms per request, i.e. noise next to a model call.
2. `caption` over a folder with a fake backend that takes `--delay-ms` per image: wall time at
   concurrency 1 and 8, and the speed-up. Target: close to min(8, images) x.
The fake backends are test doubles (`FunctionBackend`), named as such; no model is involved.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from fastvlm_gemini_hybrid.agents.base import AgentContext, AgentOptions
from fastvlm_gemini_hybrid.agents.registry import load_builtin
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import Attachment, Request

REVIEW = json.dumps({
    "summary": "Dense form", "score": 6,
    "issues": [{"title": f"Issue {i}", "severity": ["low", "medium", "high", "critical"][i % 4],
                "category": "layout", "location": {"screenshot": 0, "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.1},
                "description": "Crowded.", "suggestion": "Add spacing."} for i in range(8)],
    "accessibility": [{"issue": "Low contrast", "severity": "high", "guideline": "1.4.3", "location": None}],
    "suggestions": ["Group the fields"],
})
CAPTION = json.dumps({"caption": "A square.", "alt_text": "A square", "alt_text_long": "A flat square.", "tags": []})


def png(size: tuple[int, int] = (800, 600)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 200, 200)).save(buf, format="PNG")
    return buf.getvalue()


def processor(home: Path, answer: str, delay_s: float = 0.0) -> HybridVLMProcessor:
    settings = load_settings(home=home, audit_enabled=False, cache_enabled=False)
    fake = {"fastvlm": FunctionBackend("fastvlm", answer, kind="local", delay_s=delay_s)}
    return HybridVLMProcessor(settings, backends=fake, cache=False, audit=False)


async def overhead(home: Path, n: int) -> None:
    proc = processor(home / "o", REVIEW)
    image = Attachment.from_bytes(png(), name="screen.png")
    agent = load_builtin("ux-review")
    path = home / "screen.png"
    path.write_bytes(image.data or b"")
    ctx = AgentContext([], AgentOptions(progress=False))
    from fastvlm_gemini_hybrid.agents.base import resolve_inputs

    ctx.items = resolve_inputs([str(path)], agent.accepts, agent.name)
    ctx.attachments = (image,)
    bare, full = [], []
    for i in range(n + 20):  # 20 warm-up rounds
        t = time.perf_counter()
        result = await proc.arun(Request("Review this screen", attachments=(image,), sensitive=True))
        json.loads(result.response)
        b = time.perf_counter() - t
        t = time.perf_counter()
        item = await agent.ask(proc, ctx, (image,))
        f = time.perf_counter() - t
        assert item.ok, item.error
        if i >= 20:
            bare.append(b * 1e3)
            full.append(f * 1e3)
    await proc.aclose()
    mb, mf = statistics.median(bare), statistics.median(full)
    print(f"ux-review request, instant fake backend (n={n}):")
    print(f"  bare processor.arun + json.loads   median {mb:.3f} ms   min {min(bare):.3f} ms")
    print(f"  agent (schema, validate, post)     median {mf:.3f} ms   min {min(full):.3f} ms")
    print(f"  agent layer overhead               {mf - mb:.3f} ms per request ({mf / mb:.2f}x the bare call)")


async def caption_batch(home: Path, images: int, delay_ms: float) -> None:
    folder = home / "imgs"
    folder.mkdir()
    data = png((320, 240))
    for i in range(images):
        (folder / f"img-{i:03d}.png").write_bytes(data)
    walls = {}
    for concurrency in (1, 8):
        proc = processor(home / f"c{concurrency}", CAPTION, delay_s=delay_ms / 1000)
        options = AgentOptions(concurrency=concurrency, progress=False, warn=lambda _m: None)
        t = time.perf_counter()
        items = await load_builtin("caption").arun(proc, [str(folder)], options)
        walls[concurrency] = time.perf_counter() - t
        assert len(items) == images and all(i.ok for i in items)
        await proc.aclose()
    print(f"caption over {images} images, fake backend {delay_ms:g} ms/image:")
    print(f"  concurrency 1: {walls[1]:.3f} s   (serial floor {images * delay_ms / 1000:.3f} s)")
    print(f"  concurrency 8: {walls[8]:.3f} s   speed-up {walls[1] / walls[8]:.2f}x (ideal {min(8, images)}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        asyncio.run(overhead(home, args.n))
        asyncio.run(caption_batch(home, args.images, args.delay_ms))


if __name__ == "__main__":
    main()
