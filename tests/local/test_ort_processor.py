"""The ONNX engine's torch-free parts: the CLIP image processor in numpy (models/ort_processor.py) against
transformers' own, the chat and configs read without transformers' config classes, the fallback for
layouts it does not know, and the memory-mapped embedding table (models/onnx_embedding.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastvlm_gemini_hybrid.errors import ConfigurationError
from fastvlm_gemini_hybrid.models.onnx_embedding import EmbeddingTable
from fastvlm_gemini_hybrid.models.ort_processor import ClipImageProcessor, load_parts
from fastvlm_gemini_hybrid.models.preprocess import pad_to_square

onnx = pytest.importorskip("onnx")
transformers = pytest.importorskip("transformers")

SIZES = [(96, 64), (64, 150), (300, 300), (17, 23), (1500, 900)]


def _pictures() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [pad_to_square(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), (0, 0, 0))
            for w, h in SIZES]


def _settings(model_dir: Path) -> dict:
    return json.loads((model_dir / "processor_config.json").read_text())["image_processor"]


def test_pixels_equal_transformers_pil_clip_processor(tiny_model_dir: Path) -> None:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    settings = _settings(tiny_model_dir) | {"image_mean": [0.48, 0.45, 0.4], "image_std": [0.26, 0.26, 0.27]}
    ref = CLIPImageProcessorPil(**{k: v for k, v in settings.items() if k != "image_processor_type"})
    ours = ClipImageProcessor(settings)
    for image in _pictures():
        want = np.asarray(ref(images=[image], return_tensors="np")["pixel_values"])
        got = ours([image])["pixel_values"]
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_pixels_stay_near_the_torch_engines_processor(tiny_model_dir: Path) -> None:
    """The torch engine's AutoProcessor resizes with torchvision: the same bicubic up to a rounding step."""
    auto = transformers.AutoProcessor.from_pretrained(tiny_model_dir).image_processor
    ours = load_parts(tiny_model_dir).processor.image_processor
    for image in _pictures():
        want = np.asarray(auto(images=[image], return_tensors="np")["pixel_values"])
        got = ours([image])["pixel_values"]
        assert got.shape == want.shape
        assert float(np.abs(got - want).mean()) < 2e-3 and float(np.abs(got - want).max()) <= 3 / 255 + 1e-6


def test_parts_are_torch_free_and_render_the_processors_chat(tiny_model_dir: Path) -> None:
    parts = load_parts(tiny_model_dir)
    assert parts.torch_free
    auto = transformers.AutoProcessor.from_pretrained(tiny_model_dir)
    config = transformers.AutoConfig.from_pretrained(tiny_model_dir)
    chat = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A car."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this?"}]}]
    want = auto.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert parts.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) == want
    text = config.get_text_config()
    assert parts.image_token_id == config.image_token_id
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert (parts.text.num_hidden_layers, parts.text.num_key_value_heads, parts.text.head_dim) == (
        text.num_hidden_layers, text.num_key_value_heads, head_dim)
    ids = parts.processor.tokenizer(["Hello there"], add_special_tokens=False, return_tensors="np")["input_ids"]
    assert ids.tolist() == auto.tokenizer(["Hello there"], add_special_tokens=False)["input_ids"]


def test_an_unknown_image_processor_falls_back_to_transformers(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    cfg = json.loads((copy / "processor_config.json").read_text())
    cfg["image_processor"]["crop_pct"] = 0.9  # a key the numpy processor does not implement
    (copy / "processor_config.json").write_text(json.dumps(cfg))
    assert not ClipImageProcessor.supports(cfg["image_processor"])
    parts = load_parts(copy)
    assert not parts.torch_free and parts.image_token_id == load_parts(tiny_model_dir).image_token_id


def _gather_model(path: Path, table: np.ndarray, *, external: bool) -> Path:
    from onnx import helper, numpy_helper

    init = numpy_helper.from_array(table, "embed.weight")
    node = helper.make_node("Gather", ["embed.weight", "input_ids"], ["inputs_embeds"])
    graph = helper.make_graph([node], "embed", [helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64,
                                                                               ["b", "s"])],
                              [helper.make_tensor_value_info("inputs_embeds", onnx.TensorProto.FLOAT, None)],
                              [init])
    model = helper.make_model(graph)
    onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=0)
    return path


@pytest.mark.parametrize("external", [True, False])
def test_embedding_table_equals_the_gather(tmp_path: Path, external: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    table = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    path = _gather_model(tmp_path / "embed_tokens.onnx", table, external=external)
    lookup = EmbeddingTable.open(path)
    assert isinstance(lookup.table, np.memmap) is external  # the file's pages, not a copy
    ids = np.array([[3, 0, 49], [7, 7, 1]], dtype=np.int64)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})[0]
    got = lookup(ids)
    np.testing.assert_array_equal(got, want)
    got[0, 0] = 1.0  # callers write image features into the result: it must be a copy
    assert float(lookup.table[3, 0]) == float(table[3, 0])
    with pytest.raises(ConfigurationError, match="range"):
        lookup(np.array([[50]]))


def test_embedding_table_refuses_what_is_not_one_gather(tmp_path: Path) -> None:
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    path = tmp_path / "not_embed.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    with pytest.raises(ConfigurationError, match="single-Gather"):
        EmbeddingTable.open(path)
    table = np.zeros((4, 2), np.float32)
    path = _gather_model(tmp_path / "embed_tokens.onnx", table, external=True)
    (tmp_path / "embed_tokens.onnx.data").write_bytes(b"\0" * 8)  # truncated
    with pytest.raises(ConfigurationError, match="does not hold"):
        EmbeddingTable.open(path)
