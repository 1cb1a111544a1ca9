"""FastVLM on ONNX Runtime (CPU): the same contract as `FastVLMRuntime`, a different engine.

Why: on CPU the alternative users reach for is ONNX Runtime over an ONNX export (fp32, int8, q4), whose
fused kernels and int8/int4 weight-only matmuls can beat eager PyTorch per token. `OrtRuntime` exports
the local checkpoint once (models/onnx_variants.py: fp32, int8, q8, q4, cached on disk and keyed by the
weights' size and mtime), then runs what transformers.js runs: the vision encoder and the merged decoder
as sessions, the token embeddings as a lookup in the export's memory-mapped table (models/onnx_embedding.py:
only the rows a prompt uses become resident). Once exported it needs no torch and imports none:
preprocessing is models/preprocess.py with the checkpoint's image processor in numpy, the chat is
models/chat.py (shared with the torch engine), the decode loop is models/ort_decoding.py.

What carries over from the torch engine: projected image features in an LRU keyed by image sha256 and
preprocessing digest; for one item with images, the KV cache of the prompt up to the last image kept
per (images, prefix ids), so a follow-up on the same picture pays only for its question. The KV cache
stays in ONNX Runtime's own `OrtValue`s between steps (io_binding): past tensors are never copied into
numpy, and a cached prefix is shared rather than copied, since every step writes new present tensors.
Batches are decoded together: left-padded for the TorchScript decoder (mask and position ids as the torch
engine passes them); for the builder's GroupQueryAttention decoder (models/onnx_gqa.py), which reads each
row's length off the mask, each row is prefilled alone and the caches stacked right-padded.
Each session is optimised once (ORT_ENABLE_ALL) and the optimised graph saved beside the variant, so
later loads skip the optimiser. Not thread-safe, like `FastVLMRuntime`: one caller at a time.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .._optional import require
from ..errors import BackendUnavailableError, BadInputError, ConfigurationError
from . import decoding, ort_decoding
from .chat import prompt_text
from .feature_cache import LRU, TokenCallback, cached_features
from .items import GenItem, GenOutput, ImageInput
from .onnx_embedding import EmbeddingTable
from .onnx_export import SIDE_DIM
from .onnx_variants import VARIANTS, check_model_dir, ensure_variant
from .ort_processor import load_parts
from .preprocess import (
    check_input_size,
    decode_image,
    fill_colour,
    pad_to_square,
    preprocessing_key,
    set_input_size,
)


def physical_cores() -> int:
    try:
        import psutil

        return int(psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except ImportError:
        return os.cpu_count() or 1


class OrtRuntime:
    """A FastVLM exported to ONNX and run by ONNX Runtime on the CPU."""

    # The vision encoder's activations at 1024 px run to hundreds of MB; ORT's arena would keep its high-water
    # mark for good (measured on the 0.5B model: steady peak RSS 2.07 GiB with it, 1.68 without). Encode time
    # showed no difference in separate processes, though one in-process A/B was 10% slower without it.
    # The decoder keeps its arena: it allocates small tensors per token.
    vision_arena = False

    def __init__(self, path: str | Path, *, threads: int | None = None, weights: str | None = None,
                 quantize: str | None = None, vision_weights: str = "fp32", vision_cache_size: int = 32,
                 prefix_cache_size: int = 8, max_pixels: int | None = None, cache_dir: str | Path | None = None,
                 progress: bool = True, device: str = "cpu", dtype: str | None = None,
                 vision_input_size: int | None = None) -> None:
        if device not in ("cpu", "auto"):
            raise ConfigurationError(f"the ONNX Runtime engine runs on the CPU only, not {device!r}")
        self.path = Path(path)
        self.weights = (weights or quantize or "fp32").lower()
        if self.weights not in VARIANTS:
            raise ConfigurationError(f"unknown ONNX weights {self.weights!r}; choose one of {', '.join(VARIANTS)}")
        if threads is not None and threads < 1:
            raise ConfigurationError("threads must be a positive number")
        self.threads = threads or physical_cores()
        self.vision_weights = vision_weights
        if vision_input_size:
            check_input_size(vision_input_size)  # before `load`, which may export for minutes first
        self.vision_input_size = vision_input_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.progress = progress
        self.max_pixels = max_pixels
        self.vision_cache = LRU(vision_cache_size)
        self.prefix_cache = LRU(prefix_cache_size)
        self.stats = {"vision_encodes": 0, "vision_cache_hits": 0, "prefix_cache_hits": 0}
        self.last_timings: dict[str, float] = {}
        self.device, self.dtype, self.quantize = "cpu", "float32", self.weights
        self.sessions: dict[str, Any] = {}
        self.embeddings: EmbeddingTable | None = None
        self.model: Any = None  # set to the decoder session once loaded (callers test `model is None`)

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        self._ort = require("onnxruntime", "browser", "the ONNX Runtime engine")
        transformers = require("transformers", "local", "the ONNX Runtime engine")
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        source = check_model_dir(self.path)
        files = ensure_variant(source, self.weights, vision=self.vision_weights, cache_dir=self.cache_dir,
                               progress=self.progress)
        try:
            parts = load_parts(source)  # torch-free for FastVLM's layout (models/ort_processor.py)
        except Exception as exc:  # noqa: BLE001 - json, tokenizers, jinja: each has its own types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise BackendUnavailableError(f"model directory {source} is corrupt or incompatible "
                                          f"({type(exc).__name__}: {first})", backend="fastvlm") from None
        self.processor, self.torch_free = parts.processor, parts.torch_free
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.image_processor = self.processor.image_processor
        if self.vision_input_size:
            set_input_size(self.image_processor, self.vision_input_size)
        self.prep_key = preprocessing_key(self.image_processor)
        self.fill = fill_colour(self.image_processor)
        text, generation = parts.text, parts.generation
        self.layers = int(text.num_hidden_layers)
        self.kv_heads = int(text.num_key_value_heads)
        self.head_dim = int(text.head_dim)
        self.context = int(getattr(text, "max_position_embeddings", 0) or 32768)
        self.image_token_id = parts.image_token_id
        self.eos_ids = decoding.eos_ids(SimpleNamespace(generation_config=generation), self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.is_fastvlm = True
        self.embeddings = EmbeddingTable.open(files.embed)  # a lookup in the mapped file, not a session
        side = int(self.image_processor.crop_size["height"])
        self.sessions["vision"] = self._session(files.vision, files.root, arena=self.vision_arena, side=side)
        self.sessions["decoder"] = self._session(files.decoder, files.root)
        self._check_vision_side()
        self.model = self.sessions["decoder"]
        self.output_names = [o.name for o in self.model.get_outputs()]
        # each present feeds the past of the same name, in the graph's output order (the TorchScript graph
        # interleaves keys and values, the builder's lists every key first)
        self.past_names = [name.replace("present", "past_key_values", 1) for name in self.output_names[1:]]
        # The builder's GroupQueryAttention graph (models/onnx_gqa.py) has no position ids: it reads each
        # row's length off the mask, so its batches are right-padded. The TorchScript graph is left-padded.
        self.right_padded = "position_ids" not in {i.name for i in self.model.get_inputs()}
        self.decoder_graph = "GroupQueryAttention" if self.right_padded else "TorchScript"  # shown by health

    def _check_vision_side(self) -> None:
        """A `vision_input_size` needs an export whose vision input takes any side (models/onnx_export.py);
        an export with the side fixed (the browser bundle's, or one made elsewhere) takes that side only."""
        side = self.sessions["vision"].get_inputs()[0].shape[-1]
        wanted = int(self.image_processor.crop_size["height"])
        if isinstance(side, int) and side != wanted:
            raise ConfigurationError(f"this ONNX export's vision encoder takes {side} px pictures only, not "
                                     f"{wanted}: export the model again (fastvlm-hybrid models export NAME) or "
                                     "leave vision_input_size unset")

    def _session(self, path: Path, root: Path, *, arena: bool = True, side: int | None = None) -> Any:
        """An InferenceSession over the cached optimised graph, or over `path` (saving that graph). `side` fixes
        an any-size vision encoder's input side for this session, so ORT plans its buffers for that size (one
        optimised graph per side)."""
        ort = self._ort
        tag = hashlib.sha256(f"{ort.__version__}|{platform.machine()}|{_cpu_flags()}".encode()).hexdigest()[:10]
        sized = f"-{side}px" if side else ""
        optimized = root / "optimized" / f"{path.parent.name}-{path.stem}{sized}-{tag}.onnx"
        opts = self._fresh_options(arena)
        if optimized.is_file():
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            try:
                return ort.InferenceSession(str(optimized), opts, providers=["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - a stale or truncated cache file: rebuild it below
                optimized.unlink(missing_ok=True)
                opts = self._fresh_options(arena)
        if side:  # no effect on an export whose side is fixed already (_check_vision_side then checks it)
            opts.add_free_dimension_override_by_name(SIDE_DIM, side)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        optimized.parent.mkdir(parents=True, exist_ok=True)
        partial = optimized.with_name(f".{os.getpid()}-{optimized.name}")
        opts.optimized_model_filepath = str(partial)
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                      optimized.name + ".data")
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise BackendUnavailableError(f"ONNX Runtime cannot load {path}: {exc}", backend="fastvlm") from None
        data = partial.with_name(optimized.name + ".data")
        if partial.is_file():  # the data file already has its final name; the graph refers to it by name
            os.replace(partial, optimized)
        elif data.is_file():
            data.unlink()
        return session

    def _fresh_options(self, arena: bool = True) -> Any:
        opts = self._ort.SessionOptions()
        opts.enable_cpu_mem_arena = arena
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return opts

    def close(self) -> None:
        self.sessions.clear()
        self.embeddings = None
        self.model = None
        self.vision_cache.clear()
        self.prefix_cache.clear()

    # ------------------------------------------------------------------ images
    def pixel_values(self, images: list[ImageInput]) -> np.ndarray:
        pil = [pad_to_square(decode_image(img.data, img.name, self.max_pixels), self.fill) for img in images]
        return np.asarray(self.image_processor(images=pil, return_tensors="np")["pixel_values"], dtype=np.float32)

    def _image_features(self, images: list[ImageInput]) -> list[np.ndarray]:
        return cached_features(self, images, self._encode_images)

    def _encode_images(self, images: list[ImageInput]) -> np.ndarray:
        start = time.perf_counter()
        pixels = self.pixel_values(images)
        self.last_timings["preprocess_s"] = time.perf_counter() - start
        start = time.perf_counter()
        feats = self.sessions["vision"].run(None, {"pixel_values": pixels})[0]
        self.last_timings["vision_s"] = time.perf_counter() - start
        return feats

    # ------------------------------------------------------------------ the decoder
    def _embed(self, ids: np.ndarray, feats: list[np.ndarray]) -> np.ndarray:
        assert self.embeddings is not None, "load() first"
        embeds = self.embeddings(ids)
        if feats:
            flat = np.concatenate([f.reshape(-1, f.shape[-1]) for f in feats]).astype(embeds.dtype)
            where = ids == self.image_token_id
            if int(where.sum()) != flat.shape[0]:
                raise BackendUnavailableError("image tokens and image features disagree: incompatible model "
                                              "and processor", backend="fastvlm")
            embeds[where] = flat
        return embeds

    def _empty_past(self, batch: int) -> list[Any]:
        empty = np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=np.float32)
        return [self._ort.OrtValue.ortvalue_from_numpy(empty) for _ in self.past_names]

    def _forward(self, embeds: np.ndarray, mask: np.ndarray, positions: np.ndarray,
                 past: list[Any], *, in_place: bool = False) -> tuple[np.ndarray, list[Any]]:
        """One decoder call; returns the last position's logits (batch, vocab) and the present OrtValues.
        `in_place` (GroupQueryAttention graph, past buffers from `_with_room`): the step writes its keys and
        values into the past buffers, which are returned as the presents."""
        binding = self.model.io_binding()
        binding.bind_cpu_input("inputs_embeds", np.ascontiguousarray(embeds, dtype=np.float32))
        binding.bind_cpu_input("attention_mask", np.ascontiguousarray(mask, dtype=np.int64))
        if not self.right_padded:
            binding.bind_cpu_input("position_ids", np.ascontiguousarray(positions, dtype=np.int64))
        for name, value in zip(self.past_names, past, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(self.output_names[0], "cpu")
        for name, value in zip(self.output_names[1:], past, strict=True):
            if in_place:
                binding.bind_ortvalue_output(name, value)
            else:
                binding.bind_output(name, "cpu")
        self.model.run_with_iobinding(binding)
        outs = binding.get_outputs()
        return outs[0].numpy()[:, -1, :], past if in_place else list(outs[1:])

    def _with_room(self, caches: list[list[Any]], room: int) -> list[Any]:
        """The prefill's caches (one list per prefilled chunk of rows) copied, rows stacked with each row's
        padding after its tokens, into buffers `room` positions longer than the longest row, which the
        GroupQueryAttention graph then fills in place, step by step, instead of writing a new, longer copy
        of every layer's cache each token (3 to 5% more tokens/s in fp32 and q8 on two cores:
        benchmarks/ort_kv_in_place.py). One copy, so a cached prefix is never written into."""
        width = max(chunk[0].shape()[2] for chunk in caches)
        batch = sum(chunk[0].shape()[0] for chunk in caches)
        out = []
        for index in range(len(caches[0])):
            buffer = np.zeros((batch, self.kv_heads, width + room, self.head_dim), np.float32)
            row = 0
            for chunk in caches:
                cache = chunk[index].numpy()
                buffer[row:row + cache.shape[0], :, :cache.shape[2]] = cache
                row += cache.shape[0]
            out.append(self._ort.OrtValue.ortvalue_from_numpy(buffer))
        return out

    # ------------------------------------------------------------------ generation
    def generate(self, items: list[GenItem], on_token: TokenCallback | None = None, *,
                 ignore_eos: bool = False) -> list[GenOutput]:
        """Answer every item in one left-padded batch (greedy output equals one-by-one output)."""
        return self._generate(items, on_token, ignore_eos=ignore_eos)

    def score(self, item: GenItem, continuation: list[int]) -> np.ndarray:
        """The logits (len(continuation), vocab) before each token of `continuation`, fed one by one:
        how two variants are compared on one token path."""
        record: list[np.ndarray] = []
        self._generate([item], None, forced=continuation, record=record)
        return np.stack(record)

    def _generate(self, items: list[GenItem], on_token: TokenCallback | None, *, ignore_eos: bool = False,
                  forced: list[int] | None = None, record: list[np.ndarray] | None = None) -> list[GenOutput]:
        if self.model is None:
            raise BackendUnavailableError("the local model is not loaded", backend="fastvlm")
        if not items:
            return []
        self.last_timings = {}
        start = time.perf_counter()
        all_images = [img for item in items for img in item.images]
        feats = self._image_features(all_images) if all_images else []
        texts, k = [], 0
        for item in items:
            texts.append(prompt_text(self.processor, item, [f.shape[0] for f in feats[k:k + len(item.images)]]))
            k += len(item.images)
        enc = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="np")
        ids, mask = np.asarray(enc["input_ids"], np.int64), np.asarray(enc["attention_mask"], np.int64)
        lengths = [int(x) for x in mask.sum(-1)]
        longest = max(lengths)
        if longest >= self.context:
            raise BadInputError(f"the prompt is {longest} tokens (image included), beyond the model's context "
                                f"of {self.context}")
        max_new = min(max(1, min(i.options.max_tokens for i in items)), self.context - longest)
        positions = np.clip(mask.cumsum(-1) - 1, 0, None)
        prefill = time.perf_counter()
        if len(items) == 1 and items[0].images:
            logits, past = self._prefill_with_prefix(ids, feats, items[0])
            caches = [past]
        elif self.right_padded and len(items) > 1:
            logits, caches = self._prefill_rows(ids, mask, feats, items)
        else:
            logits, past = self._forward(self._embed(ids, feats), mask, positions, self._empty_past(len(items)))
            caches = [past]
        self.last_timings["prefill_s"] = time.perf_counter() - prefill
        past = self._with_room(caches, max(max_new, len(forced or ()))) if self.right_padded else caches[0]
        state = {"past": past, "mask": mask, "last": positions[:, -1:], "lengths": mask.sum(-1, keepdims=True)}

        def step(chosen: np.ndarray) -> np.ndarray:
            if self.right_padded:  # each row's tokens first, then its padding
                state["lengths"] = state["lengths"] + 1
                state["mask"] = (np.arange(state["mask"].shape[1] + 1)[None] < state["lengths"]).astype(np.int64)
            else:
                state["mask"] = np.concatenate([state["mask"], np.ones((len(items), 1), np.int64)], axis=1)
            state["last"] = state["last"] + 1
            embeds = self._embed(chosen[:, None], [])
            out, state["past"] = self._forward(embeds, state["mask"], state["last"], state["past"],
                                               in_place=self.right_padded)
            return out

        return ort_decoding.decode(self, items, logits, step, max_new=max_new, input_lengths=lengths, start=start,
                                   on_token=on_token, ignore_eos=ignore_eos, forced=forced, record=record)

    def _prefill_rows(self, ids: np.ndarray, mask: np.ndarray, feats: list[np.ndarray],
                      items: list[GenItem]) -> tuple[np.ndarray, list[list[Any]]]:
        """A batch for the GroupQueryAttention graph: each row prefilled alone (prefill is compute-bound,
        so nothing is lost); `_with_room` then stacks the rows' caches right-padded."""
        logits, caches, k = [], [], 0
        for row, item in enumerate(items):
            row_ids = ids[row:row + 1, mask[row] == 1]
            row_feats = feats[k:k + len(item.images)]
            k += len(item.images)
            row_logits, present = self._forward(self._embed(row_ids, row_feats), np.ones_like(row_ids),
                                                np.arange(row_ids.shape[1])[None], self._empty_past(1))
            logits.append(row_logits)
            caches.append(present)
        return np.concatenate(logits), caches

    def _prefill_with_prefix(self, ids: np.ndarray, feats: list[np.ndarray],
                             item: GenItem) -> tuple[np.ndarray, list[Any]]:
        """Prefill one unpadded row in two chunks: [system + image] (cached by content) and the question."""
        row = ids[0].tolist()
        cut = max(i for i, t in enumerate(row) if t == self.image_token_id) + 1
        digest = hashlib.sha256(repr(row[:cut]).encode()).hexdigest()
        key = (tuple(img.sha256 for img in item.images), self.prep_key, self.weights, digest)
        past = self.prefix_cache.get(key)
        if past is None:
            head = ids[:, :cut]
            _, past = self._forward(self._embed(head, feats), np.ones_like(head), np.arange(cut)[None],
                                    self._empty_past(1))
            self.prefix_cache.put(key, past)  # safe to share: each step writes new present tensors
        else:
            self.stats["prefix_cache_hits"] += 1
        tail = ids[:, cut:]
        total = ids.shape[1]
        return self._forward(self._embed(tail, []), np.ones((1, total), np.int64), np.arange(cut, total)[None], past)


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
