"""The chat a local engine shows the model: one definition for the PyTorch and ONNX Runtime engines.

Why a module of its own: both engines must render exactly the same prompt (system, earlier turns with
their images, the question with the rest), strip control tokens a user might type, and expand each
`<image>` into as many image tokens as the vision tower gives features, or their answers (and the
prefix cache keys, which hash the rendered ids) would drift apart. `FastVLMRuntime._messages` /
`_clean` hold the same logic today; they can delegate here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .architecture import IMAGE_TOKEN
from .items import GenItem


def clean_text(text: str, tokenizer: Any) -> str:
    """`text` with the image token and every special token replaced by a space: user text may not
    forge control tokens."""
    for special in (IMAGE_TOKEN, *getattr(tokenizer, "all_special_tokens", ())):
        if special:
            text = text.replace(special, " ")
    return text


def chat_messages(item: GenItem, tokenizer: Any) -> list[dict[str, Any]]:
    """The chat: system, the earlier turns (each with its images), then the prompt with the rest of the
    images. The image features fill the image tokens in this same order."""
    messages: list[dict[str, Any]] = []
    if item.options.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": item.options.system}]})
    used = 0
    for role, text, images in item.history:
        content = [{"type": "image"} for _ in range(images)] + [{"type": "text", "text": clean_text(text, tokenizer)}]
        messages.append({"role": role, "content": content})
        used += images
    rest = [{"type": "image"} for _ in item.images[used:]]
    messages.append({"role": "user", "content": [*rest, {"type": "text", "text": clean_text(item.prompt, tokenizer)}]})
    return messages


def prompt_text(processor: Any, item: GenItem, tokens_per_image: Sequence[int]) -> str:
    """The rendered chat with the i-th `<image>` repeated `tokens_per_image[i]` times."""
    text = processor.apply_chat_template(chat_messages(item, processor.tokenizer), add_generation_prompt=True,
                                         tokenize=False)
    for count in tokens_per_image:
        text = text.replace(IMAGE_TOKEN, "\x00" * int(count), 1)
    return text.replace("\x00", IMAGE_TOKEN)
