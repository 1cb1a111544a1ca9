"""`models pull` with the Hub replaced by a local double: placement, resume contract, checksum."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import huggingface_hub
import pytest

from fastvlm_gemini_hybrid.errors import BackendUnavailableError
from fastvlm_gemini_hybrid.models.catalogue import resolve_model
from fastvlm_gemini_hybrid.models.pull import pull


class FakeHub:
    """Serves a tiny model directory as if it were `KamilaMila/FastVLM-0.5B` (test double)."""

    def __init__(self, source: Path, corrupt_listing: bool = False) -> None:
        self.source = source
        self.corrupt_listing = corrupt_listing
        self.calls: list[dict[str, Any]] = []

    def snapshot_download(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append({"repo_id": repo_id, **kwargs})
        shutil.copytree(self.source, kwargs["local_dir"], dirs_exist_ok=True)
        return str(kwargs["local_dir"])

    def model_info(self, repo_id: str, **_kwargs: Any) -> Any:
        weights = self.source / "model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if self.corrupt_listing:
            digest = "0" * 64
        lfs = {"size": weights.stat().st_size, "sha256": digest, "pointer_size": 134}
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename="model.safetensors", lfs=lfs),
                                         SimpleNamespace(rfilename="config.json", lfs=None)])


def _install(monkeypatch: pytest.MonkeyPatch, hub: FakeHub) -> None:
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info",
                        lambda _api, repo_id, **kw: hub.model_info(repo_id, **kw))


def test_pull_places_the_model_in_models_dir_and_verifies_it(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub(tiny_model_dir)
    _install(monkeypatch, hub)
    models = tmp_path / "models"
    path = pull("fastvlm-0.5b", models)
    assert path == models / "fastvlm-0.5b"
    assert hub.calls[0]["repo_id"] == "KamilaMila/FastVLM-0.5B"
    assert "*.safetensors" in hub.calls[0]["allow_patterns"]
    assert resolve_model("fastvlm-0.5b", models).path == path  # now found without network


def test_a_checksum_mismatch_removes_the_file_and_says_so(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeHub(tiny_model_dir, corrupt_listing=True))
    models = tmp_path / "models"
    with pytest.raises(BackendUnavailableError, match="checksum"):
        pull("fastvlm-0.5b", models)
    assert not (models / "fastvlm-0.5b" / "model.safetensors").exists()


def test_repo_ids_land_under_a_flattened_name(tiny_model_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeHub(tiny_model_dir))
    path = pull("someone/Some-VLM", tmp_path / "models", check=False)
    assert path.name == "someone--Some-VLM"
    assert resolve_model("someone/Some-VLM", tmp_path / "models").path == path
