"""FastVLM-0.5B at full size, random weights, on this machine's CPU: ours vs plain transformers.

    python benchmarks/fastvlm_cpu.py            # 3 measured runs per configuration, 32 tokens
    python benchmarks/fastvlm_cpu.py --quick    # 2 runs, 12 tokens
    python benchmarks/fastvlm_cpu.py --configs ours-int8,plain-bf16 --no-accuracy --no-batch   # a subset

The model has the released 0.5B checkpoint's exact shapes (Qwen2-0.5B decoder, timm fastvit_mci3 at
1024 px, 256 image tokens) with random weights, so nothing is downloaded. It is written once (bf16
safetensors, like the real checkpoint) to a temp directory and reused (`--model-dir` to choose).

"plain" is the model card's usage: AutoProcessor + FastVlmForConditionalGeneration.from_pretrained(dtype)
+ model.generate(**inputs). "ours" is FastVLMRuntime, the code behind `fastvlm-hybrid ask` (pad to
square, channels-last vision tower, SDPA, inference_mode, vision/prefix cache, manual decode loop).
All configurations are timed in one process, interleaved run by run with the order rotated, so a shared
machine's noise falls on all alike; ratios are medians of per-run ratios. Peak RSS comes from a separate
process per configuration (load, then answers about two pictures: the second is the steady state).
Figures: TTFT (image bytes to first token, preprocessing included), vision encode, decode tokens/s,
follow-up TTFT on the same image.
On a CPU without native bf16 (AVX2 only: no AVX512-BF16 or AMX) the bf16 configurations are emulated and
take minutes per picture (the vision tower's convolutions); leave them out there with `--configs`, and
the logits are then compared with fp32 and with "ours-bf16lm" (the language model in bf16, the vision
tower in fp32), the bf16 reference such a machine can afford.

"ours-int8" / "ours-int4" are weight-only quantised language models (models/weight_quant.py), the
rest of the model in the device's best dtype; "ort-fp32|q8|q4" are the ONNX Runtime engine
(models/ort_runtime.py: the same contract; q8/q4 are MatMulNBits weight-only decoders), exported once
into its cache before timing (the export is not timed). Goals: TTFT <= 0.5x plain bf16, decode >= 2.0x plain bf16,
follow-up <= 0.3x TTFT, and the default format's logits within 2% (mean relative error) of bf16.

Then, each in a process of its own (benchmarks/fastvlm_cpu_extra.py): the numerical cost of each weight
format (logits against bf16 and fp32, teacher-forced; `--no-accuracy` skips it), batch throughput at
batch sizes 1, 4, 8 for `--batch-config` (`--no-batch` skips it), and that configuration's vision encode
and TTFT at `vision_input_size` 1024, 768 and 512 (`--no-vision-sizes` skips it). To set a smaller input
beside plain usage in the same interleaved runs, name it: `--configs plain-fp32,ort-fp32,ort-fp32@768`.

Then the limits, measured in one more process on this machine (models/roofline.py; `--no-roofline` skips
it): decode tokens/s as a share of the bandwidth roofline (copy bandwidth / the language model's weight
bytes per token in each format, counted from the model's parameters), and the vision encoder's achieved
FLOP/s (FlopCounterMode FLOPs of one encode at the benchmark's input size / the best encode time) as a
share of the measured matmul peak in that dtype.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module, however this file is loaded
import fastvlm_cpu_extra as extra

BUILD_VERSION = 2  # 2: the vision tower's signal kept alive (architecture.init_vision_tower); older dirs rebuild
CONFIGS = ("plain-fp32", "plain-bf16", "ours-fp32", "ours-bf16", "ours-int8", "ours-int4", "ort-fp32", "ort-q8",
           "ort-q4", "ort-q8+v8")  # +v8: the int8 vision encoder (vision_quantize=int8); any ours-/ort- name may end in
# "@SIZE" for `vision_input_size` (ort-fp32@768), timed in the same interleaved runs as the rest


def build(model_dir: Path) -> None:
    """Write the full-size random FastVLM-0.5B (reused when already there)."""
    marker = model_dir / "random-build.json"
    if marker.is_file() and json.loads(marker.read_text()).get("version") == BUILD_VERSION:
        return
    import torch
    from transformers import FastVlmForConditionalGeneration, GenerationConfig

    from fastvlm_gemini_hybrid.models.architecture import (
        FULL_IMAGE_SIZE,
        build_processor,
        fastvlm_config,
        init_vision_tower,
    )
    from fastvlm_gemini_hybrid.models.tiny import train_tokenizer

    start = time.perf_counter()
    tok = train_tokenizer()
    image_id, im_end, eot = (tok.convert_tokens_to_ids(t) for t in ("<image>", "<|im_end|>", "<|endoftext|>"))
    # 151936 + 64: the converted checkpoint's padded vocabulary (one added <image> row, padded to 64)
    config = fastvlm_config(tiny=False, vocab_size=152000, image_token_id=image_id, eos_token_id=[im_end, eot],
                            pad_token_id=eot)
    torch.manual_seed(0)
    model = FastVlmForConditionalGeneration(config).eval()
    init_vision_tower(model, FULL_IMAGE_SIZE)  # otherwise the random tower's features are ~1e-21
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=[im_end, eot], pad_token_id=eot, do_sample=False)
    model.save_pretrained(model_dir)
    build_processor(tok, image_size=FULL_IMAGE_SIZE).save_pretrained(model_dir)
    params = sum(p.numel() for p in model.parameters())
    marker.write_text(json.dumps({"version": BUILD_VERSION}) + "\n")
    print(f"built random FastVLM-0.5B ({params / 1e6:.0f}M parameters) in {time.perf_counter() - start:.1f} s "
          f"at {model_dir}", file=sys.stderr)


# ---------------------------------------------------------------------------- contestants
class Plain:
    """The model card's usage: processor + model.generate, no reuse between calls."""

    def __init__(self, model_dir: Path, dtype_name: str) -> None:
        import torch
        from transformers import AutoProcessor, FastVlmForConditionalGeneration

        self.torch = torch
        self.dtype = getattr(torch, dtype_name)
        start = time.perf_counter()
        self.model = FastVlmForConditionalGeneration.from_pretrained(model_dir, dtype=self.dtype)
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.load_s = time.perf_counter() - start

    def ask(self, image_bytes: bytes, question: str, tokens: int) -> dict[str, float]:
        import io

        from PIL import Image
        from transformers.generation.streamers import BaseStreamer

        class FirstToken(BaseStreamer):
            """Timestamps the first generated token (generate() first puts the prompt)."""

            def __init__(self) -> None:
                self.puts, self.first = 0, 0.0

            def put(self, value: Any) -> None:
                self.puts += 1
                if self.puts == 2:
                    self.first = time.perf_counter()

            def end(self) -> None:
                pass

        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(image_bytes))
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        prompt = self.processor.apply_chat_template(conversation, add_generation_prompt=True)
        inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.model.device, self.dtype)
        prep = time.perf_counter() - t0
        streamer = FirstToken()
        self.model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                            streamer=streamer)
        end = time.perf_counter()
        out = {"ttft_s": streamer.first - t0, "preprocess_s": prep}
        if tokens > 1:
            out["decode_tok_s"] = (tokens - 1) / (end - streamer.first)
            with self.torch.no_grad():  # the vision tower alone, as plain code runs it
                v0 = time.perf_counter()
                self.model.get_image_features(pixel_values=inputs["pixel_values"])
                out["vision_s"] = time.perf_counter() - v0
        return out


