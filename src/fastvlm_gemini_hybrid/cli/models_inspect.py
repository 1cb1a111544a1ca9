"""`models list|ps|show|rm`: what is downloaded, what a server holds, what a model is, and removing one.

Ollama's habits: `models ps` asks a running server (`--server URL` or `FASTVLM_HYBRID_SERVER`) which
local models it holds in memory (its `/api/ps`); without a server it lists the downloaded models with
their size and last use, because a CLI process loads a model for one command and lets it go. `models rm`
deletes a model from the models directory after a confirmation (`-y` skips it) and refuses anything
that is not there; `models show` prints the catalogue facts (architecture, size, licence, capabilities).
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import confirm, emit, settings_from_args

if TYPE_CHECKING:
    from ..config import Settings

SERVER_ENV = "FASTVLM_HYBRID_SERVER"


def _size(row: dict[str, Any]) -> str:
    if row.get("size_bytes"):
        return f"{row['size_bytes'] / 1e9:.2f} GB"
    if row.get("approx_size_gb"):
        return f"~{row['approx_size_gb']:.1f} GB"
    return "-"


def _list(args: argparse.Namespace) -> int:
    from ..models.catalogue import LICENCE_NOTE, model_status

    settings = settings_from_args(args)
    rows = model_status(settings.models_dir, settings.local_model)
    rows += _mlx_rows(settings) + _onnx_rows(settings)
    lines = [f"{'':2}{'NAME':<28}{'PARAMS':<8}{'SIZE':<11}{'STATUS':<16}WHERE"]
    for row in rows:
        mark = "* " if row.get("configured") else "  "
        status = "downloaded" if row["downloaded"] else "not downloaded"
        where = row["path"] or f"(fastvlm-hybrid models pull {row['name']})"
        lines.append(f"{mark}{row['name']:<28}{row['params'] or '-':<8}{_size(row):<11}{status:<16}{where}")
    lines += [
        "",
        "* = configured local model (FASTVLM_HYBRID_LOCAL_MODEL)",
        f"models directory: {settings.models_dir}",
        f"note: {LICENCE_NOTE}",
    ]
    payload = {
        "models": rows,
        "models_dir": str(settings.models_dir),
        "configured": settings.local_model,
        "licence_note": LICENCE_NOTE,
    }
    emit(args, payload, "\n".join(lines))
    return 0


def _mlx_rows(settings: Settings) -> list[dict[str, Any]]:
    """MLX catalogue rows, when the `mlx` extra is installed (the catalogue itself needs no MLX)."""
    from ..models.mlx_catalogue import mlx_model_status

    return [dict(row, params=row.get("params"), configured=False) for row in mlx_model_status(settings.models_dir)]


def _onnx_rows(settings: Settings) -> list[dict[str, Any]]:
    """The ONNX bundles the web UI can run in the browser (`<models>/onnx/<name>`)."""
    from ..server.onnx_bundle import ONNX_CATALOGUE, bundle_problems

    rows = []
    for spec in ONNX_CATALOGUE.values():
        path = settings.models_dir / "onnx" / spec.name
        ready = path.is_dir() and not bundle_problems(path)
        rows.append(
            {
                "name": spec.name,
                "backend": "browser",
                "repo_id": spec.repo_id,
                "params": "0.5B",
                "approx_size_gb": spec.approx_mb / 1000,
                "downloaded": ready,
                "path": str(path) if ready else None,
                "size_bytes": None,
                "configured": False,
            }
        )
    return rows


def _when(stamp: float | str | None) -> str:
    """A local `YYYY-MM-DD HH:MM` for an ISO time or a POSIX timestamp; '-' for none."""
    if stamp is None:
        return "-"
    moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else datetime.fromtimestamp(stamp, timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def _ps(args: argparse.Namespace) -> int:
    url = args.server or os.environ.get(SERVER_ENV)
    return _ps_server(args, url) if url else _ps_local(args)


def _ps_server(args: argparse.Namespace, url: str) -> int:
    """A running server's `/api/ps`: the local models it holds now, and until when."""
    import httpx

    from ..errors import HybridError

    endpoint = url.rstrip("/") + "/api/ps"
    try:
        response = httpx.get(endpoint, timeout=10.0)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise HybridError(f"cannot ask {endpoint}: {str(exc) or type(exc).__name__}") from None
    if response.status_code != 200 or not isinstance(body, dict):
        detail = body.get("error") if isinstance(body, dict) else None
        raise HybridError(f"{endpoint} answered {response.status_code}" + (f": {detail}" if detail else ""))
    models = body.get("models") or []
    lines = [f"{'NAME':<28}{'MODEL':<28}UNTIL"] + [
        f"{m.get('name', '?'):<28}{m.get('model', '?'):<28}{_when(m['expires_at']) if m.get('expires_at') else '-'}"
        for m in models]
    emit(args, {"server": url, "models": models}, "\n".join(lines) if models else f"no model is loaded on {url}")
    return 0


