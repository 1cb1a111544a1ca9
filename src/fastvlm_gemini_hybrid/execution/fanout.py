"""One fan-out for many pieces of work: the CLI's batch, the server's jobs and the agents.

    fan_out(items, work)        at most `concurrency` at once, each error typed and kept in place,
                                `on_done` as each finishes, `stop()` to start no more, `slot` around each
    answer_many(processor, rs)  requests through fan_out; those whose first backend batches go to it
                                `batch_size` at a time in one forward pass, then each goes on alone
                                (fallback, escalation, cache, audit) exactly as `processor.arun` would

Why one: a job and a CLI batch are the same work (many requests), so they batch the same way; the
agents' per-item work (structured answers, sidecars) has the same bounds, errors and progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import BackendTimeoutError, HybridError, InvalidResponseError, WorkCancelledError
from ..types import Generation, Mode, Request, Result, RouteDecision

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..cache import ResultCache
    from ..config import Settings
    from ..metrics import Metrics
    from ..routing import BackendInfo

T = TypeVar("T")
R = TypeVar("R")


class Answerer(Protocol):
    """What `answer_many` needs of the processor (the processor imports this module, not the reverse)."""

    settings: Settings
    metrics: Metrics
    cache: ResultCache | None

    @property
    def backend_infos(self) -> list[BackendInfo]: ...

    def decide(self, request: Request) -> RouteDecision: ...

    def backend(self, name: str) -> Backend: ...

    def cache_key(self, request: Request, backend: str) -> str: ...

    async def execute(
        self, request: Request, *, decision: RouteDecision | None = None, return_all: bool = False,
        first: Generation | BaseException | None = None,
    ) -> Result: ...


async def fan_out(
    items: Sequence[T],
    work: Callable[[int, T], Awaitable[R]],
    *,
    concurrency: int = 4,
    on_done: Callable[[int, R | HybridError], None] | None = None,
    stop: Callable[[], bool] | None = None,
    slot: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
) -> list[R | HybridError]:
    """`work(i, item)` for every item, at most `concurrency` at once, results in input order.

    A `HybridError` is that item's result (the others go on); any other exception is a bug and propagates.
    Items not started once `stop()` is true get `WorkCancelledError` (and no `on_done`).
    """
    out: list[R | HybridError] = [WorkCancelledError("not started: the work was stopped")] * len(items)
    bound = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int, item: T) -> None:
        async with bound:
            if stop is not None and stop():
                return
            async with slot() if slot is not None else contextlib.nullcontext():
                try:
                    value: R | HybridError = await work(i, item)
                except HybridError as exc:
                    value = exc
            out[i] = value
            if on_done is not None:
                on_done(i, value)

    await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    return out


async def answer_many(
    processor: Answerer,
    requests: Sequence[Request],
    *,
    concurrency: int = 4,
    batch_size: int = 1,
    on_result: Callable[[int, Result | HybridError], None] | None = None,
    stop: Callable[[], bool] | None = None,
    slot: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
) -> list[Result | HybridError]:
    """Answer `requests`; see the module docstring. Errors come back in place, typed."""
    out: list[Result | HybridError] = [WorkCancelledError("not started: the work was stopped")] * len(requests)

    def done(i: int, value: Result | HybridError) -> None:
        out[i] = value
        if on_result is not None:
            on_result(i, value)

    async def single(
        i: int, decision: RouteDecision | None = None, first: Generation | BaseException | None = None
    ) -> None:
        try:
            done(i, await processor.execute(requests[i], decision=decision, first=first))
        except HybridError as exc:
            done(i, exc)

    # A unit is one request, or a chunk of requests for one batching backend.
    groups: dict[str, list[tuple[int, RouteDecision]]] = {}
    units: list[list[tuple[int, RouteDecision | None]]] = []
    for i, request in enumerate(requests):
        decision = batch_decision(processor, request) if batch_size > 1 else None
        if decision is None:
            units.append([(i, None)])
        else:
            groups.setdefault(decision.backends[0], []).append((i, decision))
    for members in groups.values():
        units += [list(members[k : k + batch_size]) for k in range(0, len(members), batch_size)]

    async def run(_: int, unit: list[tuple[int, RouteDecision | None]]) -> None:
        if len(unit) == 1 and unit[0][1] is None:
            await single(unit[0][0])
            return
        name = unit[0][1].backends[0]  # type: ignore[union-attr]
        outcomes = await call_batch(processor, name, [requests[i] for i, _ in unit])
        await asyncio.gather(*(single(i, d, o) for (i, d), o in zip(unit, outcomes, strict=True)))

    await fan_out(units, run, concurrency=concurrency, stop=stop, slot=slot)
    return out


def batch_decision(processor: Answerer, request: Request) -> RouteDecision | None:
    """The decision for `request` if its primary backend can batch it and the cache cannot answer it."""
    try:
        decision = processor.decide(request)
    except HybridError:
        return None  # answered alone, so the error is reported and audited there
    if decision.mode is Mode.PARALLEL or not decision.backends:
        return None
    name = decision.backends[0]
    info = next((i for i in processor.backend_infos if i.name == name), None)
    if info is None or not info.capabilities.batching:
        return None
    if processor.cache is not None and processor.cache.get(processor.cache_key(request, name)) is not None:
        return None
    return decision


async def call_batch(
    processor: Answerer, name: str, requests: list[Request]
) -> list[Generation | BaseException]:
    """One forward pass for `requests` on backend `name`; every item gets an outcome, typed."""
    timeout = processor.settings.request_timeout_s * len(requests)
    start = time.perf_counter()
    try:
        outcomes = await asyncio.wait_for(processor.backend(name).generate_batch(requests), timeout=timeout)
    except (asyncio.TimeoutError, TimeoutError):
        return [BackendTimeoutError("the batch took too long", name)] * len(requests)
    except HybridError as exc:
        return [exc] * len(requests)
    if len(outcomes) != len(requests):
        wrong = InvalidResponseError(f"{name} answered {len(outcomes)} of {len(requests)} batch items", name)
        return [wrong] * len(requests)
    seconds = (time.perf_counter() - start) / len(requests)
    for outcome in outcomes:
        if isinstance(outcome, Generation):
            processor.metrics.record_request(name, "batch", "blocked" if outcome.blocked else "ok", seconds)
    return outcomes


__all__ = ["answer_many", "batch_decision", "call_batch", "fan_out"]
