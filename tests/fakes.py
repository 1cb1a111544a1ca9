"""Fake backends and the `HybridVLMProcessor`s over them: the one processor factory of the suite.

    make_processor(settings, local="local answer", cloud="cloud answer", *,
                   local_kw=None, cloud_kw=None, backends=None, **processor_kw) -> HybridVLMProcessor

`local` / `cloud` give the "fastvlm" (local) and "gemini" (cloud) backends: an answer string or a responder
`fn(request)` (wrapped in a `FunctionBackend`, with `local_kw` / `cloud_kw` as its keyword arguments:
delay_s, confidence, capabilities, model), a ready `Backend` (a real `GeminiBackend`, a batching
subclass) used as it is, or None for no such backend. `backends` adds more by name, or replaces those two.
`processor_kw` go to `HybridVLMProcessor` (cache, audit, router, metrics, clock).

A plain module rather than tests/conftest.py, which pytest imports as a bare `conftest` that other
folders' conftest.py files replace in `sys.modules`: this one is importable by name from anywhere the
tests folder is on the path (`from fakes import make_processor`), worker subprocesses included.
tests/conftest.py hands it out as the `processor_factory` fixture; tests/core/test_test_layout.py
keeps it the only one.
"""

from __future__ import annotations

from typing import Any

from fastvlm_gemini_hybrid.backends.base import Backend
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import Settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor


def _backend(name: str, kind: str, answer: Any, kw: dict[str, Any] | None) -> Backend:
    if isinstance(answer, Backend):
        if kw:
            raise TypeError(f"{name}: backend keyword arguments {sorted(kw)} given with a ready backend")
        return answer
    return FunctionBackend(name, answer, kind=kind, **(kw or {}))


def fake_backends(local: Any = "local answer", cloud: Any = "cloud answer", *,
                  local_kw: dict[str, Any] | None = None, cloud_kw: dict[str, Any] | None = None,
                  backends: dict[str, Backend] | None = None) -> dict[str, Backend]:
    """The backends `make_processor` builds, by name ("fastvlm" local, "gemini" cloud, then `backends`)."""
    out: dict[str, Backend] = {}
    if local is not None:
        out["fastvlm"] = _backend("fastvlm", "local", local, local_kw)
    if cloud is not None:
        out["gemini"] = _backend("gemini", "cloud", cloud, cloud_kw)
    out.update(backends or {})
    return out


def make_processor(settings: Settings, local: Any = "local answer", cloud: Any = "cloud answer", *,
                   local_kw: dict[str, Any] | None = None, cloud_kw: dict[str, Any] | None = None,
                   backends: dict[str, Backend] | None = None, **processor_kw: Any) -> HybridVLMProcessor:
    """A processor over `fake_backends(local, cloud, ...)`; `processor_kw` go to `HybridVLMProcessor`."""
    made = fake_backends(local, cloud, local_kw=local_kw, cloud_kw=cloud_kw, backends=backends)
    return HybridVLMProcessor(settings, backends=made, **processor_kw)
