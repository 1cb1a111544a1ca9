"""Advanced usage: the async API, routing hints, privacy, streaming, parallel mode and batches.

python examples/advanced_integration.py IMAGE [IMAGE ...]
"""

from __future__ import annotations

import asyncio
import sys

from fastvlm_gemini_hybrid import Attachment, HybridError, Mode, Request, Result
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor


async def main(paths: list[str]) -> int:
    settings = load_settings(default_mode=Mode.AUTO)  # flags here beat env vars and the config file
    processor = HybridVLMProcessor(settings)
    images = [Attachment.from_path(p) for p in paths]
    try:
        # 1. See the decision before paying for a model call.
        sensitive = Request(prompt="Transcribe the patient's name and date of birth", attachments=images[:1])
        decision = processor.decide(sensitive)
        print("route:", decision.to_dict())  # sensitive: cloud never listed

        # 2. Stream an answer as it is generated.
        async for piece in processor.astream(Request(prompt="Describe this image", attachments=images[:1])):
            if isinstance(piece, Result):
                print(f"\n[{piece.backend}, {piece.latency_ms:.0f} ms]")
            else:
                print(piece, end="", flush=True)

        # 3. Parallel: both sides at once, keep every answer to compare them.
        both = await processor.arun(
            Request(prompt="What is the main object?", attachments=images[:1], mode=Mode.PARALLEL), return_all=True
        )
        for result in [both, *both.alternatives]:
            print(f"{result.backend}: {result.response[:80]}")

        # 4. A batch with bounded concurrency; failures come back in place, typed.
        requests = [Request(prompt="Write alt text", attachments=(img,), latency=None) for img in images]
        for path, out in zip(paths, await processor.arun_many(requests, concurrency=2), strict=True):
            print(path, "->", out.response if isinstance(out, Result) else f"failed: {out}")
    except HybridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        await processor.aclose()
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python examples/advanced_integration.py IMAGE [IMAGE ...]", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
