"""FastVLM-0.5B (full size, random weights) on ONNX Runtime's CPU engine: fp32 vs int8 vs q4 (vs torch).

    python benchmarks/ort_engine.py                       # fp32, int8, q4, q4+int8 vision, torch-fp32
    python benchmarks/ort_engine.py --variants fp32,q4 --runs 2 --tokens 32 --threads 2 --json

The model is benchmarks/fastvlm_cpu.py's random FastVLM-0.5B (`--model-dir`, default
/tmp/fastvlm-0.5b-random; written there once if absent). Each contestant runs in its own process, one
after another: `OrtRuntime` (models/ort_runtime.py) with the decoder in that weight format, or
`FastVLMRuntime` for `torch-fp32` / `torch-bf16`, the engine behind the `fastvlm` backend today.

Per contestant: load time (with the exported variant and ORT's optimised graph already cached: the
preparing process pays for export, quantisation and the first optimisation and its times are shown
too), vision encode, TTFT (image bytes to first token), decode tokens/s over `--tokens` tokens
(ignore_eos), follow-up TTFT on the same image (vision and prefix caches), peak RSS of that process
(getrusage, after the timed runs and before scoring). Accuracy, ORT contestants only: logits along the
fp32 variant's greedy path (teacher forcing, `OrtRuntime.score`) over a few prompts, as relative L2 error
per step (mean and max) and top-1 agreement with fp32.
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

SCORE_TOKENS = 16
ORT_VARIANTS = {"fp32": ("fp32", "fp32"), "int8": ("int8", "fp32"), "q8": ("q8", "fp32"), "q4": ("q4", "fp32"),
                "q4+vint8": ("q4", "int8"), "fp32+vint8": ("fp32", "int8")}
DEFAULT = "fp32,int8,q4,q4+vint8,torch-fp32"


def _engine(name: str, model_dir: Path, threads: int) -> Any:
    if name.startswith("torch-"):
        from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime

        dtype = {"torch-fp32": "float32", "torch-bf16": "bfloat16"}[name]
        return FastVLMRuntime(model_dir, device="cpu", dtype=dtype, threads=threads)
    from fastvlm_gemini_hybrid.models.ort_runtime import OrtRuntime

    weights, vision = ORT_VARIANTS[name]
    return OrtRuntime(model_dir, weights=weights, vision_weights=vision, threads=threads)


def _prompts() -> list[Any]:
    from fastvlm_gemini_hybrid.models.bench import QUESTIONS, synthetic_image
    from fastvlm_gemini_hybrid.models.runtime import GenItem, ImageInput
    from fastvlm_gemini_hybrid.types import GenerationOptions

    opts = GenerationOptions(max_tokens=SCORE_TOKENS)
    return [GenItem(q, (ImageInput.from_bytes(synthetic_image(500 + i)),), opts) for i, q in enumerate(QUESTIONS)]


def worker_prepare(name: str, model_dir: Path, threads: int) -> dict[str, Any]:
    """Export / quantise what is missing and build ORT's optimised graph once; time it."""
    start = time.perf_counter()
    engine = _engine(name, model_dir, threads)
    engine.load()
    return {"first_load_s": time.perf_counter() - start}


def worker_measure(name: str, model_dir: Path, threads: int, runs: int, tokens: int,
                   ref: Path | None) -> dict[str, Any]:
    from fastvlm_gemini_hybrid.models.bench import QUESTIONS, synthetic_image
    from fastvlm_gemini_hybrid.models.runtime import GenItem, ImageInput
    from fastvlm_gemini_hybrid.types import GenerationOptions

    start = time.perf_counter()
    engine = _engine(name, model_dir, threads)
    engine.load()
    out: dict[str, Any] = {"load_s": time.perf_counter() - start, "samples": {}}
    opts = GenerationOptions(max_tokens=tokens)
    warm = ImageInput.from_bytes(synthetic_image(999))
    engine.generate([GenItem(QUESTIONS[0], (warm,), opts)], ignore_eos=True)
    for run in range(runs):
        image = ImageInput.from_bytes(synthetic_image(1000 + run))
        result = engine.generate([GenItem(QUESTIONS[0], (image,), opts)], ignore_eos=True)[0]
        sample = {"ttft_s": result.ttft_s, "vision_s": engine.last_timings.get("vision_s", 0.0),
                  "prefill_s": engine.last_timings.get("prefill_s", 0.0),
                  "decode_tok_s": (result.output_tokens - 1) / (result.total_s - result.ttft_s)}
        follow = engine.generate([GenItem(QUESTIONS[1], (image,), GenerationOptions(max_tokens=1))])[0]
        sample["followup_ttft_s"] = follow.ttft_s
        for key, value in sample.items():
            out["samples"].setdefault(key, []).append(value)
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if ref is not None and not name.startswith("torch-"):
        out["accuracy"] = _accuracy(engine, name, ref)
    return out


