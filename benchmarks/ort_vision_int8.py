"""Static int8 vision encoder vs fp32 on ONNX Runtime CPU: encode time and feature error, side by side.

Quantises the model's fp32 vision encoder with models/onnx_vision_quant.py (calibrated on scikit-image
photographs; reuses the output under --out-dir unless --force), then, in one process with the same
session options as the engine (intra-op threads, ORT_ENABLE_ALL), times both encoders alternately on
one 1024 x 1024 picture (best of --runs after a warm-up) and compares their features on held-out
pictures (other photographs and bench.synthetic_image): relative error ||a - b|| / ||b|| and cosine.

    .venv/bin/python benchmarks/ort_vision_int8.py --model-dir /tmp/fastvlm-0.5b-random --runs 3

With random weights the error measures the quantisation noise of a random network, not answer quality.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fastvlm_gemini_hybrid.models.bench import synthetic_image
from fastvlm_gemini_hybrid.models.onnx_variants import ensure_variant
from fastvlm_gemini_hybrid.models.onnx_vision_quant import (
    calibration_pixels,
    int8_conv_count,
    quantize_vision_static,
)

EVAL_PHOTOS = ("rocket", "cat", "immunohistochemistry")


def eval_pixels(model_dir: Path, synthetic: int) -> dict[str, np.ndarray]:
    import transformers
    from PIL import Image

    from fastvlm_gemini_hybrid.models.preprocess import fill_colour, pad_to_square

    out = dict(zip(EVAL_PHOTOS, calibration_pixels(model_dir, EVAL_PHOTOS), strict=True))
    processor = transformers.AutoProcessor.from_pretrained(model_dir).image_processor
    for i in range(synthetic):
        img = pad_to_square(Image.open(io.BytesIO(synthetic_image(i))).convert("RGB"), fill_colour(processor))
        out[f"synthetic{i}"] = np.asarray(processor(images=[img], return_tensors="np")["pixel_values"], np.float32)
    return out


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/fastvlm-0.5b-random"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/visq"))
    parser.add_argument("--method", default="percentile", choices=("percentile", "minmax", "entropy"))
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--all-convs", action="store_true", help="quantise depthwise convolutions too")
    parser.add_argument("--no-reduce-range", action="store_true", help="8-bit weights (u8s8 may saturate on AVX2)")
    parser.add_argument("--format", default="qdq", choices=("qdq", "qoperator"))
    parser.add_argument("--synthetic", type=int, default=2, help="synthetic pictures among the held-out ones")
    parser.add_argument("--force", action="store_true", help="re-quantise even if the output exists")
    args = parser.parse_args()

    src = ensure_variant(args.model_dir, progress=True).vision
    method = f"p{args.percentile:g}" if args.method == "percentile" else args.method
    tag = f"{args.format}-{method}-{'all' if args.all_convs else 'dense'}{'' if args.no_reduce_range else '-rr'}"
    dst = args.out_dir / f"vision_encoder-int8-{tag}.onnx"
    quant_s = None
    if args.force or not dst.is_file():
        start = time.perf_counter()
        quantize_vision_static(src, dst, calibration_pixels(args.model_dir), method=args.method,
                               percentile=args.percentile, dense_only=not args.all_convs,
                               reduce_range=not args.no_reduce_range, quant_format=args.format)
        quant_s = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    pictures = eval_pixels(args.model_dir, args.synthetic)
    fp32, int8 = session(src, args.threads), session(dst, args.threads)
    timed = next(iter(pictures.values()))
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for sess in (fp32, int8):
        sess.run(None, {"pixel_values": timed})
    for _ in range(args.runs):  # alternate, so a busy machine slows both alike
        for name, sess in (("fp32", fp32), ("int8", int8)):
            start = time.perf_counter()
            sess.run(None, {"pixel_values": timed})
            times[name].append(time.perf_counter() - start)
    errors, cosines = {}, {}
    for name, pixels in pictures.items():
        ref = fp32.run(None, {"pixel_values": pixels})[0].astype(np.float64)
        got = int8.run(None, {"pixel_values": pixels})[0].astype(np.float64)
        errors[name] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
        cosines[name] = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref)))
    best = {k: min(v) for k, v in times.items()}
    result = {
        "model_dir": str(args.model_dir), "int8_model": str(dst), "config": tag, "threads": args.threads,
        "int8_convs": int8_conv_count(dst), "quantise_s": quant_s, "peak_rss_gb": round(peak_gb, 2),
        "fp32_s": best["fp32"], "int8_s": best["int8"], "ratio": best["int8"] / best["fp32"],
        "all_runs_s": times, "rel_err_mean": float(np.mean(list(errors.values()))),
        "rel_err_max": max(errors.values()), "cos_min": min(cosines.values()),
        "cos_mean": float(np.mean(list(cosines.values()))), "rel_err": errors,
    }
    print(f"config {tag}: {result['int8_convs']} int8 convolutions"
          + (f", quantised in {quant_s:.0f} s" if quant_s else " (reused)") + f", peak RSS {peak_gb:.1f} GB")
    print(f"encode fp32 {best['fp32']:.3f} s  int8 {best['int8']:.3f} s  ratio {result['ratio']:.3f}")
    print(f"features vs fp32: rel err mean {result['rel_err_mean']:.4f} max {result['rel_err_max']:.4f}, "
          f"cosine min {result['cos_min']:.4f} mean {result['cos_mean']:.4f}")
    for name in pictures:
        print(f"  {name:22s} rel err {errors[name]:.4f}  cosine {cosines[name]:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
