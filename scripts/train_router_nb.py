"""Train the router's naive Bayes domain classifier offline and write routing/domain_model.yaml.

    python scripts/train_router_nb.py            # train on the tuning sets, write the model
    python scripts/train_router_nb.py --cv       # cross-check blend settings, write nothing

Training data: tests/routing/labelled_prompts.yaml and tests/routing/tuning_prompts.yaml, plus every
lexicon phrase of routing/domain_terms.yaml as a tiny pseudo-document (so the classifier knows the
curated vocabulary, not only the words that happen to occur in labelled prompts). The held-out set
(tests/routing/heldout_prompts.yaml) is NEVER read here: it exists to measure generalisation.

Features are the router's own stemmed tokens and adjacent bigrams (`signals.tokens`), so training and
runtime agree exactly. Each feature row is centred (a constant per feature does not change the
posterior) and rounded, and features that say nothing about the domain are dropped, which keeps the
file small enough to load in a few milliseconds. `--cv` trains on one labelled file, scores the other
through the full blended detector, and prints accuracy for a grid of blend settings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from eval_routing import evaluate  # noqa: E402

from fastvlm_gemini_hybrid.routing import classifier, lexicon, signals  # noqa: E402

DOMAINS = lexicon.DOMAIN_ORDER
TUNING = [ROOT / "tests" / "routing" / "labelled_prompts.yaml", ROOT / "tests" / "routing" / "tuning_prompts.yaml"]
OUT = ROOT / "src" / "fastvlm_gemini_hybrid" / "routing" / "domain_model.yaml"


def features(text: str) -> list[str]:
    toks = signals.tokens(text)
    return list(dict.fromkeys(toks + [f"{a} {b}" for a, b in itertools.pairwise(toks)]))


def load(paths: list[Path]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for path in paths:
        items += yaml.safe_load(path.read_text(encoding="utf-8"))
    return items


def train(
    items: list[dict[str, Any]], alpha: float, lexicon_weight: float, uniform_prior: bool, min_spread: float = 0.5
) -> dict[str, Any]:
    """Multinomial NB with Laplace smoothing `alpha`; lexicon phrases count `lexicon_weight * w / 3`."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    docs: Counter[str] = Counter()
    for item in items:
        text = item["prompt"]
        for spec in item.get("attachments", []):
            if isinstance(spec, dict) and spec.get("name"):
                text += " " + spec["name"].rsplit(".", 1)[0].replace("_", " ").replace("-", " ")
        docs[item["domain"]] += 1
        for f in features(text):
            counts[f][item["domain"]] += 1.0
    if lexicon_weight > 0:
        for domain, terms in lexicon.load_domain_terms().items():
            for phrase, weight in terms.items():
                for f in features(phrase):
                    counts[f][domain] += lexicon_weight * weight / 3.0
    totals = {d: sum(c[d] for c in counts.values()) for d in DOMAINS}
    vocab = len(counts)
    rows: dict[str, list[float]] = {}
    for f, c in counts.items():
        row = [math.log((c[d] + alpha) / (totals[d] + alpha * vocab)) for d in DOMAINS]
        mean = sum(row) / len(row)
        row = [round(x - mean, 3) for x in row]
        if max(row) - min(row) >= min_spread:
            rows[f] = row
    n = sum(docs.values())
    prior = [0.0] * len(DOMAINS) if uniform_prior else [round(math.log((docs[d] + 1) / (n + 8)), 3) for d in DOMAINS]
    return {"version": 1, "domains": list(DOMAINS), "prior": prior, "features": rows}


def as_model(data: dict[str, Any]) -> classifier.NaiveBayes:
    return classifier.NaiveBayes(
        tuple(data["domains"]), tuple(data["prior"]), dict(data["features"])
    )


def cross_check() -> None:
    labelled, tuning = (load([p]) for p in TUNING)
    for name, train_on, test_on in (("labelled->tuning", labelled, tuning), ("tuning->labelled", tuning, labelled)):
        signals._MODEL = None
        base = evaluate(test_on)["accuracy"]
        print(f"{name}: lexicon alone {base:.1%}")
        for alpha in (0.1, 0.5):
            for lw in (0.0, 1.0):
                for uniform in (True, False):
                    signals._MODEL = as_model(train(train_on, alpha, lw, uniform))
                    cells = []
                    for w in (1.5, 3.0, 5.0):
                        for g in (1.0, 2.0, 3.0):
                            signals._NB_WEIGHT, signals._GENERAL_BASE = w, g
                            cells.append(f"w{w}/g{g} {evaluate(test_on)['accuracy']:.1%}")
                    print(f"  alpha {alpha} lex {lw} uniform {uniform}: " + "  ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", action="store_true", help="compare blend settings across the two tuning files")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--lexicon-weight", type=float, default=1.0)
    parser.add_argument("--class-prior", action="store_true", help="use label frequencies as the prior")
    parser.add_argument("--min-spread", type=float, default=0.5, help="drop features whose log-likelihoods differ less")
    args = parser.parse_args()
    if args.cv:
        cross_check()
        return 0
    data = train(load(TUNING), args.alpha, args.lexicon_weight, not args.class_prior, args.min_spread)
    OUT.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data['features'])} features, {OUT.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
