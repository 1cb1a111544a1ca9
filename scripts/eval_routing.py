"""Measure routing detection on a labelled prompt file: domain accuracy, sensitive leaks, over-flagging.

    python scripts/eval_routing.py tests/routing/heldout_prompts.yaml [--show-wrong] [--show-fp]

Prints domain accuracy (overall and per domain), the sensitive prompts detected as not sensitive
(leaks: these would reach the cloud), and how many non-sensitive prompts were kept local anyway
(over-flagging: costs only a cloud answer). Use it on the tuning sets while editing word lists,
and on the held-out set only to report, never to tune.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from fastvlm_gemini_hybrid.routing import detect_signals
from fastvlm_gemini_hybrid.types import Attachment, Request

MIME = {"image": "image/png", "video": "video/mp4", "dicom": "application/dicom"}


def request_for(item: dict[str, Any]) -> Request:
    """The request a labelled item describes (attachments carry only kind and name)."""
    atts = []
    for spec in item.get("attachments", []):
        spec = {"kind": spec} if isinstance(spec, str) else spec
        if spec["kind"] == "youtube":
            atts.append(Attachment.from_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ"))
        else:
            atts.append(Attachment(mime=MIME[spec["kind"]], data=b"\0" * 16, name=spec.get("name"), sha256="0" * 64))
    return Request(prompt=item["prompt"], attachments=tuple(atts))


def evaluate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, per-domain accuracy, the misrouted items, leaks and over-flagged prompts."""
    wrong: list[tuple[str, str, str]] = []
    leaks: list[str] = []
    over: list[str] = []
    per: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for item in items:
        sig = detect_signals(request_for(item))
        per[item["domain"]] += 1
        if sig.domain.value == item["domain"]:
            right[item["domain"]] += 1
        else:
            wrong.append((item["domain"], sig.domain.value, item["prompt"]))
        if item["sensitive"] and not sig.sensitive:
            leaks.append(item["prompt"])
        if not item["sensitive"] and sig.sensitive:
            over.append(f"{sig.sensitivity_reasons[0]} :: {item['prompt']}")
    return {
        "n": len(items),
        "accuracy": 1 - len(wrong) / max(1, len(items)),
        "per_domain": {d: (right[d], per[d]) for d in sorted(per)},
        "wrong": wrong,
        "leaks": leaks,
        "over": over,
        "n_sensitive": sum(1 for i in items if i["sensitive"]),
        "n_plain": sum(1 for i in items if not i["sensitive"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--show-wrong", action="store_true")
    parser.add_argument("--show-fp", action="store_true", help="list over-flagged (non-sensitive) prompts")
    args = parser.parse_args(argv)
    for path in args.files:
        r = evaluate(yaml.safe_load(path.read_text(encoding="utf-8")))
        print(f"{path.name}: {r['n']} prompts, domain accuracy {r['accuracy']:.1%}, "
              f"sensitive leaks {len(r['leaks'])}/{r['n_sensitive']}, "
              f"over-flagged {len(r['over'])}/{r['n_plain']}")
        print("  per domain: " + ", ".join(f"{d} {a}/{b}" for d, (a, b) in r["per_domain"].items()))
        for p in r["leaks"]:
            print(f"  LEAK: {p}")
        if args.show_wrong:
            for want, got, p in r["wrong"]:
                print(f"  {want:>11} -> {got:<11} {p}")
        if args.show_fp:
            for line in r["over"]:
                print(f"  FP: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
