"""Device and dtype choice: explicit settings win, impossible ones are configuration errors."""

from __future__ import annotations

import pytest
import torch

from fastvlm_gemini_hybrid.errors import ConfigurationError
from fastvlm_gemini_hybrid.models import device as dev


def test_explicit_dtypes() -> None:
    assert dev.pick_dtype(torch, "cpu", "bf16") is torch.bfloat16
    assert dev.pick_dtype(torch, "cpu", "float32") is torch.float32
    assert dev.pick_dtype(torch, "cpu", "bfloat16") is torch.bfloat16  # weight-only quantisation keeps it
    with pytest.raises(ConfigurationError, match="unknown dtype"):
        dev.pick_dtype(torch, "cpu", "float8")


def test_auto_dtype_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    dev.cpu_bf16_is_faster.cache_clear()
    monkeypatch.setattr(dev, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert dev.pick_dtype(torch, "cpu", "auto") is torch.bfloat16
    dev.cpu_bf16_is_faster.cache_clear()
    monkeypatch.setattr(dev, "cpu_bf16_is_faster", lambda: False)
    assert dev.pick_dtype(torch, "cpu", "auto") is torch.float32


def test_unavailable_devices_are_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device(torch, "auto") in ("cpu", "mps")
    with pytest.raises(ConfigurationError, match="CUDA"):
        dev.pick_device(torch, "cuda")
    with pytest.raises(ConfigurationError, match="unknown device"):
        dev.pick_device(torch, "tpu")
    with pytest.raises(ConfigurationError, match="positive"):
        dev.set_threads(torch, 0)
