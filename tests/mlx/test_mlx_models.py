"""MLX catalogue and quantized variants, and the MLX backend behind the real processor and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlx.core", reason="mlx has no build for this platform (pip install 'fastvlm-gemini-hybrid[mlx]')")
pytest.importorskip("mlx_vlm", reason="mlx-vlm is not installed (pip install 'fastvlm-gemini-hybrid[mlx]')")

from mlx_fixtures import MLX_COLOR, MLX_SIZE, image, mlx_settings, tiny_dir

from fastvlm_gemini_hybrid.backends.mlx import MLXBackend
from fastvlm_gemini_hybrid.cli import main
from fastvlm_gemini_hybrid.errors import BadInputError, ConfigurationError, ModelNotDownloadedError
from fastvlm_gemini_hybrid.models.mlx_catalogue import (
    MLX_CATALOGUE,
    convert_quantized,
    mlx_model_status,
    mlx_name,
    resolve_mlx_model,
)
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import GenerationOptions, Request
from synth_media import picture_file


def test_catalogue_names_aliases_and_sources() -> None:
    assert mlx_name("fastvlm-0.5b") == "fastvlm-0.5b-mlx" and mlx_name("FastVLM-7B") == "fastvlm-7b-mlx"
    assert mlx_name("org/repo") == "org/repo"
    assert MLX_CATALOGUE["fastvlm-0.5b-mlx"].mlx_repo == "mlx-community/FastVLM-0.5B-bf16"
    for name, spec in MLX_CATALOGUE.items():
        assert name.endswith(("-mlx", "-mlx-4bit", "-mlx-8bit"))
        assert (spec.bits is None) == name.endswith("-mlx")
        assert spec.mlx_repo or spec.source, name


def test_resolve_finds_a_pulled_model_and_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ModelNotDownloadedError, match=r"fastvlm-1\.5b-mlx-4bit"):
        resolve_mlx_model("fastvlm-1.5b-mlx-4bit", tmp_path)
    with pytest.raises(ConfigurationError, match="unknown MLX model"):
        resolve_mlx_model("fastvlm-3b", tmp_path)
    pulled = tmp_path / "fastvlm-0.5b-mlx"
    pulled.mkdir()
    (pulled / "config.json").write_text(json.dumps({"model_type": "llava_qwen2"}))
    (pulled / "model.safetensors").write_bytes(b"x")
    resolved = resolve_mlx_model("fastvlm-0.5b", tmp_path)
    assert resolved.path == pulled and resolved.source == "models_dir" and resolved.name == "fastvlm-0.5b-mlx"
    rows = {r["name"]: r for r in mlx_model_status(tmp_path)}
    assert rows["fastvlm-0.5b-mlx"]["downloaded"] is True and rows["fastvlm-7b-mlx"]["downloaded"] is False
    assert "models pull fastvlm-7b-mlx" in rows["fastvlm-7b-mlx"]["detail"]


def test_convert_refuses_bad_bits_and_a_used_target(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="bits"):
        convert_quantized(tiny_dir(), tmp_path / "q3", 3)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("x")
    with pytest.raises(BadInputError, match="not empty"):
        convert_quantized(tiny_dir(), used, 8)


@pytest.mark.parametrize("bits", [8, 4])
async def test_quantized_variant_loads_and_generates(tmp_path: Path, bits: int) -> None:
    out = convert_quantized(tiny_dir(), tmp_path / f"q{bits}", bits)
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == bits
    size = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    assert size > 0
    backend = MLXBackend(mlx_settings(out, tmp_path))
    gen = await backend.generate(Request(prompt="Describe it.", attachments=(image(),),
                                         options=GenerationOptions(max_tokens=4)))
    assert gen.usage.output_tokens >= 1 and gen.confidence is not None
    layer = backend._model.language_model.model.layers[0].mlp.down_proj
    assert type(layer).__name__ == "QuantizedLinear" and layer.bits == bits
    await backend.aclose()


async def test_sensitive_request_answers_locally_through_the_processor(tmp_path: Path) -> None:
    settings = mlx_settings(tiny_dir(), tmp_path)
    backend = MLXBackend(settings)
    proc = HybridVLMProcessor(settings=settings, backends={"mlx": backend})
    try:
        result = await proc.arun(Request(prompt="What does this scan show?", attachments=(image(),), sensitive=True,
                                         options=GenerationOptions(max_tokens=5)))
    finally:
        await proc.aclose()
    assert result.backend == "mlx" and result.route.cloud_allowed is False
    assert result.usage.output_tokens >= 1 and result.confidence is not None


def _env(tmp_path: Path) -> dict[str, str]:
    return {"FASTVLM_HYBRID_HOME": str(tmp_path / "home"), "FASTVLM_HYBRID_LOCAL_BACKEND": "mlx",
            "FASTVLM_HYBRID_LOCAL_MODEL": str(tiny_dir()), "FASTVLM_HYBRID_DEVICE": "cpu"}


def test_ask_json_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    picture = picture_file(tmp_path, "pic.png", color=MLX_COLOR, size=MLX_SIZE)
    code = main(["ask", "Describe this picture.", "-a", str(picture), "--mode", "local-only", "--max-tokens", "4",
                 "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["backend"] == "mlx" and data["usage"]["output_tokens"] >= 1
    assert data["model"] == tiny_dir().name


def test_ask_subprocess_missing_mlx_model_fails_with_one_line(tmp_path: Path) -> None:
    picture = picture_file(tmp_path, "pic.png", color=MLX_COLOR, size=MLX_SIZE)
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env.update(_env(tmp_path), FASTVLM_HYBRID_LOCAL_MODEL="fastvlm-0.5b")
    proc = subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid", "ask", "Describe.", "-a", str(picture),
                           "--mode", "local-only", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "models pull fastvlm-0.5b-mlx" in proc.stderr and "Traceback" not in proc.stderr
