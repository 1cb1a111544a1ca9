"""Missing, partial and corrupt models give one typed error that says what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.errors import (
    BackendUnavailableError,
    ConfigurationError,
    ModelNotDownloadedError,
    fallback_allowed,
)
from fastvlm_gemini_hybrid.models.catalogue import resolve_model
from fastvlm_gemini_hybrid.types import Request

from .conftest import tiny_settings


@pytest.fixture(autouse=True)
def _empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


async def test_missing_weights_name_the_pull_command(tmp_path: Path) -> None:
    backend = FastVLMBackend(tiny_settings("fastvlm-0.5b", tmp_path / "home"))
    with pytest.raises(ModelNotDownloadedError) as info:
        await backend.generate(Request(prompt="hello"))
    assert "fastvlm-hybrid models pull fastvlm-0.5b" in str(info.value)
    assert info.value.exit_code == 2 and fallback_allowed(info.value)
    health = await backend.health()
    assert not health.ready and "models pull fastvlm-0.5b" in health.detail


def test_pulled_layout_resolves_and_a_partial_one_does_not(tmp_path: Path, tiny_model_dir: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / "fastvlm-1.5b")
    resolved = resolve_model("fastvlm-1.5b", models)
    assert resolved.path == models / "fastvlm-1.5b" and resolved.source == "models_dir"
    (models / "fastvlm-1.5b" / "model.safetensors").unlink()
    with pytest.raises(ModelNotDownloadedError, match="partial download"):
        resolve_model("fastvlm-1.5b", models)


def test_unknown_names_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"fastvlm-0\.5b"):
        resolve_model("fastvlm-13b", tmp_path)
    with pytest.raises(ConfigurationError, match="not found"):
        resolve_model(str(tmp_path / "no" / "such" / "dir"), tmp_path)


@pytest.mark.parametrize("damage", ["garbage-weights", "bad-config", "no-config", "no-tokenizer"])
async def test_corrupt_model_directory_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path, damage: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    if damage == "garbage-weights":
        (broken / "model.safetensors").write_bytes(b"\x00\x01 this is not safetensors" * 10)
    elif damage == "bad-config":
        (broken / "config.json").write_text("{ not json")
    elif damage == "no-config":
        (broken / "config.json").unlink()
    else:
        (broken / "tokenizer.json").unlink()
        cfg = json.loads((broken / "tokenizer_config.json").read_text())
        cfg["tokenizer_class"] = "NoSuchTokenizer"
        (broken / "tokenizer_config.json").write_text(json.dumps(cfg))
    backend = FastVLMBackend(tiny_settings(broken, tmp_path / "home"))
    with pytest.raises(BackendUnavailableError) as info:
        await backend.generate(Request(prompt="hello"))
    message = str(info.value)
    assert str(broken) in message
    assert "\n" not in message
    health = await backend.health()
    assert not health.ready
