"""Google Gemini through the google-genai SDK: images, video, YouTube, Files API, streaming, cost.

Design choices and why:
- One `genai.Client` per backend, created on first use (a local-only run never builds one) and
  closed by `aclose()`; the SDK pools connections, so a client per request would reconnect.
- Explicit timeout and retry policy (the SDK has neither by default). In `fallback` mode the
  router, not the SDK, decides what happens after a failure, so the processor wraps the call in
  `circuit.sdk_retries(0)` (per task, safe under concurrency); the `retries` attribute is the
  backend-wide default (from settings). Both are read on every call. 429 is never retried by the SDK:
  the quota window tells us more than a blind retry would (see `_map_error`).
- Privacy in depth: a request marked sensitive is refused here too (`PolicyViolationError`), a
  second lock behind the router's, and every image is re-encoded without EXIF/XMP/GPS first.
- A safety block is an answer (`Generation.blocked`), not an error: another backend answering
  the same prompt is not what the user wants when Google's policy refused it.
- Per-day quota exhaustion opens the circuit until the quota resets (midnight Pacific time),
  so the rest of the day costs nothing to find out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

from .._optional import require
from ..errors import (
    BackendRejectedError,
    BackendTimeoutError,
    ConfigurationError,
    HybridError,
    InvalidResponseError,
    MissingCredentialsError,
    PolicyViolationError,
)
from ..types import Attachment, Generation, Request
from .base import Backend, Health, settings_or_default
from .catalogue import capabilities_of
from .circuit import CircuitBreaker, error_for_status, retries_override, transport_error
from .gemini_prices import price_of, price_table
from .gemini_wire import (
    bad_key,
    chunk_text,
    file_state,
    quota_window,
    seconds_until_quota_reset,
    to_generation,
    youtube_part,
)

if TYPE_CHECKING:
    from google import genai

    from ..config import Settings

log = logging.getLogger(__name__)

#: videos at or above this size go through the Files API (the inline request limit is 20 MB
#: including the prompt and base64 overhead is paid by the SDK's JSON encoding).
INLINE_VIDEO_LIMIT_BYTES = 18 * 1024 * 1024
#: HTTP statuses the SDK itself may retry. 429 is left to the router (see module docstring).
RETRY_STATUSES = (408, 500, 502, 503, 504)
_MODEL_PREFIXES = ("gemini", "gemma", "learnlm", "models/")


def _genai() -> tuple[Any, Any, Any]:
    """(genai, types, errors) modules, imported lazily with the exact install hint."""
    feature = "the Gemini backend"
    return (
        require("google.genai", "gemini", feature),
        require("google.genai.types", "gemini", feature),
        require("google.genai.errors", "gemini", feature),
    )


class GeminiBackend(Backend):
    """Gemini via google-genai. Construction is free; the client is built on first use."""

    name = "gemini"
    capabilities = capabilities_of("gemini")  # backends/catalogue.py, the one table

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        retries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        circuit: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings = settings_or_default(settings)
        self.default_model = settings.gemini_model
        #: SDK retries after a transient failure; `circuit.sdk_retries(n)` around a call overrides it.
        self.retries: int = settings.gemini_retries if retries is None else retries
        self.timeout_s: float = settings.gemini_timeout_s
        #: first back-off of the SDK's exponential retry (with jitter), capped at 8 s
        self.retry_initial_delay_s = 0.5
        self.inline_limit_bytes = INLINE_VIDEO_LIMIT_BYTES
        self.files_poll_interval_s = 1.0
        self.files_max_wait_s = 300.0
        self.batch_concurrency = 16
        self.circuit = circuit or CircuitBreaker(self.name, clock=clock)
        self._client: genai.Client | None = None
        self._client_policy: tuple[int, float, float] | None = None  # retry/timeout the client was built with

    # ------------------------------------------------------------------ client
    @property
    def circuit_state(self) -> str:
        return self.circuit.state.value

    def _api_key(self) -> str:
        key = self.settings.gemini_api_key
        value = key.get_secret_value().strip() if key is not None else ""
        if not value:
            raise MissingCredentialsError("gemini needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)")
        return value

    def effective_retries(self) -> int:
        """`circuit.sdk_retries(n)` around the call wins over the `retries` attribute."""
        override = retries_override()
        return max(0, int(self.retries if override is None else override))

    def _retry_options(self, types: Any) -> Any:
        return types.HttpRetryOptions(
            attempts=self.effective_retries() + 1,
            initial_delay=self.retry_initial_delay_s,
            max_delay=8.0,
            jitter=min(1.0, self.retry_initial_delay_s),
            http_status_codes=list(RETRY_STATUSES),
        )

    def _get_client(self) -> genai.Client:
        if self._client is None:
            api_key = self._api_key()
            genai, types, _ = _genai()
            options = types.HttpOptions(
                base_url=self.settings.gemini_base_url or None,
                api_version=self.settings.gemini_api_version,
                timeout=int(self.timeout_s * 1000),
                retry_options=self._retry_options(types),
            )
            self._client = genai.Client(api_key=api_key, http_options=options)
            self._client_policy = (self.effective_retries(), self.retry_initial_delay_s, self.timeout_s)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aio.aclose()
            client.close()

    # ------------------------------------------------------------------ requests
    def model_for(self, request: Request) -> str:
        """The request's model when it names a Gemini model, else the configured one."""
        if request.model and request.model.lower().startswith(_MODEL_PREFIXES):
            return request.model.removeprefix("models/")
        return self.default_model

    def _preflight(self, request: Request) -> genai.Client:
        """Checks that must pass before any byte leaves: privacy, media, key, circuit."""
        if request.sensitive is True:
            raise PolicyViolationError("gemini refuses requests marked sensitive: they must stay on this machine")
        self.check(request)
        client = self._get_client()
        self.circuit.before_call()
        return client

    def _config(self, request: Request, types: Any) -> Any:
        opts = request.options
        config: dict[str, Any] = {
            "max_output_tokens": opts.max_tokens,
            "temperature": opts.temperature,
            "top_p": opts.top_p,
        }
        policy = (self.effective_retries(), self.retry_initial_delay_s, self.timeout_s)
        if policy != self._client_policy:
            # Changed since the client was built (e.g. the processor set retries=0): per call.
            config["http_options"] = types.HttpOptions(
                timeout=int(self.timeout_s * 1000), retry_options=self._retry_options(types)
            )
        if opts.seed is not None:
            config["seed"] = opts.seed
        if opts.system:
            config["system_instruction"] = opts.system
        if opts.stop:
            config["stop_sequences"] = list(opts.stop)  # Gemini stops itself: fewer tokens paid for
        if opts.json_schema:
            config["response_mime_type"] = "application/json"
            if opts.json_schema != {"type": "object"}:
                # The bare object schema is OpenAI's json_object mode: JSON output says it all, and Gemini
                # refuses an object schema without properties.
                config["response_json_schema"] = opts.json_schema
        return types.GenerateContentConfig(**config)

    async def _contents(self, request: Request, client: genai.Client, uploaded: list[str]) -> list[Any]:
        """One `Content` per turn (user / model), each with its pictures first; the prompt's turn last."""
        _, types, _ = _genai()
        pictures = request.turn_images()
        contents = []
        for turn, own in zip(request.history, pictures, strict=False):
            parts = await self._media_parts(own, client, uploaded)
            parts.append(types.Part.from_text(text=turn.text))
            contents.append(types.Content(role="model" if turn.role == "assistant" else "user", parts=parts))
        parts = await self._media_parts(pictures[-1], client, uploaded)
        parts.append(types.Part.from_text(text=request.prompt))
        contents.append(types.Content(role="user", parts=parts))
        return contents

    async def _media_parts(
        self, attachments: tuple[Attachment, ...], client: genai.Client, uploaded: list[str]
    ) -> list[Any]:
        """Media parts: metadata stripped, large videos uploaded."""
        _, types, _ = _genai()
        parts: list[Any] = []
        for att in attachments:
            if att.kind == "youtube":
                parts.append(youtube_part(att.url or "", types))
            elif att.kind == "video" and att.size >= self.inline_limit_bytes:
                parts.append(await self._upload(client, att, uploaded))
            elif att.data is not None:
                data = att.data
                if att.kind == "image":
                    from ..media.strip import strip_metadata

                    data = await asyncio.to_thread(strip_metadata, att.data, att.mime)
                parts.append(types.Part.from_bytes(data=data, mime_type=att.mime))
            else:
                raise BackendRejectedError(f"gemini cannot fetch {att.kind} URLs; attach the file", self.name)
        return parts

    async def _upload(self, client: genai.Client, att: Attachment, uploaded: list[str]) -> Any:
        """Files API: upload, wait (bounded) until ACTIVE, return a part naming the file."""
        _, types, _ = _genai()
        # No display name: a file name may itself identify a person or place.
        file = await client.aio.files.upload(
            file=io.BytesIO(att.data or b""), config=types.UploadFileConfig(mime_type=att.mime)
        )
        name = cast(str, file.name)  # the Files API names every file it accepts
        uploaded.append(name)
        deadline = time.monotonic() + self.files_max_wait_s
        delay = self.files_poll_interval_s
        while file_state(file) != "ACTIVE":
            if file_state(file) == "FAILED":
                raise BackendRejectedError("gemini could not process the uploaded video", self.name)
            if time.monotonic() + delay > deadline:
                raise BackendTimeoutError(
                    f"gemini was still processing the uploaded video after {self.files_max_wait_s:g}s", self.name
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5.0)
            file = await client.aio.files.get(name=name)
        return types.Part.from_uri(file_uri=file.uri, mime_type=file.mime_type or att.mime)

    async def _delete_uploads(self, client: genai.Client, names: list[str]) -> None:
        for name in names:
            try:
                await client.aio.files.delete(name=name)
            except Exception as exc:  # noqa: BLE001 - cleanup must not mask the answer; files expire in 48 h
                log.warning("gemini: could not delete uploaded file %s: %s", name, exc)

    async def generate(self, request: Request) -> Generation:
        client = self._preflight(request)
        _, types, _ = _genai()
        model = self.model_for(request)
        uploaded: list[str] = []
        try:
            contents = await self._contents(request, client, uploaded)
            response = await client.aio.models.generate_content(
                model=model, contents=contents, config=self._config(request, types)
            )
            generation = to_generation(response, model)
        except asyncio.CancelledError:
            self.circuit.release_probe()
            raise
        except Exception as exc:  # noqa: BLE001 - translated into our error tree and re-raised
            raise self._failed(exc) from None
        finally:
            if uploaded:
                await self._delete_uploads(client, uploaded)
        self.circuit.record_success()
        return generation

    async def stream(self, request: Request) -> AsyncIterator[str]:
        client = self._preflight(request)
        _, types, _ = _genai()
        model = self.model_for(request)
        uploaded: list[str] = []
        chunks: Any = None
        try:
            contents = await self._contents(request, client, uploaded)
            chunks = await client.aio.models.generate_content_stream(
                model=model, contents=contents, config=self._config(request, types)
            )
            async for chunk in chunks:
                text, blocked = chunk_text(chunk)
                if blocked:
                    yield blocked
                    break
                if text:
                    yield text
        except (GeneratorExit, asyncio.CancelledError):
            self.circuit.release_probe()
            raise
        except Exception as exc:  # noqa: BLE001 - translated into our error tree and re-raised
            raise self._failed(exc) from None
        finally:
            if chunks is not None:
                # Close the SDK's stream now (early exit included) so its connection goes back
                # to the pool instead of being torn down later by the garbage collector.
                with contextlib.suppress(Exception):
                    await chunks.aclose()
            if uploaded:
                await self._delete_uploads(client, uploaded)
        self.circuit.record_success()

    async def generate_batch(self, requests: list[Request]) -> list[Generation | BaseException]:
        """Concurrent calls (bounded): the service, not this process, is the bottleneck."""
        gate = asyncio.Semaphore(self.batch_concurrency)

        async def one(req: Request) -> Generation:
            async with gate:
                return await self.generate(req)

        return list(await asyncio.gather(*(one(r) for r in requests), return_exceptions=True))

    async def count_tokens(self, request: Request) -> int:
        """Input tokens the request would use (a free call; no generation)."""
        client = self._preflight(request)
        try:
            contents = await self._contents(request, client, [])
            response = await client.aio.models.count_tokens(model=self.model_for(request), contents=contents)
        except asyncio.CancelledError:
            self.circuit.release_probe()
            raise
        except Exception as exc:  # noqa: BLE001 - translated into our error tree and re-raised
            raise self._failed(exc) from None
        self.circuit.record_success()
        return int(response.total_tokens or 0)

    async def health(self) -> Health:
        snap = self.circuit.snapshot()
        extra = {**snap, "model": self.default_model, "kind": "cloud"}
        if not (self.settings.gemini_api_key and self.settings.gemini_api_key.get_secret_value().strip()):
            return Health(ready=False, detail="no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)", extra=extra)
        if snap["circuit"] == "open":
            return Health(ready=False, detail=f"circuit open: {snap['reason']}", extra=extra)
        return Health(ready=True, detail=f"circuit {snap['circuit']}", extra=extra)

    # ------------------------------------------------------------------ errors
    def _failed(self, exc: Exception) -> BaseException:
        """Translate `exc`, record it in the circuit, and return what to raise."""
        error, open_for_s = self._map_error(exc)
        self.circuit.record_failure(error, open_for_s=open_for_s)
        return error

    def _map_error(self, exc: Exception) -> tuple[BaseException, float | None]:
        if isinstance(exc, HybridError):
            return exc, None
        _, _, errors = _genai()
        if isinstance(exc, errors.APIError):
            code = int(exc.code or 0)
            message = str(exc.message or exc.status or "").strip()
            body = exc.details if isinstance(exc.details, dict) else {}
            details = (body.get("error") or body).get("details") or []
            if code == 429:
                per_day, retry_after = quota_window(details)
                if per_day:
                    retry_after = seconds_until_quota_reset()
                err = error_for_status(429, message, self.name, per_day=per_day, retry_after_s=retry_after)
                return err, (retry_after if per_day else None)
            if code in (400, 401, 403) and bad_key(message, details):
                return ConfigurationError(f"gemini rejected the API key: {message}"), None
            if code == 404 and "models/" in message:
                return ConfigurationError(
                    f"gemini does not know that model ({message}); set FASTVLM_HYBRID_GEMINI_MODEL"
                ), None
            return error_for_status(code or 500, message, self.name), None
        mapped = transport_error(exc, self.name, self.timeout_s)
        if mapped is not None:
            return mapped, None
        return InvalidResponseError(f"gemini answered in an unexpected way: {type(exc).__name__}: {exc}",
                                    self.name), None


__all__ = ["GeminiBackend", "price_of", "price_table", "quota_window", "seconds_until_quota_reset"]
