"""FastVLM on MLX through mlx-vlm: Metal on Apple Silicon, mlx's CPU build elsewhere (mainly for tests).

Same contract as the PyTorch backend: `MLXBackend(settings)` is cheap (no mlx import), the model loads
on first use, a lock makes loading idempotent, a missing checkpoint raises `ModelNotDownloadedError`
naming `fastvlm-hybrid models pull NAME`, and `stream()` yields text as tokens arrive.

One difference, and why: blocking work runs on one dedicated worker thread rather than
`asyncio.to_thread`'s pool. MLX streams are thread-local and mlx-vlm creates its generation stream
when it is imported, so importing, loading and generating must all happen on the same thread; a
single worker also serialises requests against the one loaded model, as the PyTorch backend's lock does.

Confidence: mlx-vlm reports the untempered log-probabilities of every step, so `confidence` is the same
low quantile (10th percentile) of the chosen tokens' probabilities as the PyTorch backend reports. The end
token is not included (mlx-vlm stops before reporting it), a small difference from the PyTorch backend.

Precision: on CPU, half precision is emulated by MLX and about twice as slow, so with `dtype=auto` a
bf16/fp16 checkpoint is upcast to float32 there; on Metal the checkpoint's dtype is kept. `quantize=int8`
or `int4` quantizes the language model in memory; ready-made 4/8-bit checkpoints load as they are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import (
    BackendError,
    BackendUnavailableError,
    BadInputError,
    ConfigurationError,
    HybridError,
    MissingDependencyError,
    ModelNotDownloadedError,
)
from ..types import Generation, Request, Usage
from .base import Backend, Health, settings_or_default
from .catalogue import capabilities_of
from .threadstream import ThreadStream

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import Settings
    from ..models.catalogue import ResolvedModel

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "half": "float16"}
_QUANT = {"int8": 8, "int4": 4}


@dataclass
class MLXOutput:
    """One finished generation, with the figures `bench` and the benchmark report."""

    text: str
    input_tokens: int
    output_tokens: int
    confidence: float | None
    finish_reason: str
    ttft_s: float
    total_s: float


class MLXBackend(Backend):
    """FastVLM through mlx-vlm, on Metal when it is there, else on MLX's CPU build."""

    name = "mlx"
    capabilities = capabilities_of("mlx")  # backends/catalogue.py, the one table

    def __init__(self, settings: Settings | None = None, *, model: str | None = None) -> None:
        self.settings = settings = settings_or_default(settings)
        self.model_name = model or settings.local_model
        self.default_model = self.model_name
        self._model: Any = None
        self._processor: Any = None
        self._config: dict[str, Any] = {}
        self._resolved: ResolvedModel | None = None
        self._device = ""
        self._dtype = ""
        self._load_error: BaseException | None = None
        self._load_lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.load_seconds: float | None = None
        self.last_timings: dict[str, float] = {}

    # ------------------------------------------------------------------ thread
    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx")
        return self._executor

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` on the MLX thread and wait (for sync callers: benchmarks, `bench`)."""
        return self._worker().submit(fn, *args).result()

    async def _acall(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(self._worker().submit(fn, *args))

    # ------------------------------------------------------------------ loading
    def resolve(self) -> ResolvedModel:
        """The MLX model directory to load (`ModelNotDownloadedError` if absent)."""
        from ..models.mlx_catalogue import resolve_mlx_model

        return resolve_mlx_model(self.model_name, self.settings.models_dir)

    def load(self) -> Any:
        """Load the model now (blocking, idempotent, on the MLX thread); returns the mlx-vlm model."""
        if self._model is not None:
            return self._model
        return self.call(self._load)

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is not None:
                return self._model
            start = time.perf_counter()
            try:
                resolved = self.resolve()
                mx, mlx_vlm = self._imports()
                self._device = self._pick_device(mx)
                model, processor = self._read(mlx_vlm, resolved.path)
                self._config = dict(mlx_vlm.utils.load_config(resolved.path))
                self._dtype = self._set_precision(mx, model)
            except MissingDependencyError as exc:
                self._load_error = BackendUnavailableError(str(exc), backend=self.name)
                raise self._load_error from None
            except HybridError as exc:
                self._load_error = exc
                raise
            self._model, self._processor, self._resolved = model, processor, resolved
            self._load_error = None
            self.default_model = resolved.name
            self.load_seconds = time.perf_counter() - start
            return model

    @staticmethod
    def _imports() -> tuple[Any, Any]:
        from .._optional import require

        mx = require("mlx.core", "mlx", "the MLX backend")
        mlx_vlm = require("mlx_vlm", "mlx", "the MLX backend")  # its __init__ imports mlx_vlm.utils too
        return mx, mlx_vlm

    def _pick_device(self, mx: Any) -> str:
        requested = (self.settings.device or "auto").lower()
        has_gpu = bool(mx.metal.is_available()) if hasattr(mx, "metal") else False
        if requested in ("mps", "gpu", "metal"):
            if not has_gpu:
                raise ConfigurationError(f"device {requested!r} was asked for but MLX has no Metal GPU here")
            mx.set_default_device(mx.gpu)
            return "metal"
        if requested == "cpu" or (requested == "auto" and not has_gpu):
            mx.set_default_device(mx.cpu)
            return "cpu"
        if requested == "auto":
            return "metal"
        raise ConfigurationError(f"device {requested!r} is not available to the mlx backend; choose auto, cpu or mps")

    def _read(self, mlx_vlm: Any, path: Path) -> tuple[Any, Any]:
        try:
            return mlx_vlm.load(str(path))
        except MemoryError:
            raise BackendUnavailableError(f"out of memory loading {path}", backend=self.name) from None
        except Exception as exc:  # noqa: BLE001 - safetensors, json, tokenizers and mlx raise their own types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise BackendUnavailableError(
                f"model directory {path} is corrupt or not an MLX FastVLM ({type(exc).__name__}: {first})",
                backend=self.name) from None

    def _set_precision(self, mx: Any, model: Any) -> str:
        """Apply the dtype and quantize settings; return the float dtype now in use."""
        import mlx.nn as nn
        from mlx.utils import tree_flatten, tree_map

        requested = (self.settings.dtype or "auto").lower()
        if requested != "auto" and requested not in _DTYPES:
            raise ConfigurationError(f"unknown dtype {requested!r}; choose auto, float32, bfloat16 or float16")
        floats = [v.dtype for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating)]
        current = floats[0] if floats else mx.float32
        target = getattr(mx, _DTYPES[requested]) if requested != "auto" else (
            mx.float32 if self._device == "cpu" else current)
        if any(d != target for d in floats):
            model.update(tree_map(lambda p: p.astype(target) if mx.issubdtype(p.dtype, mx.floating) else p,
                                  model.parameters()))
        quantize = (self.settings.quantize or "").lower() or None
        if quantize is not None:
            if quantize not in _QUANT:
                raise ConfigurationError(f"unknown quantize setting {quantize!r} for mlx; choose int8 or int4")

            def predicate(path: str, module: Any) -> bool:
                # the decoder only: the vision tower and projector stay in float, as in mlx-vlm's checkpoints
                weight = getattr(module, "weight", None)
                return (path.startswith("language_model.") and hasattr(module, "to_quantized")
                        and weight is not None and weight.shape[-1] % 64 == 0)

            nn.quantize(model, group_size=64, bits=_QUANT[quantize], class_predicate=predicate)
        mx.eval(model.parameters())
        return str(target).replace("mlx.core.", "")

    # ------------------------------------------------------------------ requests
    def _prepare(self, request: Request) -> tuple[str, list[Any]]:
        """The chat-formatted prompt and decoded images (on the MLX thread, model loaded)."""
        from mlx_vlm import apply_chat_template

        from ..models.preprocess import decode_image

        images = []
        for att in request.attachments:
            if not att.data:
                raise BadInputError(f"{self.name} needs image bytes; URLs must be downloaded first")
            images.append(decode_image(att.data, att.name, self.settings.max_image_pixels))
        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        specials = ("<image>", *getattr(tokenizer, "all_special_tokens", ()))

        def clean(text: str) -> str:
            for special in specials:
                if special:
                    text = text.replace(special, " ")  # user text may not forge control or image tokens
            return text

        messages: list[dict[str, Any]] = []
        if request.options.system:
            messages.append({"role": "system", "content": request.options.system})
        # Earlier turns as text; mlx-vlm's template puts every image in the last user message.
        messages += [{"role": t.role, "content": clean(t.text)} for t in request.history]
        messages.append({"role": "user", "content": clean(request.prompt)})
        prompt = apply_chat_template(self._processor, self._config, messages, num_images=len(images))
        return prompt, images

    def _generate(self, request: Request, on_piece: Callable[[str], bool] | None = None) -> MLXOutput:
        """Run one request to completion on the MLX thread; `on_piece` returning False stops early."""
        self._load()
        from mlx_vlm import stream_generate

        from ..models.decoding import low_quantile

        opts = request.options
        start = time.perf_counter()
        prompt, images = self._prepare(request)
        kwargs: dict[str, Any] = {"max_tokens": max(1, opts.max_tokens), "temperature": max(0.0, opts.temperature),
                                  "skip_special_tokens": True}
        if opts.temperature > 0:
            kwargs["top_p"] = opts.top_p
            if opts.seed is not None:
                kwargs["seed"] = opts.seed
        mask = self._vocab_mask()
        if mask is not None:
            kwargs["logits_processors"] = [mask]
        pieces: list[str] = []
        probs: list[float] = []
        ttft = 0.0
        prompt_tokens, finish = 0, "length"
        try:
            for step in stream_generate(self._model, self._processor, prompt, image=images or None, **kwargs):
                prompt_tokens = step.prompt_tokens or prompt_tokens
                if step.token is not None and step.logprobs is not None and len(probs) < step.generation_tokens:
                    if not ttft:
                        ttft = time.perf_counter() - start
                    probs.append(float(_exp(step.logprobs[step.token])))
                if step.finish_reason:
                    finish = step.finish_reason
                if step.text:
                    pieces.append(step.text)
                    if on_piece is not None and on_piece(step.text) is False:
                        finish = "cancelled"
                        break
        except HybridError:
            raise
        except MemoryError:
            raise BackendUnavailableError("out of memory while generating", backend=self.name) from None
        except (RuntimeError, ValueError, IndexError, KeyError) as exc:
            raise BackendError(f"MLX generation failed: {exc}", backend=self.name) from None
        total = time.perf_counter() - start
        self.last_timings = {"ttft_s": ttft or total, "total_s": total}
        text = "".join(pieces)
        return MLXOutput(text=text, input_tokens=prompt_tokens, output_tokens=len(probs),
                         confidence=low_quantile(probs), finish_reason=finish, ttft_s=ttft or total, total_s=total)

    def _vocab_mask(self) -> Callable[[Any, Any], Any] | None:
        """A logits processor that forbids ids the tokenizer cannot decode, or None when there are none.

        Checkpoints pad the embedding past the tokenizer (151936 or 152000 rows for ~151665 tokens); those
        rows are untrained, and an id from them would crash mlx-vlm's detokenizer mid-answer.
        """
        import mlx.core as mx

        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        known = len(tokenizer)
        rows = int((self._config.get("text_config") or {}).get("vocab_size") or self._config.get("vocab_size") or 0)
        if rows <= known:
            return None
        forbidden = mx.arange(rows) >= known

        def mask(_tokens: Any, logits: Any) -> Any:
            return mx.where(forbidden, -mx.inf, logits)

        return mask

    def _to_generation(self, out: MLXOutput) -> Generation:
        return Generation(text=out.text, model=self.default_model, confidence=out.confidence,
                          usage=Usage(input_tokens=out.input_tokens, output_tokens=out.output_tokens),
                          finish_reason=out.finish_reason)

    def run(self, request: Request) -> MLXOutput:
        """Blocking generate for sync callers (benchmarks); runs on the MLX thread."""
        self.check(request)
        return self.call(self._generate, request)

    async def generate(self, request: Request) -> Generation:
        self.check(request)
        out = await self._acall(self._generate, request)
        return self._to_generation(out)

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield text pieces as tokens are decoded; they join to the full answer."""
        self.check(request)
        channel = ThreadStream()

        def on_piece(piece: str) -> bool:
            if channel.stopped:
                return False  # the consumer went away: stop generating
            channel.put(piece)
            return True

        def start(work: Callable[[], None]) -> Awaitable[Any]:
            return asyncio.wrap_future(self._worker().submit(work))

        async for piece in channel.pieces(lambda: self._generate(request, on_piece), start):
            yield piece

    # ------------------------------------------------------------------ state
    async def health(self) -> Health:
        """Ready when loaded, or when the checkpoint is there and mlx-vlm is installed; else why not."""
        extra: dict[str, Any] = {"model": self.model_name}
        loaded = self._resolved  # set together with `_model` by `_load`
        if self._model is not None and loaded is not None:
            return Health(True, f"loaded {self.default_model} with MLX on {self._device} ({self._dtype})",
                          {**extra, "path": str(loaded.path), "device": self._device})
        if isinstance(self._load_error, BackendUnavailableError) and not isinstance(
                self._load_error, ModelNotDownloadedError):
            return Health(False, str(self._load_error), extra)
        try:
            resolved = self.resolve()
        except HybridError as exc:
            return Health(False, str(exc), extra)
        import importlib.util

        missing = [m for m in ("mlx", "mlx_vlm") if importlib.util.find_spec(m) is None]
        if missing:
            return Health(False, f"missing {', '.join(missing)}: pip install 'fastvlm-gemini-hybrid[mlx]'", extra)
        return Health(True, f"{resolved.name} is downloaded at {resolved.path} (loads on first use)",
                      {**extra, "path": str(resolved.path), "loaded": False})

    async def unload(self) -> bool:
        """Drop the loaded model and processor; the next request loads them again on the MLX thread.

        Runs on the MLX thread like everything else, so it waits for the generation in progress instead
        of pulling the model from under it, and requests queued behind it simply load again. The worker
        thread stays: mlx-vlm's generation stream belongs to it and is needed after the reload.
        """
        executor = self._executor
        if executor is None or self._model is None:
            return False

        def release() -> bool:
            with self._load_lock:
                if self._model is None:
                    return False
                self._model = self._processor = self._resolved = None
                self._config = {}
            import gc
            import sys

            gc.collect()
            mx = sys.modules.get("mlx.core")
            clear = getattr(mx, "clear_cache", None) or getattr(getattr(mx, "metal", None), "clear_cache", None)
            if clear is not None:
                clear()  # return the freed buffers to the system (Metal or CPU), not just to MLX's pool
            return True

        try:
            future = executor.submit(release)
        except RuntimeError:  # `aclose` shut the worker down meanwhile: nothing is left to unload
            return False
        return await asyncio.wrap_future(future)

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            def release() -> None:
                self._model = self._processor = None
                try:  # MLX streams belong to the thread that made them: free them on it
                    from mlx_vlm._stream_cleanup import clear_mlx_streams
                except ImportError:
                    return
                clear_mlx_streams()

            await asyncio.wrap_future(executor.submit(release))
            executor.shutdown(wait=False)
        self._model = self._processor = None


def _exp(logprob: Any) -> float:
    import math

    return math.exp(float(logprob))
