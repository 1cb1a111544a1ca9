"""`models pull`: download a checkpoint into `settings.models_dir/<name>` and verify it.

Why models_dir rather than the shared Hugging Face cache: the files then live next to the rest of the
package's state (`FASTVLM_HYBRID_HOME`), `models list` can say exactly where and how big they are, and
deleting the directory removes the model. Models that are already in the HF cache are found and used
without a second download. `huggingface_hub.snapshot_download` resumes interrupted transfers; after it,
every LFS file (the weights) is hashed and compared with the sha256 the Hub lists for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .._optional import require
from ..errors import BackendUnavailableError, BadInputError, ConfigurationError
from .catalogue import _REPO_ID, CATALOGUE, local_dir_for, weights_complete

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


def repo_for(name: str) -> str:
    spec = CATALOGUE.get(name.lower())
    if spec is not None:
        return spec.repo_id
    if _REPO_ID.match(name):
        return name
    raise BadInputError(f"unknown model {name!r}; choose one of {', '.join(CATALOGUE)} or a Hugging Face repo id")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(local_dir: Path, repo_id: str, revision: str | None = None) -> int:
    """Hash every LFS file against the Hub's listed sha256; return how many were checked."""
    hub = require("huggingface_hub", "local", "verifying a download")
    info = hub.HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    checked = 0
    for sibling in info.siblings or []:
        lfs = getattr(sibling, "lfs", None)
        target = local_dir / sibling.rfilename
        if lfs is None or not target.is_file():
            continue
        expected = lfs["sha256"] if isinstance(lfs, dict) else lfs.sha256
        if _sha256(target) != expected:
            target.unlink()
            raise BackendUnavailableError(
                f"{sibling.rfilename} failed its checksum and was removed; run the pull again", backend="fastvlm"
            )
        checked += 1
    return checked


def pull(name: str, models_dir: Path, *, revision: str | None = None, check: bool = True) -> Path:
    """Download `name` (catalogue name or repo id) with a progress bar on stderr; return its directory."""
    hub = require("huggingface_hub", "local", "downloading models")
    from huggingface_hub import errors as hub_errors

    repo_id = repo_for(name)
    target = local_dir_for(name.lower() if name.lower() in CATALOGUE else name, models_dir)
    target.mkdir(parents=True, exist_ok=True)
    try:
        hub.snapshot_download(repo_id, revision=revision, local_dir=target, allow_patterns=ALLOW_PATTERNS)
        if check:
            verify(target, repo_id, revision)
    except hub_errors.GatedRepoError:
        raise ConfigurationError(f"{repo_id} is gated: accept its licence on huggingface.co and set HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise BadInputError(f"no such model on the Hugging Face Hub: {repo_id}") from None
    except hub_errors.RevisionNotFoundError:
        raise BadInputError(f"{repo_id} has no revision {revision!r}") from None
    except (hub_errors.LocalEntryNotFoundError, hub_errors.HfHubHTTPError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BackendUnavailableError(
            f"could not download {repo_id} ({first}); check the network (or HF_HUB_OFFLINE) and run the pull "
            f"again to resume", backend="fastvlm",
        ) from None
    if not weights_complete(target):
        raise BackendUnavailableError(f"{repo_id} downloaded without a config and weights; is it a model repo?",
                                      backend="fastvlm")
    return target
