"""What the processor keeps of each request: its cache entry and its audit record.

    cached_result  the first backend of the route with a cached answer (counted hit or miss)
    store_result   an answer worth keeping (not blocked, not cut short); sensitive ones in memory only
    audit_record   the record's fields: hashes, route, outcome, privacy categories (never values)
    durable        the wait until a record is on disk (each answer waits for its own)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .errors import EgressRefusedError, HybridError
from .types import Request, Result, RouteDecision, Usage

if TYPE_CHECKING:
    from .audit import AuditLog
    from .cache import ResultCache
    from .metrics import Metrics

#: the cache key of a request for one backend (the processor's `cache_key`)
KeyOf = Callable[[Request, str], str]


def cached_result(
    cache: ResultCache | None, key_of: KeyOf, request: Request, decision: RouteDecision, metrics: Metrics
) -> Result | None:
    if cache is None:
        return None
    for name in decision.backends:
        hit = cache.get(key_of(request, name))
        if hit is not None:
            metrics.record_cache(True)
            return Result(
                response=hit["response"],
                backend=name,
                model=hit["model"],
                mode=decision.mode,
                route=decision,
                cached=True,
                usage=Usage(),
                confidence=hit.get("confidence"),
                finish_reason=hit.get("finish_reason"),
                request_id=request.request_id,
            )
    metrics.record_cache(False)
    return None


def store_result(
    cache: ResultCache | None, key_of: KeyOf, request: Request, decision: RouteDecision, result: Result
) -> None:
    if cache is None or result.blocked or result.finish_reason in ("length_partial", "error"):
        return
    value = {
        "response": result.response,
        "model": result.model,
        "confidence": result.confidence,
        "finish_reason": result.finish_reason,
    }
    # Sensitive answers stay in memory only: never on disk.
    cache.put(key_of(request, result.backend), value, backend=result.backend, persist=not decision.sensitive)


def audit_record(
    audit: AuditLog,
    request: Request,
    decision: RouteDecision | None,
    *,
    user: str | None,
    result: Result | None = None,
    error: HybridError | None = None,
    latency_ms: float | None = None,
) -> dict[str, Any]:
    sensitive = decision.sensitive if decision is not None else True  # unknown: assume the worst
    return audit.request_record(
        request_id=request.request_id,
        user=user,
        prompt=request.conversation_text(),
        sensitive=bool(sensitive or request.sensitive),
        media_hashes=[a.sha256 for a in request.attachments],
        # Only what the record keeps: building the whole route dict per request is wasted work.
        route=(
            {"mode": decision.mode.value, "backends": list(decision.backends), "domain": decision.domain.value}
            if decision is not None
            else {"mode": str(request.mode or "")}
        ),
        backend=result.backend if result else None,
        outcome=("blocked" if result.blocked else "ok") if result else (error.code if error else "error"),
        latency_ms=result.latency_ms if result else (latency_ms or 0.0),
        cached=result.cached if result else False,
        error=str(error) if error and not sensitive else (error.code if error else None),
        privacy=privacy_summary(decision, error),
    )


async def durable(future: Future[None] | None) -> None:
    """Wait, without blocking the loop, until an audit record is on disk; `AuditWriteError` if it cannot be.

    Shielded: a client that hangs up cancels this wait, and `wrap_future` would pass the cancellation on to
    the writer's future, which belongs to the writer thread and to the group it was written with.
    """
    if future is not None:
        await asyncio.shield(asyncio.wrap_future(future))


def privacy_summary(decision: RouteDecision | None, error: HybridError | None) -> dict[str, Any] | None:
    """The gate's verdict and the categories it found, for the audit trail (never values or places)."""
    privacy = decision.privacy if decision is not None else None
    if privacy is None and isinstance(error, EgressRefusedError):
        kinds = sorted({f"{f.category}/{f.kind}" for f in error.findings})  # type: ignore[attr-defined]
        return {"verdict": "refuse", "categories": kinds}
    if privacy is None:
        return None
    kinds = sorted({f"{f['category']}/{f['kind']}" for f in privacy.get("findings", ())})
    return {"verdict": privacy.get("verdict"), "categories": kinds, "redacted": bool(privacy.get("redactions"))}


__all__ = ["audit_record", "cached_result", "durable", "privacy_summary", "store_result"]
