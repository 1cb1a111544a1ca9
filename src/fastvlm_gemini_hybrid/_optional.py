"""Import optional dependencies lazily, failing with the exact pip command to run."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import `module`, or raise `MissingDependencyError` naming `pip install '...[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only translate "this package is absent", not a broken import inside it.
        missing = getattr(exc, "name", None) or ""
        if missing and not (
            module == missing or module.startswith(missing + ".") or missing.startswith(module.split(".")[0])
        ):
            raise
        raise MissingDependencyError(extra, feature or module) from None
