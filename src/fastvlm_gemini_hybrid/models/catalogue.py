"""Which local models exist, where their weights live, and whether they are downloaded.

Names resolve in this order: an existing directory; a catalogue name (`fastvlm-0.5b`, ...) found in
`settings.models_dir/<name>` (where `models pull` puts it) or in the Hugging Face cache; any other Hugging
Face repo id (`org/name`) of an image-text-to-text model, looked up the same two ways. A name that is
known but absent raises `ModelNotDownloadedError` with the exact `models pull` command to run.
Pure filesystem work: no torch, no network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailableError, ConfigurationError, ModelNotDownloadedError

LICENCE_NOTE = (
    "FastVLM weights are released by Apple for research use only (apple-amlr licence); "
    "check the licence before any other use."
)


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry. `repo_id` holds the checkpoint in transformers' native `fast_vlm` format."""

    name: str
    repo_id: str
    original_repo: str
    params: str
    approx_gb: float
    licence: str = "apple-amlr (research use only)"


# Converted by transformers' own conversion script (models/fast_vlm/convert_fastvlm_weights_to_hf.py)
# from Apple's originals; those repo ids are the script's and the model docs' defaults. Sizes are the
# bf16 safetensors, approximately.
CATALOGUE: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("fastvlm-0.5b", "KamilaMila/FastVLM-0.5B", "apple/FastVLM-0.5B", "0.5B", 1.3),
        ModelSpec("fastvlm-1.5b", "KamilaMila/FastVLM-1.5B", "apple/FastVLM-1.5B", "1.5B", 3.4),
        ModelSpec("fastvlm-7b", "KamilaMila/FastVLM-7B", "apple/FastVLM-7B", "7B", 15.5),
    )
}

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model name turned into a directory that holds a loadable checkpoint."""

    name: str
    path: Path
    source: str  # "directory", "models_dir" or "hf_cache"
    spec: ModelSpec | None = None

    @property
    def is_tiny(self) -> bool:
        return (self.path / "fastvlm-hybrid-tiny.json").is_file()


def pull_command(name: str) -> str:
    return f"fastvlm-hybrid models pull {name}"


def local_dir_for(name: str, models_dir: Path) -> Path:
    """Where `models pull NAME` stores NAME: models_dir/<catalogue name> or models_dir/<org>--<repo>."""
    return models_dir / (name if name in CATALOGUE else name.replace("/", "--"))


def weights_complete(path: Path) -> bool:
    """True when `path` holds a config and every weight shard its index names (a finished download)."""
    if not (path / "config.json").is_file():
        return False
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError):
                return False
            return all((path / shard).is_file() for shard in shards)
    return any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").is_file()


def _hf_cache_dir(repo_id: str) -> Path | None:
    """The snapshot directory of `repo_id` in the Hugging Face cache, if a complete one is there."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # the 'local' extra is missing; the backend reports that on its own
        return None
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if weights_complete(path) else None


def resolve_model(name: str, models_dir: Path) -> ResolvedModel:
    """Turn a catalogue name, directory or repo id into a loadable directory, or raise why not."""
    name = name.strip()
    if not name:
        raise ConfigurationError("no local model is configured (set FASTVLM_HYBRID_LOCAL_MODEL)")
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        if not (as_path / "config.json").is_file():
            raise BackendUnavailableError(
                f"{as_path} is not a model directory (no config.json); point FASTVLM_HYBRID_LOCAL_MODEL at a "
                f"directory saved with save_pretrained, or run `fastvlm-hybrid models make-tiny DIR`",
                backend="fastvlm",
            )
        return ResolvedModel(name=as_path.name, path=as_path, source="directory")
    spec = CATALOGUE.get(name.lower())
    if spec is None and not _REPO_ID.match(name):
        if "/" in name or name.startswith(".") or as_path.suffix:
            raise ConfigurationError(f"model directory not found: {as_path}")
        choices = ", ".join(CATALOGUE)
        raise ConfigurationError(f"unknown local model {name!r}; choose one of {choices}, a directory or a repo id")
    key = spec.name if spec else name
    local = local_dir_for(key, models_dir)
    if weights_complete(local):
        return ResolvedModel(name=key, path=local, source="models_dir", spec=spec)
    cached = _hf_cache_dir(spec.repo_id if spec else name)
    if cached is not None:
        return ResolvedModel(name=key, path=cached, source="hf_cache", spec=spec)
    partial = " (a partial download is there; pulling again resumes it)" if local.exists() else ""
    raise ModelNotDownloadedError(
        f"local model {key} is not downloaded{partial}; run: {pull_command(key)}", backend="fastvlm"
    )


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)


def model_status(models_dir: Path, configured: str | None = None) -> list[dict[str, Any]]:
    """Rows for `models list`: every catalogue entry plus pulled repos and the configured directory."""
    rows: list[dict[str, Any]] = []
    names = list(CATALOGUE)
    if models_dir.is_dir():
        names += sorted(p.name.replace("--", "/") for p in models_dir.iterdir()
                        if p.is_dir() and p.name not in CATALOGUE)
    if configured and configured not in names:
        names.append(configured)
    for name in names:
        spec = CATALOGUE.get(name)
        row: dict[str, Any] = {
            "name": name,
            "repo_id": spec.repo_id if spec else (name if _REPO_ID.match(name) else None),
            "params": spec.params if spec else None,
            "approx_size_gb": spec.approx_gb if spec else None,
            "downloaded": False,
            "path": None,
            "size_bytes": None,
            "configured": name == configured,
            "licence": spec.licence if spec else None,
        }
        try:
            resolved = resolve_model(name, models_dir)
        except (ModelNotDownloadedError, BackendUnavailableError, ConfigurationError) as exc:
            row["detail"] = str(exc)
        else:
            row.update(downloaded=True, path=str(resolved.path), size_bytes=_dir_size(resolved.path),
                       source=resolved.source, tiny=resolved.is_tiny)
        rows.append(row)
    return rows
