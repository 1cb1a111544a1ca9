"""Weight-only int8 / int4 for the language model's linear layers, through torch's own CPU kernels.

Why weight-only: decoding one token reads every weight of the decoder and the output head once, so at
batch 1 it is bounded by memory bandwidth: fewer bytes per weight is the only way to go faster. The
activations stay in floating point, so the error is the weights' rounding alone.

Why these kernels: `aten._weight_int8pack_mm` (symmetric int8, one scale per output channel) and
`aten._weight_int4pack_mm_for_cpu` (asymmetric int4 in groups along the input) read the packed weights
directly. Measured on a 2-core AVX2 machine for a 896x4864 layer at batch 1: bf16 dense 0.54 ms, int8
0.35 ms, int4 0.35 ms; for the 151936-row output head 16.7 / 14.3 / 10.3 ms. Both kernels want bf16
activations (in fp32 the int8 kernel is 2x slower than a dense fp32 matmul), so the input is cast to
bf16 and the output back to the model's compute dtype. Alternatives measured and not taken: torch.ao's
dynamic int8 (deprecated; needs the whole model in fp32 first, which made the first token 20x slower and
the peak memory 1.5x higher) and torchao 0.18's `Int8WeightOnlyConfig` (it dequantises on CPU: 1.19 ms
for the same layer, slower than bf16; its CPU int4 packing is not offered).

Why stream the checkpoint: loading the model whole and then quantising peaks at the full-precision size.
`load_weight_only` instead builds the model on the meta device and reads the safetensors one tensor at a
time, quantising each linear weight as it arrives (one fp32 copy of one matrix at a time), so the peak
is close to the final footprint. Anything it cannot place (a renamed key, a missing tensor) makes it
give up, and the caller loads the ordinary way and quantises in place.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

FORMATS = ("int8", "int4")
INT4_GROUP = 128  # 32 halves the rounding error and costs ~1.3x decode time on AVX2 (see the module doc)
DENSE_FROM_ROWS = 16  # int8 inputs with this many rows or more go through a dequantised dense matmul
_ROW_CHUNK = 8192  # rows quantised at once: bounds the fp32 temporary to 8192 x in_features


def _torch() -> Any:
    import torch

    return torch


def quantize_int8(weight: Any) -> tuple[Any, Any]:
    """(out, in) float weight → (int8 weight, per-row bf16 scale), rounding to nearest."""
    torch = _torch()
    q = torch.empty(weight.shape, dtype=torch.int8)
    scales = torch.empty(weight.shape[0], dtype=torch.float32)
    for start in range(0, weight.shape[0], _ROW_CHUNK):
        rows = weight[start:start + _ROW_CHUNK].float()
        scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        q[start:start + _ROW_CHUNK] = torch.round(rows / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        scales[start:start + _ROW_CHUNK] = scale
    return q, scales.to(torch.bfloat16)


def quantize_int4(weight: Any, group: int = INT4_GROUP) -> tuple[Any, Any]:
    """(out, in) float weight → (packed int4 weight, (groups, out, 2) bf16 scales and zeros).

    The kernel computes w = (q - 8) * scale + zero with q in 0..15; min/max per group maps exactly.
    """
    torch = _torch()
    out_features, in_features = weight.shape
    if in_features % group:
        raise ConfigurationError(f"int4 needs in_features divisible by the group size {group}, got {in_features}")
    q = torch.empty(weight.shape, dtype=torch.int32)
    scales_zeros = torch.empty(in_features // group, out_features, 2, dtype=torch.float32)
    for start in range(0, out_features, _ROW_CHUNK):
        rows = weight[start:start + _ROW_CHUNK].float().reshape(-1, in_features // group, group)
        low, high = rows.amin(dim=-1), rows.amax(dim=-1)
        scale = (high - low).clamp(min=1e-12) / 15.0
        codes = torch.round((rows - low[..., None]) / scale[..., None]).clamp_(0, 15)
        q[start:start + _ROW_CHUNK] = codes.reshape(-1, in_features).to(torch.int32)
        scales_zeros[:, start:start + _ROW_CHUNK, 0] = scale.T
        scales_zeros[:, start:start + _ROW_CHUNK, 1] = (low + 8 * scale).T
    packed = torch._convert_weight_to_int4pack_for_cpu(q, 8)
    return packed, scales_zeros.to(torch.bfloat16)


def int4_group(out_features: int, in_features: int, largest: int = INT4_GROUP) -> int:
    """The int4 kernel's group size for this shape (it takes 32..256 dividing the inputs, and outputs in
    multiples of 16); 0 when none fits."""
    if out_features % 16:
        return 0
    return next((g for g in (256, 128, 64, 32) if g <= largest and in_features % g == 0), 0)


class WeightOnlyLinear(_torch().nn.Module):
    """A Linear whose weight is int8 or int4; y = x W^T + b computed by torch's packed-weight kernels."""

    def __init__(self, weight: Any, bias: Any | None, fmt: str, *, group: int = INT4_GROUP) -> None:
        super().__init__()
        if fmt not in FORMATS:
            raise ConfigurationError(f"unknown weight format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.out_features, self.in_features = (int(n) for n in weight.shape)
        self.group = int4_group(self.out_features, self.in_features, group) if fmt == "int4" else 0
        self.fmt = "int8" if fmt == "int4" and not self.group else fmt  # a shape the int4 kernel cannot take
        packed, scales = quantize_int8(weight) if self.fmt == "int8" else quantize_int4(weight, self.group)
        self.register_buffer("packed", packed)
        self.register_buffer("scales", scales)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: Any) -> Any:
        torch = _torch()
        shape = x.shape
        rows = x.reshape(-1, self.in_features)
        if self.fmt == "int8" and rows.shape[0] >= DENSE_FROM_ROWS:
            # a prefill: many rows make the matmul compute-bound, where the packed kernel is up to 2x slower
            # than a dense one; a dequantised copy of one layer at a time costs a few ms
            weight = self.packed.to(x.dtype) * self.scales.to(x.dtype).unsqueeze(1)
            y = torch.nn.functional.linear(rows, weight).reshape(*shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias.to(x.dtype)
        flat = rows.to(torch.bfloat16)
        if self.fmt == "int8":
            y = torch._weight_int8pack_mm(flat, self.packed, self.scales)
        else:
            y = torch._weight_int4pack_mm_for_cpu(flat, self.packed, self.group, self.scales)
        y = y.to(x.dtype).reshape(*shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def weight_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.packed, self.scales))

    def extra_repr(self) -> str:
        extra = f", group={self.group}" if self.fmt == "int4" else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.fmt}{extra}"


