"""ONNX variants of a local FastVLM for the ONNX Runtime engine: exported once, quantised once, cached.

Why here and not downloaded: the onnx-community export is what users of FastVLM on CPU reach for, but
this repo's models are transformers checkpoints (pulled, or the random ones the benchmarks build), so
the engine exports the checkpoint it is given and quantises it with onnxruntime's own tools:

- `fp32`: the export as is (models/onnx_export.py).
- `int8`: `quantize_dynamic` on the decoder's MatMul weights (lm_head included): int8 weights, activations
  quantised per call (DynamicQuantizeMatMul / MatMulInteger on x86).
- `q8`: weight-only `MatMulNBits` with 8 bits, block 32, symmetric, accuracy level 4 (int8 compute).
- `q4`: weight-only `MatMulNBits` with 4 bits, block 32, symmetric, accuracy level 4, so the AVX2 / VNNI
  kernels multiply in int8 instead of dequantising to fp32.

Only the decoder (where each generated token reads every weight) is quantised by default; the vision
encoder runs once per image and stays fp32 unless `vision="int8"` is asked for: static int8 on its 96
dense convolutions, calibrated on scikit-image photographs (models/onnx_vision_quant.py: about 0.7x the
encoder's time, at a measured cost in feature error; benchmarks/ort_vision_int8.py).
The embedding table stays fp32 (a lookup reads one row per token); the engine maps its file rather than
loading it (models/onnx_embedding.py), so only the rows used become resident.

The cache lives under `~/.cache/fastvlm-hybrid/onnx/<dir name>-<key>/<variant>/` (or `cache_dir`, or
`$FASTVLM_HYBRID_ONNX_CACHE`); the key hashes the model directory's path and each weight and config
file's size and mtime, so a changed (re-pulled, rebuilt, touched) model re-exports, and the entries of
its older versions are removed. Every variant is written into a temporary directory and renamed into
place, so a crash or a concurrent export never leaves a half-written variant behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._optional import require
from ..errors import BadInputError, ConfigurationError, ModelNotDownloadedError
from .onnx_export import consolidate, export_model_dir, quiet_logs, step

EXPORT_VERSION = 3  # bump when the exported graphs change, so caches of the old layout are not reused
VARIANTS = ("fp32", "int8", "q8", "q4")
VISION_VARIANTS = ("fp32", "int8")
MANIFEST = "manifest.json"
SESSION_FILES = ("vision_encoder.onnx", "embed_tokens.onnx", "decoder_model_merged.onnx")
_KEYED_FILES = (".safetensors", ".json", ".bin", ".jinja")


@dataclass(frozen=True)
class VariantFiles:
    """The three session files the engine loads for one variant."""

    vision: Path
    embed: Path
    decoder: Path
    root: Path  # the model's cache entry (all variants)


def default_cache_dir() -> Path:
    env = os.environ.get("FASTVLM_HYBRID_ONNX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fastvlm-hybrid" / "onnx"


def model_key(model_dir: Path) -> str:
    """A digest of what the export depends on: path, and size + mtime of every weight and config file."""
    model_dir = model_dir.resolve()
    parts = [f"v{EXPORT_VERSION}", str(model_dir)]
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and path.name.endswith(_KEYED_FILES):
            st = path.stat()
            parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def check_model_dir(model_dir: Path) -> Path:
    """`model_dir` resolved, or `ModelNotDownloadedError` saying what is missing."""
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelNotDownloadedError(f"no model directory at {path}: pull or build the model first "
                                      "(fastvlm-hybrid models pull NAME)", backend="fastvlm")
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise ModelNotDownloadedError(f"{path} has no config.json or *.safetensors weights: not a "
                                      "transformers checkpoint", backend="fastvlm")
    try:
        kind = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path / 'config.json'} is unreadable: {exc}") from None
    if kind != "fast_vlm":
        raise ConfigurationError(f"the ONNX Runtime engine exports FastVLM (model_type fast_vlm) only; {path} is "
                                 f"{kind!r}: use the PyTorch engine")
    return path.resolve()


def ensure_variant(model_dir: Path, variant: str = "fp32", *, vision: str = "fp32", cache_dir: Path | None = None,
                   progress: bool = True) -> VariantFiles:
    """The session files of `variant` for `model_dir`, exporting and quantising what the cache lacks."""
    if variant not in VARIANTS:
        raise ConfigurationError(f"unknown ONNX weights {variant!r}; choose one of {', '.join(VARIANTS)}")
    if vision not in VISION_VARIANTS:
        raise ConfigurationError(f"unknown vision weights {vision!r}; choose one of {', '.join(VISION_VARIANTS)}")
    source = check_model_dir(model_dir)
    root = _cache_root(source, cache_dir)
    base = root / "fp32"
    if not (base / "decoder_model_merged.onnx").is_file():
        with _staging(root, "fp32") as tmp:
            export_model_dir(source, tmp, progress=progress)
        (root / MANIFEST).write_text(json.dumps({"source": str(source), "export_version": EXPORT_VERSION}) + "\n")
        _prune_older(root, source)
    decoder = base / "decoder_model_merged.onnx"
    if variant != "fp32":
        decoder = root / variant / "decoder_model_merged.onnx"
        if not decoder.is_file():
            with _staging(root, variant) as tmp, step(f"quantise the decoder to {variant}", progress):
                quantize(base / "decoder_model_merged.onnx", tmp / decoder.name, variant)
    vision_file = base / "vision_encoder.onnx"
    if vision != "fp32":
        folder = _vision_folder(vision)
        vision_file = root / folder / "vision_encoder.onnx"
        if not vision_file.is_file():
            from .onnx_vision_quant import calibration_pixels, quantize_vision_static

            with _staging(root, folder) as tmp, step(f"calibrate and quantise the vision encoder to {vision}",
                                                     progress):
                quantize_vision_static(base / "vision_encoder.onnx", tmp / vision_file.name,
                                       calibration_pixels(source))
    return VariantFiles(vision=vision_file, embed=base / "embed_tokens.onnx", decoder=decoder, root=root)


def quantize(src: Path, dst: Path, variant: str) -> None:
    """Write the `variant` quantisation of the ONNX model `src` (weights in `<dst>.data`)."""
    require("onnx", "browser", "quantising ONNX models")
    require("onnxruntime", "browser", "quantising ONNX models")
    with quiet_logs():
        _quantize(src, dst, variant)


def _quantize(src: Path, dst: Path, variant: str) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if variant == "int8":
        with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
            out = Path(tmp) / dst.name
            quantize_dynamic(src, out, op_types_to_quantize=["MatMul", "Gemm"], per_channel=False,
                             weight_type=QuantType.QInt8, use_external_data_format=True,
                             extra_options={"MatMulConstBOnly": True})
            consolidate(out, dst)
        return
    if variant in ("q4", "q8"):
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        model = onnx.load(str(src), load_external_data=True)
        quantizer = MatMulNBitsQuantizer(model, bits=4 if variant == "q4" else 8, block_size=32,
                                         is_symmetric=True, accuracy_level=4)
        quantizer.process()
        data = dst.with_name(dst.name + ".data")
        quantizer.model.save_model_to_file(str(dst), use_external_data_format=True)
        if not data.is_file():  # older onnxruntime names the data file differently: gather it
            consolidate(dst, dst)
        return
    raise BadInputError(f"no quantisation recipe for {variant!r}")


class _staging:
    """A temporary directory beside `root/name`, renamed to it on success, removed on failure."""

    def __init__(self, root: Path, name: str) -> None:
        self.final = root / name
        root.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            os.replace(self.tmp, self.final)
        except OSError:  # another process finished the same variant first: keep theirs
            shutil.rmtree(self.tmp, ignore_errors=True)


def _prune_older(root: Path, source: Path) -> None:
    """Remove cache entries exported from earlier versions of the same model directory."""
    for other in root.parent.glob(f"{source.name}-*"):
        if other == root or not (other / MANIFEST).is_file():
            continue
        try:
            if json.loads((other / MANIFEST).read_text()).get("source") == str(source):
                shutil.rmtree(other, ignore_errors=True)
        except (OSError, ValueError):
            continue


__all__ = ["SESSION_FILES", "VARIANTS", "VariantFiles", "check_model_dir", "default_cache_dir",
           "ensure_variant", "model_key", "quantize"]


def is_exported(model_dir: Path, variant: str, *, vision: str = "fp32", cache_dir: Path | None = None) -> bool:
    """Whether `variant` (and `vision`) of `model_dir` is in the cache already (so loading costs no export)."""
    try:
        source = check_model_dir(model_dir)
    except (ModelNotDownloadedError, ConfigurationError):
        return False
    root = _cache_root(source, cache_dir)
    vision_ok = vision == "fp32" or (root / _vision_folder(vision) / "vision_encoder.onnx").is_file()
    return vision_ok and all((root / sub / "decoder_model_merged.onnx").is_file() for sub in {"fp32", variant})


def _cache_root(source: Path, cache_dir: Path | None) -> Path:
    """The cache entry of one version of a model: every variant lives under it."""
    return (cache_dir or default_cache_dir()).expanduser() / f"{source.name}-{model_key(source)}"


def _vision_folder(vision: str) -> str:
    """The cache folder of a quantised vision encoder (not `vision-int8`: that held the old dynamic recipe)."""
    return f"vision-{vision}-static"
