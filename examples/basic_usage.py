"""Basic usage: one question about one image, with the route explained.

    python examples/basic_usage.py [IMAGE] [PROMPT]

Needs a local model (`fastvlm-hybrid models pull fastvlm-0.5b`) or GEMINI_API_KEY for the cloud.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastvlm_gemini_hybrid import HybridError, HybridVLMProcessor

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "fastvlm_gemini_hybrid" / "assets" / "sample.jpg"


def main() -> int:
    image = sys.argv[1] if len(sys.argv) > 1 else str(SAMPLE)
    prompt = sys.argv[2] if len(sys.argv) > 2 else "Describe this image in two sentences."
    with HybridVLMProcessor() as processor:
        try:
            answer = processor.process(image, prompt)
        except HybridError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
    print(answer["response"])
    route = answer["route"]
    print(f"\nanswered by {answer['backend']} ({answer['model']}) in {answer['latency_ms']:.0f} ms", file=sys.stderr)
    for rule in route["rules"]:
        print(f"  rule {rule['name']}: {rule['reason']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
