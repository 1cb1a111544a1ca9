"""MLX FastVLM checkpoints: which exist, where they live, how to get them, and 4/8-bit variants.

Names end in `-mlx` so `models pull NAME` is never ambiguous with the PyTorch catalogue. Each entry
either downloads a ready MLX checkpoint (`mlx_repo`) or builds one locally with mlx-vlm's `convert`
from Apple's original PyTorch release (`source`), quantized to `bits` when set. Only
`mlx-community/FastVLM-0.5B-bf16` is known to be published in MLX format; everything else is
converted on this machine, which needs the same download plus a few minutes of CPU.

The MLX backend also accepts the PyTorch catalogue's names (`fastvlm-0.5b` -> `fastvlm-0.5b-mlx`), so
the default `local_model` works whichever local backend `auto` picks. Pure filesystem work at import;
mlx-vlm and huggingface_hub are imported only by `pull_mlx` and `convert_quantized`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import BackendUnavailableError, BadInputError, ConfigurationError, ModelNotDownloadedError
from .catalogue import _REPO_ID, ResolvedModel, _dir_size, _hf_cache_dir, pull_command, weights_complete

#: model types mlx-vlm loads as FastVLM (Apple's checkpoints declare llava_qwen2)
MLX_FASTVLM_TYPES = ("llava_qwen2", "fastvlm")
QUANT_BITS = (4, 8)


@dataclass(frozen=True)
class MLXModelSpec:
    """One MLX catalogue entry: a ready MLX repo, or a PyTorch source to convert (and quantize)."""

    name: str
    params: str
    approx_gb: float
    mlx_repo: str | None = None
    source: str | None = None
    bits: int | None = None
    licence: str = "apple-amlr (research use only)"

    @property
    def repo_id(self) -> str:
        return self.mlx_repo or self.source or ""


def _entries() -> list[MLXModelSpec]:
    out = [MLXModelSpec("fastvlm-0.5b-mlx", "0.5B", 1.3, mlx_repo="mlx-community/FastVLM-0.5B-bf16")]
    # Quantized 0.5B variants start from the bf16 MLX checkpoint (one small download, no PyTorch step).
    out += [MLXModelSpec(f"fastvlm-0.5b-mlx-{b}bit", "0.5B", gb, source="mlx-community/FastVLM-0.5B-bf16", bits=b)
            for b, gb in ((8, 0.75), (4, 0.5))]
    for size, gb, gb8, gb4 in (("1.5b", 3.4, 1.9, 1.2), ("7b", 15.5, 8.2, 4.6)):
        source = f"apple/FastVLM-{size.upper()}"
        out.append(MLXModelSpec(f"fastvlm-{size}-mlx", size.upper(), gb, source=source))
        out += [MLXModelSpec(f"fastvlm-{size}-mlx-{b}bit", size.upper(), g, source=source, bits=b)
                for b, g in ((8, gb8), (4, gb4))]
    return out


MLX_CATALOGUE: dict[str, MLXModelSpec] = {spec.name: spec for spec in _entries()}

#: PyTorch catalogue names the MLX backend maps to its own checkpoints
TORCH_ALIASES: dict[str, str] = {f"fastvlm-{s}": f"fastvlm-{s}-mlx" for s in ("0.5b", "1.5b", "7b")}


def mlx_name(name: str) -> str:
    """The MLX catalogue name for `name` (itself if already one or not a catalogue name)."""
    key = name.strip().lower()
    return TORCH_ALIASES.get(key, key if key in MLX_CATALOGUE else name.strip())


def check_mlx_dir(path: Path) -> None:
    """Raise why `path` cannot be loaded by mlx-vlm as FastVLM (not a model, or a PyTorch checkpoint)."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BackendUnavailableError(
            f"{path} is not a model directory (no config.json); point FASTVLM_HYBRID_LOCAL_MODEL at an MLX FastVLM, "
            f"e.g. run: {pull_command('fastvlm-0.5b-mlx')}", backend="mlx")
    try:
        model_type = str(json.loads(config_file.read_text()).get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        raise BackendUnavailableError(f"{config_file} is not valid JSON", backend="mlx") from None
    if model_type not in MLX_FASTVLM_TYPES:
        hint = " (a transformers checkpoint: use local_backend=fastvlm for it)" if model_type == "fast_vlm" else ""
        raise BackendUnavailableError(
            f"{path} holds a {model_type or 'unknown'} model{hint}; the mlx backend needs an MLX FastVLM "
            f"(model_type llava_qwen2), e.g. run: {pull_command('fastvlm-0.5b-mlx')}", backend="mlx")


def resolve_mlx_model(name: str, models_dir: Path) -> ResolvedModel:
    """A directory, MLX catalogue name (or PyTorch alias) or repo id -> a loadable MLX directory."""
    name = name.strip()
    if not name:
        raise ConfigurationError("no local model is configured (set FASTVLM_HYBRID_LOCAL_MODEL)")
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        check_mlx_dir(as_path)
        return ResolvedModel(name=as_path.name, path=as_path, source="directory")
    key = mlx_name(name)
    spec = MLX_CATALOGUE.get(key)
    if spec is None and not _REPO_ID.match(key):
        if "/" in name or name.startswith(".") or as_path.suffix:
            raise ConfigurationError(f"model directory not found: {as_path}")
        raise ConfigurationError(
            f"unknown MLX model {name!r}; choose one of {', '.join(MLX_CATALOGUE)}, a directory or a repo id")
    local = models_dir / (key if spec else key.replace("/", "--"))
    if weights_complete(local):
        check_mlx_dir(local)
        return ResolvedModel(name=key, path=local, source="models_dir")
    if spec is None or (spec.mlx_repo and spec.bits is None):
        cached = _hf_cache_dir(spec.mlx_repo if spec and spec.mlx_repo else key)
        if cached is not None:
            check_mlx_dir(cached)
            return ResolvedModel(name=key, path=cached, source="hf_cache")
    raise ModelNotDownloadedError(f"MLX model {key} is not downloaded; run: {pull_command(key)}", backend="mlx")


def convert_quantized(src: str | Path, dst: str | Path, bits: int, *, group_size: int = 64) -> Path:
    """Quantize an MLX FastVLM (directory or repo id) to `bits` (4 or 8) with mlx-vlm's `convert`.

    The vision tower stays in its float dtype (mlx-vlm skips multimodal modules; most of it is
    convolutions anyway); the language model's linear and embedding layers become `bits`-bit affine
    groups of `group_size`. mlx-vlm's progress lines go to stderr so `--json` output stays clean.
    """
    if bits not in QUANT_BITS:
        raise BadInputError(f"bits must be one of {QUANT_BITS}, got {bits}")
    require("mlx_vlm", "mlx", "quantizing an MLX model")
    from mlx_vlm import convert

    target = Path(dst).expanduser()
    if target.exists() and any(target.iterdir()):
        raise BadInputError(f"{target} is not empty; choose a new directory for the quantized model")
    if isinstance(src, Path) or Path(str(src)).expanduser().is_dir():
        check_mlx_dir(Path(src).expanduser())
    try:
        with contextlib.redirect_stdout(sys.stderr):
            convert(hf_path=str(src), mlx_path=str(target), quantize=True, q_bits=bits, q_group_size=group_size)
    except (OSError, ValueError, KeyError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BackendUnavailableError(f"could not quantize {src} to {bits} bits ({first})", backend="mlx") from None
    return target


def pull_mlx(name: str, models_dir: Path) -> Path:
    """Download (or download and convert) MLX catalogue entry `name` into models_dir/<name>."""
    key = mlx_name(name)
    spec = MLX_CATALOGUE.get(key)
    if spec is None:
        raise BadInputError(f"unknown MLX model {name!r}; choose one of {', '.join(MLX_CATALOGUE)}")
    target = models_dir / spec.name
    if weights_complete(target):
        return target
    hub = require("huggingface_hub", "mlx", "downloading MLX models")
    if spec.mlx_repo and spec.bits is None:
        try:
            hub.snapshot_download(spec.mlx_repo, local_dir=target,
                                  allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.py"])
        except Exception as exc:  # noqa: BLE001 - hub raises HTTP, OS and its own error types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BackendUnavailableError(f"could not download {spec.mlx_repo} ({first}); run the pull again "
                                          f"to resume", backend="mlx") from None
        return target
    require("mlx_vlm", "mlx", "converting models to MLX")
    if target.exists():
        shutil.rmtree(target)  # a half-written conversion cannot be resumed
    if spec.bits is not None:
        return convert_quantized(spec.source or "", target, spec.bits)
    from mlx_vlm import convert

    try:
        with contextlib.redirect_stdout(sys.stderr):
            convert(hf_path=spec.source or "", mlx_path=str(target))
    except Exception as exc:  # noqa: BLE001 - download and conversion errors of every kind
        shutil.rmtree(target, ignore_errors=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BackendUnavailableError(f"could not convert {spec.source} to MLX ({first})", backend="mlx") from None
    return target


def mlx_model_status(models_dir: Path) -> list[dict[str, Any]]:
    """Rows for `models list`, shaped like `catalogue.model_status` rows, with `backend: mlx`."""
    rows: list[dict[str, Any]] = []
    for spec in MLX_CATALOGUE.values():
        row: dict[str, Any] = {
            "name": spec.name, "backend": "mlx", "repo_id": spec.repo_id, "params": spec.params,
            "approx_size_gb": spec.approx_gb, "bits": spec.bits, "converted_locally": spec.mlx_repo is None
            or spec.bits is not None, "downloaded": False, "path": None, "size_bytes": None,
            "licence": spec.licence,
        }
        try:
            resolved = resolve_mlx_model(spec.name, models_dir)
        except (ModelNotDownloadedError, BackendUnavailableError, ConfigurationError) as exc:
            row["detail"] = str(exc)
        else:
            row.update(downloaded=True, path=str(resolved.path), size_bytes=_dir_size(resolved.path),
                       source=resolved.source)
        rows.append(row)
    return rows