class Ours:
    """Our runtimes, the code behind the `fastvlm` backend: FastVLMRuntime (ours-*) or OrtRuntime (ort-*)."""

    def __init__(self, model_dir: Path, name: str) -> None:
        start = time.perf_counter()
        self.runtime = extra.make_runtime(model_dir, name)
        self.load_s = time.perf_counter() - start

    def ask(self, image_bytes: bytes, question: str, tokens: int) -> dict[str, float]:
        from fastvlm_gemini_hybrid.models.items import GenItem, ImageInput  # torch-free, like the ONNX engine
        from fastvlm_gemini_hybrid.types import GenerationOptions

        item = GenItem(question, (ImageInput.from_bytes(image_bytes),), GenerationOptions(max_tokens=tokens))
        result = self.runtime.generate([item], ignore_eos=True)[0]
        out = {"ttft_s": result.ttft_s}
        timings = self.runtime.last_timings
        for key in ("preprocess_s", "vision_s"):
            if key in timings:
                out[key] = timings[key]
        if tokens > 1:
            out["decode_tok_s"] = (result.output_tokens - 1) / (result.total_s - result.ttft_s)
        return out


def make(name: str, model_dir: Path) -> Any:
    kind, fmt = name.split("-")
    if kind == "plain":  # the model card's usage has no input-size option: "@SIZE" is ours only
        return Plain(model_dir, {"fp32": "float32", "bf16": "bfloat16"}[fmt])
    return Ours(model_dir, name)


