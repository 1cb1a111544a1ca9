"""FastVLM-0.5B at full size, random weights: the MLX backend (mlx-vlm) vs the PyTorch backend, same CPU.

    python benchmarks/mlx_vs_torch.py            # 1024 px images, 3 measured runs, 16 tokens
    python benchmarks/mlx_vs_torch.py --quick    # 256 px images, 1 measured run, 8 tokens
    python benchmarks/mlx_vs_torch.py --image-size 512 --runs 2 --tokens 12

Both models have the released 0.5B checkpoint's shapes (Qwen2-0.5B decoder, FastViTHD vision tower,
bf16 weights on disk) with random weights, so nothing is downloaded; they are written once to a temp
directory and reused (`--model-dir`). Each side runs through the code `fastvlm-hybrid ask` uses:
`MLXBackend` (mlx-vlm load + stream_generate) and `FastVLMRuntime` (float32 on CPU). Runs alternate
between the two, after one warm-up each, so a shared machine's noise falls on both alike.

Figures: load time, TTFT (image bytes to first token, preprocessing and vision encode included) and
decode tokens/s, with MLX/PyTorch ratios (TTFT below 1x and decode above 1x favour MLX). `--quick` and
`--image-size` shrink the image for both sides, because MLX's Linux CPU wheel does its matrix products
with reference (unoptimised) BLAS and encodes a 1024 px image in minutes there; on Apple Silicon MLX runs
on Metal and the full 1024 px default is the meaningful comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def build_torch(model_dir: Path, image_size: int) -> None:
    """The PyTorch checkpoint (weights once; the processor rewritten for the chosen image size)."""
    import torch
    from transformers import FastVlmForConditionalGeneration, GenerationConfig

    from fastvlm_gemini_hybrid.models.architecture import build_processor, fastvlm_config
    from fastvlm_gemini_hybrid.models.tiny import train_tokenizer

    tok = train_tokenizer()
    if not (model_dir / "model.safetensors").is_file() and not (model_dir / "model.safetensors.index.json").is_file():
        start = time.perf_counter()
        image_id, im_end, eot = (tok.convert_tokens_to_ids(t) for t in ("<image>", "<|im_end|>", "<|endoftext|>"))
        config = fastvlm_config(tiny=False, vocab_size=152000, image_token_id=image_id, eos_token_id=[im_end, eot],
                                pad_token_id=eot)
        torch.manual_seed(0)
        model = FastVlmForConditionalGeneration(config).to(torch.bfloat16).eval()
        model.generation_config = GenerationConfig(eos_token_id=[im_end, eot], pad_token_id=eot, do_sample=False)
        model.save_pretrained(model_dir)
        del model
        print(f"built PyTorch FastVLM-0.5B in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    build_processor(tok, image_size=image_size).save_pretrained(model_dir)


def build_mlx(model_dir: Path, image_size: int) -> None:
    """The MLX checkpoint (weights once; preprocessor_config.json rewritten for the image size)."""
    from fastvlm_gemini_hybrid.models.mlx_tiny import build_mlx_fastvlm, write_preprocessor

    if not (model_dir / "config.json").is_file():
        start = time.perf_counter()
        build_mlx_fastvlm(model_dir, full=True, image_size=image_size, overwrite=True)
        print(f"built MLX FastVLM-0.5B in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    write_preprocessor(model_dir, image_size)


class TorchSide:
    def __init__(self, model_dir: Path) -> None:
        from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime

        start = time.perf_counter()
        self.runtime = FastVLMRuntime(model_dir, device="cpu", dtype="float32")
        self.runtime.load()
        self.load_s = time.perf_counter() - start

    def ask(self, image: bytes, question: str, tokens: int) -> dict[str, float]:
        from fastvlm_gemini_hybrid.models.runtime import GenItem, ImageInput
        from fastvlm_gemini_hybrid.types import GenerationOptions

        item = GenItem(question, (ImageInput.from_bytes(image),), GenerationOptions(max_tokens=tokens))
        out = self.runtime.generate([item], ignore_eos=True)[0]
        return _figures(out.ttft_s, out.total_s, out.output_tokens)


class MLXSide:
    def __init__(self, model_dir: Path, home: Path) -> None:
        from fastvlm_gemini_hybrid.backends.mlx import MLXBackend
        from fastvlm_gemini_hybrid.config import load_settings

        self.backend = MLXBackend(load_settings(home=home, local_model=str(model_dir), local_backend="mlx",
                                                device="auto"))
        start = time.perf_counter()
        self.backend.load()
        self.load_s = time.perf_counter() - start

    def ask(self, image: bytes, question: str, tokens: int) -> dict[str, float]:
        from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions, Request

        request = Request(prompt=question, attachments=(Attachment.from_bytes(image, name="bench.png"),),
                          options=GenerationOptions(max_tokens=tokens))
        out = self.backend.run(request)
        return _figures(out.ttft_s, out.total_s, out.output_tokens)


def _figures(ttft: float, total: float, tokens: int) -> dict[str, float]:
    out = {"ttft_s": ttft}
    if tokens > 1 and total > ttft:
        out["decode_tok_s"] = (tokens - 1) / (total - ttft)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 px, 1 run, 8 tokens")
    parser.add_argument("--image-size", type=int, help="square input size for both sides (default 1024)")
    parser.add_argument("--runs", type=int, help="measured runs after the warm-up (default 3)")
    parser.add_argument("--tokens", type=int, help="tokens per answer (default 16)")
    parser.add_argument("--model-dir", type=Path, help="where the two random checkpoints are kept")
    args = parser.parse_args(argv)
    size = args.image_size or (256 if args.quick else 1024)
    runs = args.runs or (1 if args.quick else 3)
    tokens = args.tokens or (8 if args.quick else 16)
    if size % 64 or size < 64:
        parser.error("--image-size must be a positive multiple of 64")
    root = args.model_dir or Path(tempfile.gettempdir()) / "fastvlm-hybrid-bench-mlx-vs-torch"
    root.mkdir(parents=True, exist_ok=True)

    from fastvlm_gemini_hybrid.models.bench import QUESTIONS, synthetic_image

    build_torch(root / "torch", size)
    build_mlx(root / "mlx", size)
    sides: dict[str, Any] = {"pytorch": TorchSide(root / "torch"), "mlx": MLXSide(root / "mlx", root / "home")}
    print(f"image {size} px, {tokens} tokens, {runs} run(s) after a warm-up; loaded", file=sys.stderr)
    warm = synthetic_image(999)
    for side in sides.values():
        side.ask(warm, QUESTIONS[0], tokens)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    for run in range(runs):
        image = synthetic_image(1000 + run)
        for name in (list(sides) if run % 2 == 0 else list(sides)[::-1]):
            for key, value in sides[name].ask(image, QUESTIONS[0], tokens).items():
                samples[name].setdefault(key, []).append(value)
            print(f"  run {run + 1} {name}: {samples[name]['ttft_s'][-1]:.2f} s TTFT", file=sys.stderr)
    report(sides, samples, size, tokens)
    return 0


def report(sides: dict[str, Any], samples: dict[str, dict[str, list[float]]], size: int, tokens: int) -> None:
    def med(name: str, key: str) -> float:
        values = samples[name].get(key, [])
        return statistics.median(values) if values else float("nan")

    import platform

    print(f"\nFastVLM-0.5B shapes, random weights, {size} px image, {tokens} tokens; "
          f"{platform.machine()} {platform.system()}, MLX device: {sides['mlx'].backend._device}")
    print(f"{'':18}{'pytorch':>12}{'mlx':>12}{'mlx/pytorch':>14}")
    for label, key, fmt in (("load (s)", "load_s", "{:.2f}"), ("TTFT (s)", "ttft_s", "{:.2f}"),
                            ("decode (tok/s)", "decode_tok_s", "{:.2f}")):
        if key == "load_s":
            a, b = sides["pytorch"].load_s, sides["mlx"].load_s
        else:
            a, b = med("pytorch", key), med("mlx", key)
        ratio = b / a if a and a == a and b == b else float("nan")
        print(f"{label:18}{fmt.format(a):>12}{fmt.format(b):>12}{ratio:>13.2f}x")
    print("(medians over the measured runs; TTFT ratio < 1 and decode ratio > 1 favour MLX)")


if __name__ == "__main__":
    sys.exit(main())
