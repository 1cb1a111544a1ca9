"""The ONNX Runtime engine (models/ort_runtime.py) on the tiny random FastVLM: same answers as the torch
engine at fp32, quantised variants that run and stay near fp32, streaming, caches, and its errors.

One export per module (about 12 s on two cores); the cache-invalidation test swaps the exporter for a
recorder, so it checks the keying without exporting twice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.errors import ConfigurationError, ModelNotDownloadedError
from fastvlm_gemini_hybrid.models import onnx_variants
from fastvlm_gemini_hybrid.models.onnx_export import SIDE_DIM
from fastvlm_gemini_hybrid.models.ort_runtime import OrtRuntime
from fastvlm_gemini_hybrid.models.runtime import GenItem, ImageInput
from fastvlm_gemini_hybrid.types import GenerationOptions
from synth_media import picture

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript", reason="the ONNX exporter needs the `browser` extra (onnxscript)")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, onnx_cache: Path) -> OrtRuntime:
    runtime = OrtRuntime(tiny_model_dir, threads=2, cache_dir=onnx_cache, progress=False)
    runtime.load()
    return runtime


def _items(max_tokens: int = 16) -> list[GenItem]:
    red = ImageInput.from_bytes(picture((200, 40, 40), (96, 64)), "red.png")
    green = ImageInput.from_bytes(picture((20, 200, 40), (64, 128)), "green.png")
    return [GenItem("Describe this image.", (red,), GenerationOptions(max_tokens=max_tokens)),
            GenItem("What colour is the car?", (green,), GenerationOptions(max_tokens=max_tokens))]


def test_fp32_greedy_ids_equal_the_torch_engine(engine: OrtRuntime, tiny_backend: FastVLMBackend) -> None:
    torch_runtime = tiny_backend.load()
    for item in _items():
        want = torch_runtime.generate([item])[0]
        got = engine.generate([item])[0]
        assert got.token_ids == want.token_ids
        assert got.input_tokens == want.input_tokens
        assert got.confidence == pytest.approx(want.confidence, rel=1e-3)
    batch = engine.generate(_items())  # left-padded together: the same as one by one
    assert [o.token_ids for o in batch] == [torch_runtime.generate([i])[0].token_ids for i in _items()]


def test_on_token_is_called_per_token_and_timings_are_kept(engine: OrtRuntime) -> None:
    seen: list[tuple[int, int]] = []
    item = GenItem("Read the sign.", (ImageInput.from_bytes(picture((10, 10, 200), (80, 80))),),
                   GenerationOptions(max_tokens=6))
    out = engine.generate([item], lambda row, token: seen.append((row, token)), ignore_eos=True)[0]
    assert seen == [(0, t) for t in out.token_ids] and len(out.token_ids) == 6
    assert out.finish_reason == "length"
    assert {"preprocess_s", "vision_s", "prefill_s", "ttft_s", "total_s"} <= set(engine.last_timings)
    hits = engine.stats["prefix_cache_hits"]
    again = engine.generate([item], ignore_eos=True)[0]  # same picture and question: both caches answer
    assert again.token_ids == out.token_ids and engine.stats["prefix_cache_hits"] == hits + 1
    assert "vision_s" not in engine.last_timings


def test_seeded_sampling_repeats(engine: OrtRuntime) -> None:
    options = GenerationOptions(max_tokens=8, temperature=0.9, top_p=0.9, seed=7)
    item = GenItem("Describe", _items()[0].images, options)
    assert engine.generate([item])[0].token_ids == engine.generate([item])[0].token_ids


@pytest.mark.parametrize(("weights", "loose"), [("int8", 0.5), ("q4", 1.5)])
def test_quantised_variants_run_and_stay_near_fp32(engine: OrtRuntime, tiny_model_dir: Path, onnx_cache: Path,
                                                    weights: str, loose: float) -> None:
    quantised = OrtRuntime(tiny_model_dir, threads=2, weights=weights, cache_dir=onnx_cache, progress=False)
    quantised.load()
    item = _items()[0]
    path = engine.generate([item], ignore_eos=True)[0].token_ids
    ref, got = engine.score(item, path), quantised.score(item, path)
    rel = np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    # The tiny model's wide random init (std 0.2, 64 wide) is harsh on 4 bits; the full-size figures
    # are in benchmarks/ort_engine.py. Here: it runs, its logits are of the right size and related.
    print(f"{weights}: logits mean relative error {rel.mean():.3f}, max {rel.max():.3f}, top-1 agreement "
          f"{(got.argmax(-1) == ref.argmax(-1)).mean():.2f}")
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert rel.mean() < loose


def test_a_changed_model_re_exports(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    exports: list[Path] = []

    def record(source: Path, onnx_dir: Path, *, progress: bool = True) -> None:
        exports.append(source)
        for name in onnx_variants.SESSION_FILES:
            (onnx_dir / name).write_bytes(b"")

    monkeypatch.setattr(onnx_variants, "export_model_dir", record)
    cache = tmp_path / "cache"
    first = onnx_variants.ensure_variant(model, cache_dir=cache, progress=False)
    assert onnx_variants.ensure_variant(model, cache_dir=cache, progress=False) == first and len(exports) == 1
    weights = next(model.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # `touch`
    second = onnx_variants.ensure_variant(model, cache_dir=cache, progress=False)
    assert len(exports) == 2 and second.root != first.root
    assert not first.root.exists()  # the entry of the model's older version is removed


def test_missing_model_dir_and_unknown_weights_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotDownloadedError, match="no model directory"):
        OrtRuntime(tmp_path / "absent", cache_dir=tmp_path).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotDownloadedError, match="safetensors"):
        OrtRuntime(tmp_path / "empty", cache_dir=tmp_path).load()
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "llava"}')
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigurationError, match="fast_vlm"):
        OrtRuntime(other, cache_dir=tmp_path).load()
    with pytest.raises(ConfigurationError, match="q4"):
        OrtRuntime(tmp_path, weights="fp8")


def test_second_load_uses_the_saved_optimised_graphs(engine: OrtRuntime, tiny_model_dir: Path,
                                                     onnx_cache: Path) -> None:
    saved = sorted(p.name for p in onnx_cache.glob("*/optimized/*.onnx"))
    assert any("decoder_model_merged" in name for name in saved), saved
    again = OrtRuntime(tiny_model_dir, threads=1, cache_dir=onnx_cache, progress=False)
    again.load()
    item: Any = _items(8)[1]
    assert again.generate([item])[0].token_ids == engine.generate([item])[0].token_ids


# ---------------------------------------------------------------------------- engine choice (models/engine.py)
def test_auto_engine_uses_onnx_only_once_exported(engine: OrtRuntime, tiny_model_dir: Path, onnx_cache: Path,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastvlm_gemini_hybrid.models import engine as engines

    monkeypatch.setattr(engines, "_cpu_only_host", lambda: True)
    monkeypatch.setenv("FASTVLM_HYBRID_ONNX_CACHE", str(tmp_path / "empty-cache"))
    assert engines.pick_engine("auto", "cpu", tiny_model_dir) == "torch"  # no export on a first request
    monkeypatch.setenv("FASTVLM_HYBRID_ONNX_CACHE", str(onnx_cache))
    assert engines.pick_engine("auto", "auto", tiny_model_dir) == "onnx"  # the module's engine exported fp32
    assert engines.pick_engine("auto", "cuda", tiny_model_dir) == "torch"
    assert engines.pick_engine("torch", "cpu", tiny_model_dir) == "torch"
    monkeypatch.setattr(engines, "_cpu_only_host", lambda: False)
    assert engines.pick_engine("auto", "auto", tiny_model_dir) == "torch"  # a GPU host keeps torch
    with pytest.raises(ConfigurationError, match="CPU only"):
        engines.pick_engine("onnx", "cuda", tiny_model_dir)
    with pytest.raises(ConfigurationError, match="unknown local_engine"):
        engines.pick_engine("tensorrt", "cpu", tiny_model_dir)


async def test_the_backend_runs_on_onnx_and_says_so(engine: OrtRuntime, tiny_model_dir: Path, onnx_cache: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.types import Attachment, Request

    monkeypatch.setenv("FASTVLM_HYBRID_ONNX_CACHE", str(onnx_cache))
    settings = load_settings(home=tmp_path, local_model=str(tiny_model_dir), device="cpu", local_engine="onnx")
    backend = FastVLMBackend(settings)
    request = Request(prompt="Describe this image.",
                      attachments=(Attachment.from_bytes(picture((200, 40, 40), (96, 64)), name="red.png"),),
                      options=GenerationOptions(max_tokens=4))
    result = await backend.generate(request)
    assert result.text.strip() or result.usage.output_tokens > 0
    assert type(backend.runtime).__name__ == "OrtRuntime"
    health = await backend.health()
    assert health.ready and "(onnx, fp32)" in health.detail and health.extra["engine"] == "onnx"
    assert health.extra["decoder"] == ("GroupQueryAttention" if engine.right_padded else "TorchScript")
    await backend.aclose()


def test_models_export_fills_the_cache_auto_then_uses(tiny_model_dir: Path, onnx_cache: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fastvlm_gemini_hybrid.cli import main

    monkeypatch.setenv("FASTVLM_HYBRID_ONNX_CACHE", str(onnx_cache))
    monkeypatch.setenv("FASTVLM_HYBRID_HOME", str(tmp_path))
    assert main(["models", "export", str(tiny_model_dir), "--quantize", "int8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["variant"] == "q8" and Path(out["decoder"]).is_file()
    assert onnx_variants.is_exported(tiny_model_dir, "q8", cache_dir=onnx_cache)


def test_the_documented_api_on_the_onnx_engine_never_imports_torch(engine: OrtRuntime, tiny_model_dir: Path,
                                                                   onnx_cache: Path, tmp_path: Path) -> None:
    # `engine` is here for its export in `onnx_cache`, which the fresh process loads
    """The user's `HybridVLMProcessor().process(...)`, local-only on the exported model, in a fresh process:
    the answer comes from ONNX Runtime and torch (about 0.7 GiB resident for the CUDA wheel) never loads."""
    import json
    import subprocess
    import sys

    image = tmp_path / "red.png"
    image.write_bytes(picture((200, 40, 40), (96, 64)))
    code = ("import json, sys\nfrom fastvlm_gemini_hybrid import HybridVLMProcessor\n"
            f"out = HybridVLMProcessor().process({str(image)!r}, 'Describe this', mode='local-only')\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'backend': out.get('backend'),"
            " 'text': out['response']}))\n")
    from fastvlm_gemini_hybrid.models import engine as engines

    # `auto` (the default) decides without torch where no GPU can be present, as on CI
    choice = "onnx" if engines._may_have_accelerator() else "auto"
    env = {**os.environ, "FASTVLM_HYBRID_HOME": str(tmp_path / "home"), "FASTVLM_HYBRID_ONNX_CACHE": str(onnx_cache),
           "FASTVLM_HYBRID_LOCAL_MODEL": str(tiny_model_dir), "FASTVLM_HYBRID_LOCAL_ENGINE": choice}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch"] is False, out
    assert out["text"] and out["backend"] == "fastvlm", out


def test_vision_int8_is_an_onnx_option_exported_on_request(engine: OrtRuntime, tiny_model_dir: Path,
                                                           onnx_cache: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`models export --vision-quantize int8` calibrates and writes the int8 encoder; `auto` then runs it
    with `vision_quantize=int8` and health says so; the torch engine refuses the option."""
    import json

    pytest.importorskip("skimage")
    from fastvlm_gemini_hybrid.cli import main
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.models import engine as engines
    from fastvlm_gemini_hybrid.models.onnx_vision_quant import int8_conv_count

    monkeypatch.setenv("FASTVLM_HYBRID_ONNX_CACHE", str(onnx_cache))
    monkeypatch.setenv("FASTVLM_HYBRID_HOME", str(tmp_path))
    monkeypatch.setattr(engines, "_cpu_only_host", lambda: True)
    assert engines.pick_engine("auto", "cpu", tiny_model_dir, vision_quantize="int8") == "torch"  # not exported yet
    torch_settings = load_settings(home=tmp_path, local_model=str(tiny_model_dir), device="cpu",
                                   vision_quantize="int8")
    with pytest.raises(ConfigurationError, match="vision-quantize int8"):
        engines.make_runtime(tiny_model_dir, torch_settings)
    assert main(["models", "export", str(tiny_model_dir), "--vision-quantize", "int8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vision"] == "int8" and int8_conv_count(out["vision_encoder"]) > 0
    assert engines.pick_engine("auto", "cpu", tiny_model_dir, vision_quantize="int8") == "onnx"
    runtime = engines.make_runtime(tiny_model_dir, torch_settings)
    runtime.load()
    assert runtime.sessions["vision"] is not engine.sessions["vision"]
    item = _items(4)[0]
    got = runtime._encode_images(list(item.images))
    want = engine._encode_images(list(item.images))
    rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    assert 0 < rel < 0.3, rel  # int8 convolutions: close to fp32, not equal
    assert runtime.generate([item])[0].output_tokens > 0
    with pytest.raises(ConfigurationError, match="unknown vision_quantize"):
        engines.make_runtime(tiny_model_dir, load_settings(home=tmp_path, local_model=str(tiny_model_dir),
                                                           vision_quantize="int4"))


# ---------------------------------------------------------------------------- the decoder graph (models/onnx_gqa.py)
def _decoder_graph(runtime: OrtRuntime) -> Any:
    import onnx

    path = onnx_variants.ensure_variant(runtime.path, cache_dir=runtime.cache_dir, progress=False).decoder
    return onnx.load(str(path), load_external_data=False).graph


def test_the_decoder_is_the_builders_group_query_attention_graph(engine: OrtRuntime) -> None:
    pytest.importorskip("onnxruntime_genai", reason="the builder ships in the `browser` extra")
    graph = _decoder_graph(engine)
    ops = [node.op_type for node in graph.node]
    assert ops.count("GroupQueryAttention") == engine.layers
    assert len(ops) < 20 * engine.layers  # the TorchScript graph has about 110 nodes per layer
    assert "position_ids" not in {i.name for i in graph.input} and engine.right_padded
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 1  # the head sees the last position only


def test_decode_fills_the_cache_in_place_and_leaves_the_prefill_cache_alone(engine: OrtRuntime) -> None:
    pytest.importorskip("onnxruntime_genai", reason="the builder ships in the `browser` extra")
    assert engine.embeddings is not None
    hidden = engine.embeddings(np.zeros((1, 1), np.int64)).shape[-1]
    embeds = np.random.default_rng(0).standard_normal((1, 6, hidden)).astype(np.float32)
    _, prefill = engine._forward(embeds[:, :5], np.ones((1, 5), np.int64), np.arange(5)[None], engine._empty_past(1))
    before = [value.numpy().copy() for value in prefill]
    roomy = engine._with_room([prefill], 3)
    assert [v.shape() for v in roomy] == [[1, engine.kv_heads, 8, engine.head_dim]] * len(prefill)
    logits, presents = engine._forward(embeds[:, 5:], np.ones((1, 6), np.int64), np.array([[5]]), roomy,
                                       in_place=True)
    assert presents is roomy  # written into, not copied
    written = roomy[0].numpy()[0]
    assert np.array_equal(written[:, :5], before[0][0]) and np.abs(written[:, 5]).sum() > 0
    assert not np.abs(written[:, 6:]).any()
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(prefill, before, strict=True))
    whole, _ = engine._forward(embeds, np.ones((1, 6), np.int64), np.arange(6)[None], engine._empty_past(1))
    assert np.allclose(logits, whole, atol=1e-4)