def _ps_local(args: argparse.Namespace) -> int:
    """Without a server: the downloaded models, their size and when they were last used here."""
    from ..answer_log import AnswerLog, log_path
    from ..models.catalogue import _dir_size, model_status

    settings = settings_from_args(args)
    rows = model_status(settings.models_dir, settings.local_model) + _mlx_rows(settings) + _onnx_rows(settings)
    answered: dict[str, str] = {}
    if log_path(settings.home).exists():
        with AnswerLog(log_path(settings.home)) as log:
            answered = log.last_used()
    models = []
    for row in (r for r in rows if r["downloaded"]):
        path = Path(row["path"])
        accessed = max((p.stat().st_atime for p in path.rglob("*") if p.is_file()), default=None)
        file_time = datetime.fromtimestamp(accessed, timezone.utc).isoformat(timespec="seconds") if accessed else None
        models.append({"name": row["name"], "path": str(path), "size_bytes": row.get("size_bytes") or _dir_size(path),
                       "last_used": answered.get(row["name"], file_time),
                       "last_used_from": "answer log" if row["name"] in answered else "file access time"})
    lines = [f"{'NAME':<28}{'SIZE':<11}{'LAST USED':<18}WHERE"] + [
        f"{m['name']:<28}{_gb(m['size_bytes']):<11}{_when(m['last_used']):<18}{m['path']}" for m in models]
    if not models:
        lines = [f"no model is downloaded in {settings.models_dir} (fastvlm-hybrid models pull NAME)"]
    lines += ["", f"no server given (--server URL or {SERVER_ENV}): a CLI command holds a model only while it runs, "
              "so these are the downloaded ones; last use from the answer log, else the files' access time"]
    emit(args, {"server": None, "models": models, "models_dir": str(settings.models_dir)}, "\n".join(lines))
    return 0


