"""The two extra measurements of benchmarks/fastvlm_cpu.py, each run in a process of its own.

- accuracy: what a weight format costs numerically. For a fixed set of prompts and pictures, the bf16
  model answers greedily; then every format scores that same answer (teacher forcing) and its logits at
  each position are compared with bf16's and fp32's: max and mean relative error ||l - ref|| / ||ref||
  and top-1 agreement (`models/weight_quant.logits_error`). Random weights say nothing about answer
  quality; this measures how far a format moves the numbers, which is what a format can be blamed for.
- batch: pictures per second through the runtime's `generate` (what `batch` and batch jobs call) at
  batch sizes 1, 4 and 8, every picture new (no vision cache hits), a fixed number of tokens each.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

ACCURACY_PROMPTS = ("Describe this image in detail.", "What colours are the largest shapes?", "Is there any text?")
ACCURACY_PICTURES = (11, 12)
ACCURACY_TOKENS = 8
VISION_SIZES = (1024, 768, 512)
BATCH_SIZES = (1, 4, 8)
BATCH_TOKENS = 16


def weights_of(name: str) -> str:
    """The language model's format of a configuration: "ort-q8+v8@768" -> "q8"."""
    return name.split("@")[0].split("-")[1].split("+")[0]


def vision_of(name: str) -> str:
    """The ONNX vision encoder's weights: "+v8" is the int8 encoder (models/onnx_vision_quant.py)."""
    return "int8" if name.split("@")[0].endswith("+v8") else "fp32"


def size_of(name: str) -> int | None:
    """The `vision_input_size` of a configuration: "ort-fp32@768" -> 768; none: the checkpoint's."""
    return int(name.split("@")[1]) if "@" in name else None


def make_runtime(model_dir: Path, name: str, vision_input_size: int | None = None) -> Any:
    """The loaded runtime of a configuration name: ours-fp32|bf16|int8|int4 (FastVLMRuntime) or
    ort-fp32|q8|q4|int8, each optionally +v8 for the int8 vision encoder (OrtRuntime), on this machine's CPU
    with its physical cores for both (torch's default).
    The ONNX engine imports no torch, so a peak-RSS worker of an ort-* configuration never loads it."""
    vision_input_size = vision_input_size or size_of(name)
    kind, fmt = name.split("@")[0].split("-")
    if kind == "ort":
        from fastvlm_gemini_hybrid.models.ort_runtime import OrtRuntime, physical_cores

        runtime: Any = OrtRuntime(model_dir, threads=physical_cores(), weights=weights_of(name),
                                  vision_weights=vision_of(name), vision_input_size=vision_input_size)
    elif fmt == "bf16lm":  # a reference: bf16's own rounding of the language model, the vision tower in fp32
        return _bf16_language_model(model_dir)
    else:
        from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime

        if fmt in ("int8", "int4"):  # weight-only: the rest of the model in the device's best dtype
            runtime = FastVLMRuntime(model_dir, device="cpu", dtype="auto", quantize=fmt,
                                     vision_input_size=vision_input_size)
        else:
            runtime = FastVLMRuntime(model_dir, device="cpu", dtype={"bf16": "bfloat16", "fp32": "float32"}[fmt],
                                     vision_input_size=vision_input_size)
    runtime.load()
    return runtime


def _bf16_language_model(model_dir: Path) -> Any:
    """ours-fp32 with the language model and head cast to bf16. On CPUs without native bf16 its
    convolutions take minutes per picture (38 s for one 96-channel 3x3 layer at 256x256 here, against
    0.26 s in fp32) while its matmuls take 4x, so this is the bf16 reference such a machine can afford;
    the image features still enter the language model in bf16, as in a plain bf16 run."""
    import torch

    from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime

    runtime = FastVLMRuntime(model_dir, device="cpu", dtype="float32")
    runtime.load()
    runtime.model.model.language_model.to(torch.bfloat16)
    runtime.model.lm_head.to(torch.bfloat16)
    return runtime


def _logits(runtime: Any, item: Any, answer: list[int]) -> Any:
    """Logits before each token of `answer` (teacher-forced), as an fp32 torch tensor."""
    import torch

    if hasattr(runtime, "teacher_forced_logits"):
        return runtime.teacher_forced_logits(item, answer)[:-1]
    return torch.from_numpy(runtime.score(item, answer)).float()


def _items(tokens: int, seeds: tuple[int, ...], prompts: tuple[str, ...]) -> list[Any]:
    from fastvlm_gemini_hybrid.models.bench import synthetic_image
    from fastvlm_gemini_hybrid.models.runtime import GenItem, ImageInput
    from fastvlm_gemini_hybrid.types import GenerationOptions

    return [GenItem(prompt, (ImageInput.from_bytes(synthetic_image(seed)),), GenerationOptions(max_tokens=tokens))
            for seed in seeds for prompt in prompts]