def test_without_the_builder_the_export_falls_back_to_torchscript(
        engine: OrtRuntime, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from fastvlm_gemini_hybrid.models import onnx_export
    from fastvlm_gemini_hybrid.models.onnx_gqa import BuilderUnavailable

    def unavailable(*_: Any) -> Path:
        raise BuilderUnavailable("the builder does not know this model (simulated)")

    monkeypatch.setattr(onnx_export, "build_decoder", unavailable)
    traced = OrtRuntime(tiny_model_dir, threads=2, cache_dir=tmp_path, progress=True)
    traced.load()
    assert "(simulated); exporting the TorchScript decoder instead" in capsys.readouterr().err
    assert "position_ids" in {i.name for i in _decoder_graph(traced).input} and not traced.right_padded
    # Both graphs answer alike: logits on one token path, and a batch of uneven rows (left-padded for the
    # traced graph, right-padded and prefilled row by row for the builder's) against one by one.
    item = _items()[0]
    path = engine.generate([item], ignore_eos=True)[0].token_ids
    assert np.allclose(traced.score(item, path), engine.score(item, path), atol=1e-4)
    uneven = [*_items(10), GenItem("A question without a picture, and a longer one than the others.", (),
                                   GenerationOptions(max_tokens=10))]
    for runtime in (engine, traced):
        assert [o.token_ids for o in runtime.generate(uneven)] == [runtime.generate([i])[0].token_ids
                                                                   for i in uneven]
    assert [o.token_ids for o in traced.generate(uneven)] == [o.token_ids for o in engine.generate(uneven)]


def test_the_builder_missing_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from fastvlm_gemini_hybrid.models import onnx_gqa

    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "onnxruntime_genai.models", None)
    monkeypatch.setitem(sys.modules, "onnxruntime_genai.models.builder", None)
    assert not onnx_gqa.builder_available()
    with pytest.raises(onnx_gqa.BuilderUnavailable, match=r"pip install 'fastvlm-gemini-hybrid\[browser\]'"):
        onnx_gqa.build_decoder(object(), object(), tmp_path)


