"""The execution modes as backends that wrap backends.

    Fallback([a, b, c])          a; on an error that allows it (errors.py), b; then c
    Escalation(local, clouds)    local; a confident answer stands, a doubtful one goes to `clouds`
                                 (a Fallback), and stays the answer if they all fail
    Parallel([a, b])             all at once; the first good answer wins, the others are cancelled

Each implements `generate` and `stream_answer` (pieces, then the final `Generation`, whose `backend`,
`attempts` and `alternatives` say what answered and what failed first), so streaming gets the same
fallback, escalation and racing as a whole answer. They compose: plan.py builds the tree for a
`RouteDecision`, with `call.Guarded` at the leaves.

Streams cannot take back what they sent: a fallback moves on only before the first piece, a parallel
race is won by the first backend to send one, and escalation reads the local answer whole (its
confidence is known only at the end) before it sends anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, Capabilities
from ..errors import AllBackendsFailedError, EgressRefusedError, HybridError, fallback_allowed
from ..types import Attempt, Generation, Request

if TYPE_CHECKING:
    from ..metrics import Metrics

Failures = list[tuple[str, BaseException]]


class _Composite(Backend):
    """Shared parts: a name for logs and results, the first member's capabilities for `check`."""

    def __init__(self, members: Sequence[Backend]) -> None:
        if not members:
            raise ValueError("a mode needs at least one backend")
        self.members = list(members)
        self.name = "+".join(m.name for m in self.members)
        self.default_model = self.members[0].default_model

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.members[0].capabilities

    def check(self, request: Request) -> None:
        """Each member checks what it gets (call.Guarded); a composite has nothing of its own to check."""

    async def stream(self, request: Request) -> AsyncIterator[str]:
        async for item in self.stream_answer(request):
            if isinstance(item, str):
                yield item


class Fallback(_Composite):
    """Members in order; the next one answers only after an error that allows moving on."""

    def __init__(self, members: Sequence[Backend], metrics: Metrics | None = None) -> None:
        super().__init__(members)
        self.metrics = metrics

    async def generate(self, request: Request) -> Generation:
        failures: Failures = []
        for member in self.members:
            try:
                gen = await member.generate(request)
            except HybridError as exc:
                self._failed(member, exc, failures)
                continue
            return _after(gen, failures)
        raise failure_of(failures)

    async def stream_answer(self, request: Request) -> AsyncIterator[str | Generation]:
        failures: Failures = []
        for member in self.members:
            started = False
            try:
                async for item in member.stream_answer(request):
                    if isinstance(item, Generation):
                        yield _after(item, failures)
                        return
                    started = True
                    yield item
            except HybridError as exc:
                if started:
                    raise  # the client has part of this answer: another backend cannot continue it
                self._failed(member, exc, failures)
                continue
            return
        raise failure_of(failures)

    def _failed(self, member: Backend, exc: HybridError, failures: Failures) -> None:
        if not _moves_on(exc):
            raise exc
        failures.extend(_flat(member.name, exc))
        if self.metrics is not None:
            self.metrics.record_fallback(member.name, exc.code)


class Escalation(_Composite):
    """A local answer under `threshold` confidence goes to `cloud`; it stays the answer if the cloud fails."""

    def __init__(self, local: Backend, cloud: Backend, threshold: float, metrics: Metrics | None = None) -> None:
        super().__init__([local, cloud])
        self.name = local.name  # a failure of the local backend is that backend's, for the outer fallback
        self.local, self.cloud, self.threshold, self.metrics = local, cloud, threshold, metrics

    def _doubtful(self, gen: Generation) -> Attempt | None:
        if gen.confidence is None or gen.confidence >= self.threshold:
            return None
        if self.metrics is not None:
            self.metrics.record_escalation()
        return Attempt(gen.backend or self.local.name, f"low confidence {gen.confidence:.2f} < {self.threshold:.2f}")

    async def generate(self, request: Request) -> Generation:
        local = await self.local.generate(request)
        escalation = self._doubtful(local)
        if escalation is None:
            return local
        try:
            better = await self.cloud.generate(request)
        except HybridError as exc:
            if not _moves_on(exc):
                raise
            return _kept(local, self.cloud, exc)
        return replace(better, attempts=[*local.attempts, escalation, *better.attempts])

    async def stream_answer(self, request: Request) -> AsyncIterator[str | Generation]:
        local = await self.local.generate(request)  # judged whole: see the module docstring
        escalation = self._doubtful(local)
        if escalation is None:
            yield local.text
            yield local
            return
        started = False
        try:
            async for item in self.cloud.stream_answer(request):
                if isinstance(item, Generation):
                    yield replace(item, attempts=[*local.attempts, escalation, *item.attempts])
                    return
                started = True
                yield item
        except HybridError as exc:
            if started or not _moves_on(exc):
                raise
            kept = _kept(local, self.cloud, exc)
            yield kept.text
            yield kept


