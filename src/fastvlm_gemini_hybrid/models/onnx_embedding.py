"""The token-embedding table of an ONNX export, read straight from its file: a lookup, not a session.

Why: `embed_tokens.onnx` is one Gather over a (vocabulary x hidden) fp32 table, 545 MB for FastVLM-0.5B.
An ONNX Runtime session over it copies the whole table into the process, yet a prompt reads a few hundred
rows of it. Mapping the export's external-data file read-only instead makes only the rows used resident,
as clean file-backed pages the kernel can drop and re-read, and costs no accuracy (the same fp32 values).
A table stored inside the .onnx file (small models) is loaded as an array.

    EmbeddingTable.open(path)  -> ConfigurationError  (not a single-Gather embedding export)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import ConfigurationError


class EmbeddingTable:
    """`table[ids]` as fp32 embeddings, for ids of any shape."""

    def __init__(self, table: np.ndarray) -> None:
        if table.ndim != 2:
            raise ConfigurationError(f"an embedding table has two dimensions, not {table.shape}")
        self.table = table

    @property
    def vocab_size(self) -> int:
        return int(self.table.shape[0])

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ConfigurationError(f"token id out of the embedding table's range 0..{self.vocab_size - 1}")
        return np.asarray(self.table[ids], dtype=np.float32)  # fancy indexing copies: the result is writable

    @classmethod
    def open(cls, path: Path) -> EmbeddingTable:
        """The table of the Gather in the ONNX model at `path` (memory-mapped when stored as external data)."""
        onnx = require("onnx", "browser", "the ONNX Runtime engine")
        from onnx import numpy_helper

        model = onnx.load(str(path), load_external_data=False)
        gathers = [n for n in model.graph.node if n.op_type == "Gather"]
        inits = {t.name: t for t in model.graph.initializer}
        if len(gathers) != 1 or gathers[0].input[0] not in inits:
            raise ConfigurationError(f"{path} is not a single-Gather embedding export")
        tensor = inits[gathers[0].input[0]]
        if tensor.data_type != onnx.TensorProto.FLOAT:
            raise ConfigurationError(f"{path}: the embedding table is not fp32")
        shape = tuple(int(d) for d in tensor.dims)
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return cls(numpy_helper.to_array(tensor).astype(np.float32, copy=False))
        info = {e.key: e.value for e in tensor.external_data}
        data = (path.parent / info["location"]).resolve()
        if path.parent.resolve() not in data.parents:
            raise ConfigurationError(f"{path}: external data outside the model's folder")
        offset, length = int(info.get("offset", 0)), int(info.get("length", 4 * int(np.prod(shape))))
        if length != 4 * int(np.prod(shape)) or data.stat().st_size < offset + length:
            raise ConfigurationError(f"{path}: external data {data.name} does not hold the {shape} table")
        return cls(np.memmap(data, dtype=np.float32, mode="r", offset=offset, shape=shape))
