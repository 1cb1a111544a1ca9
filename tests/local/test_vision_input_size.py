"""`vision_input_size`: FastVLM's vision input made smaller (or larger) than the checkpoint's, with the image
token count following, on both engines; refused where it cannot apply. The ONNX engine's side of it
(its answers equal the torch engine's at the same size) is in test_ort_engine.py, beside its export."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.synth_media import picture

from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import ConfigurationError
from fastvlm_gemini_hybrid.models import engine as engines
from fastvlm_gemini_hybrid.models.architecture import TINY_IMAGE_SIZE
from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime, GenItem, ImageInput
from fastvlm_gemini_hybrid.types import GenerationOptions


def _answer(runtime: FastVLMRuntime) -> tuple[int, int]:
    item = GenItem("What is this?", (ImageInput.from_bytes(picture((30, 90, 200), (80, 60))),),
                   GenerationOptions(max_tokens=2))
    out = runtime.generate([item])[0]
    return out.input_tokens, int(runtime.pixel_values(list(item.images)).shape[-1])


def test_a_larger_input_gives_more_image_tokens(tiny_model_dir: Path) -> None:
    default = FastVLMRuntime(tiny_model_dir, device="cpu", dtype="float32")
    default.load()
    larger = FastVLMRuntime(tiny_model_dir, device="cpu", dtype="float32", vision_input_size=TINY_IMAGE_SIZE + 64)
    larger.load()
    tokens, pixels = _answer(default)
    more_tokens, more_pixels = _answer(larger)
    assert (pixels, more_pixels) == (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE + 64)
    assert more_tokens - tokens == 5 * 5 - 4 * 4  # 320 px / 64 = 5 per side, 256 px = 4
    assert larger.prep_key != default.prep_key  # the vision cache never mixes sizes


@pytest.mark.parametrize("size", [300, 128, 4096])
def test_sizes_the_tower_cannot_take_are_configuration_errors(tiny_model_dir: Path, size: int) -> None:
    with pytest.raises(ConfigurationError, match="multiple of 64"):
        FastVLMRuntime(tiny_model_dir, device="cpu", vision_input_size=size).load()


def test_auto_keeps_the_onnx_engine_and_hands_it_the_size(tiny_model_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from fastvlm_gemini_hybrid.models import onnx_variants

    monkeypatch.setattr(engines, "_cpu_only_host", lambda: True)
    monkeypatch.setattr(onnx_variants, "is_exported", lambda *a, **k: True)  # as if the export were cached
    for engine in (None, "onnx"):
        settings = load_settings(home=tmp_path, local_model=str(tiny_model_dir), vision_input_size=512,
                                 **({"local_engine": engine} if engine else {}))
        runtime = engines.make_runtime(tiny_model_dir, settings)
        assert type(runtime).__name__ == "OrtRuntime" and runtime.vision_input_size == 512
