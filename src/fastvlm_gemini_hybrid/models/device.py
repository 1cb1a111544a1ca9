"""Choosing device, dtype and thread count for in-process inference.

Rules: CUDA, then Apple MPS, then CPU. On GPUs, bf16 where supported (else fp16). On CPU, bf16 only
when the processor does bf16 natively (AVX512-BF16 or AMX) or a short matmul probe shows it is faster,
because emulated bf16 is slower than fp32. `float32` is forced for dynamic int8 quantisation.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "half": "float16"}


def pick_device(torch: Any, requested: str = "auto") -> str:
    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"device {requested!r} was asked for but CUDA is not available")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigurationError("device 'mps' was asked for but MPS is not available")
    if requested not in ("cpu", "mps") and not requested.startswith("cuda"):
        raise ConfigurationError(f"unknown device {requested!r}; choose auto, cpu, cuda or mps")
    return requested


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_faster() -> bool:
    """Native bf16 support, or a probe where bf16 matmul beats fp32 by 10% (done once per process)."""
    if _cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return True
    import torch

    a32, b32 = torch.randn(256, 1024), torch.randn(1024, 1024)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def best(a: Any, b: Any) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a16, b16) < 0.9 * best(a32, b32)


def pick_dtype(torch: Any, device: str, requested: str = "auto") -> Any:
    requested = (requested or "auto").lower()
    if requested != "auto":
        if requested not in _DTYPES:
            raise ConfigurationError(f"unknown dtype {requested!r}; choose auto, float32, bfloat16 or float16")
        return getattr(torch, _DTYPES[requested])
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_bf16_is_faster() else torch.float32


def set_threads(torch: Any, threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise ConfigurationError("threads must be a positive number")
        torch.set_num_threads(threads)
