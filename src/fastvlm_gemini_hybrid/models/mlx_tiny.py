"""Build a random MLX FastVLM in the exact layout mlx-vlm's `load()` reads, for tests and benchmarks.

`make_tiny_mlx(dir)` writes the checkpoint that `tests/mlx/` loads through the same `MLXBackend` users
run: mlx-vlm's own `fastvlm` model classes (model type `llava_qwen2`, as Apple's and mlx-community's
checkpoints declare it), random weights saved by mlx-vlm's `save_weights`, the tiny byte-level BPE
tokenizer of `models/tiny.py` with a ChatML template, and a `preprocessor_config.json`.

What "tiny" can and cannot shrink, and why: mlx-vlm (0.7.x) fixes FastViTHD's stage depths and widths
as class attributes of its `VisionConfig`, not as config fields, so a checkpoint cannot declare a smaller
vision tower; it always has the released ~125M parameters. The tiny model therefore keeps the real vision
tower (stored in bf16, about 250 MB) but feeds it 64 px images (one image token; compute scales with
pixels), and shrinks the Qwen2 decoder to two layers of width 64. `full=True` writes FastVLM-0.5B's
exact shapes (Qwen2-0.5B decoder, 1024 px) for `benchmarks/mlx_vs_torch.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import BadInputError
from .tiny import MARKER_FILE, SPECIAL_TOKENS, train_tokenizer

#: mlx-vlm's FastVLM marks the image position with this id (LLaVA's convention), not a vocabulary token.
IMAGE_TOKEN_INDEX = -200
TINY_MLX_IMAGE_SIZE = 64
FULL_MLX_IMAGE_SIZE = 1024
#: the converted 0.5B checkpoint's padded vocabulary size
FULL_VOCAB_SIZE = 152000
TINY_INIT_STD = 0.2

# ChatML with plain-string message content, which is what mlx-vlm's `apply_chat_template` hands the
# tokenizer for `llava_qwen2` (it has already inserted "<image>\n" into the user's text).
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] if part['type'] == 'text' -%}{{ part['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def mlx_config(*, full: bool, vocab_size: int, eos_token_id: int, image_size: int) -> dict[str, Any]:
    """config.json of an MLX FastVLM: FastVLM-0.5B's layout (full) or a two-layer toy decoder."""
    text: dict[str, Any] = {
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000.0,
        "tie_word_embeddings": True,
    }
    if full:
        text.update(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                    num_key_value_heads=2, max_position_embeddings=32768)
    else:
        text.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=2048)
    return {
        "model_type": "llava_qwen2",
        "architectures": ["LlavaQwen2ForCausalLM"],
        "text_config": text,
        "vision_config": {"model_type": "llava_qwen2", "image_size": image_size, "patch_size": 64,
                          "hidden_size": 1024, "projection_dim": 768},
        "mm_hidden_size": 3072,
        "mm_projector_type": "mlp2x_gelu",
        "image_token_index": IMAGE_TOKEN_INDEX,
        "eos_token_id": eos_token_id,
        "tokenizer_model_max_length": text["max_position_embeddings"],
        "tokenizer_padding_side": "right",
    }


def write_preprocessor(path: Path, image_size: int) -> None:
    """The image settings mlx-vlm's FastVLM processor reads: square resize, mean 0 / std 1."""
    config = {
        "size": {"shortest_edge": image_size},
        "crop_size": {"height": image_size, "width": image_size},
        "do_resize": True,
        "do_center_crop": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
        "rescale_factor": 1 / 255,
        "image_mean": [0.0, 0.0, 0.0],
        "image_std": [1.0, 1.0, 1.0],
    }
    (path / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")


def build_mlx_fastvlm(directory: str | Path, *, full: bool = False, seed: int = 0, image_size: int | None = None,
                      dtype: str = "bfloat16", overwrite: bool = False) -> Path:
    """Write a random MLX FastVLM (weights, config, tokenizer, preprocessor) into `directory`."""
    mx = require("mlx.core", "mlx", "building an MLX FastVLM")
    require("mlx_vlm", "mlx", "building an MLX FastVLM")
    from mlx.utils import tree_map
    from mlx_vlm.models.fastvlm import Model, ModelConfig
    from mlx_vlm.models.fastvlm.config import TextConfig, VisionConfig
    from mlx_vlm.utils import save_weights

    path = Path(directory).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise BadInputError(f"{path} is not empty (pass --force to overwrite)")
    if not hasattr(mx, dtype):
        raise BadInputError(f"unknown MLX dtype {dtype!r}; choose float32, bfloat16 or float16")
    path.mkdir(parents=True, exist_ok=True)
    size = image_size or (FULL_MLX_IMAGE_SIZE if full else TINY_MLX_IMAGE_SIZE)

    tokenizer = train_tokenizer(seed)
    tokenizer.chat_template = CHATML_TEMPLATE
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    vocab = FULL_VOCAB_SIZE if full else len(tokenizer)
    config = mlx_config(full=full, vocab_size=vocab, eos_token_id=im_end, image_size=size)

    model_config = ModelConfig.from_dict(dict(config))
    model_config.text_config = TextConfig.from_dict(config["text_config"])
    model_config.vision_config = VisionConfig.from_dict(config["vision_config"])
    mx.random.seed(seed)
    model = Model(model_config)
    target = getattr(mx, dtype)
    if not full:
        # As in models/tiny.py: a wide init makes the toy decoder's next-token distribution peaked and
        # varied, so greedy answers are real multi-token text rather than one repeated token.
        lm = model.language_model
        lm.update(tree_map(lambda p: mx.random.normal(p.shape) * TINY_INIT_STD if p.ndim > 1 else p,
                           lm.parameters()))
    model.update(tree_map(lambda p: p.astype(target) if mx.issubdtype(p.dtype, mx.floating) else p,
                          model.parameters()))
    mx.eval(model.parameters())
    save_weights(path, model)
    del model

    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(path)
    write_preprocessor(path, size)
    marker = {"tiny": not full, "backend": "mlx", "seed": seed, "random_weights": True, "image_size": size,
              "special_tokens": list(SPECIAL_TOKENS)}
    (path / MARKER_FILE).write_text(json.dumps(marker) + "\n")
    return path


def make_tiny_mlx(directory: str | Path, *, seed: int = 0, overwrite: bool = False) -> Path:
    """A tiny random MLX FastVLM (real mlx-vlm architecture, toy decoder, 64 px images) in `directory`."""
    return build_mlx_fastvlm(directory, full=False, seed=seed, overwrite=overwrite)
