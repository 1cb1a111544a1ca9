"""The Agent contract: inputs, options and routing hints declared as data, a typed result, hooks.

Why one contract: every agent, from a five-line YAML recipe to the medical and surveillance agents,
is listed, described and run the same way by the registry, for the CLI (`agents list/run`, and the
agents' own commands), the HTTP API (`GET /v1/agents`, `POST /v1/agents/{name}`) and user code. An
agent declares:

- `accepts` (input kinds: image, video, dicom, youtube, stream) with `min_inputs`/`max_inputs`;
- `option_specs`: its own options as data (`options.py`), checked by `parse_options`;
- `hints` (routing and privacy) and `params` (prompt placeholders);
- `output_model`: the pydantic model of one answer's `output`; `ItemResult.to_dict()` is JSON.

Everything hard (routing, privacy, retries on malformed JSON, batch concurrency, output) is shared.
A prompt-and-schema agent is a small subclass (prompt, `output_model`, maybe `check`/`postprocess`)
or a YAML recipe (`recipe.py`); an agent with its own pipeline (medical, surveillance) overrides `arun`.

Lifecycle, driven by `AgentRegistry.run`:
    `check_options` (routing flags, params, options; nothing read, no processor built)
    ->  `arun(processor, refs, options)`: resolve inputs  ->  build Request(s) with routing hints
    ->  structured call (schema in options + prompt, validate, `check`, retry once)  ->  postprocess
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from ..errors import BadInputError, HybridError, PolicyViolationError
from ..request_builder import build_request
from ..types import Attachment, Domain, GenerationOptions, Latency, Mode, Request, Result
from .inputs import InputItem, resolve_inputs  # re-exported: agents import them from here
from .options import Materialize, OptionSpec, OptionValue, options_schema, parse_options
from .structured import AgentOutputError, ask_structured, schema_for  # structured imports nothing from here

if TYPE_CHECKING:
    from ..config import Settings
    from .answering import Answerer


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


# --------------------------------------------------------------------------- options


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
    #: the agent's own options (declared in `Agent.option_specs`), as `Agent.parse_options` returns them
    extra: dict[str, OptionValue] = field(default_factory=dict)
    #: called with each progress event of an agent that reports over time (surveillance: every alert,
    #: `{"type": "event", "event": {...}, ...}`); may be called from a worker thread
    on_event: Callable[[dict[str, Any]], None] | None = None
    #: polled by long agents between frames or items; True stops them early (a cancelled job)
    should_stop: Callable[[], bool] | None = None
    #: FFmpeg options for opening a live source (the server's stream policy: protocol and format whitelists)
    source_options: dict[str, str] = field(default_factory=dict)

    def say(self, message: str) -> None:
        (self.warn or _stderr)(message)

    def emit(self, item: ItemResult) -> None:
        if self.on_item is not None:
            self.on_item(item)

    def event(self, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(data)

    def stopped(self) -> bool:
        return self.should_stop is not None and self.should_stop()


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
    #: True for agents that answer each input (or study) on its own: one item each, failures per item
    per_input: bool = False
    #: options beyond the common flags, as data (`options.py`): `--report DIR`, a zones file, ...
    option_specs: ClassVar[tuple[OptionSpec, ...]] = ()

    # -------------------------------------------------------------- description
    def describe(self, *, remote: bool = False) -> dict[str, Any]:
        """What `agents list --json` and `GET /v1/agents` show; `remote` keeps the options a remote
        caller may set (and describes a `file` option as its content)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "description": self.summary,
            "accepts": sorted(self.accepts),
            "inputs": {"kinds": sorted(self.accepts), "min": self.min_inputs, "max": self.max_inputs},
            "per_input": self.per_input,
            "hints": self.hints.to_dict(),
            "params": dict(self.params),
            "options": options_schema(self.option_specs, remote=remote),
            "source": self.source,
        }

    def output_schema(self) -> dict[str, Any]:
        return schema_for(self.output_model)

    # -------------------------------------------------------------- options and checks before a run
    def parse_options(
        self, raw: Mapping[str, object], *, remote: bool = False, materialize: Materialize | None = None,
    ) -> dict[str, OptionValue]:
        """The agent's own options from flags, form fields or JSON: typed, defaulted, or `BadInputError`."""
        return parse_options(self.option_specs, raw, agent=self.name, remote=remote, materialize=materialize)

    def check_options(self, options: AgentOptions) -> None:
        """Everything that can be refused before an input is read or a processor built: routing flags
        (a refused `--mode` is a `PolicyViolationError`), unknown parameters, the agent's options
        (their defaults are filled in here)."""
        self.request_hints(options)
        self._check_params(options)
        options.extra = self.parse_options(options.extra)

    def needs_processor(self, options: AgentOptions) -> bool:
        """False when these options call no model at all (surveillance without descriptions): the
        caller may then pass `processor=None` and skip building one."""
        return True

    def settings_for(self, settings: Settings) -> Settings:
        """The settings of a processor built for this agent alone (medical drops the Gemini key)."""
        return settings

    def render_event(self, event: dict[str, Any]) -> str:
        """One progress event for the terminal. Default: compact JSON."""
        return json.dumps(event, ensure_ascii=False, default=str)

    # -------------------------------------------------------------- hooks
    def check(self, value: BaseModel, ctx: AgentContext) -> None:
        """Reject a schema-valid answer that is wrong for these inputs (raise `OutputProblem`)."""

    def postprocess(self, value: BaseModel, ctx: AgentContext) -> dict[str, Any]:
        """Turn the validated answer into the output dict. Default: the model's data as JSON."""
        return value.model_dump(mode="json")

    def render(self, output: dict[str, Any]) -> str:
        """Human-readable text for the terminal. Default: indented JSON."""
        return json.dumps(output, indent=2, ensure_ascii=False)

    # -------------------------------------------------------------- building requests
    def prompt_values(self, ctx: AgentContext) -> dict[str, str]:
        """Placeholders the agent fills itself (e.g. the number of screenshots); not user-settable."""
        return {}

    def _check_params(self, options: AgentOptions) -> None:
        unknown = sorted(set(options.params) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise BadInputError(f"{self.name} has no parameter {unknown[0]!r} (parameters: {known})")

    def build_prompt(self, ctx: AgentContext) -> str:
        values = {**self.params, **ctx.options.params, **self.prompt_values(ctx)}
        self._check_params(ctx.options)
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
        self, processor: Answerer, ctx: AgentContext, attachments: tuple[Attachment, ...], prompt: str | None = None,
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

    async def arun(self, processor: Answerer, refs: list[str], options: AgentOptions) -> list[ItemResult]:
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
    "OptionSpec",
    "OutputProblem",
    "RoutingHints",
    "resolve_inputs",
]
