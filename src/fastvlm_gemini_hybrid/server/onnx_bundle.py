"""ONNX bundles for in-browser FastVLM (transformers.js): pull the public export, or build a tiny one.

transformers.js runs FastVLM as three ONNX sessions under `<bundle>/onnx/`: `vision_encoder` (pixel
values -> projected image features), `embed_tokens` (ids -> embeddings) and `decoder_model_merged`
(embeddings + attention mask + position ids + past key/values -> logits + present key/values, one
graph for the first step and every cached step). It finds the model class through `config.json`'s
`model_type: llava_qwen2` (top-level Qwen2 sizes), the processor through `preprocessor_config.json`'s
`processor_class: LlavaProcessor`, and the chat template in `tokenizer_config.json`. Which quantised
file of each session it loads is named in `config.json["transformers.js_config"]["dtype"]`, so the page
never has to guess which variants were downloaded: `pull_onnx` writes that for the files it fetched.

`make_tiny_onnx` exports the tiny random PyTorch FastVLM (`models/tiny.py`) in exactly that layout
with plain `torch.onnx.export`, so browser tests run the real transformers.js code path in seconds.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import BackendUnavailableError, BadInputError, ConfigurationError

SESSIONS = ("vision_encoder", "embed_tokens", "decoder_model_merged")
#: transformers.js' file suffix per dtype (utils/dtypes.js DEFAULT_DTYPE_SUFFIX_MAPPING).
DTYPE_SUFFIX = {"fp32": "", "fp16": "_fp16", "int8": "_int8", "uint8": "_uint8", "q8": "_quantized",
                "q4": "_q4", "q4f16": "_q4f16", "bnb4": "_bnb4"}
CONFIG_FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                "vocab.json", "merges.txt", "chat_template.jinja", "LICENSE", "README.md")
MANIFEST = "fastvlm-hybrid-onnx.json"


@dataclass(frozen=True)
class OnnxSpec:
    """A downloadable ONNX export and the variant of each session the browser should load."""

    name: str
    repo_id: str
    dtypes: dict[str, str] = field(default_factory=dict)
    approx_mb: int = 0


# q4 decoder/vision and fp16 embeddings: the mix the export's model card uses for WebGPU (~0.9 GB).
ONNX_CATALOGUE: dict[str, OnnxSpec] = {
    "fastvlm-0.5b-onnx": OnnxSpec(
        "fastvlm-0.5b-onnx", "onnx-community/FastVLM-0.5B-ONNX",
        {"vision_encoder": "q4", "embed_tokens": "fp16", "decoder_model_merged": "q4"}, 900,
    ),
}


def onnx_files(dtypes: dict[str, str]) -> list[str]:
    """The `onnx/...` paths transformers.js fetches for these per-session dtypes."""
    out = []
    for session in SESSIONS:
        dtype = dtypes.get(session, "fp32")
        if dtype not in DTYPE_SUFFIX:
            raise BadInputError(f"unknown ONNX dtype {dtype!r} for {session}; one of {', '.join(DTYPE_SUFFIX)}")
        out.append(f"onnx/{session}{DTYPE_SUFFIX[dtype]}.onnx")
    return out


def allow_patterns(dtypes: dict[str, str]) -> list[str]:
    """snapshot_download patterns: config/tokenizer files plus the chosen sessions (and external data)."""
    return [*CONFIG_FILES, *(p for f in onnx_files(dtypes) for p in (f, f + "_data*"))]


def bundle_problems(directory: Path) -> list[str]:
    """What stops transformers.js loading `directory` as FastVLM (empty when it is complete)."""
    problems = []
    for name in ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer.json",
                 "tokenizer_config.json"):
        if not (directory / name).is_file():
            problems.append(f"missing {name}")
    if problems:
        return problems
    config = json.loads((directory / "config.json").read_text())
    if config.get("model_type") != "llava_qwen2":
        problems.append(f"config.json model_type is {config.get('model_type')!r}, not 'llava_qwen2'")
    dtypes = config.get("transformers.js_config", {}).get("dtype", {})
    for rel in onnx_files(dtypes if isinstance(dtypes, dict) else {}):
        if not (directory / rel).is_file():
            problems.append(f"missing {rel}")
    return problems


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _set_dtypes(directory: Path, dtypes: dict[str, str]) -> None:
    """Record in config.json which variant of each session is here, for every device."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    tjs = config.setdefault("transformers.js_config", {})
    tjs["dtype"] = dict(dtypes)
    tjs.pop("device_config", None)  # a per-device dtype there would override ours with files we lack
    _write_json(path, config)


