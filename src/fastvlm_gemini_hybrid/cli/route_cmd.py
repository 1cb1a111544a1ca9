"""`route`: show the routing decision for a prompt, without calling any model.

Imports only the routing layer (pydantic, PyYAML), never torch or google-genai, so it answers in a
fraction of a second and works on a machine with no model installed. The backends it reasons about
come from `routing.configured_backends(settings)`: static capability data, not backend modules.

With attachments it also runs the egress gate's local inspection (OCR, layouts, faces: nothing
leaves the machine) and names what the pictures show, so `route` predicts what `ask` will do.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..types import Domain, Latency, Mode
from .common import DEFAULT_PROMPT_HELP, add_json_flag, emit, enum_flag, settings_from_args

if TYPE_CHECKING:
    from ..types import Request, RouteDecision


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "route",
        help="show which backends a request would go to, and why (no model call)",
        description="Explain the routing decision for PROMPT: domain, sensitivity, latency class, task, the "
        "ordered backends and the rules that fired. Nothing is sent to any model. The prompt is read as "
        "`ask` reads it: piped stdin first, '-' for stdin only, optional with an attachment.",
    )
    p.add_argument("prompt", metavar="PROMPT", nargs="?", default=None,
                   help=f"the question you would ask; '-' reads stdin; {DEFAULT_PROMPT_HELP}")
    p.add_argument(
        "-a", "--attach", dest="attachments", action="append", default=[], metavar="FILE_OR_URL",
        help="image, video, DICOM file, URL or YouTube link; '-' reads stdin (repeatable)",
    )
    p.add_argument("--mode", **enum_flag(Mode), help="routing mode (default auto, or the settings' default_mode)")
    p.add_argument("--domain", **enum_flag(Domain), help="domain hint (detected from the prompt when left out)")
    p.add_argument("--sensitive", action="store_true", default=None, help="mark the request sensitive")
    p.add_argument("--latency", **enum_flag(Latency), help="latency class hint")
    p.add_argument("--max-latency-ms", type=int, metavar="N", help="latency budget in milliseconds")
    p.add_argument("-m", "--model", help="a backend, backend/model or model name the request pins (as ask --model)")
    add_json_flag(p)
    p.set_defaults(handler=run)


def build_request(args: argparse.Namespace) -> Request:
    """A Request from the flags and the prompt (stdin, argument, or the attachments' default)."""
    from ..request_builder import build_request as build
    from .ask_cmd import read_attachments, resolve_prompt

    attachments = read_attachments(args.attachments)
    prompt = resolve_prompt(args.prompt, attachments, args.attachments)
    return build(prompt, list(attachments), mode=args.mode, domain=args.domain,
                 sensitive=args.sensitive, latency=args.latency, max_latency_ms=args.max_latency_ms,
                 model=args.model)


def explain(decision: RouteDecision) -> str:
    """The decision in words, for people."""
    d = decision
    order = " -> ".join(d.backends)
    lines = [
        f"route: {order}",
        f"mode {d.mode.value} · domain {d.domain.value} · latency {d.latency.value} · task {d.task.value}",
        f"sensitive: {'yes' if d.sensitive else 'no'} · cloud allowed: {'yes' if d.cloud_allowed else 'no'}",
    ]
    if d.escalate_below is not None:
        first, last = d.backends[0], d.backends[-1]
        lines.append(f"escalates to {last} when {first} is less than {d.escalate_below:.2f} confident")
    for reason in d.sensitivity_reasons:
        lines.append(f"  sensitive because {reason}")
    if d.privacy is not None:
        verdict = {"allow": "may leave", "redact": "leaves redacted", "refuse": "stays on this machine"}
        lines.append(f"pictures: {verdict.get(d.privacy['verdict'], d.privacy['verdict'])}")
        lines.extend(f"  - {f['reason']}" for f in d.privacy["findings"] if f["where"].startswith(("picture", "video")))
        lines.extend(f"  redacted: {r}" for r in d.privacy["redactions"])
    if d.rules:
        lines.append("rules:")
        lines.extend(f"  - {hit.name}: {hit.reason}" for hit in d.rules)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..routing import Router, configured_backends, load_rules

    settings = settings_from_args(args)
    request = build_request(args)
    router = Router(
        configured_backends(settings),
        load_rules(settings.rules_file),
        default_mode=settings.default_mode,
        confidence_threshold=settings.confidence_threshold,
    )
    decision = router.decide(request)
    if any(a.data is not None for a in request.attachments):
        from ..privacy.inspector import Inspector, PrivacyPolicy

        inspector = Inspector(PrivacyPolicy.from_settings(settings))
        try:
            decision = router.with_inspection(decision, inspector.inspect(request, explain=True))
        finally:
            inspector.close()
    emit(args, decision.to_dict(), explain(decision))
    return 0
