"""The local FastVLM backend on PyTorch (transformers' native `fast_vlm` classes).

`FastVLMBackend(settings)` is cheap: it resolves nothing and imports no torch until the first request
(or `health()`/`load()`), so building a processor or printing `--help` stays fast. One model is loaded
per backend and shared by every concurrent request: a lock serialises the blocking torch work, which runs
in a worker thread (`asyncio.to_thread`) so the event loop keeps serving other requests meanwhile.
A model that is not downloaded raises `ModelNotDownloadedError` naming `fastvlm-hybrid models pull NAME`;
that error lets the processor fall back to another backend.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import (
    BackendError,
    BackendUnavailableError,
    BadInputError,
    HybridError,
    MissingDependencyError,
    ModelNotDownloadedError,
)
from ..types import Generation, Request, Usage
from .base import Backend, Health, settings_or_default
from .catalogue import capabilities_of
from .threadstream import StreamClosed, ThreadStream

if TYPE_CHECKING:
    from ..config import Settings
    from ..models.catalogue import ResolvedModel
    from ..models.ort_runtime import OrtRuntime
    from ..models.runtime import FastVLMRuntime, GenItem, GenOutput, TokenCallback

    LocalRuntime = FastVLMRuntime | OrtRuntime  # models/engine.py picks one


class FastVLMBackend(Backend):
    """FastVLM (or another image-text-to-text model) in this process, on CUDA, MPS or CPU."""

    name = "fastvlm"
    capabilities = capabilities_of("fastvlm")  # backends/catalogue.py, the one table

    def __init__(self, settings: Settings | None = None, *, model: str | None = None) -> None:
        self.settings = settings = settings_or_default(settings)
        self.model_name = model or settings.local_model
        self.default_model = self.model_name
        self._runtime: LocalRuntime | None = None
        self._resolved: ResolvedModel | None = None
        self._load_error: BaseException | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.load_seconds: float | None = None

    # ------------------------------------------------------------------ loading
    def resolve(self) -> ResolvedModel:
        """The model directory to load (`ModelNotDownloadedError` if absent)."""
        from ..models.catalogue import resolve_model

        return resolve_model(self.model_name, self.settings.models_dir)

    def load(self) -> LocalRuntime:
        """Load the model now (blocking, idempotent); later calls return the same runtime."""
        if self._runtime is not None:
            return self._runtime
        with self._load_lock:
            if self._runtime is not None:
                return self._runtime
            import time

            from ..models.engine import make_runtime

            start = time.perf_counter()
            try:
                resolved = self.resolve()
                runtime = make_runtime(resolved.path, self.settings)
                runtime.load()
            except MissingDependencyError as exc:
                # "not installed" makes this backend unavailable; another backend may still answer
                self._load_error = BackendUnavailableError(str(exc), backend=self.name)
                raise self._load_error from None
            except HybridError as exc:
                self._load_error = exc
                raise
            self._resolved, self._runtime = resolved, runtime
            self._load_error = None
            self.default_model = resolved.name
            self.load_seconds = time.perf_counter() - start
            return runtime

    @property
    def runtime(self) -> LocalRuntime | None:
        """The loaded runtime, or None before the first request."""
        return self._runtime

    # ------------------------------------------------------------------ requests
    def _items(self, requests: list[Request]) -> list[GenItem]:
        from ..models.items import GenItem, ImageInput

        items = []
        for req in requests:
            self.check(req)
            if any(not a.data for a in req.attachments):
                raise BadInputError(f"{self.name} needs image bytes; URLs must be downloaded first")
            # the digest keys the vision cache, so recompute it rather than trust an empty field
            images = tuple(ImageInput(data=a.data, sha256=a.sha256, name=a.name) if a.sha256
                           else ImageInput.from_bytes(a.data, a.name) for a in req.attachments if a.data)
            history = tuple((t.role, t.text, t.images) for t in req.history)
            items.append(GenItem(prompt=req.prompt, images=images, options=req.options, history=history))
        return items

    def _to_generation(self, out: GenOutput) -> Generation:
        usage = Usage(input_tokens=out.input_tokens, output_tokens=out.output_tokens, cost_usd=0.0)
        return Generation(text=out.text, model=self.default_model, usage=usage, confidence=out.confidence,
                          finish_reason=out.finish_reason)

    def _run(self, items: list[GenItem], on_token: TokenCallback | None = None) -> list[GenOutput]:
        runtime = self.load()
        with self._run_lock:
            try:
                return runtime.generate(items, on_token)
            except HybridError:
                raise
            except MemoryError:
                raise BackendUnavailableError("out of memory while generating", backend=self.name) from None
            except RuntimeError as exc:
                if "out of memory" in str(exc).lower():
                    raise BackendUnavailableError("out of memory while generating", backend=self.name) from None
                raise BackendError(f"local generation failed: {exc}", backend=self.name) from None

    async def generate(self, request: Request) -> Generation:
        items = self._items([request])
        outs = await asyncio.to_thread(self._run, items)
        return self._to_generation(outs[0])

    async def generate_batch(self, requests: list[Request]) -> list[Generation | BaseException]:
        """All requests in one padded forward pass; bad items fail alone, the rest still run."""
        results: list[Generation | BaseException] = [BadInputError("not run")] * len(requests)
        good: list[int] = []
        items = []
        for i, req in enumerate(requests):
            try:
                items.extend(self._items([req]))
                good.append(i)
            except HybridError as exc:
                results[i] = exc
        if items:
            try:
                outs = await asyncio.to_thread(self._run, items)
            except BadInputError:
                if len(items) == 1:
                    raise
                return await super().generate_batch(requests)  # find which item is bad, one by one
            for i, out in zip(good, outs, strict=True):
                results[i] = self._to_generation(out)
        return results

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield text pieces as tokens are produced; the pieces join to the full answer."""
        items = self._items([request])
        channel = ThreadStream()
        state: dict[str, Any] = {"ids": [], "sent": ""}

        def on_token(_row: int, token: int) -> None:
            if channel.stopped:
                raise StreamClosed  # the consumer went away: stop generating
            state["ids"].append(token)
            text = state["tokenizer"].decode(state["ids"], skip_special_tokens=True)
            if text.endswith("\ufffd"):
                return  # half of a multi-byte character; wait for the rest
            piece, state["sent"] = text[len(state["sent"]):], text
            if piece:
                channel.put(piece)

        def work() -> None:
            # This stream's own tokenizer: an idle unload (keep-alive) may drop `self._runtime` meanwhile.
            state["tokenizer"] = self.load().tokenizer
            outs = self._run(items, on_token)
            rest = outs[0].text[len(state["sent"]):]
            if rest:
                channel.put(rest)

        async for piece in channel.pieces(work, asyncio.to_thread):
            yield piece

    # ------------------------------------------------------------------ state
    async def health(self) -> Health:
        """Ready when loaded, or when the weights are there and the extra is installed; else why not."""
        extra = {"model": self.model_name}
        rt, loaded = self._runtime, self._resolved  # set together by `load`
        if rt is not None and loaded is not None:
            from ..models.engine import engine_name

            engine, weights = engine_name(rt), rt.quantize or str(rt.dtype).replace("torch.", "")
            vision = getattr(rt, "vision_weights", None) or "fp32"  # the ONNX engine's encoder may be int8
            shown = weights if vision == "fp32" else f"{weights}, vision {vision}"
            return Health(True, f"loaded {self.default_model} on {rt.device} ({engine}, {shown})",
                          {**extra, "path": str(loaded.path), "device": rt.device, "engine": engine,
                           "weights": weights, "vision_weights": vision,
                           **({"decoder": rt.decoder_graph} if hasattr(rt, "decoder_graph") else {})})
        if isinstance(self._load_error, BackendUnavailableError) and not isinstance(
                self._load_error, ModelNotDownloadedError):
            return Health(False, str(self._load_error), extra)
        try:
            resolved = self.resolve()
        except HybridError as exc:
            return Health(False, str(exc), extra)
        import importlib.util

        missing = [m for m in ("torch", "transformers", "timm") if importlib.util.find_spec(m) is None]
        if missing:
            return Health(False, f"missing {', '.join(missing)}: pip install 'fastvlm-gemini-hybrid[local]'", extra)
        return Health(True, f"{resolved.name} is downloaded at {resolved.path} (loads on first use)",
                      {**extra, "path": str(resolved.path), "loaded": False})

    async def unload(self) -> bool:
        """Drop the loaded model (weights, processor, vision and prefix caches); the next request loads it again.

        Declines (False) while the model is loading or generating: the locks are only tried, never waited
        for, so an idle timer cannot stall behind a long answer and the caller tries again later. The
        runtime is released, not closed: a request that picked it up just before the lock was taken
        finishes on it, and its memory goes with the last reference (then the allocator's cache is emptied).
        """
        if self._runtime is None:
            return False

        def release() -> bool:
            if not self._load_lock.acquire(blocking=False):
                return False
            try:
                if not self._run_lock.acquire(blocking=False):
                    return False
                try:
                    runtime, self._runtime = self._runtime, None
                finally:
                    self._run_lock.release()
            finally:
                self._load_lock.release()
            if runtime is None:
                return False
            del runtime
            import gc
            import sys

            gc.collect()  # modules hold reference cycles; collect them now, not at some later allocation
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()  # hand the freed blocks back to the device, so other processes see them
            elif torch is not None and torch.backends.mps.is_available():
                torch.mps.empty_cache()
            return True

        return await asyncio.to_thread(release)  # gc and the device calls take a while: off the event loop

    async def aclose(self) -> None:
        if self._runtime is not None:
            with self._run_lock:
                self._runtime.close()
            self._runtime = None
