"""The decode loop: choose tokens (greedy or temperature + top-p, seeded), stop on the chat template's
end token, report each token for streaming, and turn chosen-token probabilities into a confidence.

Confidence is a low quantile (the 10th percentile) of the probabilities the model gave the tokens it
actually emitted, measured on the untempered distribution. A mean hides the one token the model was
unsure of (a digit in an amount, a name), which is exactly what should make the router escalate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..types import GenerationOptions
from .items import GenItem, GenOutput


class LoadedModel(Protocol):
    """What the decode loop needs of a loaded runtime (models/runtime.py `FastVLMRuntime` is one)."""

    model: Any
    tokenizer: Any
    device: Any
    eos_ids: list[int]
    pad_id: int
    last_timings: dict[str, float]

CONFIDENCE_QUANTILE = 0.10


@dataclass
class PrefillState:
    logits: Any  # (batch, vocab) for the next token
    cache: Any
    mask: Any  # (batch, length) attention mask so far
    last_positions: Any  # (batch, 1) position ids of the last prompt token, or None to let the model decide
    input_lengths: list[int]
    max_new: int


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the generation config's, then the tokenizer's eos and `<|im_end|>` if present."""
    ids: list[int] = []
    cfg = getattr(model, "generation_config", None)
    raw = getattr(cfg, "eos_token_id", None)
    for value in raw if isinstance(raw, (list, tuple)) else [raw]:
        if value is not None:
            ids.append(int(value))
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end >= 0:
        ids.append(im_end)
    return list(dict.fromkeys(ids))


def low_quantile(probs: Sequence[float], q: float = CONFIDENCE_QUANTILE) -> float | None:
    """The q-quantile of `probs` by the "lower" rule (no interpolation), clamped to [0, 1].

    Lower rather than interpolated so that in a short answer (under 1/q tokens) the least likely token
    counts in full: interpolating a 10-token answer would mostly hide its single doubtful token.
    """
    if not probs:
        return None
    ordered = sorted(probs)
    value = ordered[math.floor(q * (len(ordered) - 1))]
    return min(1.0, max(0.0, float(value)))


def choose(torch: Any, logits: Any, options: GenerationOptions, generator: Any) -> tuple[int, float]:
    """Pick the next token for one row; return it with its untempered probability."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    if options.temperature <= 0:
        token = int(torch.argmax(logits))
        return token, float(probs[token])
    scaled = torch.softmax(logits / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_p, order = torch.sort(scaled, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < options.top_p
        keep[0] = True
        filtered = torch.zeros_like(scaled)
        filtered[order[keep]] = sorted_p[keep]
        scaled = filtered / filtered.sum()
    if generator is not None and generator.device.type != scaled.device.type:
        scaled = scaled.cpu()  # MPS sampling uses a CPU generator
    token = int(torch.multinomial(scaled, 1, generator=generator))
    return token, float(probs[token])


def _generators(torch: Any, items: Sequence[GenItem], device: str) -> list[Any]:
    gens = []
    for item in items:
        gen = None
        if item.options.temperature > 0:
            gen = torch.Generator(device="cpu" if device == "mps" else device)
            gen.manual_seed(item.options.seed if item.options.seed is not None else int(time.time_ns() % 2**31))
        gens.append(gen)
    return gens


class Rows:
    """Per-row bookkeeping of a batched decode loop, the same for both engines: the tokens kept, each
    chosen token's probability (for the confidence), why each row stopped, and when the first token came."""

    def __init__(self, items: Sequence[GenItem], max_new: int, eos: set[int], pad_id: int) -> None:
        self.limits = [min(max_new, max(1, it.options.max_tokens)) for it in items]
        self.eos, self.pad_id = eos, pad_id
        self.tokens: list[list[int]] = [[] for _ in items]
        self.probs: list[list[float]] = [[] for _ in items]
        self.finish = ["length"] * len(items)
        self.done = [False] * len(items)
        self.ttft = 0.0

    def take(self, row: int, choice: Callable[[], tuple[int, float]],
             on_token: Callable[[int, int], None] | None) -> int:
        """The id to feed back for `row`: its chosen token, or padding once the row is done."""
        if self.done[row]:
            return self.pad_id
        token, p = choice()
        self.probs[row].append(p)  # the end token counts too: how sure the model was to stop there
        if token in self.eos:
            self.done[row], self.finish[row] = True, "stop"
            return token
        self.tokens[row].append(token)
        if on_token is not None:
            on_token(row, token)
        if len(self.tokens[row]) >= self.limits[row]:
            self.done[row] = True
        return token

    def outputs(self, tokenizer: Any, input_lengths: Sequence[int], total: float) -> list[GenOutput]:
        return [GenOutput(text=tokenizer.decode(self.tokens[row], skip_special_tokens=True),
                          token_ids=self.tokens[row], input_tokens=input_lengths[row],
                          confidence=low_quantile(self.probs[row]), finish_reason=self.finish[row],
                          ttft_s=self.ttft, total_s=total)
                for row in range(len(self.tokens))]


def decode(runtime: LoadedModel, items: Sequence[GenItem], state: PrefillState, start: float,
           on_token: Callable[[int, int], None] | None, *, ignore_eos: bool = False) -> list[GenOutput]:
    """Run the decode loop from a prefilled state; one forward per step for the whole batch."""
    import torch

    batch = len(items)
    gens = _generators(torch, items, runtime.device)
    rows = Rows(items, state.max_new, set() if ignore_eos else set(runtime.eos_ids), runtime.pad_id)
    logits, cache, mask, positions = state.logits, state.cache, state.mask, state.last_positions
    # Without padding the mask and positions are implied by the cache; leaving them out lets attention
    # take its plain causal path instead of building a mask every step.
    padded = batch > 1 and not bool(mask.all())
    for step in range(max(rows.limits)):
        chosen = [rows.take(row, lambda row=row, logits=logits: choose(torch, logits[row], items[row].options,
                                                                       gens[row]), on_token)
                  for row in range(batch)]
        if step == 0:
            rows.ttft = time.perf_counter() - start
        if all(rows.done):
            break
        next_ids = torch.tensor(chosen, device=mask.device).unsqueeze(-1)
        kwargs: dict[str, Any] = {}
        if padded:
            mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=-1)
            kwargs["attention_mask"] = mask
            if positions is not None:
                positions = positions + 1
                kwargs["position_ids"] = positions
        out = runtime.model(input_ids=next_ids, past_key_values=cache, use_cache=True, **kwargs)
        logits, cache = out.logits[:, -1, :], out.past_key_values
    total = time.perf_counter() - start
    runtime.last_timings.update(ttft_s=rows.ttft, total_s=total)
    return rows.outputs(runtime.tokenizer, state.input_lengths, total)
