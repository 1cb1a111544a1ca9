"""Any OpenAI-compatible chat server: vLLM, Ollama, llama.cpp server, LM Studio.

Why this backend exists: it is how the local model scales past one machine (a vLLM box on the
LAN) and how users bring a model we do not ship. It counts as LOCAL only when its base URL is on this
machine (loopback or a Unix socket) or the settings declare the server trusted (`openai_trusted`);
otherwise it is a CLOUD backend (privacy/locality.py): the registry builds it behind the egress gate,
sensitive requests are refused and image metadata is stripped, exactly as for Gemini.

Images always travel as `data:` URIs inside `image_url` parts: the server may not be able to
reach the files or URLs this machine can. One long-lived `httpx.AsyncClient` (created on first
use) keeps connections warm. Errors map to the same classes as Gemini's and share the circuit
breaker (`circuit.py`), so the processor treats every HTTP backend alike.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    BackendRejectedError,
    ConfigurationError,
    HybridError,
    InvalidResponseError,
    PolicyViolationError,
    ServerError,
)
from ..privacy.locality import openai_is_local
from ..types import Attachment, BackendKind, Generation, Request, Usage
from .base import Backend, Health, settings_or_default
from .catalogue import capabilities_of
from .circuit import CircuitBreaker, error_for_status, transport_error

if TYPE_CHECKING:
    import httpx

    from ..config import Settings


class OpenAICompatBackend(Backend):
    """Chat completions over HTTP, streamed with server-sent events."""

    name = "openai"
    capabilities = capabilities_of("openai")  # backends/catalogue.py, the one table

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        circuit: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings = settings_or_default(settings)
        local = openai_is_local(settings)
        self.capabilities = replace(type(self).capabilities, kind=BackendKind.LOCAL if local else BackendKind.CLOUD)
        self.default_model = settings.openai_model or ""
        self.timeout_s: float = settings.openai_timeout_s
        self.circuit = circuit or CircuitBreaker(self.name, clock=clock)
        self._client: httpx.AsyncClient | None = None

    @property
    def circuit_state(self) -> str:
        return self.circuit.state.value

    @property
    def base_url(self) -> str:
        url = (self.settings.openai_base_url or "").rstrip("/")
        if not url:
            raise ConfigurationError(
                "the openai backend needs a server: set FASTVLM_HYBRID_OPENAI_BASE_URL (e.g. http://localhost:8000/v1)"
            )
        return url

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            headers = {"Content-Type": "application/json"}
            key = self.settings.openai_api_key
            if key is not None and key.get_secret_value():
                headers["Authorization"] = f"Bearer {key.get_secret_value()}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)),
                limits=httpx.Limits(max_connections=128, max_keepalive_connections=32),
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------------ request building
    async def _content(self, attachments: tuple[Attachment, ...], text: str) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for att in attachments:
            if att.data is None:
                raise BackendRejectedError(f"openai backend cannot fetch {att.kind} URLs; attach the file", self.name)
            data = att.data
            if self.capabilities.is_cloud:
                from ..media.strip import strip_metadata

                data = await asyncio.to_thread(strip_metadata, data, att.mime)
            uri = f"data:{att.mime};base64,{base64.b64encode(data).decode('ascii')}"
            content.append({"type": "image_url", "image_url": {"url": uri}})
        content.append({"type": "text", "text": text})
        return content

    def model_for(self, request: Request) -> str:
        model = self.settings.openai_model or request.model
        if not model:
            raise ConfigurationError("the openai backend needs a model name: set FASTVLM_HYBRID_OPENAI_MODEL")
        return model

    async def payload(self, request: Request, *, stream: bool) -> dict[str, Any]:
        """The chat-completions body: the system message, then one message per turn, each with its images as
        data: URIs before its text; the prompt's turn last."""
        opts = request.options
        messages: list[dict[str, Any]] = []
        if opts.system:
            messages.append({"role": "system", "content": opts.system})
        pictures = request.turn_images()
        for turn, own in zip(request.history, pictures, strict=False):
            if turn.role == "assistant" and not own:
                messages.append({"role": "assistant", "content": turn.text})
            else:
                messages.append({"role": turn.role, "content": await self._content(own, turn.text)})
        messages.append({"role": "user", "content": await self._content(pictures[-1], request.prompt)})
        body: dict[str, Any] = {
            "model": self.model_for(request),
            "messages": messages,
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
            "top_p": opts.top_p,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if opts.seed is not None:
            body["seed"] = opts.seed
        if opts.stop:
            body["stop"] = list(opts.stop)  # the server stops itself; Guarded cuts the answer for any that does not
        if opts.json_schema == {"type": "object"}:
            # OpenAI's json_object mode, which more servers (vLLM, Ollama, llama.cpp) know than a bare schema
            body["response_format"] = {"type": "json_object"}
        elif opts.json_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": opts.json_schema, "strict": True},
            }
        return body

    def _preflight(self, request: Request) -> httpx.AsyncClient:
        if request.sensitive is True and self.capabilities.is_cloud:
            raise PolicyViolationError(
                "the openai backend is configured as a cloud service and refuses requests marked sensitive"
            )
        self.check(request)
        client = self._get_client()
        self.circuit.before_call()
        return client

    # ------------------------------------------------------------------ calls
    async def generate(self, request: Request) -> Generation:
        client = self._preflight(request)
        try:
            body = await self.payload(request, stream=False)
            response = await client.post("/chat/completions", json=body)
            if response.status_code >= 400:
                raise self._status_error(response.status_code, response.text, response.headers)
            generation = self._to_generation(response.json(), body["model"])
        except asyncio.CancelledError:
            self.circuit.release_probe()
            raise
        except Exception as exc:  # noqa: BLE001 - translated into our error tree and re-raised
            raise self._failed(exc) from None
        self.circuit.record_success()
        return generation

    async def stream(self, request: Request) -> AsyncIterator[str]:
        client = self._preflight(request)
        try:
            body = await self.payload(request, stream=True)
            async with client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode("utf-8", "replace")
                    raise self._status_error(response.status_code, text, response.headers)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    piece = self._delta(json.loads(data))
                    if piece:
                        yield piece
        except (GeneratorExit, asyncio.CancelledError):
            self.circuit.release_probe()
            raise
        except Exception as exc:  # noqa: BLE001 - translated into our error tree and re-raised
            raise self._failed(exc) from None
        self.circuit.record_success()

    async def health(self) -> Health:
        snap = self.circuit.snapshot()
        extra = {**snap, "model": self.default_model, "kind": self.capabilities.kind.value}
        if not self.settings.openai_base_url:
            return Health(ready=False, detail="not configured: set FASTVLM_HYBRID_OPENAI_BASE_URL", extra=extra)
        if snap["circuit"] == "open":
            return Health(ready=False, detail=f"circuit open: {snap['reason']}", extra=extra)
        return Health(ready=True, detail=f"circuit {snap['circuit']}", extra=extra)

    # ------------------------------------------------------------------ parsing and errors
    def _delta(self, event: dict[str, Any]) -> str:
        if "error" in event:
            error = event["error"] if isinstance(event["error"], dict) else {"message": str(event["error"])}
            raise ServerError(f"openai server failed mid-stream: {error.get('message', 'unknown error')}", self.name)
        choices = event.get("choices") or []
        if not choices:
            return ""
        return str((choices[0].get("delta") or {}).get("content") or "")

    def _to_generation(self, data: dict[str, Any], model: str) -> Generation:
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise InvalidResponseError("openai server returned no choices", self.name) from None
        usage = data.get("usage") or {}
        blocked = choice.get("finish_reason") == "content_filter"
        if blocked:
            text = "The openai server declined to answer: its content filter blocked the response."
        return Generation(
            text=text,
            model=str(data.get("model") or model),
            usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), 0.0),
            finish_reason=choice.get("finish_reason"),
            blocked=blocked,
        )

    def _status_error(self, status: int, text: str, headers: httpx.Headers) -> HybridError:
        try:
            error = json.loads(text).get("error")
            message = error.get("message") if isinstance(error, dict) else str(error or text)
        except (ValueError, AttributeError):
            message = text
        retry_after: float | None = None
        if headers.get("retry-after"):
            try:
                retry_after = float(headers["retry-after"])
            except ValueError:
                retry_after = None
        return error_for_status(status, (message or "").strip()[:300], self.name, retry_after_s=retry_after)

    def _failed(self, exc: Exception) -> HybridError:
        if isinstance(exc, HybridError):
            error = exc
        elif isinstance(exc, (ValueError, KeyError)) and not isinstance(exc, OSError):
            error = InvalidResponseError(f"openai server sent something unreadable: {exc}", self.name)
        else:
            error = transport_error(exc, self.name, self.timeout_s) or ServerError(
                f"openai backend failed: {type(exc).__name__}: {exc}", self.name
            )
        self.circuit.record_failure(error)
        return error
