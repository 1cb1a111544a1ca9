"""ONNX Runtime's CPU kernels for a language model's linear layers, per weight format, on this machine.

    python benchmarks/ort_matmul_kernels.py              # rows 1 (a decode step) and 272 (a prefill)
    python benchmarks/ort_matmul_kernels.py --rows 1,2

Why: it says which weight formats can beat fp32 here, and at what numerical cost. Each graph is eight
Qwen2-0.5B MLP-sized matrices (896 x 4864, random, 140 MB in fp32: well above the cache) multiplied by
the same activations and summed, in one of these forms:

- fp32 `MatMul`;
- `MatMulNBits` with 8 or 4 bits, blocks of 32, symmetric (what models/onnx_variants.py writes), at
  `accuracy_level` 4 (the activations are quantised to int8 per block and multiplied in int8) or 0 / 1
  (the weights are dequantised and multiplied in fp32).

It prints weights multiplied per second, the ratio to fp32, and each form's error against fp32 with the
same weights dequantised (so only the kernel's own rounding counts: level 4's int8 activations) and
against the fp32 weights (the format's whole cost): ||y - ref|| / ||ref|| over the output.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

K, N, MATRICES = 896, 4864, 8
FORMATS = (("fp32", None, None), ("q8, level 4", 8, 4), ("q4, level 4", 4, 4), ("q4, level 1", 4, 1),
           ("q8, level 1", 8, 1))


def quantise(weight: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ORT's own block quantiser: packed blocks, scales, and the weight as the kernel dequantises it."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        DefaultWeightOnlyQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, bits=bits)
    packed, scales, _ = DefaultWeightOnlyQuantizer(config).qbits_block_quant(weight)
    if bits == 8:
        values = packed.astype(np.int32) - 128
    else:  # two per byte, low nibble first, zero point 8
        values = np.stack([packed & 0x0F, packed >> 4], -1).reshape(N, K // 32, 32).astype(np.int32) - 8
    return packed, scales, (values * scales[:, :, None]).reshape(N, K).T.astype(np.float32)


def session(weights: list[np.ndarray], rows: int, bits: int | None, level: int | None) -> tuple[object, np.ndarray]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, dequantised = [], [], []
    for i, weight in enumerate(weights):
        if bits is None:
            inits.append(numpy_helper.from_array(weight, f"w{i}"))
            nodes.append(helper.make_node("MatMul", ["x", f"w{i}"], [f"y{i}"]))
            dequantised.append(weight)
            continue
        packed, scales, plain = quantise(weight, bits)
        inits += [numpy_helper.from_array(packed, f"b{i}"), numpy_helper.from_array(scales, f"s{i}")]
        nodes.append(helper.make_node("MatMulNBits", ["x", f"b{i}", f"s{i}"], [f"y{i}"], domain="com.microsoft",
                                      K=K, N=N, bits=bits, block_size=32, accuracy_level=level))
        dequantised.append(plain)
    nodes.append(helper.make_node("Sum", [f"y{i}" for i in range(len(weights))], ["y"]))
    graph = helper.make_graph(nodes, "linears", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, N])], inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]), \
        np.sum(dequantised, axis=0)


def rel(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1,272", help="activation rows: 1 is a decode step, 272 a prefill")
    parser.add_argument("--seconds", type=float, default=1.5, help="time budget per form and row count")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal((K, N)) * 0.02).astype(np.float32) for _ in range(MATRICES)]
    summed = np.sum(weights, axis=0)
    for rows in (int(r) for r in args.rows.split(",")):
        x = rng.standard_normal((rows, K)).astype(np.float32)
        print(f"\n{rows} row(s) x {MATRICES} matrices of {K}x{N}; best of the runs in {args.seconds} s")
        print(f"  {'':<13}{'ms':>9}{'G weights/s':>13}{'vs fp32':>9}{'err: kernel':>13}{'err: format':>13}")
        fp32_ms = None
        for label, bits, level in FORMATS:
            sess, dequantised = session(weights, rows, bits, level)
            y = sess.run(None, {"x": x})[0]
            best, start = float("inf"), time.perf_counter()
            while time.perf_counter() - start < args.seconds or best == float("inf"):
                t = time.perf_counter()
                sess.run(None, {"x": x})
                best = min(best, time.perf_counter() - t)
            ms = best * 1e3
            fp32_ms = fp32_ms or ms
            print(f"  {label:<13}{ms:>9.2f}{K * N * MATRICES / best / 1e9:>13.2f}{fp32_ms / ms:>8.2f}x"
                  f"{rel(y, x @ dequantised):>13.2%}{rel(y, x @ summed):>13.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
