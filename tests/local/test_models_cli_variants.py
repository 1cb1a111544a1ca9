"""`models` command wiring for the MLX catalogue and the in-browser ONNX bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.cli import main


def test_models_list_shows_pytorch_mlx_and_browser_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["models"]}
    assert {"fastvlm-0.5b", "fastvlm-0.5b-mlx-4bit", "fastvlm-0.5b-onnx"} <= set(rows)
    assert rows["fastvlm-0.5b-onnx"]["backend"] == "browser" and rows["fastvlm-0.5b-onnx"]["downloaded"] is False
    assert rows["fastvlm-0.5b-mlx"]["backend"] == "mlx"


def test_make_tiny_onnx_writes_a_complete_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fastvlm_gemini_hybrid.server.onnx_bundle import bundle_problems

    out = tmp_path / "bundle"
    assert main(["models", "make-tiny", "--onnx", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "onnx"
    assert bundle_problems(out) == []


def test_make_tiny_takes_one_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "make-tiny", "--onnx", "--mlx", str(tmp_path)]) == 2
    assert "not allowed with" in capsys.readouterr().err
