"""Product backends by name. Only these can be named in configuration; the test-only
`FunctionBackend` is deliberately absent, so no setting can route real traffic to it.

Every backend that is not on this machine (Gemini; an OpenAI-compatible server at a non-loopback,
untrusted URL) is built inside the egress gate (privacy/gate.py): `create_backend` never returns a
cloud backend without it.

Constructing a backend is cheap by contract (no model load, no network client): the heavy work
happens on first use, so listing or routing never pays for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import BackendUnavailableError, ConfigurationError
from .catalogue import CATALOGUE

if TYPE_CHECKING:
    from ..config import Settings
    from ..privacy.inspector import Inspector
    from .base import Backend

#: name -> "module:Class", from the one catalogue (backends/catalogue.py)
BACKENDS: dict[str, str] = {name: entry.target for name, entry in CATALOGUE.items()}


def create_backend(name: str, settings: Settings, inspector: Inspector | None = None) -> Backend:
    """The product backend called `name`, behind the egress gate when it is not on this machine.

    `inspector` is the processor's (shared cache); a new one under `settings`' policy otherwise."""
    target = BACKENDS.get(name)
    if target is None:
        raise ConfigurationError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise BackendUnavailableError(f"the {name} backend is not part of this build", name) from None
        raise
    backend: Backend = getattr(module, class_name)(settings)
    overrides = settings.capabilities.get(name)
    if overrides:
        if str(overrides.get("kind", "")).lower() == "local" and backend.capabilities.is_cloud:
            raise ConfigurationError(
                f"{name} is not on this machine, so a capabilities override cannot make it local; "
                "set FASTVLM_HYBRID_OPENAI_TRUSTED=true if that server is yours"
            )
        backend.capabilities = backend.capabilities.with_overrides(overrides)
    if backend.capabilities.is_cloud:
        from ..privacy.gate import EgressGate
        from ..privacy.inspector import Inspector, PrivacyPolicy

        backend = EgressGate(backend, inspector or Inspector(PrivacyPolicy.from_settings(settings)))
    return backend
