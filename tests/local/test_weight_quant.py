"""Weight-only int8/int4 (models/weight_quant.py): the kernels' numbers, the streamed load, the fallback,
and the runtime end to end on the tiny random FastVLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests.synth_media import picture  # noqa: E402

from fastvlm_gemini_hybrid.errors import ConfigurationError  # noqa: E402
from fastvlm_gemini_hybrid.models import weight_quant as wq  # noqa: E402
from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime, GenItem, ImageInput  # noqa: E402
from fastvlm_gemini_hybrid.types import GenerationOptions  # noqa: E402


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


@pytest.mark.parametrize(("fmt", "bound"), [("int8", 0.015), ("int4", 0.12)])
def test_weight_only_linear_matches_the_dense_layer(fmt: str, bound: float) -> None:
    torch.manual_seed(0)
    dense = torch.nn.Linear(256, 96, bias=True)
    layer = wq.WeightOnlyLinear(dense.weight.detach(), dense.bias.detach(), fmt)
    x = torch.randn(2, 5, 256)
    err = _rel(layer(x), dense(x))
    assert layer(x).shape == (2, 5, 96) and layer(x).dtype == torch.float32
    assert err < bound, err
    assert err > 1e-4  # it really is quantised, not a dense copy
    assert layer.packed.dtype == (torch.int8 if fmt == "int8" else torch.uint8)


def test_int4_group_fits_the_kernel_or_falls_back_to_int8() -> None:
    assert wq.int4_group(4864, 896) == 128
    assert wq.int4_group(896, 4864) == 128  # 4864 = 38 x 128
    assert wq.int4_group(32, 64) == 64
    assert wq.int4_group(100, 64) == 0  # outputs must be a multiple of 16
    layer = wq.WeightOnlyLinear(torch.randn(40, 64), None, "int4")
    assert layer.fmt == "int8" and layer(torch.randn(3, 64)).shape == (3, 40)
    with pytest.raises(ConfigurationError, match="unknown weight format"):
        wq.WeightOnlyLinear(torch.randn(16, 64), None, "int3")


def test_logits_error_reports_relative_error_and_top1() -> None:
    ref = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    same = wq.logits_error(ref, ref)
    assert same == {"max_rel_err": 0.0, "mean_rel_err": 0.0, "top1_agreement": 1.0, "positions": 2}
    off = wq.logits_error(ref, torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 3.0]]))
    assert off["max_rel_err"] == pytest.approx(1.5) and off["top1_agreement"] == 0.5


def _item(prompt: str, seed: int) -> GenItem:
    image = ImageInput.from_bytes(picture(color=(40 + 90 * seed, 160, 30 + 50 * seed), size=(48, 40)))
    return GenItem(prompt, (image,), GenerationOptions(max_tokens=6))


@pytest.fixture(scope="module")
def runtimes(tiny_model_dir: Path) -> dict[str | None, FastVLMRuntime]:
    out = {}
    for fmt in (None, "int8", "int4"):
        rt = FastVLMRuntime(tiny_model_dir, device="cpu", dtype="float32", quantize=fmt)
        rt.load()
        out[fmt] = rt
    return out


def test_the_streamed_load_quantises_every_language_model_linear(runtimes: dict) -> None:
    for fmt in ("int8", "int4"):
        model = runtimes[fmt].model
        lm = model.model.language_model
        assert not [n for n, m in lm.named_modules() if isinstance(m, torch.nn.Linear)]
        assert isinstance(model.lm_head, wq.WeightOnlyLinear)
        assert isinstance(model.get_input_embeddings(), wq.QuantizedEmbedding)
        assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
        # the vision tower keeps the compute dtype
        assert {p.dtype for p in model.model.vision_tower.parameters()} == {torch.float32}
    head, embed = runtimes["int8"].model.lm_head, runtimes["int8"].model.get_input_embeddings()
    assert embed.table is head.packed  # tied: one int8 table serves both


def test_int8_keeps_the_logits_close_and_int4_is_further(runtimes: dict) -> None:
    for i, prompt in enumerate(["What is this?", "Describe the picture."]):
        item = _item(prompt, i)
        ref = runtimes[None].generate([item], ignore_eos=True)[0]
        got = runtimes["int8"].generate([item], ignore_eos=True)[0]
        assert got.token_ids[0] == ref.token_ids[0]
        err = wq.logits_error(runtimes[None].teacher_forced_logits(item, ref.token_ids),
                              runtimes["int8"].teacher_forced_logits(item, ref.token_ids))
        assert err["positions"] == len(ref.token_ids) + 1
        # the toy model's wide init (0.2) amplifies rounding; the full-size figures are the benchmark's
        assert err["mean_rel_err"] < 0.08 and err["top1_agreement"] >= 5 / 7, err
        err4 = wq.logits_error(runtimes[None].teacher_forced_logits(item, ref.token_ids),
                               runtimes["int4"].teacher_forced_logits(item, ref.token_ids))
        assert err4["mean_rel_err"] > err["mean_rel_err"]  # fewer bits, more error: the report can tell


def test_a_checkpoint_that_does_not_map_falls_back_to_loading_whole(tiny_model_dir: Path, tmp_path: Path,
                                                                    runtimes: dict) -> None:
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "renamed"
    shutil.copytree(tiny_model_dir, copy)
    tensors = load_file(copy / "model.safetensors")
    tensors["extra.unused"] = torch.zeros(3)  # a key the model does not have
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    config = transformers.AutoConfig.from_pretrained(copy)
    assert wq.load_weight_only(transformers, copy, config, "int8", torch.float32, "sdpa") is None
    rt = FastVLMRuntime(copy, device="cpu", dtype="float32", quantize="int8")
    rt.load()  # transformers ignores the extra key; quantised afterwards
    assert isinstance(rt.model.lm_head, wq.WeightOnlyLinear)
    item = _item("What is this?", 0)
    assert rt.generate([item])[0].token_ids == runtimes["int8"].generate([item])[0].token_ids


def test_a_sharded_checkpoint_streams_too(tiny_model_dir: Path, tmp_path: Path, runtimes: dict) -> None:
    sharded = tmp_path / "sharded"
    model = transformers.AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    model.save_pretrained(sharded, max_shard_size="200KB")
    for name in tiny_model_dir.iterdir():
        if not name.name.startswith("model") and name.is_file():
            shutil.copy(name, sharded / name.name)
    assert len(json.loads((sharded / "model.safetensors.index.json").read_text())["weight_map"]) > 10
    config = transformers.AutoConfig.from_pretrained(sharded)
    assert wq.load_weight_only(transformers, sharded, config, "int8", torch.float32, "sdpa") is not None
    rt = FastVLMRuntime(sharded, device="cpu", dtype="float32", quantize="int8")
    rt.load()
    item = _item("Describe the picture.", 1)
    assert rt.generate([item])[0].token_ids == runtimes["int8"].generate([item])[0].token_ids


def test_unknown_quantize_and_gpu_quantize_are_configuration_errors(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="choose int8 or int4"):
        FastVLMRuntime(tiny_model_dir, device="cpu", quantize="int3").load()
