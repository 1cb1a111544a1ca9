"""The one catalogue of product backends: name -> where the class lives -> what it can take.

Both the router (which plans from data, without importing torch or google-genai) and the registry
(which builds backends) read this table, and each backend class takes its `capabilities` from it, so
there is no second copy to disagree. `tests/core/test_catalogue.py` builds every product backend and
checks it against its entry.

`models` lists the model-name prefixes a backend serves, so that `--model gemini-2.5-flash` pins the
request to Gemini (routing/router.py); settings can add to it like any other capability.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..types import BackendKind
from .base import Capabilities


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    target: str  # "module:Class", imported only when the backend is built
    capabilities: Capabilities
    summary: str
    #: media the processor converts into pictures for this backend (DICOM rendered, video sampled), so the
    #: router may send them; the cloud gets neither (DICOM is a medical record; video goes to Gemini whole)
    converted: frozenset[str] = frozenset()


def _entries(*entries: CatalogueEntry) -> dict[str, CatalogueEntry]:
    return {e.name: e for e in entries}


CATALOGUE: dict[str, CatalogueEntry] = _entries(
    CatalogueEntry(
        "fastvlm", "fastvlm_gemini_hybrid.backends.fastvlm:FastVLMBackend",
        Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image"}), max_images=4, streaming=True,
                     batching=True, confidence=True, conversation=True, models=("fastvlm", "apple/fastvlm")),
        "Apple FastVLM in-process through transformers (PyTorch: CPU, CUDA, MPS)",
        converted=frozenset({"dicom", "video"}),
    ),
    CatalogueEntry(
        "mlx", "fastvlm_gemini_hybrid.backends.mlx:MLXBackend",
        Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image"}), max_images=1, streaming=True,
                     confidence=True, conversation=True, models=("mlx-community/", "fastvlm")),
        "FastVLM through mlx-vlm (Apple Silicon)",
        converted=frozenset({"dicom", "video"}),
    ),
    CatalogueEntry(
        "gemini", "fastvlm_gemini_hybrid.backends.gemini:GeminiBackend",
        Capabilities(kind=BackendKind.CLOUD, media=frozenset({"image", "video", "youtube"}), max_images=3600,
                     streaming=True, batching=True, json_schema=True, conversation=True,
                     models=("gemini-", "models/gemini-", "gemma-", "learnlm-")),
        "Google Gemini through the google-genai SDK, behind the egress gate",
    ),
    CatalogueEntry(
        "openai", "fastvlm_gemini_hybrid.backends.openai_compat:OpenAICompatBackend",
        # Local only when its URL is this machine (privacy/locality.py decides; the kind here is the default).
        Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image"}), max_images=8, streaming=True,
                     json_schema=True, conversation=True),
        "any OpenAI-compatible server (vLLM, Ollama, llama.cpp)",
    ),
)


def capabilities_of(name: str) -> Capabilities:
    return CATALOGUE[name].capabilities


def routable(name: str, caps: Capabilities) -> Capabilities:
    """What the router may send to backend `name`: its capabilities plus the media the processor converts
    for it (processor._adapt), when `name` is a catalogue backend that reads pictures on this machine; and
    the catalogue's model names when the backend declares none (a backend built in place of a product one)."""
    entry = CATALOGUE.get(name)
    if entry is None:
        return caps
    if not caps.models and entry.capabilities.models:
        caps = replace(caps, models=entry.capabilities.models)
    if entry.converted and not caps.is_cloud and "image" in caps.media:
        caps = replace(caps, media=caps.media | entry.converted)
    return caps
