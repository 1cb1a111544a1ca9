"""Shared helpers for the MLX tests: one tiny random MLX FastVLM per process (mlx-vlm's own fastvlm
classes, written by `make_tiny_mlx`), loaded through the same `MLXBackend` users run.

Why not a conftest.py in a package: this folder is named `mlx`, and as a test package it would shadow
the real `mlx` library, so it has no `__init__.py`; test modules import this module by name instead.
Every module is skipped only where `mlx` itself cannot be imported (no wheel for this platform); on
Linux x86_64 and Apple Silicon the `mlx` extra installs and these tests must run.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("mlx.core", reason="mlx has no build for this platform (pip install 'fastvlm-gemini-hybrid[mlx]')")
pytest.importorskip("mlx_vlm", reason="mlx-vlm is not installed (pip install 'fastvlm-gemini-hybrid[mlx]')")

from fastvlm_gemini_hybrid.backends.mlx import MLXBackend
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.models.mlx_tiny import make_tiny_mlx
from synth_media import picture_attachment


@functools.lru_cache(maxsize=1)
def tiny_dir() -> Path:
    """Built once per test process (about 5 s, 250 MB: see models/mlx_tiny.py for why) and removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="tiny-mlx-fastvlm-"))
    atexit.register(shutil.rmtree, root, True)
    return make_tiny_mlx(root / "tiny-mlx", seed=0)


def mlx_settings(model: Path | str, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"home": home, "local_model": str(model), "local_backend": "mlx", "device": "cpu"}
    values.update(overrides)
    return load_settings(**values)


@functools.lru_cache(maxsize=1)
def loaded_backend() -> MLXBackend:
    """One loaded backend per process, as one process shares one model."""
    home = Path(tempfile.mkdtemp(prefix="mlx-home-"))
    atexit.register(shutil.rmtree, home, True)
    backend = MLXBackend(mlx_settings(tiny_dir(), home))
    backend.load()
    return backend


#: The MLX tests' picture (tests/synth_media.py draws it): a plain 96x64 PNG; `image()` is it as an attachment.
MLX_COLOR, MLX_SIZE = (200, 40, 40), (96, 64)
image = functools.partial(picture_attachment, f"img-{MLX_COLOR}.png", color=MLX_COLOR, size=MLX_SIZE)
