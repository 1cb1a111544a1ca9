"""`ask`: answer a prompt about one or more attachments.

Habits of simonw/llm: the prompt may come from stdin (`cat q.txt | fastvlm-hybrid ask -a p.png`, or `-`
as the prompt; piped text first, then the argument), may be left out with an attachment (a default
"Describe this image."), `-m` picks the model, `-s` the system prompt, `-o KEY VALUE` the sampling
options; every answer is recorded in the private answer log (`fastvlm-hybrid logs`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from ..errors import BadInputError, HybridError
from ..types import Domain, Latency, Mode
from .common import (
    DEFAULT_PROMPT_HELP,
    UsageError,
    add_json_flag,
    default_prompt,
    enum_flag,
    info,
    print_json,
    read_prompt,
    settings_from_args,
)

if TYPE_CHECKING:
    from ..answer_log import AnswerLog
    from ..processor import HybridVLMProcessor
    from ..request_builder import MediaInput
    from ..types import Attachment, Request, Result

#: `-o KEY VALUE` keys and how their values are read (GenerationOptions checks the ranges).
OPTION_TYPES: dict[str, type] = {"max_tokens": int, "temperature": float, "top_p": float, "seed": int}
#: The long flags that set the same options (one value per option: both at once is a usage error).
OPTION_FLAGS = {"max_tokens": "--max-tokens", "temperature": "--temperature"}


class OptionAction(argparse.Action):
    """`-o KEY VALUE`, repeatable: collects {key: typed value}; an unknown key or a value of the wrong
    type is argparse's one-line usage error (exit 2) naming the valid keys."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        key, raw = values
        name = key.strip().lower().replace("-", "_")
        if name not in OPTION_TYPES:
            parser.error(f"unknown option {key!r} for {option_string}; valid keys: {', '.join(OPTION_TYPES)}")
        kind = OPTION_TYPES[name]
        try:
            value = kind(raw)
        except ValueError:
            parser.error(f"{option_string} {name} needs {'a whole number' if kind is int else 'a number'}, got {raw!r}")
        options = dict(getattr(namespace, self.dest, None) or {})
        options[name] = value
        setattr(namespace, self.dest, options)


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
    parser.add_argument("--mode", **enum_flag(Mode), help="routing mode (default auto, or the settings' default_mode)")
    parser.add_argument(
        "-m", "--model", help="pin the answer to a backend (fastvlm, gemini), backend/model, or a model one backend "
        "serves (gemini-2.5-flash); with --mode fallback the others follow if it fails",
    )
    parser.add_argument("--domain", **enum_flag(Domain), help="domain hint (detected from the prompt when left out)")
    parser.add_argument(
        "--sensitive", action="store_true", default=None, help="never let this request leave the machine"
    )
    parser.add_argument("--latency", **enum_flag(Latency), help="latency class hint")
    parser.add_argument("--max-latency-ms", type=int, metavar="N", help="latency budget in milliseconds")


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    """`--max-tokens`, `--temperature`, `-s/--system`, `-o KEY VALUE` and `--no-cache`."""
    parser.add_argument("--max-tokens", type=int, default=None, metavar="N", help="longest answer in tokens")
    parser.add_argument("--temperature", type=float, default=None, help="0 = greedy (default)")
    parser.add_argument("-s", "--system", default=None, help="system prompt")
    parser.add_argument(
        "-o", "--option", dest="options", action=OptionAction, nargs=2, metavar=("KEY", "VALUE"), default=None,
        help=f"a generation option (repeatable): {', '.join(OPTION_TYPES)}; e.g. -o temperature 0.7",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")


def _generation_options(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = dict(getattr(args, "options", None) or {})
    for name, flag in OPTION_FLAGS.items():
        given = getattr(args, name, None)
        if given is None:
            continue
        if name in values and values[name] != given:
            raise UsageError(f"{flag} {given} and -o {name} {values[name]} disagree; give {name} once")
        values[name] = given
    if getattr(args, "system", None) is not None:
        values["system"] = args.system
    return values


def read_attachments(refs: list[str]) -> list[Attachment]:
    """`-a` references as Attachments: paths, URLs, or `-` for the bytes on stdin (read once)."""
    from ..types import Attachment

    out = []
    for ref in refs:
        if ref == "-":
            data = sys.stdin.buffer.read()
            if not data:
                raise BadInputError("-a - was given but stdin is empty")
            out.append(Attachment.from_bytes(data, name="stdin"))
        else:
            out.append(Attachment.parse(ref))
    return out


def resolve_prompt(argument: str | None, attachments: list[Attachment], refs: list[str]) -> str:
    """The prompt from stdin and/or the argument, or the default for the attachments; else a usage error."""
    prompt = read_prompt(argument, stdin_is_media="-" in refs)
    if prompt is not None:
        return prompt
    if attachments:
        return default_prompt([a.kind for a in attachments])
    raise UsageError("a prompt is required without an attachment: give PROMPT, pipe it on stdin, or attach a file "
                     "with -a for a default description")


def request_from_args(args: argparse.Namespace, prompt: str | None, media: list[MediaInput] | None = None) -> Request:
    """Build a Request from parsed flags; bad values raise BadInputError (exit 2).

    `prompt` None (an `ask` without one) reads stdin or falls back to the attachments' default prompt."""
    from ..request_builder import build_request
    from ..types import GenerationOptions

    if media is None:
        attachments = read_attachments(args.attachments)
        prompt = resolve_prompt(prompt, attachments, args.attachments)
        media = list(attachments)
    elif prompt is None:
        raise UsageError("a prompt is required")
    try:
        options = GenerationOptions(**_generation_options(args))
    except BadInputError as exc:  # name the flag the user typed
        message = str(exc)
        for name in OPTION_TYPES:
            if message.startswith(name):
                typed = OPTION_FLAGS[name] if getattr(args, name, None) is not None else f"-o {name}"
                message = typed + message[len(name):]
        raise BadInputError(message) from None

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


def open_answer_log(processor: HybridVLMProcessor) -> AnswerLog | None:
    """The answer log for this processor's settings, or None when it is off or cannot be opened (a warning)."""
    import sqlite3

    from ..answer_log import AnswerLog

    try:
        return AnswerLog.open(processor.settings)
    except (sqlite3.Error, OSError) as exc:
        info(f"warning: answers are not logged ({exc})")
        return None


def log_answer(log: AnswerLog | None, result: Result, request: Request, source: str) -> None:
    """Record one answer; a failure is a warning, never a lost answer."""
    import sqlite3

    if log is None:
        return
    try:
        log.record(result, prompt=request.prompt, system=request.options.system, source=source)
    except (sqlite3.Error, OSError, ValueError) as exc:  # ValueError: text SQLite cannot store (lone surrogates)
        info(f"warning: the answer was not logged ({exc})")


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
    _log_and_close(processor, result, request)  # after the answer is out: logging never costs it
    if result.blocked:
        info("the answer was blocked by the backend's safety filter")
        return 1
    return 0


def _log_and_close(processor: HybridVLMProcessor, result: Result, request: Request) -> None:
    log = open_answer_log(processor)
    if log is not None:
        try:
            log_answer(log, result, request, "ask")
        finally:
            log.close()


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
    _log_and_close(processor, final, request)
    return 1 if final.blocked else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ask", help="answer a question about images, video or DICOM",
        description="Answer PROMPT about the attachments. The prompt may be piped on stdin (then PROMPT, if "
        "given, is appended after it) or be '-' to read stdin; with an attachment and no prompt the default "
        "is 'Describe this image.' ('Describe these images.', 'Describe this video.'). Answers are kept in "
        "the private answer log (see `fastvlm-hybrid logs`; sensitive requests keep no text).",
    )
    p.add_argument("prompt", nargs="?", default=None, metavar="PROMPT",
                   help=f"the question or instruction; '-' reads stdin; {DEFAULT_PROMPT_HELP}")
    add_request_flags(p)
    add_generation_flags(p)
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    p.add_argument("--all", action="store_true", help="parallel mode: wait for and print every backend's answer")
    add_json_flag(p)
    p.set_defaults(handler=_ask)
