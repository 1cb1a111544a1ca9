"""A tiny multinomial naive Bayes domain classifier, blended with the lexicon in `signals.py`.

Why: word lists only know the words someone thought of. The classifier has seen whole labelled
prompts (and the lexicon phrases themselves), so the everyday words around the domain terms ("why
was I charged twice", "is it healing") also carry weight, and it breaks ties the lexicon cannot.

The weights are trained OFFLINE by `scripts/train_router_nb.py` from the labelled YAML prompt sets
and stored in `domain_model.yaml` (JSON text, which is valid YAML, so the package data glob ships it;
it is read with `json` because that is ten times faster than a YAML parser). At runtime this is pure
Python: a dict lookup per feature and eight additions, no numpy, so `decide()` stays in microseconds.
A missing or unreadable model file just switches the blend off; the lexicon still works alone.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("domain_model.yaml")
#: Only the first words feed the classifier: they carry the question, and the cap bounds decide()'s p99
#: on long prompts (the lexicon still reads every word).
MAX_TOKENS = 40


@dataclass(frozen=True)
class NaiveBayes:
    """Log priors and per-feature log likelihoods for each domain, in `domains` order."""

    domains: tuple[str, ...]
    prior: tuple[float, ...]
    loglik: dict[str, list[float]]  # lists straight from JSON: converting 8k rows would double the load time

    def posterior(self, toks: list[str]) -> dict[str, float] | None:
        """P(domain | features of `toks`): unigrams and adjacent bigrams the model knows, each once,
        from the first MAX_TOKENS tokens.

        Unknown features are skipped rather than smoothed in: a word the model never saw says
        nothing about the domain, and skipping keeps long prompts from drifting toward the prior.
        None when fewer than MIN_FEATURES are known: one word ("Describe") is no evidence of a domain,
        and the prior alone would pick whichever domain was most common in training."""
        scores = list(self.prior)
        get = self.loglik.get
        toks = toks[:MAX_TOKENS]
        # dict, not set: a fixed summation order keeps the result bit-identical from run to run
        feats = dict.fromkeys(toks)
        feats.update(dict.fromkeys(map(" ".join, itertools.pairwise(toks))))
        known = 0
        for feat in feats:
            row = get(feat)
            if row is not None:
                known += 1
                scores = [a + b for a, b in zip(scores, row)]  # noqa: B905 - rows have len(domains)
        if known < MIN_FEATURES:
            return None
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        return {d: e / total for d, e in zip(self.domains, exps, strict=True)}


#: Fewer known features than this and the classifier abstains (see NaiveBayes.posterior).
MIN_FEATURES = 2


@lru_cache(maxsize=1)
def load_model(path: Path = MODEL_PATH) -> NaiveBayes | None:
    """The trained model, or None when the file is missing or malformed (the blend is then off)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        domains = tuple(data["domains"])
        prior = tuple(float(x) for x in data["prior"])
        loglik = data["features"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    n = len(domains)
    if not isinstance(loglik, dict) or len(prior) != n or any(len(v) != n for v in loglik.values()):
        return None
    return NaiveBayes(domains, prior, loglik)
