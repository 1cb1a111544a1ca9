"""The ONNX Runtime engine's decode with its key/value cache filled in place (what it does with the
GroupQueryAttention decoder) against a new, longer copy of the cache every step, in one process.

    python benchmarks/ort_kv_in_place.py --weights q8          # fp32, q8, q4, int8; 4 alternating rounds
    python benchmarks/ort_kv_in_place.py --weights fp32 --rounds 6 --tokens 64

The model is benchmarks/fastvlm_cpu.py's full-size random FastVLM-0.5B (`--model-dir`, built there once if
absent; the variant is exported into the engine's cache if missing). One `OrtRuntime` answers the same
picture and question with `--tokens` tokens (ignore_eos), alternating the two ways round after round; the
copy way is the engine with `_with_room` and in-place binding switched off. Printed: decode tokens/s per
round (tokens after the first over the time after the first token), the ratio of the medians, and whether
both ways chose the same tokens.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/fastvlm-0.5b-random"))
    parser.add_argument("--weights", default="q8")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from fastvlm_cpu import build
    from PIL import Image

    from fastvlm_gemini_hybrid.models.items import GenItem, ImageInput
    from fastvlm_gemini_hybrid.models.ort_runtime import OrtRuntime
    from fastvlm_gemini_hybrid.types import GenerationOptions

    build(args.model_dir)
    runtime = OrtRuntime(args.model_dir, threads=args.threads, weights=args.weights)
    runtime.load()
    if not runtime.right_padded:
        print("this export has the TorchScript decoder, which always copies: nothing to compare", file=sys.stderr)
        return 2
    png = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((512, 512, 3)) * 255).astype("uint8")).save(png, "PNG")
    item = GenItem("Describe this image in detail.", (ImageInput.from_bytes(png.getvalue(), "noise.png"),),
                   GenerationOptions(max_tokens=args.tokens))
    in_place_room, in_place_forward = OrtRuntime._with_room, OrtRuntime._forward

    def copying_forward(self: Any, *call: Any, in_place: bool = False) -> Any:
        return in_place_forward(self, *call, in_place=False)

    ways = {"in place": (in_place_room, in_place_forward),
            "copy": (lambda self, caches, room: caches[0], copying_forward)}
    runtime.generate([item], ignore_eos=True)  # warm: vision and prefix caches, ORT's first-run allocations
    speeds: dict[str, list[float]] = {name: [] for name in ways}
    tokens: dict[str, list[int]] = {}
    for _ in range(args.rounds):
        for name, (room, forward) in ways.items():
            OrtRuntime._with_room, OrtRuntime._forward = room, forward  # type: ignore[method-assign]
            out = runtime.generate([item], ignore_eos=True)[0]
            timings = runtime.last_timings
            speeds[name].append((len(out.token_ids) - 1) / (timings["total_s"] - timings["ttft_s"]))
            tokens[name] = out.token_ids
    OrtRuntime._with_room, OrtRuntime._forward = in_place_room, in_place_forward  # type: ignore[method-assign]
    for name, values in speeds.items():
        print(f"{name:>9}: decode tokens/s " + " ".join(f"{v:.1f}" for v in values))
    ratio = statistics.median(speeds["in place"]) / statistics.median(speeds["copy"])
    print(f"{args.weights}: in place / copy, median decode {ratio:.3f}x; same tokens: "
          f"{tokens['in place'] == tokens['copy']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
