"""Export a transformers FastVLM to three ONNX sessions: the one export both the browser and ORT use.

Why three sessions: transformers.js runs FastVLM as `vision_encoder` (pixel values -> projected image
features), `embed_tokens` (ids -> embeddings) and `decoder_model_merged` (embeddings + attention mask +
position ids + past key/values -> logits + present key/values). The decoder is one graph for every
step: with an empty past (length 0) it is the prefill, otherwise a cached step ("merged"). The ONNX
Runtime engine (models/ort_runtime.py) runs the same three sessions, so one exporter serves both the
in-browser bundle (server/onnx_export.py) and the CPU engine (models/onnx_variants.py).

Why wrappers: each session is a small `nn.Module` over the model's own submodules, fed plain tensors
with fixed names and symbolic batch / sequence / past lengths. The decoder goes through the TorchScript
exporter (`dynamo=False`): the torch.export-based graph builds its attention mask with a GatherND that
ONNX Runtime Web's WebGPU backend gets wrong, while the TorchScript graph runs identically everywhere.

Full size (Qwen2-0.5B + fastvit_mci3 at 1024 px) is about 2 GB of fp32 weights, at the 2 GB protobuf
limit, so `export_model_dir` writes weights as external data (one `<file>.data` per session), loads the
bf16 checkpoint as fp32, exports one session at a time, frees each part of the model once its session is
written, and reports progress on stderr. The engine's decoder returns the last position's logits only
(`last_logits_only`), sparing the 150k-wide head over every prompt position at prefill. For the engine,
the decoder comes from onnxruntime-genai's builder when it is installed and knows the language model
(models/onnx_gqa.py: GroupQueryAttention, a tenth of the nodes); the TorchScript decoder is the fallback.
The browser bundle keeps the TorchScript decoder: its in-browser tests run that graph.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._optional import require
from .onnx_gqa import BuilderUnavailable, build_decoder

OPSET = 18
SIDE_STEP, MIN_SIDE, MAX_SIDE = 64, 256, 2048  # the vision input sides `vision_input_size` allows
SIDE_DIM = "side"  # the symbolic height and width of an any-size vision encoder's input
SESSIONS = ("vision_encoder", "embed_tokens", "decoder_model_merged")


def wrappers(torch: Any, model: Any, *, last_logits_only: bool = False) -> tuple[Any, Any, Any]:
    """Vision encoder, embedding and merged-decoder modules over `model`'s own submodules."""
    from transformers import DynamicCache

    text_config = model.config.text_config
    layers = text_config.num_hidden_layers

    class VisionEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model.model

        def forward(self, pixel_values: Any) -> Any:
            return self.inner.get_image_features(pixel_values=pixel_values).pooler_output

    class EmbedTokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = model.get_input_embeddings()

        def forward(self, input_ids: Any) -> Any:
            return self.embed(input_ids)

    class MergedDecoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = model.model.language_model
            self.head = model.lm_head

        def forward(self, inputs_embeds: Any, attention_mask: Any, position_ids: Any, past: list[Any]) -> Any:
            cache = DynamicCache(config=text_config)
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                          past_key_values=cache, use_cache=True)
            present = []
            for layer in out.past_key_values.layers[:layers]:
                present += [layer.keys, layer.values]
            hidden = out.last_hidden_state[:, -1:, :] if last_logits_only else out.last_hidden_state
            return (self.head(hidden), *present)

    return VisionEncoder().eval(), EmbedTokens().eval(), MergedDecoder().eval()


