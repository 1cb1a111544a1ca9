"""What a weight format would cost the logits, simulated in torch on the full-size random FastVLM-0.5B.

    python benchmarks/weight_format_error.py            # about 10 minutes on 2 cores
    python benchmarks/weight_format_error.py --formats q8,q8+r4

Why: the issue asks for a default format within 2% (mean relative error of the logits) of bf16, and
ORT's q8 measures 4.6% (benchmarks/fastvlm_cpu.py). This asks which formats could get there, before any
kernel is written: every linear weight of the language model and the head is replaced by its
quantise-then-dequantise copy, in fp32, and optionally each linear's input by its int8 copy (per block
of 32 along the input, symmetric: what ORT's `MatMulNBits` does at `accuracy_level` 4, the level its
8-bit kernels need on AVX2, benchmarks/ort_matmul_kernels.py). Formats (blocks of 32 along the input,
symmetric, round to nearest, like models/onnx_variants.py):

- `q8`, `q4`: 8 or 4 bits;
- `q8+r4`, `q8+r2`: 8 bits, plus the remainder quantised again with 4 or 2 bits (1.75 or 1.5 bytes a
  weight with their scales; a second `MatMulNBits` on the same input would run it);
- a trailing `/a8` quantises the activations too.

The scoring is benchmarks/fastvlm_cpu.py's: the bf16 language model (vision tower in fp32) answers
greedily, every format scores that answer teacher-forced, and its logits are compared with the bf16
reference's and fp32's (models/weight_quant.logits_error). Random weights: this measures how far a format
moves the numbers, not answer quality.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fastvlm_cpu
import fastvlm_cpu_extra as extra

FORMATS = ("q8", "q8/a8", "q8+r4", "q8+r4/a8", "q8+r2", "q4")


def fake_quant(torch: Any, w: Any, bits: int, block: int = 32) -> Any:
    """`w` (out, in) quantised per block of `block` along the input and dequantised."""
    out, inp = w.shape
    blocks = w.reshape(out, inp // block, block)
    qmax = 2 ** (bits - 1) - 1
    scale = blocks.abs().amax(-1, keepdim=True).clamp(min=1e-30) / qmax
    return (torch.clamp(torch.round(blocks / scale), -qmax - 1, qmax) * scale).reshape(out, inp)


def apply(torch: Any, runtime: Any, fmt: str) -> None:
    weights, _, acts = fmt.partition("/")
    main, _, rest = weights.partition("+r")
    linears = [m for m in runtime.model.model.language_model.modules() if isinstance(m, torch.nn.Linear)]
    head = runtime.model.lm_head
    head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=False)  # untie from the embedding
    with torch.no_grad():
        for layer in [*linears, head]:
            w = layer.weight.float()
            q = fake_quant(torch, w, int(main[1:]))
            if rest:
                q = q + fake_quant(torch, w - q, int(rest))
            layer.weight.copy_(q)
            if acts:
                layer.register_forward_pre_hook(
                    lambda _m, args: (fake_quant(torch, args[0].reshape(-1, args[0].shape[-1]), 8)
                                      .reshape(args[0].shape), *args[1:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "fastvlm-0.5b-random")
    args = parser.parse_args()
    import torch

    from fastvlm_gemini_hybrid.models.weight_quant import logits_error

    fastvlm_cpu.build(args.model_dir)
    items = extra._items(extra.ACCURACY_TOKENS, extra.ACCURACY_PICTURES, extra.ACCURACY_PROMPTS)
    start = time.perf_counter()
    ref = extra.make_runtime(args.model_dir, "ours-bf16lm")
    answers = [ref.generate([item], ignore_eos=True)[0].token_ids for item in items]
    logits = {"bf16": torch.cat([extra._logits(ref, i, a) for i, a in zip(items, answers, strict=True)])}
    ref.close()
    del ref
    print(f"{len(items)} prompts x {extra.ACCURACY_TOKENS} tokens; the bf16 reference took "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(f"{'':<12}{'vs bf16: mean':>15}{'max':>8}{'top-1':>8}{'vs fp32: mean':>16}{'max':>8}{'top-1':>8}")
    for fmt in ["fp32", *[f for f in args.formats.split(",") if f]]:
        runtime = extra.make_runtime(args.model_dir, "ours-fp32")
        if fmt != "fp32":
            apply(torch, runtime, fmt)
        logits[fmt] = torch.cat([extra._logits(runtime, i, a) for i, a in zip(items, answers, strict=True)])
        runtime.close()
        del runtime
        cells = ""
        for ref_name in ("bf16", "fp32"):
            e = logits_error(logits[ref_name], logits[fmt])
            cells += f"{e['mean_rel_err']:>15.2%}{e['max_rel_err']:>8.2%}{e['top1_agreement']:>8.0%}"
        print(f"{fmt:<12}{cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
