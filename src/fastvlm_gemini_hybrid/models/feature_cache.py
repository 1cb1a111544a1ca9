"""The caches both local engines keep (torch's `FastVLMRuntime`, ONNX Runtime's `OrtRuntime`), without torch.

Why a module of its own: the ONNX Runtime engine must not import torch (the CUDA wheel alone adds about
0.7 GiB of resident memory to a process), so what it shares with the torch engine lives here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .items import ImageInput

TokenCallback = Callable[[int, int], None]  # (row in batch, token id)


class LRU:
    """A tiny LRU map; values are tensors or caches held on the model's device."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        if self.size <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def cached_features(runtime: Any, images: list[ImageInput], encode: Callable[[list[ImageInput]], Any]) -> list[Any]:
    """Each image's features from `runtime.vision_cache` (keyed by content and preprocessing), the rest from
    one `encode` call on the images missing; counts hits and encodes in `runtime.stats`. Both engines."""
    out: list[Any] = [None] * len(images)
    todo: list[int] = []
    for i, img in enumerate(images):
        hit = runtime.vision_cache.get((img.sha256, runtime.prep_key))
        if hit is not None:
            out[i] = hit
            runtime.stats["vision_cache_hits"] += 1
        else:
            todo.append(i)
    if todo:
        feats = encode([images[i] for i in todo])
        runtime.stats["vision_encodes"] += len(todo)
        for j, i in enumerate(todo):
            out[i] = feats[j]
            runtime.vision_cache.put((images[i].sha256, runtime.prep_key), feats[j])
    return out