def _facts(name: str, settings: Settings) -> dict[str, Any]:
    """What the catalogues (and the files, once downloaded) say about `name`."""
    from ..backends.catalogue import CATALOGUE as BACKENDS
    from ..errors import BadInputError, HybridError
    from ..models.architecture import FULL_IMAGE_SIZE, PATCH_SIZE
    from ..models.catalogue import _REPO_ID, CATALOGUE, LICENCE_NOTE, _dir_size, resolve_model
    from ..models.mlx_catalogue import MLX_CATALOGUE, resolve_mlx_model
    from ..server.onnx_bundle import ONNX_CATALOGUE, bundle_problems

    key, torch_runtime = name.strip().lower(), "transformers (PyTorch: CPU, CUDA, MPS)"
    arch = (f"FastVLM: FastViTHD hybrid convolution-transformer vision encoder (timm fastvit_mci3, {FULL_IMAGE_SIZE} "
            f"px, {(FULL_IMAGE_SIZE // PATCH_SIZE) ** 2} image tokens) feeding a Qwen2-{{}} language model")
    facts: dict[str, Any] = {"name": key, "licence": "apple-amlr (research use only)", "licence_note": LICENCE_NOTE}
    resolve: Any = resolve_model
    if key in CATALOGUE:
        spec = CATALOGUE[key]
        facts.update(backend="fastvlm", runtime=torch_runtime, repo_id=spec.repo_id, original_repo=spec.original_repo,
                     params=spec.params, approx_size_gb=spec.approx_gb, licence=spec.licence)
    elif key in MLX_CATALOGUE:
        mlx = MLX_CATALOGUE[key]
        facts.update(backend="mlx", runtime="mlx-vlm (Apple Silicon)", repo_id=mlx.repo_id, params=mlx.params,
                     approx_size_gb=mlx.approx_gb, quantized_bits=mlx.bits, licence=mlx.licence)
        resolve = resolve_mlx_model
    elif key in ONNX_CATALOGUE:
        onnx = ONNX_CATALOGUE[key]
        facts.update(backend="browser", runtime="transformers.js in the web UI (WebGPU or WASM)", repo_id=onnx.repo_id,
                     params="0.5B", approx_size_gb=onnx.approx_mb / 1000, session_dtypes=dict(onnx.dtypes))
        resolve = None
    elif _REPO_ID.match(name.strip()) or Path(name).expanduser().is_dir():
        key = name.strip()
        facts.update(name=key, backend="fastvlm", runtime=torch_runtime, licence="not in the catalogue: see its card",
                     repo_id=key if _REPO_ID.match(key) else None)
    else:
        known = ", ".join([*CATALOGUE, *MLX_CATALOGUE, *ONNX_CATALOGUE])
        raise BadInputError(f"unknown model {name!r}; choose one of {known}, a Hugging Face repo id or a directory")
    if facts.get("params"):
        facts["architecture"] = arch.format(facts["params"])
    path: Path | None = None
    if resolve is None:
        candidate = settings.models_dir / "onnx" / key
        path = candidate if candidate.is_dir() and not bundle_problems(candidate) else None
    else:
        try:
            path = resolve(key, settings.models_dir).path
        except HybridError as exc:
            facts["detail"] = str(exc)
    facts.update(downloaded=path is not None, path=str(path) if path else None,
                 size_bytes=_dir_size(path) if path else None)
    if path is not None and (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            facts.update(model_type=config.get("model_type"), architectures=config.get("architectures"))
        except (OSError, ValueError, AttributeError):
            pass
    entry = BACKENDS.get(facts["backend"])
    caps = entry.capabilities if entry else None
    facts["capabilities"] = {"media": ["image"], "runs_on": "the browser (web UI)"} if caps is None else {
        "media": sorted(caps.media | entry.converted), "max_images": caps.max_images, "streaming": caps.streaming,
        "batching": caps.batching, "confidence": caps.confidence, "conversation": caps.conversation,
        "json_schema": caps.json_schema, "runs_on": "this machine"}
    return facts


def _show(args: argparse.Namespace) -> int:
    facts = _facts(args.name, settings_from_args(args))
    caps = facts["capabilities"]
    flags = [k for k in ("streaming", "batching", "confidence", "conversation", "json_schema") if caps.get(k)]
    where = facts["path"] or facts.get("detail") or f"not downloaded (fastvlm-hybrid models pull {facts['name']})"
    size = f" ({facts['size_bytes'] / 1e9:.2f} GB)" if facts["size_bytes"] else ""
    download = f"~{facts['approx_size_gb']:.1f} GB" if facts.get("approx_size_gb") else "-"
    lines = [
        facts["name"],
        f"  architecture  {facts.get('architecture') or facts.get('model_type') or 'see its config.json'}",
        f"  backend       {facts['backend']}: {facts['runtime']}",
        f"  parameters    {facts.get('params') or '-'}",
        f"  download      {download}" + (f" from {facts['repo_id']}" if facts.get("repo_id") else ""),
        f"  on disk       {where}{size}",
        f"  capabilities  {', '.join(caps['media'])} on {caps['runs_on']}"
        + (f", up to {caps['max_images']} images" if caps.get("max_images") else "")
        + (f"; {', '.join(flags)}" if flags else ""),
        f"  licence       {facts['licence']}",
        f"  note          {facts['licence_note']}",
    ]
    emit(args, facts, "\n".join(lines))
    return 0


def _owned_dir(name: str, models_dir: Path) -> Path:
    """The directory `models pull` made for `name` inside the models directory; anything else is refused."""
    from ..errors import BadInputError
    from ..models.catalogue import _REPO_ID, CATALOGUE
    from ..models.mlx_catalogue import MLX_CATALOGUE
    from ..server.onnx_bundle import ONNX_CATALOGUE

    key, target = name.strip(), None
    if key.lower() in ONNX_CATALOGUE:
        target = models_dir / "onnx" / key.lower()
    elif key.lower() in CATALOGUE or key.lower() in MLX_CATALOGUE:
        target = models_dir / key.lower()
    elif _REPO_ID.match(key) and ".." not in key:
        target = models_dir / key.replace("/", "--")
    elif key and not key.startswith(".") and not any(c in key for c in "/\\:") and key != "onnx":
        target = models_dir / key  # another folder `models list` shows under the models directory
    base = models_dir.resolve()
    if target is None or target.parent.resolve() not in (base, base / "onnx"):
        raise BadInputError(f"{name!r} is not a model this tool downloaded; `models rm` deletes only what "
                            f"`models list` shows under {models_dir}")
    if not target.is_dir():
        raise BadInputError(f"{name} is not in {models_dir}: nothing to delete (a model in the shared Hugging Face "
                            "cache is removed with `huggingface-cli delete-cache`)")
    return target


def _rm(args: argparse.Namespace) -> int:
    import shutil

    from ..models.catalogue import _dir_size

    target = _owned_dir(args.name, settings_from_args(args).models_dir)
    size = 0 if target.is_symlink() else _dir_size(target)
    payload = {"name": args.name, "path": str(target), "size_bytes": size, "deleted": False}
    if not args.yes and not confirm(f"delete {args.name} ({size / 1e9:.2f} GB) at {target}?"):
        emit(args, payload, f"{args.name} kept (not deleted)")
        return 1
    if target.is_symlink():
        target.unlink()  # the link, never what it points at
    else:
        shutil.rmtree(target)
    payload["deleted"] = True
    emit(args, payload, f"deleted {args.name} ({size / 1e9:.2f} GB freed)")
    return 0
