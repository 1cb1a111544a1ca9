"""One catalogue of backends: every product backend, built as users get it, has the catalogue's
capabilities, and the router plans with the same table (plus what the processor converts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.backends.catalogue import CATALOGUE, routable
from fastvlm_gemini_hybrid.backends.registry import BACKENDS, create_backend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.routing import STATIC_CAPABILITIES, configured_backends


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_product_backend_has_the_catalogues_capabilities(name: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    settings = load_settings(home=tmp_path, openai_base_url="http://127.0.0.1:9/v1")
    backend = create_backend(name, settings)
    inner = getattr(backend, "inner", backend)  # the egress gate wraps what leaves the machine
    assert inner.capabilities == CATALOGUE[name].capabilities
    assert type(inner).__module__ + ":" + type(inner).__name__ == BACKENDS[name]


def test_the_router_plans_from_the_same_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    settings = load_settings(home=tmp_path, local_backend="fastvlm", openai_base_url="http://127.0.0.1:9/v1")
    planned = {info.name: info.capabilities for info in configured_backends(settings)}
    assert set(planned) == {"fastvlm", "openai", "gemini"}
    for name, caps in planned.items():
        assert caps == routable(name, CATALOGUE[name].capabilities) == STATIC_CAPABILITIES[name]
    # the facts the two old tables disagreed on
    assert planned["gemini"].batching and planned["gemini"].max_images == 3600
    assert planned["openai"].streaming and planned["openai"].json_schema and planned["openai"].max_images == 8
    # picture readers take DICOM and video because the processor converts them; Gemini takes video itself
    assert {"dicom", "video"} <= planned["fastvlm"].media and "dicom" not in planned["gemini"].media
    assert planned["openai"].media == frozenset({"image"})


def test_models_map_to_backends() -> None:
    assert CATALOGUE["gemini"].capabilities.serves("Gemini-2.5-Flash")
    assert CATALOGUE["gemini"].capabilities.serves("models/gemini-2.5-pro")
    assert CATALOGUE["fastvlm"].capabilities.serves("apple/FastVLM-0.5B")
    assert not CATALOGUE["fastvlm"].capabilities.serves("gemini-2.5-flash")