class Parallel(_Composite):
    """Every member at once; the first good answer wins and the rest are cancelled.

    With `return_all`, waits for every member and returns the others as `alternatives`. A blocked answer
    (the model's own safety stop) wins only when no member gives a good one.
    """

    def __init__(self, members: Sequence[Backend], *, return_all: bool = False) -> None:
        super().__init__(members)
        self.return_all = return_all

    async def generate(self, request: Request) -> Generation:
        tasks = {asyncio.ensure_future(m.generate(request)): m.name for m in self.members}
        failures: Failures = []
        answers: list[Generation] = []
        winner: Generation | None = None
        try:
            pending = set(tasks)
            while pending and (winner is None or self.return_all):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is not None:
                        if isinstance(exc, HybridError) and not fallback_allowed(exc):
                            raise exc
                        failures.extend(_flat(tasks[task], exc))
                        continue
                    gen = task.result()
                    answers.append(gen)
                    if winner is None and not gen.blocked:
                        winner = gen
        finally:
            await _cancel(tasks)
        if winner is None:
            if not answers:
                raise failure_of(failures)
            winner = answers[0]  # only blocked answers: report the first
        others = [g for g in answers if g is not winner]
        return replace(_after(winner, failures), alternatives=others if self.return_all else [])

    async def stream_answer(self, request: Request) -> AsyncIterator[str | Generation]:
        """The first member to send a piece wins the race and is streamed; the others are cancelled."""
        queue: asyncio.Queue[tuple[int, str | Generation | BaseException]] = asyncio.Queue()

        async def pump(index: int, member: Backend) -> None:
            try:
                async for item in member.stream_answer(request):
                    queue.put_nowait((index, item))
            except HybridError as exc:
                queue.put_nowait((index, exc))

        tasks = [asyncio.ensure_future(pump(i, m)) for i, m in enumerate(self.members)]
        failures: Failures = []
        failed = 0
        winner: int | None = None
        try:
            while True:
                index, item = await queue.get()
                if winner is None:
                    if isinstance(item, BaseException):
                        if not fallback_allowed(item):
                            raise item
                        failures.extend(_flat(self.members[index].name, item))
                        failed += 1
                        if failed == len(self.members):
                            raise failure_of(failures)
                        continue
                    winner = index
                    for i, task in enumerate(tasks):
                        if i != winner:
                            task.cancel()
                if index != winner:
                    continue
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Generation):
                    yield _after(item, failures)
                    return
                yield item
        finally:
            await _cancel(tasks)


def failure_of(failures: Failures) -> HybridError:
    """Nothing answered: when every failure was the egress gate's refusal, the refusal is the answer
    (exit 2, HTTP 403, as for sensitive text); otherwise the list of what each backend said."""
    if failures and all(isinstance(exc, EgressRefusedError) for _, exc in failures):
        return failures[0][1]  # type: ignore[return-value]
    return AllBackendsFailedError(failures)


def _moves_on(exc: BaseException) -> bool:
    """Whether the next backend may answer after `exc`: a nested mode's "all failed" counts as its
    backends' failures, each of which allowed moving on."""
    return fallback_allowed(exc) or isinstance(exc, AllBackendsFailedError)


def _flat(name: str, exc: BaseException) -> Failures:
    """A nested mode's own list of failures, or this one."""
    if isinstance(exc, AllBackendsFailedError) and exc.attempts:
        return list(exc.attempts)
    return [(name, exc)]


def _after(gen: Generation, failures: Failures) -> Generation:
    if not failures:
        return gen
    return replace(gen, attempts=[*(Attempt(n, str(e)) for n, e in failures), *gen.attempts])


def _kept(local: Generation, cloud: Backend, exc: HybridError) -> Generation:
    """The doubtful local answer, after every cloud backend failed: still the best there is."""
    return _after(local, _flat(getattr(exc, "backend", "") or cloud.name, exc))


async def _cancel(tasks: Iterable[asyncio.Future[Any]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["Escalation", "Fallback", "Parallel", "failure_of"]
