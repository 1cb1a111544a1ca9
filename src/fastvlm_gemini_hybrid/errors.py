"""The exception tree. Every error the package raises on purpose is a `HybridError`.

```
HybridError                          exit  fallback?
├── BadInputError                      2    never   (the request itself is wrong)
│   ├── UnsupportedMediaError          2    never
│   └── MediaTooLargeError             2    never
├── ConfigurationError                 2    never   (fix the settings, then retry)
│   ├── MissingDependencyError         2    never   (names the exact `pip install` to run)
│   └── MissingCredentialsError        2    yes     (a cloud backend with no key: others may answer)
├── PolicyViolationError               2    never   (privacy: a sensitive request may not go there)
│   └── EgressRefusedError             2    yes     (the egress gate kept it on this machine: a local
│                                                    backend may still answer; `.findings`)
├── BackendError                       1    (per class; carries `.backend`)
│   ├── BackendUnavailableError        1    yes     (not installed, not downloaded, circuit open)
│   │   └── ModelNotDownloadedError    2    yes     (names the `models pull` command)
│   ├── RateLimitedError               1    yes     (`.per_day` quota, `.retry_after_s`)
│   ├── BackendTimeoutError            1    yes
│   ├── ServerError                    1    yes     (5xx, dropped connection)
│   ├── InvalidResponseError           1    yes     (unparseable answer)
│   │   └── InvalidJSONOutputError     1    —       (asked-for JSON invalid twice: raised after the
│   │                                                    processor answered, by the OpenAI API)
│   └── BackendRejectedError           2    never   (400/403/404: the backend refused this input)
│       └── InputNotSupportedError     2    yes     (this model cannot take this input: images, video,
│                                                    its size or length, its content policy; another may)
├── AllBackendsFailedError             1    —       (every allowed backend failed; `.attempts`)
└── WorkCancelledError                 1    never   (a batch or job was stopped before this item began)
```

`fallback_allowed` says whether the processor may try the next backend after this error. In
`fallback` and `auto` modes only such errors move on; the others stop the request at once, so a
policy violation or a bad input is never "retried somewhere else".
"""

from __future__ import annotations

from typing import ClassVar


class HybridError(Exception):
    """Base of every error raised on purpose by fastvlm_gemini_hybrid."""

    fallback_allowed: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1
    #: stable machine-readable code, used by the HTTP API's error bodies
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadInputError(HybridError, ValueError):
    """The request is malformed: missing file, unknown mode, empty prompt, bad media."""

    exit_code = 2
    code = "bad_input"


class UnsupportedMediaError(BadInputError):
    code = "unsupported_media"


class MediaTooLargeError(BadInputError):
    code = "media_too_large"


class ConfigurationError(HybridError):
    """The settings are wrong or incomplete: malformed config file, unknown backend name."""

    exit_code = 2
    code = "configuration_error"


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional extra is not installed; the message names the exact pip command."""

    code = "missing_dependency"

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'fastvlm-gemini-hybrid[{extra}]'")


class MissingCredentialsError(ConfigurationError):
    """A cloud backend was asked for without an API key."""

    fallback_allowed = True
    code = "missing_credentials"


class PolicyViolationError(HybridError):
    """The request may not be served the way it was asked (a sensitive request to the cloud)."""

    exit_code = 2
    code = "policy_violation"


class EgressRefusedError(PolicyViolationError):
    """The egress gate stopped a request bound for a backend off this machine (privacy/gate.py).

    Another, local backend may still answer, so the processor moves on; when nothing else can, this
    refusal is the answer (exit 2, HTTP 403). `findings` are categories and kinds, never values."""

    fallback_allowed = True

    def __init__(self, message: str, backend: str = "", findings: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.backend = backend
        self.findings = findings


class BackendError(HybridError):
    """A backend failed to answer. `backend` names it."""

    code = "backend_error"

    def __init__(self, message: str, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailableError(BackendError):
    fallback_allowed = True
    code = "backend_unavailable"


class ModelNotDownloadedError(BackendUnavailableError):
    exit_code = 2
    code = "model_not_downloaded"


class RateLimitedError(BackendError):
    fallback_allowed = True
    code = "rate_limited"

    def __init__(
        self, message: str, backend: str = "", *, per_day: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, backend)
        self.per_day = per_day
        self.retry_after_s = retry_after_s


class BackendTimeoutError(BackendError):
    fallback_allowed = True
    code = "timeout"


class ServerError(BackendError):
    fallback_allowed = True
    code = "server_error"


class InvalidResponseError(BackendError):
    fallback_allowed = True
    code = "invalid_response"


class InvalidJSONOutputError(InvalidResponseError):
    """The answer was not the JSON the client asked for (`response_format`), even after one corrective retry.

    HTTP 502 `invalid_json_output`: the request was fine, the model's answer was not."""

    code = "invalid_json_output"


class BackendRejectedError(BackendError):
    exit_code = 2
    code = "backend_rejected"


class InputNotSupportedError(BackendRejectedError):
    """The backend's model cannot take this input (no image input, too many or too large pictures, past
    its context, against its content policy): the request is fine, so another backend may answer it."""

    fallback_allowed = True
    code = "input_not_supported"


class AllBackendsFailedError(HybridError):
    """Every backend the route allowed failed. `attempts` holds (backend, error) in order."""

    code = "all_backends_failed"

    def __init__(self, attempts: list[tuple[str, BaseException]]) -> None:
        self.attempts = attempts
        detail = "; ".join(f"{name}: {err}" for name, err in attempts) or "no backend was allowed"
        super().__init__(f"no backend could answer ({detail})")

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        # If every failure was the user's to fix (e.g. weights missing), say so with exit 2.
        codes = {getattr(err, "exit_code", 1) for _, err in self.attempts}
        return 2 if codes == {2} else 1


class WorkCancelledError(HybridError):
    """A batch or job was stopped before this item began (execution/fanout.py)."""

    code = "cancelled"


def fallback_allowed(error: BaseException) -> bool:
    """Whether the processor may try the next backend after `error`."""
    if isinstance(error, HybridError):
        return type(error).fallback_allowed
    # asyncio/OS timeouts and connection errors from libraries are transient.
    return isinstance(error, (TimeoutError, ConnectionError))
