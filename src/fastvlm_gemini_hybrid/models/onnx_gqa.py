"""The ONNX Runtime engine's decoder, built by onnxruntime-genai's model builder (GroupQueryAttention).

Why: the TorchScript export of Qwen2 writes each layer as about 110 small nodes (rotary embedding, mask
arithmetic, repeat_kv, softmax, KV concat), and ONNX Runtime's optimiser fuses only the layer norms, so
one q8 decode step of the 0.5B model dispatched 2,670 nodes. The builder writes a layer as about 11: a
packed QKV MatMul, one `GroupQueryAttention` (rotary, KV append and attention in one kernel) and fused
`SkipSimplifiedLayerNormalization`s; 275 nodes in all. Measured on the full-size 0.5B, 2 cores
(benchmarks/ort_decoder_graphs.py: one process per graph, 272-token prefill then 32 steps, best of 3):
fp32 decode 14.8 against 11.9 tok/s, q8 34.2 against 29.9, fp32 prefill 0.94x the time, and the two fp32
graphs' logits 2e-6 apart.

What the engine (models/ort_runtime.py) must do differently with this graph:
- there is no `position_ids` input: GroupQueryAttention takes each row's length from the attention
  mask's sum, so a row's tokens come first and its padding after (right padding), and rows of a batch
  are prefilled one at a time and their caches stacked;
- the builder's logits cover every position; `_keep_last_position` puts a Slice before the head, so a
  prefill pays for one row of the 150k-wide head, not one per prompt token.

The builder is optional (it ships in onnxruntime-genai, part of the `browser` extra). Without it, or for a
language model it does not support, `build_decoder` raises `BuilderUnavailable` saying why, and the
export falls back to the TorchScript decoder (models/onnx_export.py), which the engine runs as before.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

#: the graph's inputs and outputs the engine relies on, besides the per-layer past / present tensors
_INPUTS = {"inputs_embeds", "attention_mask"}
_LOGITS = "logits"


class BuilderUnavailable(Exception):
    """The builder is not installed, does not know this language model, or wrote an unexpected graph."""


def builder_available() -> bool:
    try:
        import onnxruntime_genai.models.builder  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a native library that fails to load
        return False
    return True


def build_decoder(model: Any, tokenizer: Any, workdir: Path) -> Path:
    """Build the GroupQueryAttention decoder of FastVLM `model` (fp32, loaded) under `workdir`; return
    the graph's path (weights beside it). Raises `BuilderUnavailable` when it cannot."""
    if not builder_available():
        raise BuilderUnavailable("onnxruntime-genai is not installed (pip install 'fastvlm-gemini-hybrid[browser]')")
    from onnxruntime_genai.models import builder

    lm_dir, out_dir, cache = workdir / "lm", workdir / "out", workdir / "cache"
    _save_language_model(model, tokenizer, lm_dir)
    args = (str(lm_dir), str(lm_dir), str(out_dir), "fp32", "cpu", str(cache))
    log = io.StringIO()
    try:  # the builder prints its options and a progress bar per tensor on stdout / stderr
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            warnings.simplefilter("ignore")
            options = builder.parse_extra_options(*args, ["exclude_embeds=true", "hf_token=false"])
            builder.create_model(*args, **options)
    except Exception as exc:  # noqa: BLE001 - the builder raises bare Exceptions for unknown models
        raise BuilderUnavailable(f"the onnxruntime-genai builder failed ({type(exc).__name__}: "
                                 f"{str(exc)[:200]})") from None
    built = out_dir / "model.onnx"
    _check_layout(built, int(model.config.text_config.num_hidden_layers))
    _keep_last_position(built)
    return built


def _save_language_model(model: Any, tokenizer: Any, lm_dir: Path) -> None:
    """The language model as a stand-alone `*ForCausalLM` checkpoint: what the builder reads."""
    from safetensors.torch import save_file

    lm_dir.mkdir(parents=True)
    text = model.config.text_config
    config = text.to_dict()
    base = type(model.model.language_model).__name__.removesuffix("Model")  # Qwen2Model -> Qwen2ForCausalLM
    config["architectures"] = [f"{base}ForCausalLM"]
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    config["tie_word_embeddings"] = tied
    config["dtype"] = "float32"  # the weights written below; transformers 5 loads in the config's dtype
    config.pop("torch_dtype", None)
    (lm_dir / "config.json").write_text(json.dumps(config))
    weights = {f"model.{k}": v.contiguous() for k, v in model.model.language_model.state_dict().items()}
    if not tied:
        weights["lm_head.weight"] = model.lm_head.weight.detach().contiguous()
    save_file(weights, str(lm_dir / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(str(lm_dir))


def _check_layout(path: Path, layers: int) -> None:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = {i.name for i in graph.input}
    pasts = {f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")}
    if not (_INPUTS | pasts) <= inputs or "position_ids" in inputs or graph.output[0].name != _LOGITS:
        raise BuilderUnavailable(f"the builder's decoder has inputs {sorted(inputs)[:4]}..., not the layout "
                                 "the engine runs")
    if not any(n.op_type == "GroupQueryAttention" for n in graph.node):
        raise BuilderUnavailable("the builder's decoder has no GroupQueryAttention")


def _keep_last_position(path: Path) -> None:
    """Slice the final hidden states to the last position before the LM head (in place, graph only)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    head = next(n for n in graph.node if _LOGITS in n.output)
    bounds = {"last_position_start": [-1], "last_position_end": [np.iinfo(np.int64).max], "last_position_axis": [1]}
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in bounds.items())
    sliced = helper.make_node("Slice", [head.input[0], *bounds], ["last_position_hidden"], name="/lm_head/last")
    graph.node.insert(list(graph.node).index(head), sliced)
    head.input[0] = "last_position_hidden"
    logits = next(o for o in graph.output if o.name == _LOGITS)
    logits.type.tensor_type.shape.dim[1].dim_value = 1
    onnx.save(model, str(path))


__all__ = ["BuilderUnavailable", "build_decoder", "builder_available"]
