"""HTTP status and OpenAI-shaped bodies for every error the server returns.

Why one table: clients (the `openai` SDK, the web UI, curl users) need the same
`{"error": {"message", "type", "code"}}` body whichever layer failed, and the status must say
whether retrying can help (429/503 carry Retry-After) or the request itself is wrong (4xx).
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    AllBackendsFailedError,
    BackendError,
    BackendRejectedError,
    BackendTimeoutError,
    BackendUnavailableError,
    BadInputError,
    ConfigurationError,
    HybridError,
    InvalidResponseError,
    MediaTooLargeError,
    MissingCredentialsError,
    PolicyViolationError,
    RateLimitedError,
    ServerError,
    UnsupportedMediaError,
)


class HTTPProblem(HybridError):
    """An error raised by the server itself (auth, routing of URLs, overload), with its status."""

    def __init__(
        self, status: int, message: str, *, code: str, type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code_ = code
        self.type_ = type_
        self.headers = headers or {}


def overloaded(retry_after_s: int) -> HTTPProblem:
    """503 with Retry-After: the bounded work queue is full (load is shed, not queued forever)."""
    return HTTPProblem(
        503, "the server is busy; retry later", code="overloaded", type_="server_error",
        headers={"Retry-After": str(retry_after_s)},
    )


# (exception class, status, OpenAI error type); the first match wins, so subclasses come first.
_TABLE: list[tuple[type[BaseException], int, str]] = [
    (MediaTooLargeError, 413, "invalid_request_error"),
    (UnsupportedMediaError, 415, "invalid_request_error"),
    (BadInputError, 400, "invalid_request_error"),
    (PolicyViolationError, 403, "invalid_request_error"),
    (MissingCredentialsError, 503, "server_error"),
    (ConfigurationError, 500, "server_error"),
    (RateLimitedError, 429, "rate_limit_error"),
    (BackendTimeoutError, 504, "server_error"),
    (BackendUnavailableError, 503, "server_error"),
    (BackendRejectedError, 400, "invalid_request_error"),
    (ServerError, 502, "server_error"),
    (InvalidResponseError, 502, "server_error"),
    (BackendError, 502, "server_error"),
]


def classify(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for `exc`; unknown exceptions become a 500 without internals."""
    if isinstance(exc, HTTPProblem):
        return exc.status, body(str(exc), exc.type_, exc.code_), exc.headers
    if isinstance(exc, AllBackendsFailedError):
        errors = [err for _, err in exc.attempts]
        inner = {(classify(err)[0], classify(err)[1]["error"]["type"]) for err in errors}
        status, type_ = inner.pop() if len(inner) == 1 else (502 if errors else 503, "server_error")
        return status, body(str(exc), type_, exc.code), _retry_headers(errors)
    if isinstance(exc, HybridError):
        for cls, status, type_ in _TABLE:
            if isinstance(exc, cls):
                return status, body(str(exc), type_, exc.code), _retry_headers([exc])
        return 500, body(str(exc), "server_error", exc.code), {}
    return 500, body("internal server error", "server_error", "internal_error"), {}


def _retry_headers(errors: list[BaseException]) -> dict[str, str]:
    waits = [e.retry_after_s for e in errors if isinstance(e, RateLimitedError) and e.retry_after_s]
    return {"Retry-After": str(max(1, round(max(waits))))} if waits else {}


def body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}
