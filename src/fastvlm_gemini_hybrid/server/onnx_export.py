"""Export a (tiny) transformers FastVLM to the three ONNX sessions transformers.js runs.

Why wrappers: transformers.js feeds each session plain tensors with fixed names, so each part is a
small `nn.Module` over the real submodules, exported with `torch.onnx.export` (the torch.export-based
exporter) and symbolic batch / sequence / past lengths. The decoder is one graph for every step: with
an empty past (length 0) it is the prefill, otherwise a cached step, which is what "merged" means to
transformers.js. Sessions are fp32; a real deployment downloads the quantised public export instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from .._optional import require
from ..models.architecture import CHAT_TEMPLATE, IMAGE_TOKEN, PATCH_SIZE

OPSET = 18


def _modules(torch: Any, model: Any) -> tuple[Any, Any, Any]:
    """Vision encoder, embedding and merged-decoder wrappers over `model`'s own submodules."""
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
            return (self.head(out.last_hidden_state), *present)

    return VisionEncoder().eval(), EmbedTokens().eval(), MergedDecoder().eval()


def export_sessions(model: Any, onnx_dir: Path, image_size: int) -> None:
    """Write vision_encoder.onnx, embed_tokens.onnx and decoder_model_merged.onnx into `onnx_dir`.

    The decoder goes through the TorchScript exporter (`dynamo=False`): the torch.export-based graph
    builds its attention mask with a GatherND that ONNX Runtime Web's WebGPU backend gets wrong
    (logits off by more than their own scale, while WASM is right); the TorchScript graph runs
    identically on both. The encoder and embeddings use the default exporter.
    """
    torch = require("torch", "local", "exporting ONNX")
    require("onnxscript", "browser", "exporting ONNX")
    from torch.export import Dim


    tc = model.config.text_config
    layers, kv_heads = tc.num_hidden_layers, tc.num_key_value_heads
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    vision, embed, decoder = _modules(torch, model)
    batch, seq = Dim("batch"), Dim("seq")
    past_names = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present_names = [n.replace("past_key_values", "present") for n in past_names]
    axes = {"inputs_embeds": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"},
            **{n: {0: "batch", 2: "past"} for n in past_names}, **{n: {0: "batch", 2: "total"} for n in present_names}}

    class FlatDecoder(torch.nn.Module):  # the TorchScript exporter wants flat positional tensors
        def __init__(self) -> None:
            super().__init__()
            self.inner = decoder

        def forward(self, inputs_embeds: Any, attention_mask: Any, position_ids: Any, *past: Any) -> Any:
            return self.inner(inputs_embeds, attention_mask, position_ids, list(past))

    example_past = tuple(torch.zeros(1, kv_heads, 3, head_dim) for _ in past_names)
    with quiet_export(), torch.no_grad():
        torch.onnx.export(vision, (torch.rand(1, 3, image_size, image_size),), str(onnx_dir / "vision_encoder.onnx"),
                          input_names=["pixel_values"], output_names=["image_features"],
                          dynamic_shapes={"pixel_values": {0: batch}}, opset_version=OPSET, external_data=False)
        torch.onnx.export(embed, (torch.tensor([[1, 2, 3, 4]]),), str(onnx_dir / "embed_tokens.onnx"),
                          input_names=["input_ids"], output_names=["inputs_embeds"],
                          dynamic_shapes={"input_ids": {0: batch, 1: seq}}, opset_version=OPSET, external_data=False)
        torch.onnx.export(FlatDecoder().eval(), (torch.randn(1, 5, tc.hidden_size), torch.ones(1, 8, dtype=torch.long),
                                                 torch.arange(3, 8)[None], *example_past),
                          str(onnx_dir / "decoder_model_merged.onnx"),
                          input_names=["inputs_embeds", "attention_mask", "position_ids", *past_names],
                          output_names=["logits", *present_names], dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)


