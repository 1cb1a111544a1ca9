"""What the ONNX Runtime engine reads from a checkpoint besides weights, without importing torch.

Why: transformers imports torch (when installed) as soon as a config or a processor is loaded, and the
CUDA wheel alone adds about 0.7 GiB of resident memory, more than the whole int4 language model. The ONNX
engine needs none of it, so it reads `config.json` and `generation_config.json` as JSON, loads the fast
tokenizer class directly (torch-free; it renders the checkpoint's chat template itself), and runs the
CLIP-style image processor FastVLM ships in numpy and PIL, the same steps in the same order as
transformers' `CLIPImageProcessor` (tests/local/test_ort_processor.py holds the two side by side).

A checkpoint this module does not understand (another image processor, a config missing a field) loads
through transformers instead: correct, only heavier. `load_parts(model_dir)` says which path it took.

    load_parts(model_dir) -> Parts   (never raises for an unsupported layout: it falls back)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

CLIP_PROCESSORS = ("CLIPImageProcessor", "CLIPImageProcessorFast")
_CLIP_KEYS = {"crop_size", "do_center_crop", "do_convert_rgb", "do_normalize", "do_rescale", "do_resize",
              "image_mean", "image_std", "resample", "rescale_factor", "size", "image_processor_type"}


class ClipImageProcessor:
    """CLIP's resize (shortest edge, PIL), centre crop, rescale and normalise, to float32 NCHW arrays."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = dict(settings)
        self.image_mean = [float(v) for v in settings.get("image_mean", (0.0, 0.0, 0.0))]
        self.image_std = [float(v) for v in settings.get("image_std", (1.0, 1.0, 1.0))]
        self.size = dict(settings.get("size") or {"shortest_edge": 224})
        self.crop_size = dict(settings.get("crop_size") or {"height": 224, "width": 224})

    @classmethod
    def supports(cls, settings: dict[str, Any]) -> bool:
        return (settings.get("image_processor_type") in CLIP_PROCESSORS
                and set(settings) <= _CLIP_KEYS and "shortest_edge" in (settings.get("size") or {}))

    def to_dict(self) -> dict[str, Any]:
        return {**self.settings, "size": self.size, "crop_size": self.crop_size}

    def __call__(self, images: list[Any], return_tensors: str = "np") -> dict[str, np.ndarray]:
        return {"pixel_values": np.stack([self._one(img) for img in images])}

    def _one(self, image: Any) -> np.ndarray:
        s = self.settings
        if s.get("do_convert_rgb", True) and image.mode != "RGB":
            image = image.convert("RGB")
        if s.get("do_resize", True):
            image = image.resize(_shortest_edge(image.size, int(self.size["shortest_edge"])),
                                 resample=int(s.get("resample", 3)))
        pixels = np.asarray(image, dtype=np.uint8)
        if s.get("do_center_crop", True):
            pixels = _centre_crop(pixels, int(self.crop_size["height"]), int(self.crop_size["width"]))
        out = pixels.astype(np.float32)
        if s.get("do_rescale", True):
            out = out * np.float32(s.get("rescale_factor", 1 / 255))
        if s.get("do_normalize", True):
            out = (out - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


@dataclass
class Parts:
    """The processor (tokenizer + image processor + chat template), configs, and how they were loaded."""

    processor: Any
    text: Any  # the text model's config: num_hidden_layers, num_key_value_heads, head_dim, ...
    image_token_id: int
    generation: Any  # has eos_token_id, or None
    torch_free: bool


class LightProcessor:
    """The two halves transformers' LlavaProcessor gives the engine, and its chat template."""

    def __init__(self, tokenizer: Any, image_processor: ClipImageProcessor, chat_template: str | None) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, **kwargs)


def load_parts(model_dir: Path) -> Parts:
    """The engine's processor and configs, torch-free where the checkpoint allows (see the module doc)."""
    light = _light_parts(Path(model_dir))
    return light if light is not None else _transformers_parts(Path(model_dir))


def _light_parts(model_dir: Path) -> Parts | None:
    try:
        config = json.loads((model_dir / "config.json").read_text())
        processor_cfg = json.loads((model_dir / "processor_config.json").read_text())
    except (OSError, ValueError):
        return None
    settings = processor_cfg.get("image_processor") or {}
    text = config.get("text_config") or {}
    needed = ("num_hidden_layers", "num_key_value_heads", "hidden_size", "num_attention_heads")
    image_token = config.get("image_token_id", config.get("image_token_index"))
    if not ClipImageProcessor.supports(settings) or any(k not in text for k in needed) or image_token is None:
        return None
    from transformers import PreTrainedTokenizerFast  # the tokenizers-backed class imports no torch

    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    template_file = model_dir / "chat_template.jinja"
    template = template_file.read_text() if template_file.is_file() else processor_cfg.get("chat_template")
    try:
        generation = SimpleNamespace(**json.loads((model_dir / "generation_config.json").read_text()))
    except (OSError, ValueError):
        generation = None
    text = {"max_position_embeddings": 32768, **text}
    text["head_dim"] = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    return Parts(LightProcessor(tokenizer, ClipImageProcessor(settings), template), SimpleNamespace(**text),
                 int(image_token), generation, torch_free=True)


def _transformers_parts(model_dir: Path) -> Parts:
    import transformers

    config = transformers.AutoConfig.from_pretrained(model_dir)
    processor = transformers.AutoProcessor.from_pretrained(model_dir)
    try:
        generation = transformers.GenerationConfig.from_pretrained(model_dir)
    except OSError:
        generation = None
    text = config.get_text_config()
    if getattr(text, "head_dim", None) is None:
        text.head_dim = text.hidden_size // text.num_attention_heads
    return Parts(processor, text, int(config.image_token_id), generation, torch_free=False)


def _shortest_edge(size: tuple[int, int], edge: int) -> tuple[int, int]:
    """transformers' `get_resize_output_image_size` for a shortest-edge size: the long side scales too."""
    width, height = size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = edge, int(edge * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def _centre_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """HWC centre crop, padding with zeros where the image is smaller (as transformers does)."""
    h, w = pixels.shape[:2]
    if h < height or w < width:
        canvas = np.zeros((max(h, height), max(w, width), pixels.shape[2]), pixels.dtype)
        top, left = (canvas.shape[0] - h) // 2, (canvas.shape[1] - w) // 2
        canvas[top:top + h, left:left + w] = pixels
        pixels, h, w = canvas, canvas.shape[0], canvas.shape[1]
    top, left = (h - height) // 2, (w - width) // 2
    return pixels[top:top + height, left:left + width]