def past_names(layers: int) -> list[str]:
    return [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def export_vision(torch: Any, model: Any, path: Path, image_size: int, *, external_data: bool = False,
                  any_size: bool = False) -> None:
    """The vision encoder at `image_size` px; with `any_size`, for any square side that is a multiple of
    64 from 256 to 2048 (what `vision_input_size` allows: FastViT-HD downsamples by 64 and is
    convolutional apart from attention over the last stages' tokens, so no shape is baked in)."""
    from torch.export import Dim

    vision, _, _ = wrappers(torch, model)
    axes: dict[int, Any] = {0: Dim("batch")}
    if any_size and image_size % SIDE_STEP == 0:
        side = Dim("side64", min=MIN_SIDE // SIDE_STEP, max=MAX_SIDE // SIDE_STEP)
        axes.update({2: SIDE_STEP * side, 3: SIDE_STEP * side})
    with quiet_export(), torch.no_grad():
        torch.onnx.export(vision, (torch.rand(1, 3, image_size, image_size),), str(path),
                          input_names=["pixel_values"], output_names=["image_features"],
                          dynamic_shapes={"pixel_values": axes}, opset_version=OPSET,
                          external_data=external_data)
    if len(axes) > 1:
        _name_side(path)


def _name_side(path: Path) -> None:
    """Call the vision input's symbolic side `SIDE_DIM` (torch names it after its expression, `64*side64`), so
    the engine can fix it per session (`add_free_dimension_override_by_name`): with the side known, ORT plans
    the encoder's buffers as for a fixed-size export (measured at 1024 px: activations peak 0.33 GiB over
    the resident set, against 0.45 with the side left symbolic)."""
    onnx = require("onnx", "browser", "exporting ONNX")
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    old = graph.input[0].type.tensor_type.shape.dim[-1].dim_param
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == old:
                dim.dim_param = SIDE_DIM
    onnx.save(model, str(path))  # the weights stay where they are: only the graph file is rewritten


def export_embed(torch: Any, model: Any, path: Path, *, external_data: bool = False) -> None:
    from torch.export import Dim

    _, embed, _ = wrappers(torch, model)
    with quiet_export(), torch.no_grad():
        torch.onnx.export(embed, (torch.tensor([[1, 2, 3, 4]]),), str(path), input_names=["input_ids"],
                          output_names=["inputs_embeds"],
                          dynamic_shapes={"input_ids": {0: Dim("batch"), 1: Dim("seq")}},
                          opset_version=OPSET, external_data=external_data)


def export_decoder(torch: Any, model: Any, path: Path, *, last_logits_only: bool = False) -> None:
    """The merged decoder through the TorchScript exporter (which spills weights over 2 GB into
    one file per tensor next to `path`; `consolidate` gathers them into one `.data` file)."""
    _, _, decoder = wrappers(torch, model, last_logits_only=last_logits_only)
    tc = model.config.text_config
    kv_heads = tc.num_key_value_heads
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    pasts = past_names(tc.num_hidden_layers)
    presents = [n.replace("past_key_values", "present") for n in pasts]
    logits_axes = {0: "batch"} if last_logits_only else {0: "batch", 1: "seq"}
    axes = {"inputs_embeds": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "seq"}, "logits": logits_axes,
            **{n: {0: "batch", 2: "past"} for n in pasts}, **{n: {0: "batch", 2: "total"} for n in presents}}

    class FlatDecoder(torch.nn.Module):  # the TorchScript exporter wants flat positional tensors
        def __init__(self) -> None:
            super().__init__()
            self.inner = decoder

        def forward(self, inputs_embeds: Any, attention_mask: Any, position_ids: Any, *past: Any) -> Any:
            return self.inner(inputs_embeds, attention_mask, position_ids, list(past))

    example_past = tuple(torch.zeros(1, kv_heads, 3, head_dim) for _ in pasts)
    example = (torch.randn(1, 5, tc.hidden_size), torch.ones(1, 8, dtype=torch.long), torch.arange(3, 8)[None],
               *example_past)
    with quiet_export(), torch.no_grad():
        torch.onnx.export(FlatDecoder().eval(), example, str(path),
                          input_names=["inputs_embeds", "attention_mask", "position_ids", *pasts],
                          output_names=["logits", *presents], dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def export_sessions(model: Any, onnx_dir: Path, image_size: int) -> None:
    """The browser bundle's sessions (single files, every position's logits), from a loaded model."""
    torch = require("torch", "local", "exporting ONNX")
    require("onnxscript", "browser", "exporting ONNX")
    export_vision(torch, model, onnx_dir / "vision_encoder.onnx", image_size)
    export_embed(torch, model, onnx_dir / "embed_tokens.onnx")
    export_decoder(torch, model, onnx_dir / "decoder_model_merged.onnx")


def export_model_dir(source: Path, onnx_dir: Path, *, progress: bool = True) -> None:
    """Export the checkpoint at `source` (any dtype, loaded as fp32) into `onnx_dir` for the ORT engine:
    external data, last-position logits, one session at a time with memory freed in between."""
    torch = require("torch", "local", "exporting ONNX")
    transformers = require("transformers", "local", "exporting ONNX")
    require("onnxscript", "browser", "exporting ONNX")
    onnx_dir.mkdir(parents=True, exist_ok=True)
    with step("load the checkpoint as fp32", progress):
        model = transformers.FastVlmForConditionalGeneration.from_pretrained(source, dtype=torch.float32).eval()
        processor = transformers.AutoProcessor.from_pretrained(source)
    image_size = int(processor.image_processor.crop_size["height"])
    with step(f"export vision_encoder ({image_size} px, any multiple of {SIDE_STEP} too)", progress):
        export_vision(torch, model, onnx_dir / "vision_encoder.onnx", image_size, external_data=True,
                      any_size=True)
    model.model.vision_tower = None  # the decoder sessions never touch these
    model.model.multi_modal_projector = None
    gc.collect()
    with step("export embed_tokens", progress):
        export_embed(torch, model, onnx_dir / "embed_tokens.onnx", external_data=True)
    with tempfile.TemporaryDirectory(prefix="decoder-", dir=onnx_dir) as tmp:
        built = _decoder(torch, model, processor.tokenizer, Path(tmp), progress)
        del model
        gc.collect()
        with step("gather the decoder's weights into one external-data file", progress):
            consolidate(built, onnx_dir / "decoder_model_merged.onnx")


def _decoder(torch: Any, model: Any, tokenizer: Any, workdir: Path, progress: bool) -> Path:
    """The builder's GroupQueryAttention decoder (models/onnx_gqa.py), else the TorchScript one."""
    try:
        with step("build decoder_model_merged (onnxruntime-genai builder, GroupQueryAttention)", progress):
            return build_decoder(model, tokenizer, workdir)
    except BuilderUnavailable as why:
        if progress:
            print(f"[onnx] {why}; exporting the TorchScript decoder instead (slower per token)",
                  file=sys.stderr, flush=True)
    path = workdir / "decoder_model_merged.onnx"
    with step("export decoder_model_merged (TorchScript tracing)", progress):
        export_decoder(torch, model, path, last_logits_only=True)
    return path


def consolidate(src: Path, dst: Path) -> None:
    """Re-save an ONNX model (weights inline or in many files) with all weights in `<dst>.data`."""
    onnx = require("onnx", "browser", "exporting ONNX")
    model = onnx.load(str(src), load_external_data=True)
    data = dst.with_name(dst.name + ".data")
    data.unlink(missing_ok=True)
    onnx.save_model(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)


def copy_session(src: Path, dst_dir: Path) -> None:
    """Copy an ONNX file and its external data (same relative names) into `dst_dir`."""
    for path in (src, src.with_name(src.name + ".data")):
        if path.is_file():
            shutil.copy2(path, dst_dir / path.name)


@contextlib.contextmanager
def step(label: str, progress: bool = True) -> Iterator[None]:
    """`[onnx] label ...` then `done in N s` on stderr: a full-size export takes minutes."""
    start = time.perf_counter()
    if progress:
        print(f"[onnx] {label} ...", file=sys.stderr, flush=True)
    yield
    if progress:
        print(f"[onnx] {label}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def quiet_export() -> contextlib.ExitStack:
    """torch.onnx prints progress on stdout and warns freely; keep stdout for answers."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(sys.stderr))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """onnxruntime's quantisers log every node at INFO (and advise pre-processing on the root logger)."""
    import onnxruntime.quantization.matmul_nbits_quantizer  # noqa: F401 - its logger exists once imported

    names = ["", *(n for n in logging.root.manager.loggerDict if n.startswith("onnxruntime"))]
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