# ---------------------------------------------------------------------------- workers (own processes)
def worker_timing(model_dir: Path, names: list[str], runs: int, tokens: int) -> dict[str, Any]:
    """All contestants in one process, interleaved run by run (order rotated), so the noise of a shared
    machine falls on all of them alike; the paired per-run ratios are then comparable."""
    import torch  # noqa: F401 - imported before any clock starts
    import transformers  # noqa: F401

    from fastvlm_gemini_hybrid.models.bench import QUESTIONS, synthetic_image

    contestants = {name: make(name, model_dir) for name in names}
    results: dict[str, Any] = {n: {"load_s": c.load_s, "samples": {}} for n, c in contestants.items()}
    warm = synthetic_image(999)
    for c in contestants.values():
        c.ask(warm, QUESTIONS[0], tokens)
        c.ask(warm, QUESTIONS[1], 1)
    for run in range(runs):
        image = synthetic_image(1000 + run)
        order = names[run % len(names):] + names[:run % len(names)]
        for name in order:
            samples = results[name]["samples"]
            for key, value in contestants[name].ask(image, QUESTIONS[0], tokens).items():
                samples.setdefault(key, []).append(value)
            if not name.startswith("plain"):  # plain usage has no reuse: its follow-up is a full TTFT again
                follow = contestants[name].ask(image, QUESTIONS[1 + run % 2], 1)
                samples.setdefault("followup_ttft_s", []).append(follow["ttft_s"])
    return results


def worker_rss(model_dir: Path, name: str) -> dict[str, Any]:
    """Peak RSS of one configuration on its own: load, then 4-token answers about two new pictures. The
    second is the steady state: by then every weight page (memory-mapped ones too) is resident while the
    vision encoder's activations peak; a single answer under-reports the ONNX engine by about 0.3 GiB."""
    from fastvlm_gemini_hybrid.models.bench import QUESTIONS, synthetic_image

    contestant = make(name, model_dir)
    for seed in (5, 6):
        contestant.ask(synthetic_image(seed), QUESTIONS[0], 4)
    return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "torch_imported": "torch" in sys.modules}


