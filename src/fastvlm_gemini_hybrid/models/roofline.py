"""The limits a measured speed is read against, measured on the device at hand (not a data sheet).

Decoding one token at batch 1 reads every weight of the language model once, so it cannot beat
memory bandwidth / weight bytes per token: the *bandwidth roofline*. The vision encoder is convolutions
and matrix products at 1024 px, so its ceiling is the device's matrix-product throughput.

- `memory_bandwidth_gbs()`: a plain copy of a buffer well above the last-level cache (4x the LLC,
  at least 256 MiB on CPU; 1 GiB on a GPU), best of N, counting bytes read + bytes written (as STREAM's
  "copy" does). On CPU both torch's threaded `copy_` and numpy's `copyto` run and the faster counts.
- `matmul_peak_gflops(dtype)`: a square matmul, 2·n³ FLOPs, best of N. n doubles from 256 until one
  product takes `target_s` (or n reaches the cap: 4096 on CPU, 16384 on GPU), so emulated bf16 on a CPU
  without native support stays bounded in time instead of running for minutes.
- `decode_weight_bytes(model, fmt)`: the bytes one decode step reads, from the model's own parameters.
- `count_flops` / `vision_flops`: torch.utils.flop_counter (matmuls and convolutions, 2 FLOPs per
  multiply-add); `vision_flops` counts on the meta device, so a full-size model needs no weights.
- `decode_roofline(bytes, bandwidth)` -> tokens/s, `share(achieved, limit)` -> fraction of the limit.

Nothing here imports torch at module import time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Bytes per parameter in each weight format; int8 is dynamic int8 (linear weights 1 byte, the rest fp32).
FORMAT_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "int8": 4, "int4": 4,
                "q8": 4, "q4": 4}
#: weight-only formats: bytes per linear weight, scales included. torch (models/weight_quant.py): int8 has
#: one bf16 scale per output row (counted separately), int4 a bf16 scale and zero per group of 128 inputs;
#: ONNX Runtime's MatMulNBits (models/onnx_variants.py): q8/q4 one fp32 scale per block of 32, symmetric
_LINEAR_BYTES = {"int8": 1.0, "int4": 0.5 + 4 / 128, "q8": 1.0 + 4 / 32, "q4": 0.5 + 4 / 32}
_DTYPE_NAMES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
                "fp16": "float16", "float16": "float16", "half": "float16"}
_DEFAULT_LLC = 32 * 2**20


def last_level_cache_bytes() -> int:
    """The largest CPU cache of cpu0 per sysfs (32 MiB when sysfs does not say)."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = path.read_text().strip().upper()
        except OSError:
            continue
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * unit)
    return max(sizes) if sizes else _DEFAULT_LLC


