"""The ONNX Runtime engine's two decoder graphs side by side: the builder's GroupQueryAttention graph
(models/onnx_gqa.py, what the engine exports) against the TorchScript export (the fallback).

    python benchmarks/ort_decoder_graphs.py                     # fp32 and q8, 3 runs each
    python benchmarks/ort_decoder_graphs.py --formats fp32 --runs 2 --json

The model is benchmarks/fastvlm_cpu.py's full-size random FastVLM-0.5B (`--model-dir`, built there once if
absent). The GroupQueryAttention graphs come from the engine's own cache (`ensure_variant`); the
TorchScript graphs are exported once into `~/.cache/fastvlm-hybrid/bench-torchscript-decoder/` and
quantised with the engine's recipe (`onnx_variants.quantize`). Each graph runs in its own process, with
the engine's session options (ORT_ENABLE_ALL, `--threads`, io_binding, cache kept in OrtValues): a
prefill of `--prompt` random embeddings (FastVLM's 256 image tokens and a short question), then
`--tokens` single-token steps, `--runs` times. Printed: load, prefill and decode per graph (median and
best), the ratios GroupQueryAttention / TorchScript, each graph's node count, and how far the two
graphs' logits are apart on the same inputs (relative L2 over every step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GRAPHS = ("gqa", "torchscript")


def torchscript_decoder(model_dir: Path, fmt: str) -> Path:
    """The TorchScript decoder of `model_dir` in `fmt`, exported (and quantised) once."""
    from fastvlm_gemini_hybrid.models.onnx_export import consolidate, export_decoder
    from fastvlm_gemini_hybrid.models.onnx_variants import model_key, quantize

    root = Path.home() / ".cache" / "fastvlm-hybrid" / "bench-torchscript-decoder" / model_key(model_dir)
    fp32 = root / "fp32" / "decoder_model_merged.onnx"
    if not fp32.is_file():
        import torch
        import transformers

        print("exporting the TorchScript decoder (once) ...", file=sys.stderr, flush=True)
        model = transformers.FastVlmForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
        fp32.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            export_decoder(torch, model, Path(tmp) / fp32.name, last_logits_only=True)
            del model
            consolidate(Path(tmp) / fp32.name, fp32)
    if fmt == "fp32":
        return fp32
    out = root / fmt / "decoder_model_merged.onnx"
    if not out.is_file():
        print(f"quantising the TorchScript decoder to {fmt} (once) ...", file=sys.stderr, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize(fp32, out, fmt)
    return out


def worker(path: Path, model_dir: Path, prompt: int, tokens: int, runs: int, threads: int,
           logits_out: Path) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    text = json.loads((model_dir / "config.json").read_text())["text_config"]
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]

    nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    start = time.perf_counter()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - start
    inputs = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    pasts = [name.replace("present", "past_key_values", 1) for name in outputs[1:]]
    embeds = np.random.default_rng(0).standard_normal((1, prompt + tokens, text["hidden_size"])) * 0.02
    embeds = embeds.astype(np.float32)

    def run(chunk: np.ndarray, done: int, past: list[Any]) -> tuple[np.ndarray, list[Any]]:
        binding = session.io_binding()
        total = done + chunk.shape[1]
        binding.bind_cpu_input("inputs_embeds", np.ascontiguousarray(chunk))
        binding.bind_cpu_input("attention_mask", np.ones((1, total), np.int64))
        if "position_ids" in inputs:
            binding.bind_cpu_input("position_ids", np.arange(done, total, dtype=np.int64)[None])
        for name, value in zip(pasts, past, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name in outputs:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        out = binding.get_outputs()
        return out[0].numpy()[:, -1], list(out[1:])

    prefill, decode = [], []
    for _ in range(runs):
        empty = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, text["num_key_value_heads"], 0, head_dim),
                                                           np.float32)) for _ in pasts]
        start = time.perf_counter()
        logits, past = run(embeds[:, :prompt], 0, empty)
        prefill.append(time.perf_counter() - start)
        steps = [logits]
        start = time.perf_counter()
        for i in range(tokens):
            logits, past = run(embeds[:, prompt + i:prompt + i + 1], prompt + i, past)
            steps.append(logits)
        decode.append(tokens / (time.perf_counter() - start))
    np.save(logits_out, np.concatenate(steps))
    return {"nodes": nodes, "load_s": load, "prefill_s": prefill, "decode_tok_s": decode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/fastvlm-0.5b-random"))
    parser.add_argument("--formats", default="fp32,q8", help="comma-separated: fp32, int8, q8, q4")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=272, help="prefill length (256 image tokens + a question)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--logits-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model_dir, args.prompt, args.tokens, args.runs, args.threads,
                                args.logits_out)))
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from fastvlm_cpu import build

    from fastvlm_gemini_hybrid.models.onnx_gqa import builder_available
    from fastvlm_gemini_hybrid.models.onnx_variants import ensure_variant

    if not builder_available():
        print("onnxruntime-genai is not installed: pip install 'fastvlm-gemini-hybrid[browser]'", file=sys.stderr)
        return 2
    build(args.model_dir)
    formats = [f for f in args.formats.split(",") if f]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            paths = {"gqa": ensure_variant(args.model_dir, fmt).decoder, "torchscript": torchscript_decoder(
                args.model_dir, fmt)}
            for graph in GRAPHS:
                print(f"timing {graph} {fmt} ...", file=sys.stderr, flush=True)
                logits = Path(tmp) / f"{graph}-{fmt}.npy"
                out = subprocess.run([sys.executable, __file__, "--worker", str(paths[graph]), "--logits-out",
                                      str(logits), "--model-dir", str(args.model_dir), "--prompt", str(args.prompt),
                                      "--tokens", str(args.tokens),
                                      "--runs", str(args.runs), "--threads", str(args.threads)],
                                     check=True, capture_output=True, text=True).stdout
                results[f"{graph}-{fmt}"] = json.loads(out.strip().splitlines()[-1])
            a, b = np.load(Path(tmp) / f"gqa-{fmt}.npy"), np.load(Path(tmp) / f"torchscript-{fmt}.npy")
            rel = np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)
            results[f"gqa-{fmt}"]["logits_vs_torchscript"] = {"mean": float(rel.mean()), "max": float(rel.max())}
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"\n{'median [best]':<16}" + "".join(f"{k:>22}" for k in results))
    print(f"{'graph nodes':<16}" + "".join(f"{r['nodes']:>22}" for r in results.values()))
    print(f"{'load (s)':<16}" + "".join(f"{r['load_s']:>22.2f}" for r in results.values()))
    for key, label, best in (("prefill_s", "prefill (s)", min), ("decode_tok_s", "decode (tok/s)", max)):
        cells = [f"{statistics.median(r[key]):.2f} [{best(r[key]):.2f}]" for r in results.values()]
        print(f"{label:<16}" + "".join(f"{c:>22}" for c in cells))
    print("\nGroupQueryAttention / TorchScript, best run against best run:")
    for fmt in formats:
        g, t = results[f"gqa-{fmt}"], results[f"torchscript-{fmt}"]
        err = g["logits_vs_torchscript"]
        print(f"  {fmt}: prefill {min(g['prefill_s']) / min(t['prefill_s']):.2f}x time, decode "
              f"{max(g['decode_tok_s']) / max(t['decode_tok_s']):.2f}x tokens/s; logits apart by "
              f"{err['mean']:.2e} mean, {err['max']:.2e} max (relative L2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