def worker_accuracy(model_dir: Path, names: list[str]) -> dict[str, Any]:
    """Logits of every configuration against the references (bf16, then ours-fp32) on the bf16 reference's
    own greedy answers. The bf16 reference is ours-bf16 when it is among `names`, else ours-bf16lm (the
    language model in bf16, the vision tower in fp32): on a CPU without native bf16 a full bf16 run takes
    minutes per picture."""
    import torch

    from fastvlm_gemini_hybrid.models.weight_quant import logits_error

    refs = ["ours-bf16" if "ours-bf16" in names else "ours-bf16lm", "ours-fp32"]
    items = _items(ACCURACY_TOKENS, ACCURACY_PICTURES, ACCURACY_PROMPTS)
    logits: dict[str, list[Any]] = {}
    answers: list[list[int]] = []
    # plain usage scores the same weights as ours; another input size answers about another picture
    for name in [*refs, *[n for n in names if n not in refs and not n.startswith("plain") and "@" not in n]]:
        runtime = make_runtime(model_dir, name)  # one at a time: two full-size models need not share memory
        if name == refs[0]:
            answers = [runtime.generate([item], ignore_eos=True)[0].token_ids for item in items]
        logits[name] = [_logits(runtime, item, answer) for item, answer in zip(items, answers, strict=True)]
        runtime.close()
        del runtime
    out: dict[str, Any] = {"prompts": len(items), "tokens": ACCURACY_TOKENS, "references": refs, "configs": {}}
    for name, rows in logits.items():
        out["configs"][name] = {ref: logits_error(torch.cat(logits[ref]), torch.cat(rows)) for ref in refs}
    return out


def worker_batch(model_dir: Path, name: str) -> dict[str, Any]:
    """Pictures per second at each batch size, new pictures every time."""
    runtime = make_runtime(model_dir, name)
    runtime.generate(_items(2, (900,), ("Warm up.",)), ignore_eos=True)
    out: dict[str, Any] = {"config": name, "tokens": BATCH_TOKENS, "sizes": {}}
    seed = 2000
    for size in BATCH_SIZES:
        items = _items(BATCH_TOKENS, tuple(range(seed, seed + size)), ("Describe this image in detail.",))
        seed += size
        start = time.perf_counter()
        results = runtime.generate(items, ignore_eos=True)
        elapsed = time.perf_counter() - start
        assert all(r.output_tokens == BATCH_TOKENS for r in results)
        out["sizes"][str(size)] = {"seconds": elapsed, "pictures_per_s": size / elapsed,
                                   "vision_s": runtime.last_timings.get("vision_s", float("nan"))}
    return out


def worker_vision_sizes(model_dir: Path, name: str, runs: int = 2) -> dict[str, Any]:
    """Vision encode and TTFT of `name` at each `vision_input_size` (best of `runs`, new pictures)."""
    out: dict[str, Any] = {"config": name, "sizes": {}}
    seed = 3000
    for size in VISION_SIZES:
        runtime = make_runtime(model_dir, name, vision_input_size=size)
        runtime.generate(_items(1, (seed,), ("Warm up.",)), ignore_eos=True)
        vision, ttft = [], []
        for _ in range(runs):
            seed += 1
            result = runtime.generate(_items(1, (seed,), ("Describe this image in detail.",)), ignore_eos=True)[0]
            vision.append(runtime.last_timings["vision_s"])
            ttft.append(result.ttft_s)
        out["sizes"][str(size)] = {"image_tokens": (size // 64) ** 2, "vision_s": min(vision), "ttft_s": min(ttft)}
        runtime.close()
    return out


def report_vision_sizes(sizes: dict[str, Any]) -> None:
    print(f"\nvision input size ({sizes['config']}, `vision_input_size`; best of the runs, new pictures):")
    full = sizes["sizes"].get("1024", {})
    for size, row in sizes["sizes"].items():
        rel = f"  ({row['ttft_s'] / full['ttft_s']:.2f}x the TTFT at 1024)" if full else ""
        print(f"  {size:>4} px: {row['image_tokens']:>3} image tokens, vision {row['vision_s']:.2f} s, "
              f"TTFT {row['ttft_s']:.2f} s{rel}")


def report_accuracy(acc: dict[str, Any]) -> None:
    refs = acc["references"]
    print(f"\nnumerical cost of each weight format ({acc['prompts']} prompts x pictures, {acc['tokens']} tokens "
          f"each, teacher-forced on {refs[0]}'s greedy answer; random weights: no measure of answer quality)")
    print(f"  {'':<11}" + "".join(f"{'vs ' + r + ': max':>20}{'mean':>8}{'top-1':>8}" for r in refs))
    for name, errors in acc["configs"].items():
        cells = "".join(f"{errors[r]['max_rel_err']:>20.2%}{errors[r]['mean_rel_err']:>8.2%}"
                        f"{errors[r]['top1_agreement']:>8.0%}" for r in refs)
        print(f"  {name:<11}{cells}")


def report_batch(batch: dict[str, Any]) -> None:
    print(f"\nbatch throughput ({batch['config']}, {batch['tokens']} tokens per picture, new pictures each time):")
    base = batch["sizes"].get("1", {}).get("pictures_per_s")
    for size, row in batch["sizes"].items():
        gain = f"  ({row['pictures_per_s'] / base:.2f}x batch 1)" if base else ""
        print(f"  batch {size:>2}: {row['pictures_per_s']:.3f} pictures/s, {row['seconds']:.1f} s for the batch, "
              f"vision {row['vision_s']:.1f} s{gain}")
