"""A plugin for Simon Willison's `llm` CLI: `llm -m hybrid -a photo.jpg "Describe it"` answered in this process.

Installed with the `llm` extra (or `llm install fastvlm-gemini-hybrid`); the `llm` entry point in pyproject.toml
names this module. It registers three models, each sync and async:

    hybrid        routed: the settings' default mode (auto unless FASTVLM_HYBRID_DEFAULT_MODE says otherwise)
    hybrid-local  local-only: nothing leaves this machine
    hybrid-cloud  cloud-only (the egress gate still inspects and may refuse)

Every prompt goes through one `HybridVLMProcessor`, built on first use from `load_settings()` (the same
FASTVLM_HYBRID_* environment and config file as the `fastvlm-hybrid` CLI) and closed at exit. Options map
onto the one request builder (`build_request`); `response_json` is our `Result.to_dict()`, so
`llm logs --json` shows the route, the backend and the privacy verdict. Our errors become `llm.ModelError`
with their one-line message.

Only this module imports `llm`: the package itself never does, so `llm` stays an optional dependency.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import llm
from pydantic import Field

from ._loop import LoopThread
from .errors import HybridError
from .request_builder import build_request
from .types import Attachment, GenerationOptions, Mode, Request, Result, Turn

if TYPE_CHECKING:
    from .processor import HybridVLMProcessor

log = logging.getLogger(__name__)

# llm checks each attachment's type against this set by exact string, as `puremagic` names it (BMP is
# image/x-ms-bmp, AVI video/avi there), so both spellings are listed. Our `Attachment.from_bytes` sniffs the
# bytes again either way. HEIC is left out: its metadata cannot be stripped, so the cloud would refuse it.
ATTACHMENT_TYPES: frozenset[str] = frozenset({
    "image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/x-ms-bmp", "image/tiff",
    "video/mp4", "video/quicktime", "video/webm", "video/x-msvideo", "video/avi", "video/mpeg",
    "application/dicom",
})

#: (model id, the mode it runs in; None = the router's default mode, and the `mode` option is offered)
MODELS: tuple[tuple[str, Mode | None], ...] = (
    ("hybrid", None),
    ("hybrid-local", Mode.LOCAL_ONLY),
    ("hybrid-cloud", Mode.CLOUD_ONLY),
)


# The choices as Literals, not our enums: llm before 0.2x cannot list an enum-typed option (`llm models
# --options` fails on its JSON schema). tests/integrations/test_llm_plugin.py checks they match the enums.
ModeName = Literal["local-only", "cloud-only", "auto", "parallel", "fallback"]
DomainName = Literal["medical", "financial", "legal", "security", "technical", "educational", "creative", "general"]


class HybridOptions(llm.Options):
    """Options of `hybrid-local` and `hybrid-cloud`. Ranges are checked once, by `GenerationOptions`."""

    max_tokens: int | None = Field(None, description="Most tokens to generate (default 256)")
    temperature: float | None = Field(None, description="Sampling temperature, 0 to 2 (default 0)")
    top_p: float | None = Field(None, description="Nucleus sampling, (0, 1] (default 1)")
    seed: int | None = Field(None, description="Random seed, where the backend takes one")
    sensitive: bool | None = Field(None, description="Treat the request as sensitive: it never leaves this machine")
    domain: DomainName | None = Field(None, description="Routing hint: " + ", ".join(get_args(DomainName)))
    backend_model: str | None = Field(
        None, description="Pin a backend or a model it serves: gemini, fastvlm, gemini-2.5-flash, gemini/gemini-2.5-pro"
    )


class RoutedOptions(HybridOptions):
    """`hybrid` also takes the mode; the other two are fixed to theirs, so there it is not an option at all."""

    mode: ModeName | None = Field(None, description="Routing mode: " + ", ".join(get_args(ModeName)))


# --------------------------------------------------------------------------- the processor

_processor: HybridVLMProcessor | None = None
_owned = False  # whether this module built `_processor` (and so closes it at exit)
_lock = threading.Lock()


def set_processor(processor: HybridVLMProcessor | None) -> None:
    """Use `processor` for every prompt (tests, embedders); None forgets it. The caller closes what it passed."""
    global _processor, _owned
    with _lock:
        _processor, _owned = processor, False


def get_processor() -> HybridVLMProcessor:
    """The process's one processor, built from `load_settings()` on first use and closed at exit."""
    global _processor, _owned
    with _lock:
        if _processor is None:
            from .config import load_settings
            from .processor import HybridVLMProcessor

            _processor, _owned = HybridVLMProcessor(load_settings()), True
            atexit.register(close_processor)
        return _processor