def torch_dtype(dtype: Any) -> Any:
    """A torch dtype from a torch dtype or a name (`bf16`, `bfloat16`, `fp32`, ...)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPE_NAMES.get(str(dtype).lower().replace("torch.", ""))
    if name is None:
        raise ValueError(f"unknown dtype {dtype!r}; choose float32, bfloat16 or float16")
    return getattr(torch, name)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], Any], *, device: str = "cpu", repeats: int = 5, budget_s: float = 10.0) -> float:
    """The fastest of `repeats` timed calls of `fn` after one untimed warm-up; stops early (after at
    least one timed call) once `budget_s` is spent, so a slow device still returns in bounded time."""
    fn()
    _sync(device)
    deadline = time.perf_counter() + budget_s
    best = math.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return best


def memory_bandwidth_gbs(device: str = "cpu", *, size_bytes: int | None = None, repeats: int = 5,
                         budget_s: float = 10.0) -> float:
    """Copy bandwidth in GB/s (read + write, 1e9 bytes), best of `repeats`, on `device`."""
    import torch

    if size_bytes is None:
        size_bytes = 2**30 if device.startswith("cuda") else max(4 * last_level_cache_bytes(), 256 * 2**20)
    if size_bytes <= 0:
        raise ValueError("size_bytes must be positive")
    src = torch.ones(size_bytes, dtype=torch.uint8, device=device)  # touched: no page faults in the timing
    dst = torch.zeros_like(src)
    best = best_seconds(lambda: dst.copy_(src), device=device, repeats=repeats, budget_s=budget_s)
    if device == "cpu":
        import numpy as np

        a, b = src.numpy(), dst.numpy()
        best = min(best, best_seconds(lambda: np.copyto(b, a), repeats=repeats, budget_s=budget_s))
    return 2 * size_bytes / best / 1e9


def matmul_peak_gflops(dtype: Any = "float32", device: str = "cpu", *, n: int | None = None, repeats: int = 3,
                       target_s: float = 0.05, budget_s: float = 10.0) -> float:
    """Square-matmul throughput in GFLOP/s (2·n³ per product), best of `repeats`.

    Without `n`, n doubles from 256 until one product takes `target_s` or n reaches the cap."""
    import torch

    dt = torch_dtype(dtype)
    gpu = device.startswith("cuda")
    deadline = time.perf_counter() + budget_s

    def timed(size: int) -> tuple[float, Callable[[], Any]]:
        a = torch.randn(size, size, device=device).to(dt)
        b = torch.randn(size, size, device=device).to(dt)
        c = torch.empty(size, size, device=device, dtype=dt)
        fn = lambda: torch.mm(a, b, out=c)  # noqa: E731 - one closure per size
        fn()
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - start, fn

    if n is None:
        n, cap = 256, (16384 if gpu else 4096)
        seconds, fn = timed(n)
        while seconds < target_s and n < cap and time.perf_counter() + 16 * seconds < deadline:
            n *= 2
            seconds, fn = timed(n)
    else:
        if n <= 0:
            raise ValueError("n must be positive")
        seconds, fn = timed(n)
    left = max(0.0, deadline - time.perf_counter())
    best = min(seconds, best_seconds(fn, device=device, repeats=repeats, budget_s=left)) if left > seconds else seconds
    return 2 * n**3 / best / 1e9


def decode_roofline(weight_bytes_per_token: float, bandwidth_gbs: float) -> float:
    """The most tokens/s a decoder can produce when every token reads `weight_bytes_per_token`."""
    if not (weight_bytes_per_token > 0 and math.isfinite(weight_bytes_per_token)):
        raise ValueError("weight_bytes_per_token must be a positive number")
    if not (bandwidth_gbs > 0 and math.isfinite(bandwidth_gbs)):
        raise ValueError("bandwidth_gbs must be a positive number")
    return bandwidth_gbs * 1e9 / weight_bytes_per_token


def share(achieved: float, limit: float) -> float:
    """`achieved` as a fraction of `limit` (0.8 = 80% of the roofline)."""
    if not (limit > 0 and math.isfinite(limit)):
        raise ValueError("the limit must be a positive number")
    return achieved / limit


def decode_weight_bytes(model: Any, fmt: str) -> int:
    """Bytes of weights one decode step reads: the text decoder and the output head, in format `fmt`.

    The input embedding table is left out (a step reads one row of it) unless the head shares it in a
    float format. In the weight-only formats `int8` and `int4` (models/weight_quant.py) every linear
    weight, the head's included (its own quantised copy of a shared table), counts 1 or 0.5 byte plus its
    scales, and everything else counts fp32, the compute dtype on CPUs without native bf16. The KV cache
    and activations are not counted, so the roofline this gives is an upper bound."""
    fmt = fmt.lower()
    if fmt not in FORMAT_BYTES:
        raise ValueError(f"unknown weight format {fmt!r}; choose one of {', '.join(FORMAT_BYTES)}")
    per = FORMAT_BYTES[fmt]
    packed = _LINEAR_BYTES.get(fmt)
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    tied = head is not None and head.weight is embed.weight
    seen: set[int] = set()
    total = 0.0
    for module in [m for m in (head,) if m is not None] + list(decoder.modules()):
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            if module is embed and (not tied or packed is not None):
                continue
            if packed is not None and name == "weight" and param.dim() == 2 and module is not embed:
                total += param.numel() * packed + (2 * param.shape[0] if fmt == "int8" else 0)
            else:
                total += param.numel() * per
    return int(total)


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs of one call of `fn(*args, **kwargs)` as torch.utils.flop_counter counts them."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def vision_flops(model: Any, image_size: tuple[int, int], *, batch: int = 1) -> int:
    """FLOPs of `model.get_image_features` (vision tower + projector) on `batch` pictures of `image_size`
    (height, width), counted on a meta-device copy built from `model.config` (no weights, no time).

    Why meta: on CPU, torch's fused attention kernel is not among the ops the counter knows, so a real CPU
    forward leaves attention out; on meta, attention runs as plain matmuls and is counted, on any host."""
    import torch

    param = next(model.parameters())
    if param.device.type != "meta":
        with torch.device("meta"):
            model = type(model)._from_config(model.config, dtype=param.dtype)
    pixels = torch.zeros(batch, 3, *image_size, device="meta", dtype=param.dtype)
    return count_flops(model.get_image_features, pixel_values=pixels)
