"""Export a (tiny) transformers FastVLM as the bundle transformers.js loads: sessions plus config files.

The sessions come from models/onnx_export.py (the one exporter, shared with the ONNX Runtime engine);
this module adds what the browser needs around them: a `llava_qwen2` config.json, the processor and
tokenizer files with the chat template. Sessions are fp32; a real deployment downloads the quantised
public export instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._optional import require
from ..models.architecture import CHAT_TEMPLATE, IMAGE_TOKEN, PATCH_SIZE
from ..models.onnx_export import export_sessions, quiet_export

__all__ = ["bundle_config", "export_all", "export_sessions", "processor_files", "quiet_export", "tokenizer_files"]

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
