"""`models pull` with local_backend=auto fetches what the server will load (`make run` pulls, then serves).

The platform probe is set to "Apple Silicon with the mlx extra" (or not); the Hub's download is a test
double writing a small model directory, so nothing touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from pathlib import Path
from typing import Any

import huggingface_hub  # with transformers, which this folder's conftest requires
import pytest

from fastvlm_gemini_hybrid.cli import main
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.models.mlx_catalogue import MLX_CATALOGUE, resolve_mlx_model
from fastvlm_gemini_hybrid.models.pull import repo_for
from fastvlm_gemini_hybrid.routing import configured_backends

MLX_0_5B = MLX_CATALOGUE["fastvlm-0.5b-mlx"]


class FakeHub:
    """`snapshot_download` writing an MLX- or transformers-shaped directory, recording each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def snapshot_download(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append({"repo_id": repo_id, **kwargs})
        target = Path(kwargs["local_dir"])
        target.mkdir(parents=True, exist_ok=True)
        model_type = "llava_qwen2" if repo_id == MLX_0_5B.mlx_repo else "fast_vlm"
        (target / "config.json").write_text(json.dumps({"model_type": model_type}))
        (target / "model.safetensors").write_bytes(b"\0" * 16)
        return str(target)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


def _platform(monkeypatch: pytest.MonkeyPatch, system: str, machine: str, *, mlx_extra: bool) -> None:
    """What the auto resolution probes: the OS, the CPU and whether mlx-vlm is importable."""
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        if name == "mlx_vlm":
            return object() if mlx_extra else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_auto_on_apple_silicon_with_mlx_pulls_the_mlx_checkpoint_the_server_loads(
        hub: FakeHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _platform(monkeypatch, "darwin", "arm64", mlx_extra=True)
    settings = load_settings()
    assert settings.local_backend == "auto"

    # what `make run` runs before `serve`
    assert main(["models", "pull", "fastvlm-0.5b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)

    assert [call["repo_id"] for call in hub.calls] == [MLX_0_5B.mlx_repo]
    assert Path(out["path"]) == settings.models_dir / MLX_0_5B.name
    # the server picks the MLX backend and finds the pulled model without the network
    assert configured_backends(settings)[0].name == "mlx"
    assert resolve_mlx_model(settings.local_model, settings.models_dir).path == Path(out["path"])


@pytest.mark.parametrize(
    ("system", "machine", "mlx_extra", "backend"),
    [
        ("darwin", "arm64", False, "auto"),  # Apple Silicon without the mlx extra: PyTorch (MPS)
        ("darwin", "arm64", True, "fastvlm"),  # PyTorch asked for by name
        ("linux", "x86_64", True, "auto"),  # mlx's Linux CPU build installed: auto still means PyTorch
        ("darwin", "x86_64", False, "auto"),  # Intel Mac
    ],
)
def test_pull_takes_the_pytorch_checkpoint_wherever_the_server_loads_pytorch(
        hub: FakeHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        system: str, machine: str, mlx_extra: bool, backend: str) -> None:
    _platform(monkeypatch, system, machine, mlx_extra=mlx_extra)
    monkeypatch.setenv("FASTVLM_HYBRID_LOCAL_BACKEND", backend)
    settings = load_settings()

    assert main(["models", "pull", "fastvlm-0.5b", "--no-verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)

    assert [call["repo_id"] for call in hub.calls] == [repo_for("fastvlm-0.5b")]
    assert out["path"] == str(settings.models_dir / "fastvlm-0.5b")
    assert configured_backends(settings)[0].name == "fastvlm"
