"""The egress gate's cost and accuracy, side by side with Microsoft Presidio on the same inputs.

    python benchmarks/privacy_bench.py                     # ours only
    python benchmarks/privacy_bench.py --presidio .venv-presidio/bin/python   # and Presidio, same inputs
    python benchmarks/privacy_bench.py --quick             # every 4th picture

Pictures (every one scaled to 1 megapixel, as the goal is stated per 1-MP picture):
- with text: the evaluation corpus (tests/privacy/corpus.py: sensitive and benign pictures rendered with
  PIL), plus the independent hold-out set (tests/privacy/holdout_corpus.py) when it exists;
- without text: real photographs that ship in scikit-image (people, animals, objects, scenes).
Text: the adversarial rewrites and benign controls of tests/privacy/bypass_prompts.yaml and the per-language
cases of tests/privacy/multilingual_cases.yaml.

For each picture ours is a fresh `Inspector` verdict (no cache; the OCR engine warmed once), timed as the
time it adds before a cloud call; Presidio is `benchmarks/presidio_worker.py` (tesseract + spaCy +
pattern recognisers, see `benchmarks/setup_presidio.sh`) run in its own virtualenv on the same PNG files.
Presidio does not route, so its "flagged" means "found an entity"; ours means "refused to send".
Printed: recall on sensitive inputs, false alarms on benign ones, p50/p95 seconds per picture, and the
ratios ours/Presidio.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "privacy"))

GOAL_TEXT_P95_S = 0.400
GOAL_PLAIN_P95_S = 0.050


@dataclass
class Item:
    name: str
    group: str  # "text-sensitive", "text-benign", "photo"
    sensitive: bool
    png: bytes


def _one_megapixel(image: Any) -> Any:
    w, h = image.size
    scale = (1_000_000 / (w * h)) ** 0.5
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))))


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def pictures(quick: bool, holdout: bool) -> list[Item]:
    import corpus
    import numpy as np
    from PIL import Image
    from skimage import data

    step = 4 if quick else 1
    items = [Item(s.name, "text-sensitive", True, _png(_one_megapixel(s.image)))
             for s in corpus.sensitive_pictures()[::step]]
    items += [Item(s.name, "text-benign", False, _png(_one_megapixel(s.image)))
              for s in corpus.benign_pictures()[::step]]
    if holdout and (ROOT / "tests" / "privacy" / "holdout_corpus.py").exists():
        import holdout_corpus

        items += [Item(s.name, "holdout-sensitive", True, _png(_one_megapixel(s.image)))
                  for s in holdout_corpus.holdout_sensitive()[::step]]
        items += [Item(s.name, "holdout-benign", False, _png(_one_megapixel(s.image)))
                  for s in holdout_corpus.holdout_benign()[::step]]
    photos = {
        "astronaut": data.astronaut(), "camera": data.camera(), "coffee": data.coffee(), "chelsea": data.chelsea(),
        "rocket": data.rocket(), "hubble": data.hubble_deep_field(),
        "immunohistochemistry": data.immunohistochemistry(),
        "motorcycle": data.stereo_motorcycle()[0], "coins": data.coins(), "retina": data.retina(),
        "horse-free-grass": data.grass(), "gravel": data.gravel(),
    }
    for name, array in photos.items():
        image = Image.fromarray(array if array.ndim == 3 else np.stack([array] * 3, axis=-1)).convert("RGB")
        items.append(Item(name, "photo", False, _png(_one_megapixel(image))))
    return items


def run_ours(items: list[Item]) -> dict[str, tuple[bool, float, str]]:
    from fastvlm_gemini_hybrid.privacy import ocr
    from fastvlm_gemini_hybrid.privacy.inspector import Inspector
    from fastvlm_gemini_hybrid.types import Attachment, Request

    ocr.read_lines(__import__("numpy").zeros((64, 64, 3), "uint8"))  # load the engine outside the clock
    out = {}
    for item in items:
        inspector = Inspector()  # no cache: every picture is read as if for the first time
        request = Request("What does this say?", attachments=(Attachment.from_bytes(item.png, name=item.name),))
        start = time.perf_counter()
        verdict = inspector.inspect(request)
        seconds = time.perf_counter() - start
        inspector.close()
        out[item.name] = (verdict.refused, seconds, verdict.reason)
    return out


def run_auto_overlap(items: list[Item], local_s: float) -> list[float]:
    """Auto mode with an unsure local answer taking `local_s` (FastVLM's CPU time to answer, roughly): the
    seconds a cloud escalation waits for the gate beyond the local answer. The inspection starts with the
    request, so it should be ~0 whenever reading the picture is quicker than the local model."""
    import asyncio

    from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
    from fastvlm_gemini_hybrid.types import Attachment, Request

    waits = []
    with tempfile.TemporaryDirectory() as home:
        for item in items:
            local = FunctionBackend("fastvlm", "unsure", kind="local", confidence=0.05, delay_s=local_s)
            cloud = FunctionBackend("gemini", "sure", kind="cloud")
            proc = HybridVLMProcessor(load_settings(home=home, cache_enabled=False, audit_enabled=False),
                                      backends={"fastvlm": local, "gemini": cloud})
            request = Request("What does this say?", attachments=(Attachment.from_bytes(item.png, name=item.name),))
            start = time.perf_counter()
            asyncio.run(proc.arun(request))
            waits.append(max(0.0, time.perf_counter() - start - local_s))
            proc.close()
    return waits


def run_presidio(python: str, items: list[Item], texts: list[tuple[str, str]],
                 entities: str | None) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        lines = []
        for item in items:
            path = Path(tmp) / f"{len(lines):04d}.png"
            path.write_bytes(item.png)
            lines.append(json.dumps({"id": item.name, "image": str(path)}))
        lines += [json.dumps({"id": key, "text": text}) for key, text in texts]
        cmd = [python, str(ROOT / "benchmarks" / "presidio_worker.py")]
        if entities:
            cmd += ["--entities", entities]
        done = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False)
    if done.returncode != 0 and not done.stdout:
        raise SystemExit(f"presidio worker failed: {done.stderr.strip().splitlines()[-1:]}")
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {r["id"]: r for r in results}


def texts() -> list[tuple[str, str, bool]]:
    import yaml

    here = ROOT / "tests" / "privacy"
    bypass = yaml.safe_load((here / "bypass_prompts.yaml").read_text(encoding="utf-8"))
    multi = yaml.safe_load((here / "multilingual_cases.yaml").read_text(encoding="utf-8"))
    out = [(f"bypass-s{i}", c["text"], True) for i, c in enumerate(bypass["sensitive"])]
    out += [(f"bypass-b{i}", c["text"], False) for i, c in enumerate(bypass["benign"])]
    for lang, cases in multi.items():
        out += [(f"{lang}-s{i}", c["text"], True) for i, c in enumerate(cases["sensitive"])]
        out += [(f"{lang}-b{i}", t, False) for i, t in enumerate(cases["benign"])]
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _score(flags: list[tuple[bool, bool]]) -> tuple[str, str]:
    sensitive = [f for s, f in flags if s]
    benign = [f for s, f in flags if not s]
    recall = f"{sum(sensitive)}/{len(sensitive)} ({100 * sum(sensitive) / max(1, len(sensitive)):.0f}%)"
    false = f"{sum(benign)}/{len(benign)} ({100 * sum(benign) / max(1, len(benign)):.0f}%)"
    return recall, false


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presidio", metavar="PYTHON", help="interpreter of the Presidio virtualenv")
    parser.add_argument("--entities", help="Presidio entity types (comma-separated); default: all of them")
    parser.add_argument("--quick", action="store_true", help="every 4th corpus picture")
    parser.add_argument("--no-holdout", action="store_true", help="leave the hold-out set out")
    parser.add_argument("--show", action="store_true", help="print every miss and false alarm")
    parser.add_argument("--local-s", type=float, default=2.5,
                        help="seconds the simulated local model takes in the auto-mode measurement (default 2.5)")
    args = parser.parse_args()

    from fastvlm_gemini_hybrid.routing import detect_signals
    from fastvlm_gemini_hybrid.types import Request

    items = pictures(args.quick, not args.no_holdout)
    print(f"{len(items)} pictures at 1 MP ({sum(i.group == 'photo' for i in items)} photographs without text)",
          flush=True)
    ours = run_ours(items)
    prompts = texts()
    text_ours = {}
    for key, text, _ in prompts:
        start = time.perf_counter()
        text_ours[key] = (detect_signals(Request(text)).sensitive, time.perf_counter() - start)
    theirs: dict[str, dict[str, Any]] = {}
    if args.presidio:
        theirs = run_presidio(args.presidio, items, [(k, t) for k, t, _ in prompts], args.entities)

    groups = sorted({i.group for i in items}, key=lambda g: ("photo" in g, "holdout" in g, g))
    print(f"\n{'set':<20} {'n':>4}  {'ours: flagged':>16} {'p50 s':>7} {'p95 s':>7}"
          + (f"   {'presidio: flagged':>18} {'p50 s':>7} {'p95 s':>7}" if theirs else ""))
    for group in groups:
        members = [i for i in items if i.group == group]
        ours_t = [ours[i.name][1] for i in members]
        ours_f = sum(ours[i.name][0] for i in members)
        line = (f"{group:<20} {len(members):>4}  {ours_f:>10}/{len(members):<5} {statistics.median(ours_t):7.3f}"
                f" {_pct(ours_t, 0.95):7.3f}")
        if theirs:
            got = [theirs.get(i.name, {}) for i in members]
            their_t = [g["seconds"] for g in got if "seconds" in g]
            their_f = sum(bool(g.get("flagged")) for g in got)
            line += (f"   {their_f:>12}/{len(members):<5} {statistics.median(their_t):7.3f}"
                     f" {_pct(their_t, 0.95):7.3f}")
        print(line)

    print("\naccuracy            recall (sensitive)       false alarms (benign)")
    for label, selector in (("corpus", lambda i: i.group.startswith("text")),
                            ("hold-out", lambda i: i.group.startswith("holdout")),
                            ("photos", lambda i: i.group == "photo")):
        members = [i for i in items if selector(i)]
        if not members:
            continue
        recall, false = _score([(i.sensitive, ours[i.name][0]) for i in members])
        print(f"  ours, {label:<12} {recall:<24} {false}")
        if theirs:
            recall, false = _score([(i.sensitive, bool(theirs.get(i.name, {}).get("flagged"))) for i in members])
            print(f"  presidio, {label:<8} {recall:<24} {false}")
    recall, false = _score([(s, text_ours[k][0]) for k, _, s in prompts])
    text_p50_ms = statistics.median(v[1] for v in text_ours.values()) * 1e3
    print(f"  ours, prompts       {recall:<24} {false}   p50 {text_p50_ms:.3f} ms")
    if theirs:
        recall, false = _score([(s, bool(theirs.get(k, {}).get("flagged"))) for k, _, s in prompts])
        t = [theirs[k]["seconds"] for k, _, _ in prompts if "seconds" in theirs.get(k, {})]
        print(f"  presidio, prompts   {recall:<24} {false}   p50 {statistics.median(t) * 1e3:.3f} ms")

    benign_text = [i for i in items if i.group == "text-benign"][:10]
    waits = run_auto_overlap(benign_text, args.local_s)
    print(f"\nauto mode, local answer in {args.local_s:g} s then escalation: the gate added p50 "
          f"{statistics.median(waits):.3f} s, max {max(waits):.3f} s over {len(waits)} benign text pictures")

    text_items = [i for i in items if i.group != "photo"]
    plain_items = [i for i in items if i.group == "photo"]
    text_p95 = _pct([ours[i.name][1] for i in text_items], 0.95)
    plain_p95 = _pct([ours[i.name][1] for i in plain_items], 0.95)
    print(f"\ngoals: p95 added per 1-MP picture with text {text_p95:.3f} s (goal {GOAL_TEXT_P95_S} s: "
          f"{text_p95 / GOAL_TEXT_P95_S:.2f}x), without text {plain_p95:.3f} s (goal {GOAL_PLAIN_P95_S} s: "
          f"{plain_p95 / GOAL_PLAIN_P95_S:.2f}x)")
    if theirs:
        their_text = [theirs[i.name]["seconds"] for i in text_items if "seconds" in theirs.get(i.name, {})]
        print(f"ratio ours/presidio, median seconds per picture with text: "
              f"{statistics.median(ours[i.name][1] for i in text_items) / statistics.median(their_text):.2f}x")
    if args.show:
        print("\nmisses and false alarms (ours):")
        for i in items:
            flagged, _, reason = ours[i.name]
            if flagged != i.sensitive:
                print(f"  {i.group:<18} {i.name:<40} {'MISSED' if i.sensitive else 'FALSE ALARM: ' + reason}")
        for key, text, sensitive in prompts:
            if text_ours[key][0] != sensitive:
                print(f"  prompt {'MISSED' if sensitive else 'FALSE ALARM'}: {text[:70]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
