"""Routing: decide, as a pure and explainable function, which backends may see a request.

    router = Router(configured_backends(settings), load_rules(settings.rules_file))
    router.decide(Request(prompt="What does this MRI show?", attachments=...))

`configured_backends` describes the backends the settings name from static data only, so the
`route` command can explain a decision without importing torch or google-genai.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Capabilities
from ..backends.catalogue import CATALOGUE, routable
from ..errors import ConfigurationError
from ..privacy.locality import openai_is_local
from ..types import BackendKind
from .router import BackendInfo, Router
from .rules import RuleSet, load_rules
from .signals import Signals, detect_signals

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "STATIC_CAPABILITIES",
    "BackendInfo",
    "Router",
    "RuleSet",
    "Signals",
    "configured_backends",
    "detect_signals",
    "load_rules",
    "resolve_local_backend",
]

#: What the router may send to each backend: the catalogue's capabilities (backends/catalogue.py, the
#: one table), with DICOM and video for the picture readers, which the processor converts for them.
STATIC_CAPABILITIES: dict[str, Capabilities] = {name: routable(name, e.capabilities) for name, e in CATALOGUE.items()}

GEMINI_KEY_HINT = "gemini needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)"
OPENAI_URL_HINT = "openai needs a server: set FASTVLM_HYBRID_OPENAI_BASE_URL"


def _apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def resolve_local_backend(setting: str) -> str:
    choice = (setting or "auto").strip().lower()
    if choice == "auto":
        # MLX on Apple Silicon when its extra is installed; PyTorch (MPS, CUDA or CPU) everywhere else.
        return "mlx" if _apple_silicon() and importlib.util.find_spec("mlx_vlm") is not None else "fastvlm"
    if choice not in ("fastvlm", "mlx", "openai"):
        raise ConfigurationError(f"unknown local_backend {setting!r}; choose auto, fastvlm, mlx or openai")
    return choice


def _capabilities(name: str, overrides: dict[str, dict[str, Any]]) -> Capabilities:
    caps = STATIC_CAPABILITIES[name]
    extra = overrides.get(name)
    if not extra:
        return caps
    try:  # an override says what the router may send, literally (media: [image] keeps video away)
        return caps.with_overrides(extra)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"invalid capabilities override for {name}: {exc}") from None


def configured_backends(settings: Settings) -> list[BackendInfo]:
    """The backends `settings` name, local first: the chosen local backend, an OpenAI-compatible
    server when one is configured, then Gemini (listed unavailable, with the fix, without a key)."""
    overrides = dict(settings.capabilities or {})
    local = resolve_local_backend(settings.local_backend)
    names = [local]
    if settings.openai_base_url and "openai" not in names:
        names.append("openai")
    names.append("gemini")
    out: list[BackendInfo] = []
    for name in names:
        caps = _capabilities(name, overrides)
        if name == "openai" and not openai_is_local(settings) and not caps.is_cloud:
            # Another host is another machine: the router plans it as cloud, the registry gates it.
            caps = replace(caps, kind=BackendKind.CLOUD)
        if name == "gemini" and settings.gemini_api_key is None:
            out.append(BackendInfo(name, caps, available=False, unavailable_reason=GEMINI_KEY_HINT))
        elif name == "openai" and not settings.openai_base_url:
            out.append(BackendInfo(name, caps, available=False, unavailable_reason=OPENAI_URL_HINT))
        else:
            out.append(BackendInfo(name, caps))
    return out
