"""The Agent contract: a prompt, routing hints, an output schema, and optional hooks.

Why a contract: an agent is a few lines of intent (what to ask, what shape the answer has, how
private the input is), and everything hard (routing, privacy, retries on malformed JSON, batch
concurrency, CLI output) is shared. A new agent is either a small subclass of `Agent` (prompt,
`output_model`, maybe `check`/`postprocess`) or a YAML recipe (`recipe.py`) that builds one.

Lifecycle of `Agent.arun(processor, refs, options)`:
    resolve inputs (files, folders, URLs; kinds checked)  ->  build Request(s) with routing hints
    ->  structured call (schema in options + prompt, validate, `check`, retry once)  ->  postprocess
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from ..errors import BadInputError, HybridError, PolicyViolationError
from ..request_builder import build_request
from ..types import Attachment, Domain, GenerationOptions, Latency, Mode, Request, Result, sniff_mime
from .structured import AgentOutputError, ask_structured, schema_for  # structured imports nothing from here


class OutputProblem(ValueError):
    """Raised by an agent's `check` hook: valid JSON, but wrong for this input (triggers the retry)."""


# --------------------------------------------------------------------------- routing hints


@dataclass(frozen=True)
class RoutingHints:
    """How an agent wants its requests routed; the user's flags win, except where privacy says no.

    `local_only` forces `local-only` mode and a sensitive request (no flag can undo it);
    `sensitive=True` is a default the user may lift with `--not-sensitive` (the router's own
    detection still applies then); `sensitive=False` is the same as None, because a hint must never
    waive the router's own detection. There is no "prefer cloud" switch on purpose: every agent asks
    for JSON, and the default rules already route schema-bound requests cloud-first when allowed.
    """

    mode: Mode | None = None
    sensitive: bool | None = None
    domain: Domain | None = None
    latency: Latency | None = None
    local_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("mode", "domain", "latency"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.value
        if self.sensitive is not None:
            out["sensitive"] = self.sensitive
        if self.local_only:
            out["local_only"] = True
        return out


# --------------------------------------------------------------------------- inputs and options

MEDIA_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic",
    ".dcm", ".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v",
})


@dataclass(frozen=True)
class InputItem:
    """One input, sniffed but not yet read: a file path or a URL, with its media kind."""

    ref: str
    kind: str  # image, video, dicom, youtube, url
    name: str

    def load(self) -> Attachment:
        return Attachment.parse(self.ref)