# ----------------------------------------------------------------------------------------------- pull
def pull_onnx(name: str, dest: str | Path, progress: bool = True, *, dtypes: dict[str, str] | None = None,
              revision: str | None = None) -> Path:
    """Download the ONNX export `name` (catalogue name or repo id) into the bundle directory `dest`.

    Only the config/tokenizer files and one variant per session are fetched (about 0.9 GB for the
    0.5B model instead of 10 GB). Resumes interrupted downloads. Returns `dest`.
    """
    hub = require("huggingface_hub", "local", "downloading models")
    from huggingface_hub import errors as hub_errors

    spec = ONNX_CATALOGUE.get(name.lower())
    if spec is None and "/" not in name:
        raise BadInputError(f"unknown ONNX model {name!r}; choose one of {', '.join(ONNX_CATALOGUE)} or a repo id")
    repo_id = spec.repo_id if spec else name
    chosen = dict(dtypes or (spec.dtypes if spec else {}))
    target = Path(dest).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    bars = contextlib.nullcontext() if progress else _no_progress_bars(hub)
    try:
        with bars:
            hub.snapshot_download(repo_id, revision=revision, local_dir=target, allow_patterns=allow_patterns(chosen))
    except hub_errors.GatedRepoError:
        raise ConfigurationError(f"{repo_id} is gated: accept its licence on huggingface.co and set HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise BadInputError(f"no such model on the Hugging Face Hub: {repo_id}") from None
    except (hub_errors.LocalEntryNotFoundError, hub_errors.HfHubHTTPError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BackendUnavailableError(f"could not download {repo_id} ({first}); check the network and run the "
                                      f"pull again to resume", backend="browser") from None
    if (target / "config.json").is_file():
        _set_dtypes(target, chosen)
    problems = bundle_problems(target)
    if problems:
        raise BackendUnavailableError(f"{repo_id} is not a transformers.js FastVLM bundle: {'; '.join(problems)}",
                                      backend="browser")
    _write_json(target / MANIFEST, {"source": repo_id, "revision": revision, "dtype": chosen, "tiny": False})
    return target


@contextlib.contextmanager
def _no_progress_bars(hub: Any) -> Any:
    hub.utils.disable_progress_bars()
    try:
        yield
    finally:
        hub.utils.enable_progress_bars()


# ------------------------------------------------------------------------------------------- tiny
def make_tiny_onnx(directory: str | Path, *, source: str | Path | None = None, seed: int = 0,
                   overwrite: bool = False) -> Path:
    """Write a tiny random FastVLM ONNX bundle (fp32) in transformers.js' layout into `directory`.

    `source` is an existing tiny PyTorch FastVLM directory (`models make-tiny DIR`); without it one is
    built in a temporary directory with `seed`. Export progress goes to stderr, never stdout.
    """
    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise BadInputError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise BadInputError(f"{target} is not empty (pass --force to overwrite)")
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory(prefix="fastvlm-tiny-") as tmp:
        if source is None:
            from ..models.tiny import build_tiny_model

            with contextlib.redirect_stdout(sys.stderr):
                source = build_tiny_model(Path(tmp) / "torch", seed=seed)
        from . import onnx_export

        (target / "onnx").mkdir(parents=True, exist_ok=True)
        onnx_export.export_all(Path(source), target)
    _write_json(target / MANIFEST, {"source": "tiny", "seed": seed, "dtype": {s: "fp32" for s in SESSIONS},
                                    "tiny": True, "random_weights": True})
    problems = bundle_problems(target)
    if problems:  # a bug here, not bad input: say exactly what is missing
        raise BackendUnavailableError(f"tiny ONNX bundle incomplete: {'; '.join(problems)}", backend="browser")
    return target
