"""`ask`: answer a prompt about one or more attachments."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from ..errors import BadInputError, HybridError
from .common import add_json_flag, info, print_json, settings_from_args

if TYPE_CHECKING:
    from ..processor import HybridVLMProcessor
    from ..request_builder import MediaInput
    from ..types import Request, Result


def add_request_flags(parser: argparse.ArgumentParser, *, attachments_required: bool = False) -> None:
    """Flags shared by `ask`, `route` and `batch`: media, mode and routing hints."""
    parser.add_argument(
        "-a",
        "--attach",
        dest="attachments",
        action="append",
        default=[],
        metavar="FILE_OR_URL",
        required=attachments_required,
        help="image, video, DICOM file, URL or YouTube link; '-' reads stdin (repeatable)",
    )
    parser.add_argument("--mode", help="local-only, cloud-only, auto (default), parallel, fallback")
    parser.add_argument(
        "--model", help="pin the answer to a backend (fastvlm, gemini), backend/model, or a model one backend "
        "serves (gemini-2.5-flash); with --mode fallback the others follow if it fails",
    )
    parser.add_argument(
        "--domain", help="medical, financial, legal, security, technical, educational, creative, general"
    )
    parser.add_argument(
        "--sensitive", action="store_true", default=None, help="never let this request leave the machine"
    )
    parser.add_argument("--latency", help="realtime, low-latency, normal, batch")
    parser.add_argument("--max-latency-ms", type=int, metavar="N", help="latency budget in milliseconds")


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-tokens", type=int, default=None, metavar="N", help="longest answer in tokens")
    parser.add_argument("--temperature", type=float, default=None, help="0 = greedy (default)")
    parser.add_argument("--system", default=None, help="system instruction")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")


def request_from_args(args: argparse.Namespace, prompt: str, media: list[MediaInput] | None = None) -> Request:
    """Build a Request from parsed flags; bad values raise BadInputError (exit 2)."""
    from ..request_builder import build_request
    from ..types import GenerationOptions

    if media is None:
        media = []
        for ref in args.attachments:
            if ref == "-":
                data = sys.stdin.buffer.read()
                if not data:
                    raise BadInputError("-a - was given but stdin is empty")
                media.append(data)
            else:
                media.append(ref)
    option_values = {
        "max_tokens": getattr(args, "max_tokens", None),
        "temperature": getattr(args, "temperature", None),
        "system": getattr(args, "system", None),
    }
    try:
        options = GenerationOptions(**{k: v for k, v in option_values.items() if v is not None})
    except BadInputError as exc:  # name the flag the user typed
        flags = str(exc).replace("max_tokens", "--max-tokens").replace("temperature", "--temperature")
        raise BadInputError(flags) from None

    hints = {
        "mode": args.mode,
        "domain": args.domain,
        "sensitive": args.sensitive,
        "latency": args.latency,
        "max_latency_ms": args.max_latency_ms,
        "model": args.model,
    }
    return build_request(prompt, media, options=options, **{k: v for k, v in hints.items() if v is not None})


def make_processor(args: argparse.Namespace) -> HybridVLMProcessor:
    from ..processor import HybridVLMProcessor

    settings = settings_from_args(args, cache_enabled=False if getattr(args, "no_cache", False) else None)
    return HybridVLMProcessor(settings)


def explain(result: Result) -> str:
    route = result.route
    why = "; ".join(f"{r.name}: {r.reason}" for r in route.rules[:3]) or "default order"
    parts = [result.backend, result.model, f"{result.latency_ms:.0f} ms"]
    if result.cached:
        parts.append("cached")
    if result.confidence is not None:
        parts.append(f"confidence {result.confidence:.2f}")
    for attempt in result.fallbacks:
        parts.append(f"skipped {attempt.backend} ({attempt.error})")
    privacy = route.privacy
    if privacy is not None and privacy["verdict"] == "redact":
        parts.append("the cloud saw redacted pictures: " + "; ".join(privacy["redactions"]))
    elif privacy is not None and privacy["verdict"] == "refuse":
        parts.append("pictures kept on this machine: " + privacy["kept_local_because"][0])
    return f"[{' · '.join(parts)}] route {route.mode.value}: {why}"


def _ask(args: argparse.Namespace) -> int:
    request = request_from_args(args, args.prompt)
    processor = make_processor(args)
    if args.stream:
        return asyncio.run(_stream(processor, request, args))  # closes the processor on its own loop
    try:
        result = processor.run(request, return_all=args.all)
    finally:
        processor.close()
    if args.json:
        print_json(result.to_dict())
    else:
        sys.stdout.write(result.response.rstrip("\n") + "\n")
        for alt in result.alternatives:
            sys.stdout.write(f"\n--- {alt.backend} ---\n{alt.response.rstrip()}\n")
        info(explain(result))
    if result.blocked:
        info("the answer was blocked by the backend's safety filter")
        return 1
    return 0


async def _stream(processor: HybridVLMProcessor, request: Request, args: argparse.Namespace) -> int:
    from ..types import Result

    final = None
    try:
        async for piece in processor.astream(request):
            if isinstance(piece, Result):
                final = piece
            elif not args.json:
                sys.stdout.write(piece)
                sys.stdout.flush()
    finally:
        # Close on this loop: async clients must not outlive the loop they were made on.
        await processor.aclose()
    if final is None:  # pragma: no cover - astream always ends with a Result or raises
        raise HybridError("the stream ended without a result")
    if args.json:
        print_json(final.to_dict())
    else:
        sys.stdout.write("\n")
        info(explain(final))
    return 1 if final.blocked else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question about images, video or DICOM")
    p.add_argument("prompt", help="the question or instruction")
    add_request_flags(p)
    add_generation_flags(p)
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    p.add_argument("--all", action="store_true", help="parallel mode: wait for and print every backend's answer")
    add_json_flag(p)
    p.set_defaults(handler=_ask)