def worker_roofline(model_dir: Path, names: list[str]) -> dict[str, Any]:
    """The limits on this machine and what they are divided into: copy bandwidth, matmul peak per dtype,
    the language model's weight bytes per token per format and the FLOPs of one vision encode, counted on
    a meta-device copy of the model (its parameters' shapes, no weights) at the processor's input size."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from fastvlm_gemini_hybrid.models import roofline

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    crop = AutoProcessor.from_pretrained(model_dir).image_processor.crop_size
    size = (int(crop["height"]), int(crop["width"]))
    formats = sorted({extra.weights_of(name) for name in names})
    dtypes = sorted({"bfloat16" if fmt == "bf16" else "float32" for fmt in formats})  # int8/int4: auto (fp32 here)
    buffer = max(4 * roofline.last_level_cache_bytes(), 256 * 2**20)
    return {
        "threads": torch.get_num_threads(),
        "buffer_bytes": buffer,
        "bandwidth_gbs": roofline.memory_bandwidth_gbs(size_bytes=buffer),
        "matmul_peak_gflops": {d: roofline.matmul_peak_gflops(d) for d in dtypes},
        "weight_bytes_per_token": {fmt: roofline.decode_weight_bytes(model, fmt) for fmt in formats},
        "vision_flops": roofline.vision_flops(model, size),
        "image_size": list(size),
    }


# ---------------------------------------------------------------------------- parent: run, then report
def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> float:
    return max(values) / min(values) if values and min(values) > 0 else float("nan")


def paired(results: dict[str, Any], a: str, b: str, key: str) -> str:
    """Median of per-run ratios a/b (same run, same image, same moment's machine load)."""
    if a not in results or b not in results:
        return "-"
    xs, ys = results[a]["samples"].get(key, []), results[b]["samples"].get(key, [])
    ratios = [x / y for x, y in zip(xs, ys, strict=False) if y]
    return f"{med(ratios):.2f}x" if ratios else "-"


def best_ratio(results: dict[str, Any], a: str, b: str, key: str) -> str:
    xs, ys = results[a]["samples"].get(key), results[b]["samples"].get(key)
    if not xs or not ys:
        return "-"
    pick = max if key == "decode_tok_s" else min
    return f"{pick(xs) / pick(ys):.2f}x"


def report(results: dict[str, Any], rss: dict[str, float], load_before: float, load_after: float) -> None:
    names = list(results)
    rows = [("load (s)", "load_s", "{:.2f}"), ("preprocess (s)", "preprocess_s", "{:.3f}"),
            ("vision encode (s)", "vision_s", "{:.3f}"), ("TTFT (s)", "ttft_s", "{:.3f}"),
            ("follow-up TTFT (s)", "followup_ttft_s", "{:.3f}"), ("decode (tok/s)", "decode_tok_s", "{:.2f}")]
    print(f"\n{'median [best]':<22}" + "".join(f"{n:>20}" for n in names))
    for label, key, fmt in rows:
        cells = []
        for n in names:
            if key == "load_s":
                cells.append(fmt.format(results[n]["load_s"]))
                continue
            vals = results[n]["samples"].get(key)
            best = (max(vals) if key == "decode_tok_s" else min(vals)) if vals else None
            cells.append(f"{fmt.format(med(vals))} [{fmt.format(best)}]" if vals else "-")
        print(f"{label:<22}" + "".join(f"{c:>20}" for c in cells))
    print(f"{'peak RSS (GiB)':<22}" + "".join(f"{rss.get(n, float('nan')):>20.2f}" for n in names))

    print("\nratios: paired = median of per-run ratios; best = best run / best run (contention only slows, so")
    print("best-of-N is the steadier figure on a shared machine).  Goals against plain-bf16: TTFT <= 0.50x, "
          "decode >= 2.00x")
    print(f"  {'':<28}{'TTFT paired':>12}{'best':>7}{'decode paired':>15}{'best':>7}{'vision paired':>15}{'best':>7}")
    base = "plain-bf16" if "plain-bf16" in results else "plain-fp32"  # bf16 is emulated on CPUs without it
    pairs = [(o, base) for o in names if not o.startswith("plain")]
    pairs += [("ours-fp32", "plain-fp32")] if base != "plain-fp32" else []
    for ours, plain in pairs:
        if ours in results and plain in results:
            cells = "".join(f"{paired(results, ours, plain, k):>{w}}{best_ratio(results, ours, plain, k):>7}"
                            for k, w in (("ttft_s", 12), ("decode_tok_s", 15), ("vision_s", 15)))
            print(f"  {ours + ' / ' + plain:<28}{cells}")
    for n in names:
        if not n.startswith("plain"):
            print(f"  {n}: follow-up TTFT / its own cold TTFT = {_follow(results[n])}   (goal <= 0.30x)")
    worst = max(spread(r["samples"]["ttft_s"]) for r in results.values())
    print(f"\nnoise: worst max/min TTFT spread within one configuration {worst:.2f}x; load average "
          f"{load_before:.2f} before, {load_after:.2f} after, on {os.cpu_count()} CPUs")


def report_roofline(results: dict[str, Any], roof: dict[str, Any]) -> None:
    """Decode against the bandwidth roofline and vision encode against the matmul peak, per configuration
    (best runs: contention only slows, and the limits are best-of-N too)."""
    from fastvlm_gemini_hybrid.models.roofline import decode_roofline, share

    bw, peaks = roof["bandwidth_gbs"], roof["matmul_peak_gflops"]
    peak_text = ", ".join(f"{d} {g:.4g}" for d, g in peaks.items())
    print(f"\nroofline (measured after the timing, {roof['threads']} threads): copy bandwidth {bw:.1f} GB/s "
          f"read+write (best of 5, {roof['buffer_bytes'] / 2**20:.0f} MiB buffer); matmul peak GFLOP/s: {peak_text}")
    print("  decode: weights read per token = the language model's parameter bytes in that format (the input")
    print("  embedding table left out unless the head shares it); roofline = bandwidth / those bytes")
    print(f"  {'':<14}{'weights/token':>15}{'roofline tok/s':>16}{'decode best':>13}{'share':>8}")
    for name, result in results.items():
        wbytes = roof["weight_bytes_per_token"].get(extra.weights_of(name))
        decode = result["samples"].get("decode_tok_s")
        if not wbytes or not decode:
            continue
        limit = decode_roofline(wbytes, bw)
        size = f"{wbytes / 1e9:.2f} GB" if wbytes >= 1e8 else f"{wbytes / 1e6:.2f} MB"
        print(f"  {name:<14}{size:>15}{limit:>16.1f}{max(decode):>13.2f}"
              f"{share(max(decode), limit):>8.0%}")
    height, width = roof["image_size"]
    print(f"  vision encode: {roof['vision_flops'] / 1e9:.4g} GFLOP per {width}x{height} picture (FlopCounterMode: "
          f"matmuls and convolutions); int8/int4 run the vision tower in the device's best dtype")
    print(f"  {'':<14}{'encode best (s)':>16}{'GFLOP/s':>10}{'matmul peak':>13}{'share':>8}")
    for name, result in results.items():
        vision = result["samples"].get("vision_s")
        dtype = "bfloat16" if name.endswith("bf16") else "float32"
        if not vision or dtype not in peaks or min(vision) <= 0 or "@" in name:  # @SIZE: other FLOPs
            continue
        achieved = roof["vision_flops"] / min(vision) / 1e9
        print(f"  {name:<14}{min(vision):>16.3f}{achieved:>10.2f}{peaks[dtype]:>13.2f}"
              f"{share(achieved, peaks[dtype]):>8.0%}")


def _follow(result: dict[str, Any]) -> str:
    s = result["samples"]
    ratios = [f / t for f, t in zip(s["followup_ttft_s"], s["ttft_s"], strict=False) if t]
    return f"{med(ratios):.2f}x"


def _child(args: argparse.Namespace, *extra: str) -> Any:
    cmd = [sys.executable, __file__, "--model-dir", str(args.model_dir), "--runs", str(args.runs),
           "--tokens", str(args.tokens), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {' '.join(extra)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 runs of 12 tokens per configuration")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--no-accuracy", action="store_true", help="skip the weight formats' logits comparison")
    parser.add_argument("--no-batch", action="store_true", help="skip batch throughput")
    parser.add_argument("--no-vision-sizes", action="store_true", help="skip the vision input sizes")
    parser.add_argument("--batch-config", default="ours-int8",
                        help="the configuration batch throughput and the vision input sizes use")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    parser.add_argument("--no-rss", action="store_true", help="skip the per-configuration peak-RSS processes")
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "fastvlm-0.5b-random")
    parser.add_argument("--no-roofline", action="store_true", help="skip measuring bandwidth and matmul peak")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON at the end")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.tokens = 2, 12
    names = [c for c in args.configs.split(",") if c]
    for name in names:
        base, _, size = name.partition("@")
        if base not in CONFIGS or (size and (base.startswith("plain") or not size.isdigit())):
            parser.error(f"unknown configuration {name!r}: one of {', '.join(CONFIGS)}, the ours-/ort- ones "
                         "optionally with @SIZE (a vision_input_size, e.g. ort-fp32@768)")
    if args.worker == "accuracy":
        print(json.dumps(extra.worker_accuracy(args.model_dir, names)))
        return 0
    if args.worker == "vision-sizes":
        print(json.dumps(extra.worker_vision_sizes(args.model_dir, args.batch_config)))
        return 0
    if args.worker == "batch":
        print(json.dumps(extra.worker_batch(args.model_dir, args.batch_config)))
        return 0
    if args.worker == "timing":
        print(json.dumps(worker_timing(args.model_dir, names, args.runs, args.tokens)))
        return 0
    if args.worker == "roofline":
        print(json.dumps(worker_roofline(args.model_dir, names)))
        return 0
    if args.worker:
        print(json.dumps(worker_rss(args.model_dir, args.worker)))
        return 0
    build(args.model_dir)
    onnx = sorted({(extra.weights_of(n), extra.vision_of(n)) for n in names if n.startswith("ort-")})
    if onnx:  # exported before any timing, in a process of its own (the export needs far more memory than a run)
        shown = ", ".join(w if v == "fp32" else f"{w} + vision {v}" for w, v in onnx)
        print(f"exporting the ONNX variants {shown} (cached after the first time) ...", file=sys.stderr)
        for variant, vision in onnx:
            subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from fastvlm_gemini_hybrid.models.onnx_variants import ensure_variant; "
                            "ensure_variant(Path(sys.argv[1]), sys.argv[2], vision=sys.argv[3])",
                            str(args.model_dir), variant, vision], check=True)
    load_before = os.getloadavg()[0]
    print(f"timing {', '.join(names)} interleaved ({args.runs} runs, {args.tokens} tokens) ...", file=sys.stderr)
    results = _child(args, "--worker", "timing", "--configs", ",".join(names))
    load_after = os.getloadavg()[0]
    rss: dict[str, float] = {}
    if not args.no_rss:
        for name in names:
            print(f"peak RSS of {name} on its own ...", file=sys.stderr)
            alone = _child(args, "--worker", name)
            rss[name] = alone["peak_rss_gib"]
            if not alone.get("torch_imported", True):
                print(f"  {name} ran without importing torch", file=sys.stderr)
    roof: dict[str, Any] | None = None
    if not args.no_roofline:
        print("measuring copy bandwidth and matmul peak ...", file=sys.stderr)
        roof = _child(args, "--worker", "roofline", "--configs", ",".join(names))
    accuracy = None if args.no_accuracy else _child(args, "--worker", "accuracy", "--configs", ",".join(names))
    batch = None if args.no_batch else _child(args, "--worker", "batch", "--batch-config", args.batch_config)
    sizes = None if args.no_vision_sizes else _child(args, "--worker", "vision-sizes", "--batch-config",
                                                      args.batch_config)
    report(results, rss, load_before, load_after)
    if roof is not None:
        report_roofline(results, roof)
    if accuracy is not None:
        extra.report_accuracy(accuracy)
    if batch is not None:
        extra.report_batch(batch)
    if sizes is not None:
        extra.report_vision_sizes(sizes)
    if args.json:
        print(json.dumps({"timing": results, "peak_rss_gib": rss, "roofline": roof, "accuracy": accuracy,
                          "batch": batch, "vision_sizes": sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