class QuantizedEmbedding(_torch().nn.Module):
    """The input embedding as an int8 table with one scale per row. A lookup reads one row, so the table
    costs memory, not speed: when the head is tied to it and int8, the two share one table."""

    def __init__(self, table: Any, scales: Any, out_dtype: Any, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = (int(n) for n in table.shape)
        self.padding_idx = padding_idx
        self.out_dtype = out_dtype
        self.register_buffer("table", table)
        self.register_buffer("scales", scales)

    def forward(self, ids: Any) -> Any:
        return self.table[ids].to(self.out_dtype) * self.scales[ids].to(self.out_dtype).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8"


def quantized_embedding(weight: Any, head: Any, tied: bool, out_dtype: Any,
                        padding_idx: int | None = None) -> QuantizedEmbedding:
    """The embedding for `weight`, sharing the head's int8 table when they are tied."""
    if tied and isinstance(head, WeightOnlyLinear) and head.fmt == "int8":
        return QuantizedEmbedding(head.packed, head.scales, out_dtype, padding_idx)
    table, scales = quantize_int8(weight)
    return QuantizedEmbedding(table, scales, out_dtype, padding_idx)


# ---------------------------------------------------------------------------- which layers
def target_linears(model: Any) -> list[str]:
    """Names of the linear layers to quantise: every Linear of the language model, and the output head."""
    torch = _torch()
    lm = model.model.language_model
    prefix = _name_of(model, lm)
    names = [f"{prefix}.{n}" for n, m in lm.named_modules() if isinstance(m, torch.nn.Linear)]
    if isinstance(getattr(model, "lm_head", None), torch.nn.Linear):
        names.append("lm_head")
    return names


def _name_of(root: Any, module: Any) -> str:
    return next(name for name, m in root.named_modules() if m is module)


def _set_module(root: Any, name: str, module: Any) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def quantize_in_place(model: Any, fmt: str, *, group: int = INT4_GROUP) -> int:
    """Swap the language model's linears (and the head) for `WeightOnlyLinear`s; returns how many."""
    names = target_linears(model)
    for name in names:
        linear = model.get_submodule(name)
        _set_module(model, name, WeightOnlyLinear(linear.weight.detach(), linear.bias, fmt, group=group))
    return len(names)


# ---------------------------------------------------------------------------- streaming load
_SAFETENSORS_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64",
                       "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _checkpoint_tensors(path: Path) -> Iterator[tuple[str, Any]]:
    """(name, tensor) for every tensor of the checkpoint, each read into memory of its own.

    Read with plain file reads rather than safetensors' memory map: a mapped file's pages count in the
    process's resident memory while it is open, so mapping a 1.2 GB checkpoint to stream it would put
    the whole file into the peak we are trying to keep down."""
    torch = _torch()
    index = path / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() \
        else ["model.safetensors"]
    for file in files:
        with open(path / file, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
            base = 8 + header_len
            entries = sorted((v["data_offsets"][0], k, v) for k, v in header.items() if k != "__metadata__")
            for begin, key, info in entries:
                dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
                if dtype is None:
                    raise ConfigurationError(f"{file}: tensor {key} has dtype {info['dtype']}, not supported here")
                buffer = bytearray(info["data_offsets"][1] - begin)
                handle.seek(base + begin)
                handle.readinto(buffer)
                tensor = torch.frombuffer(buffer, dtype=getattr(torch, dtype)) if buffer else \
                    torch.empty(0, dtype=getattr(torch, dtype))
                yield key, tensor.reshape(info["shape"])


def load_weight_only(transformers: Any, path: Path, config: Any, fmt: str, compute_dtype: Any,
                     attn: str | None) -> Any | None:
    """The model with quantised linears, built tensor by tensor; None when the checkpoint does not map
    one to one onto the model's own names (the caller then loads the ordinary way)."""
    torch = _torch()
    extra = {"attn_implementation": attn} if attn else {}
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(config, dtype=compute_dtype, **extra)
    targets = set(target_linears(model))
    wanted = set(model.state_dict().keys())
    embed_name = _name_of(model, model.get_input_embeddings()) + ".weight"
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    tied = "lm_head" in targets and bool(getattr(text_config, "tie_word_embeddings", False))
    seen: set[str] = set()
    biases: dict[str, Any] = {}  # a bias may arrive before its weight (the files are sorted by name)
    since_trim = 0
    for key, tensor in _checkpoint_tensors(path):
        since_trim += tensor.numel() * tensor.element_size()
        if since_trim > 128 * 2**20:
            since_trim = _release_freed_memory()
        module_name, _, leaf = key.rpartition(".")
        if key not in wanted:
            return None
        seen.add(key)
        if module_name in targets and leaf == "bias":
            biases[module_name] = tensor.to(compute_dtype)
            if isinstance(model.get_submodule(module_name), WeightOnlyLinear):
                model.get_submodule(module_name).bias = biases[module_name]
        elif module_name in targets and leaf == "weight":
            _set_module(model, module_name, WeightOnlyLinear(tensor, biases.get(module_name), fmt))
        elif key != embed_name:
            _assign(model, key, tensor, compute_dtype)
        if key == embed_name:
            if tied and "lm_head.weight" not in seen:
                _set_module(model, "lm_head", WeightOnlyLinear(tensor, None, fmt))
                seen.add("lm_head.weight")
            old = model.get_input_embeddings()
            model.set_input_embeddings(quantized_embedding(tensor, model.get_submodule("lm_head") if tied else None,
                                                           tied, compute_dtype, old.padding_idx))
    missing = wanted - seen
    if missing:
        return None
    _rebuild_rotary(model)
    _release_freed_memory()
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        return None
    return model


def _release_freed_memory() -> int:
    """Hand freed heap memory back to the OS (glibc keeps it otherwise: the per-tensor temporaries of a
    streamed load would then add up to hundreds of MB of peak). A no-op elsewhere; returns 0."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)
    return 0


_libc: Any = None


def _assign(model: Any, key: str, tensor: Any, dtype: Any) -> None:
    torch = _torch()
    module_name, _, leaf = key.rpartition(".")
    module = model.get_submodule(module_name)
    value = tensor.to(dtype) if tensor.is_floating_point() else tensor
    if leaf in module._parameters:
        module._parameters[leaf] = torch.nn.Parameter(value, requires_grad=False)
    else:
        module._buffers[leaf] = value


def _rebuild_rotary(model: Any) -> None:
    """Rotary embeddings hold non-persistent buffers (not in the checkpoint): build them for real."""
    for name, module in list(model.named_modules()):
        if hasattr(module, "inv_freq") and getattr(module.inv_freq, "is_meta", False):
            _set_module(model, name, type(module)(config=module.config))


def finish_in_place(model: Any, fmt: str, compute_dtype: Any) -> Any:
    """The fallback path: a model loaded whole, quantised afterwards."""
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    quantize_in_place(model, fmt)
    model.set_input_embeddings(quantized_embedding(embed.weight.detach(), model.get_output_embeddings(), tied,
                                                   compute_dtype, embed.padding_idx))
    return model


def weight_bytes_per_token(model: Any) -> int:
    """Bytes of the language model's weights one decode step reads (the embedding reads one row)."""
    lm = model.model.language_model
    total = 0
    for module in [*lm.modules(), model.lm_head]:
        if isinstance(module, WeightOnlyLinear):
            total += module.weight_bytes()
        elif not isinstance(module, QuantizedEmbedding):
            total += sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
    return total


def logits_error(reference: Any, candidate: Any) -> dict[str, float]:
    """How far `candidate` logits (positions, vocab) are from `reference`: per position the relative error
    ||c - r|| / ||r||, its max and mean, and the share of positions whose top-1 token agrees."""
    torch = _torch()
    ref, cand = reference.float(), candidate.float()
    rel = (cand - ref).norm(dim=-1) / ref.norm(dim=-1).clamp(min=1e-12)
    agree = (cand.argmax(dim=-1) == ref.argmax(dim=-1)).float()
    return {"max_rel_err": float(rel.max()), "mean_rel_err": float(rel.mean()),
            "top1_agreement": float(agree.mean()), "positions": int(torch.numel(rel))}