def _kind_of_file(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    mime = sniff_mime(head)
    if mime is None:
        return None
    return Attachment(mime=mime).kind if mime.startswith(("image/", "video/", "application/dicom")) else None


def resolve_inputs(refs: list[str], accepts: frozenset[str], agent: str) -> list[InputItem]:
    """Files, folders (expanded, sorted) and URLs, each checked against the kinds `agent` accepts."""
    items: list[InputItem] = []
    for ref in refs:
        if "://" in ref or ref.startswith("data:"):
            att = Attachment.parse(ref)
            kind = att.kind
            if kind not in accepts:
                raise BadInputError(f"{agent} cannot take {ref}: it accepts {_kinds(accepts)}, not {kind} links")
            items.append(InputItem(ref, kind, ref))
            continue
        path = Path(ref)
        if path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
            kept = [(p, _kind_of_file(p)) for p in found]
            kept = [(p, k) for p, k in kept if k in accepts]
            if not kept:
                raise BadInputError(f"{ref} holds no {_kinds(accepts)} files for {agent}")
            items.extend(InputItem(str(p), str(k), p.name) for p, k in kept)
            continue
        if not path.exists():
            raise BadInputError(f"no such file: {ref}")
        kind = _kind_of_file(path)
        if kind is None:
            raise BadInputError(f"{ref} is not a supported image, video or DICOM file")
        if kind not in accepts:
            raise BadInputError(f"{agent} cannot take {ref}: it accepts {_kinds(accepts)}, not {kind}")
        items.append(InputItem(str(path), kind, path.name))
    return items


def _kinds(accepts: frozenset[str]) -> str:
    names = {"youtube": "YouTube URL", "dicom": "DICOM"}
    return " or ".join(names.get(k, k) for k in sorted(accepts))


@dataclass
class AgentOptions:
    """What the caller (CLI flag, API argument) says; None means "the agent's default"."""

    mode: Mode | None = None
    sensitive: bool | None = None  # True: --sensitive; False: --not-sensitive; None: agent default
    domain: Domain | None = None
    latency: Latency | None = None
    model: str | None = None
    max_tokens: int | None = None
    concurrency: int = 4
    max_frames: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    sidecar: str | None = None  # caption: write txt/json beside each image
    overwrite: bool = False  # caption: redo images that already have a sidecar
    progress: bool = True
    warn: Callable[[str], None] | None = None
    #: called with each item as soon as it is done (batches stream their output through this)
    on_item: Callable[[ItemResult], None] | None = None

    def say(self, message: str) -> None:
        (self.warn or _stderr)(message)

    def emit(self, item: ItemResult) -> None:
        if self.on_item is not None:
            self.on_item(item)


def _stderr(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")


@dataclass
class ItemResult:
    """One answer of an agent: its validated output, or the error that stopped it."""

    agent: str
    input: str | list[str]
    output: dict[str, Any] | None = None
    error: HybridError | None = None
    result: Result | None = None
    attempts: int = 0
    retried_because: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.output is not None

    def to_dict(self) -> dict[str, Any]:
        res = self.result
        return {
            "agent": self.agent,
            "input": self.input,
            "ok": self.ok,
            "output": self.output,
            "error": {"type": self.error.code, "message": str(self.error)} if self.error else None,
            "backend": res.backend if res else None,
            "model": res.model if res else None,
            "attempts": self.attempts,
            "retried_because": self.retried_because,
            "cached": res.cached if res else False,
            "latency_ms": round(res.latency_ms, 1) if res else None,
            "route": res.route.to_dict() if res else None,
        }


@dataclass
class AgentContext:
    """What hooks see: the agent's inputs, the caller's options, and agent-specific extras."""

    items: list[InputItem]
    options: AgentOptions
    attachments: tuple[Attachment, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the contract


class Agent:
    """Base of every agent. Subclasses set the class attributes and may override the hooks."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    accepts: frozenset[str] = frozenset({"image"})
    output_model: type[BaseModel]
    prompt: str = ""
    system: str | None = None
    hints: RoutingHints = RoutingHints()
    max_tokens: int = 768
    min_inputs: int = 1
    max_inputs: int | None = None
    #: prompt placeholders (`{audience}`) and their defaults; `--param KEY=VALUE` sets them
    params: ClassVar[dict[str, str]] = {}
    source: str = "built-in"
    #: True for agents that answer each input on its own (caption, document): one item per input
    per_input: bool = False

    # -------------------------------------------------------------- description
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "accepts": sorted(self.accepts),
            "hints": self.hints.to_dict(),
            "params": dict(self.params),
            "source": self.source,
        }

    def output_schema(self) -> dict[str, Any]:

        return schema_for(self.output_model)

    # -------------------------------------------------------------- hooks
    def check(self, value: BaseModel, ctx: AgentContext) -> None:
        """Reject a schema-valid answer that is wrong for these inputs (raise `OutputProblem`)."""

    def postprocess(self, value: BaseModel, ctx: AgentContext) -> dict[str, Any]:
        """Turn the validated answer into the output dict. Default: the model's data as JSON."""
        return value.model_dump(mode="json")

    def render(self, output: dict[str, Any]) -> str:
        """Human-readable text for the terminal. Default: indented JSON."""
        import json

        return json.dumps(output, indent=2, ensure_ascii=False)

    # -------------------------------------------------------------- building requests
    def prompt_values(self, ctx: AgentContext) -> dict[str, str]:
        """Placeholders the agent fills itself (e.g. the number of screenshots); not user-settable."""
        return {}

    def build_prompt(self, ctx: AgentContext) -> str:
        values = {**self.params, **ctx.options.params, **self.prompt_values(ctx)}
        unknown = sorted(set(ctx.options.params) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise BadInputError(f"{self.name} has no parameter {unknown[0]!r} (parameters: {known})")
        try:
            return self.prompt.format_map(values)
        except (KeyError, IndexError, ValueError) as exc:
            raise BadInputError(f"{self.name}: the prompt needs a value for {exc}") from None

    def request_hints(self, options: AgentOptions) -> dict[str, Any]:
        """Request keyword arguments: the user's flags over the agent's hints, privacy kept."""
        hints = self.hints
        mode = options.mode or hints.mode
        sensitive: bool | None
        if options.sensitive is True:
            sensitive = True
        elif options.sensitive is False:
            sensitive = None  # lifted: the router's own detection still decides
        else:
            # `sensitive: false` in a hint means "no default", never "waive the router's detection".
            sensitive = True if hints.sensitive else None
        if hints.local_only:
            if mode not in (None, Mode.LOCAL_ONLY):
                raise PolicyViolationError(f"the {self.name} agent runs locally only: --mode {mode.value} is refused")
            mode, sensitive = Mode.LOCAL_ONLY, True
        if sensitive and mode is Mode.CLOUD_ONLY:
            raise PolicyViolationError(
                f"{self.name} input is treated as sensitive and never leaves this machine: "
                "--mode cloud-only is refused (pass --not-sensitive if it is not private)"
            )
        return {
            "mode": mode,
            "sensitive": sensitive,
            "domain": options.domain or hints.domain,
            "latency": options.latency or hints.latency,
            "model": options.model,
        }

    def make_request(self, ctx: AgentContext, attachments: tuple[Attachment, ...], prompt: str) -> Request:
        options = GenerationOptions(max_tokens=ctx.options.max_tokens or self.max_tokens, system=self.system)
        return build_request(prompt, list(attachments), options=options, **self.request_hints(ctx.options))

    def check_count(self, items: list[InputItem]) -> None:
        n = len(items)
        if n < self.min_inputs:
            raise BadInputError(f"{self.name} needs at least {self.min_inputs} input(s), got {n}")
        if self.max_inputs is not None and n > self.max_inputs:
            raise BadInputError(f"{self.name} takes at most {self.max_inputs} input(s), got {n}")

    # -------------------------------------------------------------- running
    async def ask(
        self, processor: Any, ctx: AgentContext, attachments: tuple[Attachment, ...], prompt: str | None = None,
        *, label: str | list[str] | None = None,
    ) -> ItemResult:
        """One structured call (with its single retry), then `postprocess`; errors stay in the item."""

        item = ItemResult(self.name, label if label is not None else [i.ref for i in ctx.items])
        request = self.make_request(ctx, attachments, prompt or self.build_prompt(ctx))

        def check(value: BaseModel) -> None:
            self.check(value, ctx)

        try:
            answer = await ask_structured(processor, request, self.output_model, label=self.name, check=check)
        except HybridError as exc:
            item.error = exc
            return item
        item.result, item.attempts, item.retried_because = answer.result, answer.attempts, answer.first_error
        item.output = self.postprocess(answer.value, ctx)
        return item

    async def arun(self, processor: Any, refs: list[str], options: AgentOptions) -> list[ItemResult]:
        """Run the agent over `refs`. The default: every input in one request, one answer."""
        items = resolve_inputs(refs, self.accepts, self.name)
        self.check_count(items)
        ctx = AgentContext(items, options, tuple(i.load() for i in items))
        self.prepare(ctx)
        return [await self.ask(processor, ctx, ctx.attachments)]

    def prepare(self, ctx: AgentContext) -> None:
        """Check parameters and routing flags before any model call: a bad `--param` or a refused
        `--mode` is one exit-2 error, not a failure repeated for every item of a batch."""
        self.build_prompt(ctx)
        self.request_hints(ctx.options)


__all__ = [
    "Agent",
    "AgentContext",
    "AgentOptions",
    "AgentOutputError",
    "InputItem",
    "ItemResult",
    "OutputProblem",
    "RoutingHints",
    "resolve_inputs",
]