def _accuracy(engine: Any, name: str, ref: Path) -> dict[str, Any]:
    """fp32 writes the greedy paths and their logits; every other variant is scored on those paths."""
    import numpy as np

    prompts = _prompts()
    if name == "fp32":
        paths = [engine.generate([p], ignore_eos=True)[0].token_ids for p in prompts]
        logits = {f"logits{i}": engine.score(p, path) for i, (p, path) in enumerate(zip(prompts, paths, strict=True))}
        np.savez(ref, **logits, **{f"path{i}": np.asarray(path) for i, path in enumerate(paths)})
        return {"rel_err_mean": 0.0, "rel_err_max": 0.0, "top1_agree": 1.0}
    if not ref.is_file():
        return {}
    saved = np.load(ref)
    errs, agree = [], []
    for i, prompt in enumerate(prompts):
        want = saved[f"logits{i}"]
        got = engine.score(prompt, saved[f"path{i}"].tolist())
        errs += list(np.linalg.norm(got - want, axis=-1) / np.linalg.norm(want, axis=-1))
        agree += list(got.argmax(-1) == want.argmax(-1))
    return {"rel_err_mean": float(np.mean(errs)), "rel_err_max": float(np.max(errs)),
            "top1_agree": float(np.mean(agree)), "steps": len(errs)}


# ------------------------------------------------------------------------------------------ report
def _child(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--model-dir", str(args.model_dir), "--threads", str(args.threads),
           "--runs", str(args.runs), "--tokens", str(args.tokens), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {' '.join(extra)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(results: dict[str, Any], load: tuple[float, float]) -> None:
    med = statistics.median
    print(f"FastVLM-0.5B (random weights), CPU, {os.cpu_count()} logical cores; load average "
          f"{load[0]:.1f} before, {load[1]:.1f} after (a shared machine: figures are noisy)")
    header = (f"{'contestant':<12} {'1st load':>9} {'load':>7} {'vision':>8} {'TTFT':>8} {'tok/s':>7} "
              f"{'follow':>7} {'RSS GiB':>8} {'err mean':>9} {'err max':>8} {'top-1':>6}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        s, acc = r["samples"], r.get("accuracy") or {}
        first = r.get("first_load_s")
        cells = [f"{name:<12}", f"{first:>8.1f}s" if first is not None else f"{'-':>9}", f"{r['load_s']:>6.1f}s",
                 f"{med(s['vision_s']):>7.2f}s", f"{med(s['ttft_s']):>7.2f}s", f"{med(s['decode_tok_s']):>7.2f}",
                 f"{med(s['followup_ttft_s']):>6.2f}s", f"{r['peak_rss_gib']:>8.2f}"]
        if acc:
            cells += [f"{acc['rel_err_mean']:>9.4f}", f"{acc['rel_err_max']:>8.4f}", f"{acc['top1_agree']:>6.2f}"]
        print(" ".join(cells))
    print("(medians over runs; err: relative L2 error of the logits vs the fp32 ORT variant along its greedy "
          f"path, {SCORE_TOKENS} tokens x {len(_questions())} prompts; top-1: argmax agreement)")


def _questions() -> tuple[str, ...]:
    from fastvlm_gemini_hybrid.models.bench import QUESTIONS

    return QUESTIONS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=DEFAULT, help=f"comma-separated: {', '.join(ORT_VARIANTS)}, "
                        "torch-fp32, torch-bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "fastvlm-0.5b-random")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON at the end")
    parser.add_argument("--no-accuracy", action="store_true", help="timings only (no logits comparison)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ref", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker and args.prepare:
        print(json.dumps(worker_prepare(args.worker, args.model_dir, args.threads)))
        return 0
    if args.worker:
        print(json.dumps(worker_measure(args.worker, args.model_dir, args.threads, args.runs, args.tokens,
                                        args.ref)))
        return 0
    if not args.model_dir.is_dir():
        sys.path.insert(0, str(Path(__file__).parent))
        from fastvlm_cpu import build

        build(args.model_dir)
    names = [n for n in args.variants.split(",") if n]
    if "fp32" in names:  # the accuracy reference goes first
        names.remove("fp32")
        names.insert(0, "fp32")
    results: dict[str, Any] = {}
    load = [os.getloadavg()[0], 0.0]
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "fp32-logits.npz"
        for name in names:
            first = None
            if not name.startswith("torch-"):
                print(f"preparing {name} (export / quantise / optimise if not cached) ...", file=sys.stderr)
                first = _child(args, "--worker", name, "--prepare")["first_load_s"]
            print(f"measuring {name} ...", file=sys.stderr)
            extra = [] if args.no_accuracy else ["--ref", str(ref)]
            results[name] = {**_child(args, "--worker", name, *extra), "first_load_s": first}
    load[1] = os.getloadavg()[0]
    report(results, (load[0], load[1]))
    if args.json:
        print(json.dumps({"threads": args.threads, "tokens": args.tokens, "runs": args.runs, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
