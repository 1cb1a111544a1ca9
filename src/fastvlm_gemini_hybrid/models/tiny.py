"""Build a tiny, randomly initialised FastVLM that loads and runs exactly like a downloaded one.

Tests and `fastvlm-hybrid models make-tiny DIR` both use `build_tiny_model`: real `fast_vlm` classes
(timm `fastvit_mci3` vision tower, projector, Qwen2 decoder) at toy widths, a real byte-level BPE
tokenizer in the Qwen2 format trained offline on a small generated corpus (so any text round-trips),
the ChatML chat template, and the image processor. The answers are noise; the code paths are real.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import BadInputError
from .architecture import IMAGE_TOKEN, TINY_IMAGE_SIZE, build_processor, fastvlm_config, init_vision_tower

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN)
TINY_VOCAB_SIZE = 512
MARKER_FILE = "fastvlm-hybrid-tiny.json"

_WORDS = (
    "a the this that image photo picture shows there is are of in on at with and or what where how many "
    "describe explain read text sign person people car cat dog tree house street sky water red green blue "
    "white black yellow left right top bottom small large one two three four five colour color shape square "
    "circle line number word you helpful assistant question answer patient scan report frame video camera "
    "motion door window table chair screen button menu page chart value total price date name"
).split()


def _corpus(seed: int, lines: int = 400) -> list[str]:
    """Generated sentences (no external text) so the BPE learns merges for common English pieces."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 12))]
        sentence = " ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":"])
        if rng.random() < 0.3:
            sentence += f" {rng.randint(0, 2026)}"
        out.append(sentence)
    return out


def train_tokenizer(seed: int = 0, vocab_size: int = TINY_VOCAB_SIZE) -> Any:
    """A Qwen2-style byte-level BPE tokenizer (transformers `Qwen2Tokenizer`) trained in well under a second."""
    tokenizers = require("tokenizers", "local", "building a tiny model")
    transformers = require("transformers", "local", "building a tiny model")
    from tokenizers import models, pre_tokenizers, trainers

    # Train with the exact pre-tokenisation Qwen2 uses, then hand vocab + merges to Qwen2Tokenizer.
    probe = transformers.Qwen2Tokenizer(vocab={"<|endoftext|>": 0}, merges=[])
    raw = tokenizers.Tokenizer(models.BPE())
    raw.pre_tokenizer = probe.backend_tokenizer.pre_tokenizer
    raw.normalizer = probe.backend_tokenizer.normalizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_corpus(seed), trainer=trainer)
    model = json.loads(raw.to_str())["model"]
    vocab: dict[str, int] = {k: v for k, v in model["vocab"].items() if k not in SPECIAL_TOKENS}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = transformers.Qwen2Tokenizer(
        vocab=dict(model["vocab"]), merges=merges, unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tok.add_special_tokens({"additional_special_tokens": [t for t in SPECIAL_TOKENS if t != "<|endoftext|>"]})
    del vocab
    tok.model_max_length = 2048
    return tok


def build_tiny_model(directory: str | Path, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a tiny random FastVLM (weights, config, tokenizer, processor) into `directory`."""
    torch = require("torch", "local", "building a tiny model")
    transformers = require("transformers", "local", "building a tiny model")
    path = Path(directory).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise BadInputError(f"{path} is not empty (pass --force to overwrite)")
    path.mkdir(parents=True, exist_ok=True)

    tokenizer = train_tokenizer(seed)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    config = fastvlm_config(tiny=True, vocab_size=len(tokenizer), image_token_id=ids[IMAGE_TOKEN],
                            eos_token_id=eos, pad_token_id=ids["<|endoftext|>"])
    torch.manual_seed(seed)
    model = transformers.FastVlmForConditionalGeneration(config).eval()
    init_vision_tower(model, TINY_IMAGE_SIZE)  # otherwise the random tower's features are ~1e-21
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=eos, pad_token_id=ids["<|endoftext|>"], do_sample=False, max_new_tokens=64
    )
    model.save_pretrained(path)
    build_processor(tokenizer, image_size=TINY_IMAGE_SIZE).save_pretrained(path)
    (path / MARKER_FILE).write_text(json.dumps({"tiny": True, "seed": seed, "random_weights": True}) + "\n")
    return path