def test_vision_input_size_runs_on_the_onnx_export_like_torch(engine: OrtRuntime, tiny_model_dir: Path,
                                                               onnx_cache: Path) -> None:
    from fastvlm_gemini_hybrid.models.architecture import TINY_IMAGE_SIZE
    from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime

    side = TINY_IMAGE_SIZE + 64  # 320 px: 5 x 5 image tokens instead of 4 x 4, from the same export
    larger = OrtRuntime(tiny_model_dir, threads=2, cache_dir=onnx_cache, progress=False, vision_input_size=side)
    larger.load()
    onnx = pytest.importorskip("onnx")
    exported = onnx.load(str(onnx_variants.ensure_variant(tiny_model_dir, cache_dir=onnx_cache, progress=False).vision),
                         load_external_data=False)
    dims = [d.dim_param or d.dim_value for d in exported.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, SIDE_DIM, SIDE_DIM]  # one export for every side
    # each session fixes the side, so ORT plans the encoder's buffers for that size
    assert [r.sessions["vision"].get_inputs()[0].shape[2:] for r in (engine, larger)] == [[TINY_IMAGE_SIZE] * 2,
                                                                                          [side] * 2]
    reference = FastVLMRuntime(tiny_model_dir, device="cpu", dtype="float32", vision_input_size=side)
    reference.load()
    for item in _items(8):
        got, want = larger.generate([item])[0], reference.generate([item])[0]
        assert got.token_ids == want.token_ids
        assert got.input_tokens == want.input_tokens == engine.generate([item])[0].input_tokens + 5 * 5 - 4 * 4
    assert larger.prep_key != engine.prep_key  # the vision cache never mixes sizes
    saved = [p.name for p in onnx_cache.glob("*/optimized/*vision_encoder*.onnx")]
    assert any(f"-{side}px-" in name for name in saved) and any(f"-{TINY_IMAGE_SIZE}px-" in name for name in saved)


def test_a_side_the_tower_cannot_take_is_refused_before_any_export(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="multiple of 64 between 256 and 2048, got 300"):
        OrtRuntime(tmp_path / "never-read", vision_input_size=300)


def test_an_export_with_a_fixed_side_refuses_another_size(engine: OrtRuntime) -> None:
    fixed = OrtRuntime.__new__(OrtRuntime)
    fixed.image_processor = SimpleNamespace(crop_size={"height": 512, "width": 512})
    fixed.sessions = {"vision": SimpleNamespace(get_inputs=lambda: [SimpleNamespace(shape=["batch", 3, 256, 256])])}
    with pytest.raises(ConfigurationError, match="takes 256 px pictures only, not 512: export the model again"):
        fixed._check_vision_side()
    fixed.image_processor.crop_size = {"height": 256, "width": 256}
    fixed._check_vision_side()  # its own side is fine