def bundle_config(model: Any, tokenizer: Any) -> dict[str, Any]:
    """config.json as transformers.js reads FastVLM: `llava_qwen2` with the Qwen2 sizes at top level."""
    tc = model.config.text_config
    eos = model.generation_config.eos_token_id
    return {
        "architectures": ["LlavaQwen2ForCausalLM"],
        "model_type": "llava_qwen2",
        "hidden_size": tc.hidden_size,
        "intermediate_size": tc.intermediate_size,
        "num_hidden_layers": tc.num_hidden_layers,
        "num_attention_heads": tc.num_attention_heads,
        "num_key_value_heads": tc.num_key_value_heads,
        "head_dim": getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads,
        "vocab_size": tc.vocab_size,
        "max_position_embeddings": tc.max_position_embeddings,
        "rms_norm_eps": tc.rms_norm_eps,
        "tie_word_embeddings": tc.tie_word_embeddings,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": eos,
        "pad_token_id": tokenizer.pad_token_id,
        "image_token_index": model.config.image_token_id,
        "mm_hidden_size": model.config.vision_config.hidden_size,
        "mm_projector_type": "mlp2x_gelu",
        "transformers.js_config": {"dtype": {"vision_encoder": "fp32", "embed_tokens": "fp32",
                                             "decoder_model_merged": "fp32"}},
    }


def processor_files(processor: Any, image_size: int) -> dict[str, dict[str, Any]]:
    """preprocessor_config.json (names the processor class transformers.js dispatches on) and processor_config.json."""
    ip = processor.image_processor
    preprocessor = {
        "processor_class": "LlavaProcessor",
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True, "size": {"shortest_edge": image_size}, "resample": int(ip.resample),
        "do_center_crop": True, "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True, "rescale_factor": float(ip.rescale_factor),
        "do_normalize": True, "image_mean": list(ip.image_mean), "image_std": list(ip.image_std),
        "do_convert_rgb": True,
    }
    proc = {"processor_class": "LlavaProcessor", "image_token": IMAGE_TOKEN, "patch_size": PATCH_SIZE,
            "num_additional_image_tokens": 0, "vision_feature_select_strategy": "full"}
    return {"preprocessor_config.json": preprocessor, "processor_config.json": proc}


def tokenizer_files(tokenizer: Any, target: Path) -> None:
    """tokenizer.json from the fast tokenizer, and a tokenizer_config.json that carries the chat template."""
    tokenizer.backend_tokenizer.save(str(target / "tokenizer.json"))
    added = {str(i): {"content": t.content, "special": t.special, "lstrip": t.lstrip, "rstrip": t.rstrip,
                      "normalized": t.normalized, "single_word": t.single_word}
             for i, t in tokenizer.added_tokens_decoder.items()}
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": added,
        "bos_token": None, "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token, "unk_token": None,
        "model_max_length": tokenizer.model_max_length, "clean_up_tokenization_spaces": False,
        "errors": "replace", "split_special_tokens": False, "chat_template": CHAT_TEMPLATE,
    }
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def export_all(source: Path, target: Path) -> None:
    """Load the PyTorch FastVLM at `source` and write the complete bundle into `target`."""
    transformers = require("transformers", "local", "exporting ONNX")
    model = transformers.FastVlmForConditionalGeneration.from_pretrained(source).eval()
    processor = transformers.AutoProcessor.from_pretrained(source)
    image_size = int(processor.image_processor.crop_size["height"])
    export_sessions(model, target / "onnx", image_size)
    files: dict[str, Any] = {"config.json": bundle_config(model, processor.tokenizer),
                             **processor_files(processor, image_size)}
    gen = model.generation_config
    files["generation_config.json"] = {"eos_token_id": gen.eos_token_id, "pad_token_id": gen.pad_token_id,
                                       "do_sample": False, "max_new_tokens": gen.max_new_tokens or 64}
    for name, data in files.items():
        (target / name).write_text(json.dumps(data, indent=2) + "\n")
    tokenizer_files(processor.tokenizer, target)


def quiet_export() -> contextlib.ExitStack:
    """torch.onnx prints progress on stdout and warns freely; keep stdout for answers."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(sys.stderr))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack
