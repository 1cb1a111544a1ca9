"""Each CPU speed measure of the local backend on its own, at full FastVLM-0.5B size (random weights).

    python benchmarks/fastvlm_ablation.py [--runs 3] [--model-dir DIR]

benchmarks/fastvlm_cpu.py compares the whole of our path with plain transformers; this script switches
one measure at a time, in bf16 unless said otherwise, and prints each pair side by side as a ratio:
- vision encode, channels-last memory format on vs off;
- vision encode under torch.inference_mode vs torch.no_grad;
- prefill of the language model (~300 tokens, as after a 1024 px image) with SDPA vs eager attention;
- vision encode in bf16 vs fp32.
The random checkpoint is shared with fastvlm_cpu.py (built there on first use, in the temp directory).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastvlm_cpu import build

Setup = Callable[[], Callable[[], Any]]


def paired(with_it: Setup, without: Setup, runs: int) -> tuple[float, float]:
    """Median seconds of each side, measured alternately (A, B, A, B, ...) so that load from
    elsewhere on the machine falls on both sides alike. A setup returns the call to time."""
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(runs + 1):
        for side, setup in enumerate((with_it, without)):
            fn = setup()
            start = time.perf_counter()
            fn()
            if i:  # the first round warms up
                samples[side].append(time.perf_counter() - start)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "fastvlm-0.5b-random")
    args = parser.parse_args()
    build(args.model_dir)

    import torch
    from transformers import FastVlmForConditionalGeneration

    def load(dtype: Any, attn: str = "sdpa") -> Any:
        return FastVlmForConditionalGeneration.from_pretrained(args.model_dir, dtype=dtype, attn_implementation=attn)

    pixels32 = torch.rand(1, 3, 1024, 1024)
    rows: list[tuple[str, float, float]] = []
    bf16, fp32 = load(torch.bfloat16), load(torch.float32)
    pixels = pixels32.to(torch.bfloat16)

    def encode(model: Any, x: Any, layout: Any, ctx: Any = torch.inference_mode) -> Setup:
        def setup() -> Callable[[], Any]:
            model.model.vision_tower.to(memory_format=layout)
            inputs = x.contiguous(memory_format=layout)

            def run() -> Any:
                with ctx():
                    return model.get_image_features(pixel_values=inputs)

            return run

        return setup

    last, contiguous = torch.channels_last, torch.contiguous_format
    rows.append(
        (
            "vision encode: channels-last vs contiguous (bf16)",
            *paired(encode(bf16, pixels, last), encode(bf16, pixels, contiguous), args.runs),
        )
    )
    rows.append(
        (
            "vision encode: inference_mode vs no_grad (bf16)",
            *paired(encode(bf16, pixels, last), encode(bf16, pixels, last, torch.no_grad), args.runs),
        )
    )
    rows.append(
        (
            "vision encode: bf16 vs fp32 (channels-last)",
            *paired(encode(bf16, pixels, last), encode(fp32, pixels32, last), args.runs),
        )
    )
    del fp32

    ids = torch.randint(0, 1000, (1, 300))

    def prefill(model: Any) -> Setup:
        def run() -> Any:
            with torch.inference_mode():
                return model.model.language_model(input_ids=ids, use_cache=True)

        return lambda: run

    eager = load(torch.bfloat16, "eager")
    rows.append(
        ("prefill 300 tokens: SDPA vs eager attention (bf16)", *paired(prefill(bf16), prefill(eager), args.runs))
    )

    width = max(len(r[0]) for r in rows)
    print(f"{'measure (ours vs without it)':<{width}}   with     without   ratio   (median of {args.runs} runs)")
    for name, with_it, without in rows:
        print(f"{name:<{width}}  {with_it:6.3f} s  {without:6.3f} s  {with_it / without:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
