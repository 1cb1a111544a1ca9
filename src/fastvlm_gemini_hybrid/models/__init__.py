"""Local models: the catalogue of known checkpoints, downloading them, building tiny test models,
and the in-process runtime that the `fastvlm` backend drives.

Nothing here imports torch or transformers at module import time; `models list` and `--help` stay fast.
"""

from __future__ import annotations

from .catalogue import CATALOGUE, LICENCE_NOTE, ModelSpec, ResolvedModel, model_status, resolve_model

__all__ = ["CATALOGUE", "LICENCE_NOTE", "ModelSpec", "ResolvedModel", "model_status", "resolve_model"]
