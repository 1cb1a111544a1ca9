"""Which engine runs the local FastVLM: PyTorch in-process (`FastVLMRuntime`) or ONNX Runtime (`OrtRuntime`).

Both meet one contract (load, generate, close, stats, last_timings), so the backend does not care. The
settings `local_engine` (auto, torch, onnx) and `quantize` (unset, int8, int4) pick the engine and the
language model's weights; the same `quantize` means the closest format in each engine:

| quantize | torch (models/weight_quant.py) | onnx (models/onnx_variants.py) |
|---|---|---|
| unset | the checkpoint in `dtype` | fp32 |
| int8 | weight-only int8, per output channel | q8: MatMulNBits 8-bit, blocks of 32 |
| int4 | weight-only int4, groups of 128 | q4: MatMulNBits 4-bit, blocks of 32 |

`auto` picks ONNX Runtime on a CPU-only host when onnxruntime is installed, the model is a FastVLM and
its ONNX variant is exported already (there it decodes fastest: benchmarks/fastvlm_cpu.py), and PyTorch
otherwise (CUDA, MPS, other models). Why not export on first use: exporting the 0.5B model takes minutes
and far more memory than running it, a surprise no first request should bring; `fastvlm-hybrid models
export NAME` (or `local_engine = "onnx"`) does it once, knowingly, and `auto` uses it from then on.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..config import Settings

ENGINES = ("auto", "torch", "onnx")
ONNX_WEIGHTS = {None: "fp32", "int8": "q8", "int4": "q4"}
VISION_WEIGHTS = {None: "fp32", "int8": "int8"}  # `vision_quantize`: the ONNX vision encoder's weights


def pick_engine(requested: str | None, device: str, model_dir: Path, quantize: str | None = None,
                vision_quantize: str | None = None) -> str:
    """`torch` or `onnx` for this setting, device and model (see the module doc for `auto`; a
    `vision_quantize` is an ONNX option, so `auto` must find that variant exported too, or it says so)."""
    engine = (requested or "auto").lower()
    if engine not in ENGINES:
        raise ConfigurationError(f"unknown local_engine {engine!r}; choose {', '.join(ENGINES)}")
    if engine != "auto":
        if engine == "onnx" and (device or "auto").lower() not in ("auto", "cpu"):
            raise ConfigurationError(f"local_engine=onnx runs on the CPU only; unset it for device={device}")
        return engine
    if (device or "auto").lower() not in ("auto", "cpu") or not _cpu_only_host():
        return "torch"
    if importlib.util.find_spec("onnxruntime") is None or not _is_fastvlm(model_dir):
        return "torch"
    from .onnx_variants import is_exported

    return "onnx" if is_exported(model_dir, ONNX_WEIGHTS.get(quantize, "fp32"), vision=vision_quantize or "fp32") \
        else "torch"


def make_runtime(path: Path, settings: Settings) -> Any:
    """The runtime for `path` under `settings` (not loaded yet)."""
    quantize = (settings.quantize or "").lower() or None
    vision = (settings.vision_quantize or "").lower() or None
    if vision not in VISION_WEIGHTS:
        raise ConfigurationError(f"unknown vision_quantize {vision!r}; choose int8, or leave it unset")
    engine = pick_engine(settings.local_engine, settings.device, path, quantize, vision)
    if engine == "torch" and vision:
        raise ConfigurationError("vision_quantize=int8 is an ONNX Runtime option: export it first "
                                 "(fastvlm-hybrid models export NAME --vision-quantize int8) or set local_engine=onnx")
    if engine == "onnx":
        from .ort_runtime import OrtRuntime

        if quantize not in ONNX_WEIGHTS:
            raise ConfigurationError(f"unknown quantize setting {quantize!r}; choose int8 or int4, or leave it unset")
        return OrtRuntime(path, threads=settings.threads, weights=ONNX_WEIGHTS[quantize],
                          vision_weights=VISION_WEIGHTS[vision], max_pixels=settings.max_image_pixels,
                          vision_input_size=settings.vision_input_size)
    from .runtime import FastVLMRuntime

    return FastVLMRuntime(path, device=settings.device, dtype=settings.dtype, threads=settings.threads,
                          quantize=quantize, max_pixels=settings.max_image_pixels,
                          vision_input_size=settings.vision_input_size)


def engine_name(runtime: Any) -> str:
    return "onnx" if type(runtime).__name__ == "OrtRuntime" else "torch"


def _cpu_only_host() -> bool:
    """No CUDA, ROCm or MPS device torch could use. Torch is imported only where such a device may exist:
    importing the CUDA wheel costs about 0.7 GiB of resident memory, which the ONNX engine never needs."""
    if importlib.util.find_spec("torch") is None:
        return True
    if not _may_have_accelerator():
        return True
    import torch

    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def _may_have_accelerator() -> bool:
    """Whether this host shows a GPU torch could drive: Apple silicon (MPS), an NVIDIA driver or an AMD
    ROCm device node (Linux), or any other OS, where there is no cheap test."""
    system = platform.system()
    if system == "Darwin":
        return platform.machine() == "arm64"
    if system != "Linux":
        return True
    return (Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()
            or any(Path("/dev").glob("nvidia[0-9]*")))


def _is_fastvlm(model_dir: Path) -> bool:
    try:
        return json.loads((Path(model_dir) / "config.json").read_text()).get("model_type") == "fast_vlm"
    except (OSError, ValueError):
        return False