def close_processor() -> None:
    """Close the processor this module built (at exit); one given to `set_processor` is its owner's to close."""
    global _processor, _owned
    with _lock:
        processor, owned = _processor, _owned
        if owned:
            _processor, _owned = None, False
    if processor is None or not owned:
        return
    try:
        processor.close()
    except Exception as exc:  # noqa: BLE001 - the answer is already shown; exit must not end in a traceback
        log.warning("closing the hybrid processor failed: %s", exc)


def _loop_of(processor: HybridVLMProcessor) -> LoopThread:
    # The processor's own loop thread, the one `processor.run` uses: backends keep async clients bound to
    # one loop, and `processor.close()` closes them on it and stops it.
    with _lock:
        return processor.loop_thread


class _Bridge:
    """Drives one async generator of the processor on its loop thread, one item per `next()` call.

    One step at a time (rather than draining the stream into a list) so each piece reaches `llm` as soon as
    the backend produced it, and so a consumer that stops early closes the stream (and the backend call)."""

    def __init__(self, loop: LoopThread, items: AsyncIterator[str | Result]) -> None:
        self._loop, self._items = loop, items
        self._step_task: asyncio.Task[Any] | None = None

    @classmethod
    def open(cls, request: Request, stream: bool) -> _Bridge:
        processor = get_processor()
        items = processor.astream(request) if stream else _whole(processor, request)
        return cls(_loop_of(processor), items)

    def next(self) -> str | Result | None:
        """The next piece, then the `Result`, then None. Blocks this thread, never the processor's loop."""
        return self._loop.run(self._step())

    def close(self) -> None:
        self._loop.run(self._aclose())

    async def _step(self) -> str | Result | None:
        self._step_task = asyncio.current_task()
        try:
            return await self._items.__anext__()
        except StopAsyncIteration:
            return None

    async def _aclose(self) -> None:
        # A step still in flight (its caller was interrupted while waiting, e.g. Ctrl-C) is cancelled first:
        # a running async generator cannot be closed, and the backend call would go on generating.
        task = self._step_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        aclose = getattr(self._items, "aclose", None)
        if aclose is not None:
            await aclose()


async def _whole(processor: HybridVLMProcessor, request: Request) -> AsyncIterator[str | Result]:
    """`stream=False` (`llm --no-stream`, `--json`): `arun`, the same path as `fastvlm-hybrid ask` takes."""
    result = await processor.arun(request)
    yield result.response
    yield result


# --------------------------------------------------------------------------- llm prompt -> Request


Entry = tuple[str, str, list[llm.Attachment]]  # (role, text, its attachments)


def _earlier(prompt: llm.Prompt, conversation: Any) -> tuple[list[Entry], list[str]]:
    """The turns before this one, oldest first, and the chain's system prompts."""
    chain = getattr(prompt, "messages", None)
    if chain is None:
        # llm before the `messages` chain: history is the conversation's responses (a response read back
        # from the log for `llm -c` keeps its attachments on itself, not on its prompt).
        entries: list[Entry] = []
        systems: list[str] = []
        for earlier in getattr(conversation, "responses", None) or []:
            atts = earlier.prompt.attachments or getattr(earlier, "attachments", None) or []
            entries.append(("user", earlier.prompt.prompt, list(atts)))
            entries.append(("assistant", earlier.text(), []))
            if earlier.prompt.system and earlier.prompt.system not in systems:
                systems.append(earlier.prompt.system)
        return entries, systems
    # Newer llm: `prompt.messages` is the whole chain, including history that `llm -c` read back from
    # its log database (where `conversation.responses` stays empty), and ends with this turn's user message.
    from llm.parts import AttachmentPart, TextPart

    systems = []
    entries = []
    for message in chain:
        text = "\n".join(p.text for p in message.parts if isinstance(p, TextPart))
        if message.role == "system":
            systems.append(text)
        elif message.role in ("user", "assistant"):
            atts = [p.attachment for p in message.parts if isinstance(p, AttachmentPart) and p.attachment]
            entries.append((message.role, text, atts))
    if entries and entries[-1][0] == "user":
        entries.pop()  # this turn: its text and attachments come from `prompt` itself
    return entries, systems


def _attachment(att: llm.Attachment) -> Attachment:
    """An llm attachment (a path, a URL llm downloads, or bytes) as ours; the bytes decide the type."""
    name = Path(att.path).name if att.path else att.url
    try:
        data = att.content_bytes()
    except OSError as exc:
        raise llm.ModelError(f"cannot read {att.path or att.url}: {exc.strerror or exc}") from None
    return Attachment.from_bytes(data or b"", name=name, mime=att.type)


