"""In-process inference for FastVLM (and other transformers image-text-to-text models).

One `FastVLMRuntime` owns one loaded model. `generate()` runs a batch of (images, prompt) items through
one forward pass per step with left padding, a manual decode loop (greedy or temperature/top-p with a
seed), a per-token callback for streaming, and chosen-token probabilities for `confidence`.

Where time goes on CPU, and what is done about it (see benchmarks/fastvlm_cpu.py for the figures):
- the vision tower is convolutional: run it channels-last and in bf16 where the CPU does bf16 natively;
- a follow-up question on the same image should not pay for the image again: projected image features
  are kept in an LRU keyed by image sha256 + preprocessing digest, and, because the chat template puts
  the image first, the KV cache of the prompt prefix up to the image is kept too (same key + prefix ids);
- attention uses SDPA; everything runs under `torch.inference_mode`;
- decode is bound by memory bandwidth: `quantize=int8|int4` stores the language model's linear weights
  in 1 or 0.5 bytes (models/weight_quant.py), built tensor by tensor from the checkpoint.
Not thread-safe: the backend serialises calls with a lock (one model per process).
"""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import BackendUnavailableError, BadInputError, ConfigurationError, HybridError
from . import decoding, weight_quant
from .chat import chat_messages, prompt_text
from .device import pick_device, pick_dtype, set_threads
from .feature_cache import LRU, TokenCallback, cached_features  # re-exported, like items
from .items import GenItem, GenOutput, ImageInput  # re-exported: callers import them from here
from .preprocess import decode_image, fill_colour, pad_to_square, preprocessing_key, set_input_size


