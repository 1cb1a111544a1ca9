"""A circuit breaker per backend: stop calling a service that keeps failing, probe it later.

Why: when a cloud endpoint is down or out of quota, every request would otherwise wait for its
own timeout before falling back. An open circuit fails in microseconds with
`BackendUnavailableError`, which the processor treats as "try the next backend".

States: CLOSED (calls flow) -> OPEN after `failure_threshold` consecutive transient failures, or at
once when told to (a per-day quota) -> HALF_OPEN once `reset_s` (or the given deadline) has passed,
letting one probe through -> CLOSED on its success, OPEN again on its failure.

Only transient failures count (`errors.fallback_allowed`): a 400 for a bad image says nothing
about the service's health. The clock is injectable so tests need not sleep.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from enum import Enum

from ..errors import BackendUnavailableError, HybridError, InputNotSupportedError, fallback_allowed


class CircuitState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker, safe to share between threads and tasks."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self.clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._open_until = 0.0
        self._reason = ""
        self._probe_in_flight = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._current()

    def _current(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self.clock() >= self._open_until:
            self._state = CircuitState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    @property
    def retry_in_s(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        with self._lock:
            if self._current() is not CircuitState.OPEN:
                return 0.0
            return max(0.0, self._open_until - self.clock())

    def snapshot(self) -> dict[str, object]:
        """The state for `health()` and metrics."""
        state = self.state
        return {
            "circuit": state.value,
            "consecutive_failures": self._failures,
            "retry_in_s": round(self.retry_in_s, 1),
            "reason": self._reason if state is not CircuitState.CLOSED else "",
        }

    # ------------------------------------------------------------------ protocol
    def before_call(self) -> None:
        """Raise `BackendUnavailableError` if the circuit does not allow a call now."""
        with self._lock:
            state = self._current()
            if state is CircuitState.CLOSED:
                return
            if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return
            wait = max(0.0, self._open_until - self.clock())
            detail = f"retry in {wait:.0f}s" if state is CircuitState.OPEN else "a probe is in flight"
        raise BackendUnavailableError(
            f"{self.name} is unavailable: circuit open after repeated failures ({self._reason}); {detail}",
            self.name,
        )

    def record_success(self) -> None:
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._reason = ""
            self._probe_in_flight = False

    def record_failure(self, error: BaseException, *, open_for_s: float | None = None) -> None:
        """Count `error`. Non-transient errors only end a half-open probe (as a success of the
        transport: the service answered). `open_for_s` opens the circuit at once for that long."""
        transient = (fallback_allowed(error) and not isinstance(error, InputNotSupportedError)) or (
        not isinstance(error, HybridError)
    )
        with self._lock:
            was_probe = self._current() is CircuitState.HALF_OPEN
            self._probe_in_flight = False
            if not transient and open_for_s is None:
                if was_probe:
                    self._state = CircuitState.CLOSED
                    self._failures = 0
                return
            self._failures += 1
            self._reason = str(error).split("\n", 1)[0][:200]
            if open_for_s is not None:
                self._open(open_for_s)
            elif was_probe or self._failures >= self.failure_threshold:
                self._open(self.reset_s)

    def release_probe(self) -> None:
        """A probe was cancelled before it learned anything: let the next call probe instead."""
        with self._lock:
            self._probe_in_flight = False

    def _open(self, duration_s: float) -> None:
        self._state = CircuitState.OPEN
        self._open_until = self.clock() + max(0.0, duration_s)


# --------------------------------------------------------------------------- failure classification
# Shared by every HTTP backend so that "same status, same error class" holds across them.


def error_for_status(
    status: int,
    message: str,
    backend: str,
    *,
    per_day: bool = False,
    retry_after_s: float | None = None,
) -> HybridError:
    """Map an HTTP status from a model service to the package's error tree.

    401 -> ConfigurationError (the key is wrong: fix the settings); 429 -> RateLimitedError;
    408/504 -> BackendTimeoutError; other 5xx -> ServerError (all fallback-eligible); 413, or a 4xx whose
    message says the model cannot take this input (`unsupported_input`) -> InputNotSupportedError
    (another backend may take it); other 4xx (400, 403, 404, ...) -> BackendRejectedError (never retried).
    """
    from ..errors import (
        BackendRejectedError,
        BackendTimeoutError,
        ConfigurationError,
        RateLimitedError,
        ServerError,
    )

    text = f"{backend} returned HTTP {status}: {message}".rstrip(": ")
    if status == 401:
        return ConfigurationError(f"{backend} rejected the API key (HTTP 401): {message}")
    if status == 429:
        window = "daily" if per_day else "per-minute"
        hint = f"; retry in {retry_after_s:.0f}s" if retry_after_s is not None else ""
        return RateLimitedError(
            f"{backend} {window} quota exhausted (HTTP 429){hint}: {message}",
            backend,
            per_day=per_day,
            retry_after_s=retry_after_s,
        )
    if status in (408, 504):
        return BackendTimeoutError(text, backend)
    if status >= 500:
        return ServerError(text, backend)
    if status == 413 or (status in (400, 403, 404, 415, 422) and unsupported_input(message)):
        return InputNotSupportedError(text, backend)
    return BackendRejectedError(text, backend)


# What model servers say when a model cannot take an input (vLLM, Ollama, llama.cpp, OpenAI, Gemini,
# LiteLLM's proxies): capability, size, length and content policy. Matched on the lower-cased message.
_UNSUPPORTED = re.compile(
    r"(does not|doesn't|do not|cannot|can't|can not)( currently)? (support|accept|take|handle|process)"
    r"[^.]{0,40}\b(image|images|vision|video|audio|multimodal|multi-modal|input|media|mime)"
    r"|\b(image|images|vision|video|audio|multimodal|multi-modal)( input)?s? (is|are) not (supported|enabled|allowed)"
    r"|not a (multimodal|multi-modal|vision)"
    r"|unsupported (image|media|mime|content|file|input)"
    r"|invalid (image|mime)"
    r"|too many (images|image|frames|tokens)"
    r"|(image|images|file|payload|request|input|video) (is |are )?too (large|big|long)"
    r"|(maximum|max) (context|input|prompt)[^.]{0,30}(length|tokens|size)"
    r"|context (length|window)[^.]{0,30}(exceed|too)"
    r"|exceeds? the (context|maximum|max)"
    r"|at most \d+ (image|video|audio)"
    r"|missing data required for (image|video|audio)"
    r"|only supported by (certain|some) models"
    r"|unable to process (the )?input (image|video|audio|file)"
    r"|content[ _-]?(policy|filter|management)"
    r"|safety (system|filter|policy)"
)


def unsupported_input(message: str) -> bool:
    """Whether a 4xx message says this model cannot take this input (not that the request is malformed)."""
    return bool(_UNSUPPORTED.search(message.lower()))


def transport_error(exc: BaseException, backend: str, timeout_s: float | None = None) -> HybridError | None:
    """Map an HTTP client's timeout/connection exception (httpx, httpx2, aiohttp, OS) to our errors.

    Returns None when `exc` is not a transport failure. Matching by class name keeps this free of
    imports of every HTTP library the SDKs may pick.
    """
    from ..errors import BackendTimeoutError, ServerError

    names = {cls.__name__ for cls in type(exc).__mro__}
    after = f" after {timeout_s:g}s" if timeout_s else ""
    if names & {"TimeoutException", "TimeoutError", "ServerTimeoutError"}:
        return BackendTimeoutError(f"{backend} did not answer in time{after} ({type(exc).__name__})", backend)
    if names & {"TransportError", "NetworkError", "ConnectError", "RemoteProtocolError", "ClientConnectionError"} or (
        isinstance(exc, OSError)
    ):
        return ServerError(f"could not reach {backend}: {type(exc).__name__}: {exc}".rstrip(": "), backend)
    return None


# --------------------------------------------------------------------------- per-call retry budget
# The processor decides per request whether a client library may retry on its own: in `fallback`
# mode the next backend should be tried at once. A context variable (not a backend attribute)
# keeps concurrent requests in different modes from overriding each other.

_SDK_RETRIES: ContextVar[int | None] = ContextVar("fastvlm_hybrid_sdk_retries", default=None)


@contextlib.contextmanager
def sdk_retries(count: int) -> Iterator[None]:
    """Within this block (this task and tasks it starts), HTTP backends retry at most `count` times."""
    token = _SDK_RETRIES.set(max(0, int(count)))
    try:
        yield
    finally:
        _SDK_RETRIES.reset(token)


def retries_override() -> int | None:
    """The retry count set by `sdk_retries` for the current context, or None."""
    return _SDK_RETRIES.get()
