"""The FastVLM architecture as transformers' native `fast_vlm` classes describe it, in two sizes.

`full_config()` mirrors the configuration of the released 0.5B checkpoint (Qwen2-0.5B text model, timm
`fastvit_mci3` vision tower at 1024 px, 256 image tokens) so the benchmark measures the real shapes with
random weights. `tiny_config()` keeps the same module types at toy widths so tests run in seconds.
`build_processor()` assembles the processor the converted checkpoints ship (LlavaProcessor around a
CLIPImageProcessor with mean 0 / std 1 and an effective patch of 64 px) so a saved tiny model loads with
`AutoProcessor.from_pretrained` exactly like a downloaded one.
"""

from __future__ import annotations

from typing import Any

IMAGE_TOKEN = "<image>"
#: FastVLM's vision tower downsamples by 2**6: one image token per 64x64 pixel cell.
PATCH_SIZE = 64
FULL_IMAGE_SIZE = 1024
TINY_IMAGE_SIZE = 256

# ChatML as the Qwen2-based checkpoints use it; images are rendered before the text of a message,
# which is what lets a follow-up question on the same image reuse the prompt prefix.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] if part['type'] == 'image' -%}{{ '<image>' }}{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}"
    "{%- if message['role'] == 'system' -%}{{ part['text'] }}{%- else -%}{{ '\\n' + part['text'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def vision_config(*, tiny: bool) -> dict[str, Any]:
    """timm `fastvit_mci3` wrapped by transformers' TimmWrapper; tiny keeps all five stages."""
    model_args: dict[str, Any] = {"inference_mode": True}
    hidden = 3072  # fastvit_mci3: last stage 1536 channels x cls_ratio 2
    if tiny:
        model_args.update(layers=[1, 1, 1, 1, 1], embed_dims=[8, 16, 32, 64, 128], mlp_ratios=[2, 2, 2, 2, 2])
        hidden = 256
    return {
        "model_type": "timm_wrapper",
        "architecture": "fastvit_mci3",
        "do_pooling": False,
        "global_pool": "avg",
        "num_classes": 0,
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "model_args": model_args,
    }


def text_config(*, tiny: bool, vocab_size: int, eos_token_id: int | list[int] | None = None) -> dict[str, Any]:
    """Qwen2-0.5B's decoder (or a two-layer toy with the same attention layout: GQA, RoPE, tied head)."""
    common: dict[str, Any] = {
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "eos_token_id": eos_token_id,
    }
    if tiny:
        # A wide init makes the random model's next-token distribution peaked, so greedy decoding is
        # stable under the tiny float differences between batched and single runs.
        common.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=2048, initializer_range=0.2)
    else:
        common.update(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, max_position_embeddings=32768, initializer_range=0.02)
    return common


def fastvlm_config(*, tiny: bool, vocab_size: int, image_token_id: int, eos_token_id: int | list[int] | None = None,
                   pad_token_id: int | None = None) -> Any:
    """A `FastVlmConfig` of the released 0.5B layout (tiny=False) or the toy one."""
    from transformers import FastVlmConfig

    image_size = TINY_IMAGE_SIZE if tiny else FULL_IMAGE_SIZE
    text = text_config(tiny=tiny, vocab_size=vocab_size, eos_token_id=eos_token_id)
    text["pad_token_id"] = pad_token_id
    return FastVlmConfig(
        vision_config=vision_config(tiny=tiny),
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=(image_size // PATCH_SIZE) ** 2,
        projector_hidden_act="gelu",
    )


def build_processor(tokenizer: Any, *, image_size: int) -> Any:
    """LlavaProcessor + CLIPImageProcessor configured like the converted FastVLM checkpoints."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )


def init_vision_tower(model: Any, image_size: int) -> None:
    """Give a randomly built FastVLM's vision tower weights that keep its signal of order one.

    transformers initialises every convolution of the timm tower with N(0, initializer_range=0.02); over
    the tower's ~70 convolutions in a row that shrinks the activations about 2x per layer, so the random
    model's image features come out near 1e-21: pictures would carry no signal into the decoder and any
    comparison of weight formats or engines would pass trivially on them. He-normal alone overshoots
    (features near 1e5 at full size: the residual branches add up), so each convolution and linear layer
    is then scaled, in the order one forward pass meets them, to give unit-variance outputs on a random
    picture (layer-sequential unit-variance init). Uses torch's global RNG, so seed it first."""
    import math

    import torch

    tower = model.model.vision_tower
    layers = [m for m in tower.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]

    def unit_variance(module: Any, _inputs: Any, output: Any) -> Any:
        std = float(output.float().std())
        if std > 0 and math.isfinite(std):
            module.weight.div_(std)
            if module.bias is not None:
                module.bias.div_(std)
            return output / std
        return output

    with torch.no_grad():
        for module in tower.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()
        for module in layers:
            module.weight.normal_(0.0, math.sqrt(2.0 / module.weight[0].numel()))
            if module.bias is not None:
                module.bias.zero_()
        hooks = [m.register_forward_hook(unit_variance) for m in layers]
        try:
            was_training = tower.training
            tower.eval()
            first = next(tower.parameters())
            tower(torch.randn(1, 3, image_size, image_size, dtype=first.dtype, device=first.device))
            tower.train(was_training)
        finally:
            for hook in hooks:
                hook.remove()