class FastVLMRuntime:
    """A loaded model plus its processor, caches and decode loop."""

    def __init__(self, path: str | Path, *, device: str = "auto", dtype: str = "auto", threads: int | None = None,
                 quantize: str | None = None, channels_last: bool = True, vision_cache_size: int = 32,
                 prefix_cache_size: int = 8, max_pixels: int | None = None,
                 vision_input_size: int | None = None) -> None:
        self.path = Path(path)
        self.vision_input_size = vision_input_size
        self._want = {"device": device, "dtype": dtype, "threads": threads, "quantize": quantize}
        self.channels_last = channels_last
        self.max_pixels = max_pixels
        self.vision_cache = LRU(vision_cache_size)
        self.prefix_cache = LRU(prefix_cache_size)
        self.stats = {"vision_encodes": 0, "vision_cache_hits": 0, "prefix_cache_hits": 0}
        self.last_timings: dict[str, float] = {}
        self.model: Any = None
        self.processor: Any = None

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        torch = require("torch", "local", "the local FastVLM backend")
        transformers = require("transformers", "local", "the local FastVLM backend")
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        quantize = (self._want["quantize"] or "").lower() or None
        if quantize not in (None, *weight_quant.FORMATS):
            raise ConfigurationError(f"unknown quantize setting {quantize!r}; choose int8 or int4 (weight-only, "
                                     "CPU) or leave it unset")
        set_threads(torch, self._want["threads"])
        self.device = pick_device(torch, self._want["device"])
        if quantize and self.device != "cpu":
            raise ConfigurationError(f"quantize={quantize} (weight-only, torch's CPU kernels) is for CPU only; "
                                     "unset it on GPUs")
        self.dtype = pick_dtype(torch, self.device, self._want["dtype"])
        try:
            config = transformers.AutoConfig.from_pretrained(self.path)
            self.processor = transformers.AutoProcessor.from_pretrained(self.path)
            model = self._load_model(transformers, config, quantize)
        except (MemoryError, torch.OutOfMemoryError) as exc:
            raise BackendUnavailableError(f"out of memory loading {self.path}: {exc}", backend="fastvlm") from None
        except HybridError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors, tokenizers, json, jinja: each has its own types
            if "out of memory" in str(exc).lower():
                raise BackendUnavailableError(f"out of memory loading {self.path}", backend="fastvlm") from None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise BackendUnavailableError(
                f"model directory {self.path} is corrupt or incompatible ({type(exc).__name__}: {first})",
                backend="fastvlm",
            ) from None
        model.to(self.device).eval()
        self.is_fastvlm = config.model_type == "fast_vlm" and hasattr(self.processor, "patch_size")
        if self.is_fastvlm and self.channels_last:
            model.model.vision_tower.to(memory_format=torch.channels_last)
        self.model = model
        self.quantize = quantize
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.image_processor = getattr(self.processor, "image_processor", None)
        if self.vision_input_size:
            if not self.is_fastvlm:
                raise ConfigurationError("vision_input_size is for FastVLM models only")
            set_input_size(self.image_processor, self.vision_input_size)
        self.prep_key = preprocessing_key(self.image_processor) if self.image_processor else ""
        self.fill = fill_colour(self.image_processor) if self.image_processor else (0, 0, 0)
        text_cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.context = int(getattr(text_cfg, "max_position_embeddings", 0) or 32768)
        self.eos_ids = decoding.eos_ids(model, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.image_token_id = getattr(config, "image_token_id", None)

    def _load_model(self, transformers: Any, config: Any, quantize: str | None) -> Any:
        try:
            return self._load_with(transformers, config, quantize, "sdpa")
        except ValueError as exc:
            if "sdpa" not in str(exc).lower():
                raise
            return self._load_with(transformers, config, quantize, None)  # a model without SDPA support

    def _load_with(self, transformers: Any, config: Any, quantize: str | None, attn: str | None) -> Any:
        if quantize:  # built tensor by tensor from the checkpoint, so no full-precision copy is ever whole
            model = weight_quant.load_weight_only(transformers, self.path, config, quantize, self.dtype, attn)
            if model is not None:
                return model
        extra = {"attn_implementation": attn} if attn else {}
        model = transformers.AutoModelForImageTextToText.from_pretrained(self.path, dtype=self.dtype, **extra)
        return weight_quant.finish_in_place(model, quantize, self.dtype) if quantize else model

    def close(self) -> None:
        self.model = None
        self.vision_cache.clear()
        self.prefix_cache.clear()

    # ------------------------------------------------------------------ prompts and images
    def _messages(self, item: GenItem) -> list[dict[str, Any]]:
        return chat_messages(item, self.tokenizer)

    def pixel_values(self, images: list[ImageInput]) -> Any:
        """What the vision tower sees: decoded, padded to a square with the mean colour, processed."""
        pil = [pad_to_square(decode_image(img.data, img.name, self.max_pixels), self.fill) for img in images]
        pixels = self.image_processor(images=pil, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.dtype)

    def _image_features(self, images: list[ImageInput]) -> list[Any]:
        """Projected features per image, from the LRU or one batched vision-tower call."""
        return cached_features(self, images, self._encode_images)

    def _encode_images(self, images: list[ImageInput]) -> Any:
        torch = require("torch", "local")
        start = time.perf_counter()
        pixels = self.pixel_values(images)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        self.last_timings["preprocess_s"] = time.perf_counter() - start
        start = time.perf_counter()
        feats = self.model.get_image_features(pixel_values=pixels).pooler_output
        self.last_timings["vision_s"] = time.perf_counter() - start
        return feats

    # ------------------------------------------------------------------ generation
    def generate(self, items: list[GenItem], on_token: TokenCallback | None = None, *,
                 ignore_eos: bool = False) -> list[GenOutput]:
        """Answer every item in one batch (greedy output equals one-by-one output)."""
        if self.model is None:
            raise BackendUnavailableError("the local model is not loaded", backend="fastvlm")
        torch = require("torch", "local")
        if not items:
            return []
        if not self.is_fastvlm and len(items) > 1:
            return [out for item in items for out in self.generate([item], on_token, ignore_eos=ignore_eos)]
        self.last_timings = {}
        start = time.perf_counter()
        with torch.inference_mode():
            try:
                if self.is_fastvlm:
                    state = self._prefill_fastvlm(items, torch)
                else:
                    state = self._prefill_generic(items[0], torch)
            except torch.OutOfMemoryError:
                raise BackendUnavailableError("out of memory during prefill", backend="fastvlm") from None
            return decoding.decode(self, items, state, start, on_token, ignore_eos=ignore_eos)

    def _check_context(self, lengths: list[int], items: list[GenItem]) -> int:
        longest = max(lengths)
        if longest >= self.context:
            raise BadInputError(
                f"the prompt is {longest} tokens (image included), beyond the model's context of {self.context}"
            )
        return min(max(1, min(i.options.max_tokens for i in items)), self.context - longest)

    def _encode(self, items: list[GenItem]) -> tuple[Any, Any, list[Any]]:
        """Token ids (left-padded), attention mask and image features for a batch of FastVLM prompts."""
        all_images = [img for item in items for img in item.images]
        feats = self._image_features(all_images) if all_images else []
        texts = []
        k = 0
        for item in items:
            texts.append(prompt_text(self.processor, item, [int(f.shape[0]) for f in feats[k:k + len(item.images)]]))
            k += len(item.images)
        enc = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device), feats

    def teacher_forced_logits(self, item: GenItem, continuation: list[int]) -> Any:
        """fp32 logits (len(continuation) + 1, vocab) at the prompt's last position and after each token of
        `continuation`: what a weight format's numerical cost is measured on (benchmarks, tests)."""
        torch = require("torch", "local")
        if self.model is None or not self.is_fastvlm:
            raise BackendUnavailableError("teacher-forced logits need a loaded FastVLM model", backend="fastvlm")
        with torch.inference_mode():
            ids, _, feats = self._encode([item])
            ids = torch.cat([ids, torch.tensor([continuation], dtype=ids.dtype, device=ids.device)], dim=1)
            out = self.model(inputs_embeds=self._embed(ids, feats, torch), use_cache=False,
                             logits_to_keep=len(continuation) + 1)
            return out.logits[0].float()

    def _prefill_fastvlm(self, items: list[GenItem], torch: Any) -> decoding.PrefillState:
        ids, mask, feats = self._encode(items)
        lengths = [int(x) for x in mask.sum(-1)]
        max_new = self._check_context(lengths, items)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        start = time.perf_counter()
        if len(items) == 1 and items[0].images:
            logits, cache = self._prefill_with_prefix(ids, feats, items[0], torch)
        else:
            embeds = self._embed(ids, feats, torch)
            padded = not bool(mask.all())
            out = self.model(inputs_embeds=embeds, attention_mask=mask if padded else None,
                             position_ids=positions if padded else None, use_cache=True, logits_to_keep=1)
            logits, cache = out.logits[:, -1, :], out.past_key_values
        self.last_timings["prefill_s"] = time.perf_counter() - start
        return decoding.PrefillState(logits, cache, mask, positions[:, -1:], lengths, max_new)

    def _embed(self, ids: Any, feats: list[Any], torch: Any) -> Any:
        embeds = self.model.get_input_embeddings()(ids)
        if feats:
            flat = torch.cat([f.reshape(-1, f.shape[-1]) for f in feats]).to(embeds.dtype)
            where = (ids == self.image_token_id).unsqueeze(-1).expand_as(embeds)
            if int(where[..., 0].sum()) != flat.shape[0]:
                raise BackendUnavailableError("image tokens and image features disagree: incompatible model "
                                              "and processor", backend="fastvlm")
            embeds = embeds.masked_scatter(where, flat)
        return embeds

    def _prefill_with_prefix(self, ids: Any, feats: list[Any], item: GenItem, torch: Any) -> tuple[Any, Any]:
        """Prefill one unpadded row in two chunks: [system + image] (cached by content) and the question."""
        row = ids[0].tolist()
        cut = max(i for i, t in enumerate(row) if t == self.image_token_id) + 1
        digest = hashlib.sha256(repr(row[:cut]).encode()).hexdigest()
        key = (tuple(img.sha256 for img in item.images), self.prep_key, str(self.dtype), digest)
        cached = self.prefix_cache.get(key)
        if cached is None:
            embeds = self._embed(ids[:, :cut], feats, torch)
            out = self.model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            self.prefix_cache.put(key, copy.deepcopy(cache))
        else:
            self.stats["prefix_cache_hits"] += 1
            cache = copy.deepcopy(cached)
        out = self.model(input_ids=ids[:, cut:], past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :], out.past_key_values

    def _prefill_generic(self, item: GenItem, torch: Any) -> decoding.PrefillState:
        pil = [decode_image(img.data, img.name, self.max_pixels) for img in item.images]
        text = self.processor.apply_chat_template(self._messages(item), add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=pil or None, return_tensors="pt").to(self.device)
        for name, value in inputs.items():
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                inputs[name] = value.to(self.dtype)
        mask = inputs["attention_mask"]
        lengths = [int(mask.sum())]
        max_new = self._check_context(lengths, [item])
        start = time.perf_counter()
        out = self.model(**inputs, use_cache=True)
        self.last_timings["prefill_s"] = time.perf_counter() - start
        return decoding.PrefillState(out.logits[:, -1, :], out.past_key_values, mask, None, lengths, max_new)

