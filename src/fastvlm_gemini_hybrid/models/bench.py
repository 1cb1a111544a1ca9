"""Measuring a loaded runtime: time to first token, follow-up TTFT on the same image, decode tokens/s.

Shared by `fastvlm-hybrid bench` and `benchmarks/fastvlm_cpu.py` so both report the same numbers the
same way. After one full-length warm-up, every "cold" run uses a fresh synthetic image (so no cache
helps); the follow-up asks another question about that run's image, which is what a chat about one
picture looks like. Decoding ignores end-of-turn tokens so every run produces the same token count.
"""

from __future__ import annotations

import io
import random
import statistics
import time
from typing import Any

from ..types import GenerationOptions

QUESTIONS = ("Describe this image in detail.", "What colours are the largest shapes?", "Is there any text?")


def synthetic_image(seed: int, size: tuple[int, int] = (1280, 720)) -> bytes:
    """A wide PNG with random rectangles: deterministic per seed, different between seeds."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(24):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.rectangle([x, y, x + rng.randrange(20, 300), y + rng.randrange(20, 200)],
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def summarise(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def measure_runtime(runtime: Any, *, runs: int = 3, max_tokens: int = 32, seed: int = 1000) -> dict[str, Any]:
    """Cold TTFT, follow-up TTFT and decode speed over `runs` runs (after one warm-up)."""
    from .runtime import GenItem, ImageInput

    opts = GenerationOptions(max_tokens=max_tokens)
    # Warm-up at full length: oneDNN builds kernels per shape, and decode shapes grow with every token.
    warm = ImageInput.from_bytes(synthetic_image(seed - 1))
    runtime.generate([GenItem(QUESTIONS[0], (warm,), opts)], ignore_eos=True)
    runtime.generate([GenItem(QUESTIONS[1], (warm,), GenerationOptions(max_tokens=1))], ignore_eos=True)
    samples: dict[str, list[float]] = {k: [] for k in ("ttft_s", "followup_ttft_s", "decode_tok_s", "vision_s",
                                                       "preprocess_s", "prefill_s", "followup_prefill_s")}
    for run in range(runs):
        image = ImageInput.from_bytes(synthetic_image(seed + run))
        out = runtime.generate([GenItem(QUESTIONS[0], (image,), opts)], ignore_eos=True)[0]
        timings = dict(runtime.last_timings)
        samples["ttft_s"].append(out.ttft_s)
        for key in ("vision_s", "preprocess_s", "prefill_s"):
            if key in timings:
                samples[key].append(timings[key])
        if out.output_tokens > 1 and out.total_s > out.ttft_s:
            samples["decode_tok_s"].append((out.output_tokens - 1) / (out.total_s - out.ttft_s))
        follow = runtime.generate([GenItem(QUESTIONS[1 + run % 2], (image,), GenerationOptions(max_tokens=1))],
                                  ignore_eos=True)[0]
        samples["followup_ttft_s"].append(follow.ttft_s)
        if "prefill_s" in runtime.last_timings:
            samples["followup_prefill_s"].append(runtime.last_timings["prefill_s"])
    return {"samples": samples, "summary": {k: summarise(v) for k, v in samples.items() if v},
            "output_tokens": max_tokens}


def run_bench(backend: Any, *, runs: int = 3, max_tokens: int = 32) -> dict[str, Any]:
    """Load the backend's model (timed) and measure it; the `bench` command's JSON object."""
    start = time.perf_counter()
    runtime = backend.load()
    load_s = time.perf_counter() - start
    result = measure_runtime(runtime, runs=runs, max_tokens=max_tokens)
    import torch

    return {
        "model": backend.default_model,
        "path": str(runtime.path),
        "device": runtime.device,
        "dtype": str(runtime.dtype).replace("torch.", ""),
        "quantize": runtime.quantize,
        "threads": torch.get_num_threads(),
        "load_s": load_s,
        **result,
    }