def _readable(atts: list[llm.Attachment]) -> list[Attachment]:
    out = []
    for att in atts:
        try:
            out.append(_attachment(att))
        except (HybridError, llm.ModelError) as exc:
            # An earlier turn's file may be gone by the time of `llm -c`: its text still carries the
            # context, and failing the whole follow-up over it would be worse than going on without it.
            log.warning("leaving out an earlier attachment: %s", exc)
    return out


def to_request(prompt: llm.Prompt, conversation: Any, mode: Mode | None) -> Request:
    """An `llm` prompt (with its conversation) as our `Request`, through the one request builder.

    Earlier turns become `Request.history`, each with its own pictures, as the OpenAI-compatible API builds
    them: backends that take turns get turns, the others the turns written into one prompt."""
    entries, systems = _earlier(prompt, conversation)
    history: list[Turn] = []
    media: list[Attachment] = []
    for role, text, atts in entries:
        pictures = _readable(atts)
        history.append(Turn(role, text, len(pictures)))
        media += pictures
    media += [_attachment(att) for att in prompt.attachments or []]
    if prompt.system and prompt.system not in systems:
        systems.append(prompt.system)
    opts = prompt.options
    numbers = {k: getattr(opts, k) for k in ("max_tokens", "temperature", "top_p", "seed")
               if getattr(opts, k, None) is not None}
    options = GenerationOptions(**numbers, system="\n\n".join(s for s in systems if s) or None)
    return build_request(
        prompt.prompt, media, history=tuple(history) or None, options=options,
        mode=getattr(opts, "mode", None) or mode, domain=opts.domain, sensitive=opts.sensitive,
        model=opts.backend_model,
    )


def _record(response: llm.Response | llm.AsyncResponse, result: Result) -> None:
    """Why it went where, for `llm logs`: our whole result object, the tokens, and the model that answered."""
    response.response_json = result.to_dict()
    usage = result.usage
    # 0 means "not counted" here (a streamed answer carries no usage; local backends may not count), and
    # llm would log and print it as a real 0: leave it unknown instead.
    if usage.input_tokens or usage.output_tokens:
        details = {"cost_usd": usage.cost_usd} if usage.cost_usd else None
        response.set_usage(input=usage.input_tokens or None, output=usage.output_tokens or None, details=details)
    if hasattr(response, "set_resolved_model") and result.model:  # llm >= 0.25
        response.set_resolved_model(result.model)


def _model_error(exc: HybridError) -> llm.ModelError:
    # llm prints a ModelError as `Error: <message>` (exit 1): our messages are written to stand alone.
    return llm.ModelError(" ".join(str(exc).split()))


# --------------------------------------------------------------------------- the models


class _Hybrid:
    can_stream = True
    attachment_types = ATTACHMENT_TYPES
    supports_schema = False  # TODO: GenerationOptions.json_schema could carry `--schema` to Gemini

    def __init__(self, model_id: str, mode: Mode | None) -> None:
        self.model_id = model_id
        self.mode = mode
        # An instance attribute: `hybrid` offers the mode; the other two are that mode, so they do not.
        self.Options = RoutedOptions if mode is None else HybridOptions


class HybridModel(_Hybrid, llm.Model):
    def execute(
        self, prompt: llm.Prompt, stream: bool, response: llm.Response, conversation: llm.Conversation | None,
    ) -> Iterator[str]:
        try:
            bridge = _Bridge.open(to_request(prompt, conversation, self.mode), stream)
            try:
                while (item := bridge.next()) is not None:
                    if isinstance(item, Result):
                        _record(response, item)
                    elif item:
                        yield item
            finally:
                bridge.close()
        except HybridError as exc:
            raise _model_error(exc) from None


class AsyncHybridModel(_Hybrid, llm.AsyncModel):
    async def execute(
        self, prompt: llm.Prompt, stream: bool, response: llm.AsyncResponse,
        conversation: llm.AsyncConversation | None,
    ) -> AsyncIterator[str]:
        # Every step runs in a worker thread that waits on the processor's loop: the caller's loop is not
        # the one the backends' clients belong to, and must not block while a piece is generated.
        try:
            # Reading the attachments (files, downloads) and building the processor block too.
            bridge = await asyncio.to_thread(
                lambda: _Bridge.open(to_request(prompt, conversation, self.mode), stream))
            try:
                while (item := await asyncio.to_thread(bridge.next)) is not None:
                    if isinstance(item, Result):
                        _record(response, item)
                    elif item:
                        yield item
            finally:
                await asyncio.to_thread(bridge.close)
        except HybridError as exc:
            raise _model_error(exc) from None


@llm.hookimpl
def register_models(register: Any) -> None:
    for model_id, mode in MODELS:
        register(HybridModel(model_id, mode), AsyncHybridModel(model_id, mode))
