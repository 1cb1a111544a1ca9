"""The circuit breaker: closed -> open -> half-open -> closed/open, driven by an injected clock."""

from __future__ import annotations

import pytest

from fastvlm_gemini_hybrid.backends.circuit import CircuitBreaker, CircuitState, error_for_status, transport_error
from fastvlm_gemini_hybrid.errors import (
    BackendRejectedError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigurationError,
    RateLimitedError,
    ServerError,
)

from .conftest import FakeClock


def _breaker(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker("svc", failure_threshold=threshold, reset_s=30.0, clock=clock)


def test_opens_after_consecutive_transient_failures(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure(ServerError("boom", "svc"))
    assert breaker.state is CircuitState.CLOSED
    breaker.before_call()
    breaker.record_failure(ServerError("boom", "svc"))
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(BackendUnavailableError, match="circuit open"):
        breaker.before_call()


def test_success_resets_the_failure_count(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    breaker.record_failure(ServerError("boom", "svc"))
    breaker.record_failure(ServerError("boom", "svc"))
    breaker.record_success()
    breaker.record_failure(ServerError("boom", "svc"))
    assert breaker.state is CircuitState.CLOSED


def test_rejections_do_not_count(clock: FakeClock) -> None:
    breaker = _breaker(clock, threshold=1)
    breaker.record_failure(BackendRejectedError("bad image", "svc"))
    assert breaker.state is CircuitState.CLOSED


def test_half_open_lets_one_probe_through_and_closes_on_success(clock: FakeClock) -> None:
    breaker = _breaker(clock, threshold=1)
    breaker.record_failure(ServerError("boom", "svc"))
    clock.advance(29.9)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.2)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(BackendUnavailableError, match="probe is in flight"):
        breaker.before_call()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    breaker.before_call()


def test_failed_probe_reopens_for_a_full_period(clock: FakeClock) -> None:
    breaker = _breaker(clock, threshold=1)
    breaker.record_failure(ServerError("boom", "svc"))
    clock.advance(31)
    breaker.before_call()
    breaker.record_failure(BackendTimeoutError("slow", "svc"))
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_in_s == pytest.approx(30.0)


def test_cancelled_probe_frees_the_slot(clock: FakeClock) -> None:
    breaker = _breaker(clock, threshold=1)
    breaker.record_failure(ServerError("boom", "svc"))
    clock.advance(31)
    breaker.before_call()
    with pytest.raises(BackendUnavailableError):
        breaker.before_call()  # one probe at a time while half-open
    breaker.release_probe()
    breaker.before_call()  # the cancelled probe freed the slot: another caller may probe now
    assert breaker.state is CircuitState.HALF_OPEN


def test_open_for_overrides_threshold_and_period(clock: FakeClock) -> None:
    breaker = _breaker(clock, threshold=5)
    breaker.record_failure(RateLimitedError("daily quota", "svc", per_day=True), open_for_s=3600)
    assert breaker.state is CircuitState.OPEN
    snap = breaker.snapshot()
    assert snap["circuit"] == "open" and snap["retry_in_s"] == 3600.0 and "daily quota" in str(snap["reason"])
    clock.advance(3599)
    assert breaker.state is CircuitState.OPEN
    clock.advance(2)
    assert breaker.state is CircuitState.HALF_OPEN


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, BackendRejectedError),
        (403, BackendRejectedError),
        (404, BackendRejectedError),
        (401, ConfigurationError),
        (429, RateLimitedError),
        (408, BackendTimeoutError),
        (504, BackendTimeoutError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_status_mapping(status: int, expected: type) -> None:
    error = error_for_status(status, "msg", "svc")
    assert type(error) is expected
    assert "msg" in str(error)


def test_transport_errors_map_by_kind() -> None:
    import httpx

    assert isinstance(transport_error(httpx.ReadTimeout("slow"), "svc", 2.0), BackendTimeoutError)
    assert isinstance(transport_error(httpx.ConnectError("refused"), "svc"), ServerError)
    assert isinstance(transport_error(ConnectionResetError(), "svc"), ServerError)
    assert transport_error(ValueError("x"), "svc") is None
