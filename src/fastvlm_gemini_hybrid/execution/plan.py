"""From a `RouteDecision` to the backend that carries it out: one tree of mode wrappers.

    parallel (2+ backends)   Parallel([G(a), G(b), ...])
    every other mode         Fallback([G(a), G(b), ...])       G = call.Guarded(name)
    auto, escalation on      a local G(l) with cloud backends after it becomes
                             Escalation(G(l), Fallback([G(c1), G(c2)]))

The router decides what may answer and in which order (routing/router.py); this module only says how
the modes compose, so each mode's meaning lives in one place (modes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..backends.base import Backend
from ..types import Generation, Mode, RouteDecision
from .call import Settled
from .modes import Escalation, Fallback, Parallel

if TYPE_CHECKING:
    from ..metrics import Metrics

#: builds the guarded leaf for backend `name`; `retry_in_sdk=False` inside a fallback chain
Leaf = Callable[[str, bool], Backend]


def build_plan(
    decision: RouteDecision,
    leaf: Leaf,
    is_cloud: Callable[[str], bool],
    metrics: Metrics,
    *,
    return_all: bool = False,
    first: Generation | BaseException | None = None,
) -> Backend:
    """The backend that runs `decision`. `first` is the primary backend's outcome when a batch already
    computed it (it is replayed, not asked again)."""
    names = list(decision.backends)
    if decision.mode is Mode.PARALLEL and len(names) > 1 and first is None:
        return Parallel([leaf(n, True) for n in names], return_all=return_all)
    members: list[Backend] = []
    for i, name in enumerate(names):
        last = i == len(names) - 1
        # In fallback mode the next backend, not an SDK's retry loop, is the answer to a failure.
        member: Backend = Settled(name, first) if i == 0 and first is not None else leaf(
            name, decision.mode is not Mode.FALLBACK or last
        )
        clouds = [n for n in names[i + 1 :] if is_cloud(n)]
        if _escalates(decision) and clouds and not is_cloud(name):
            member = Escalation(
                member, Fallback([leaf(c, True) for c in clouds], metrics), decision.escalate_below or 0.0, metrics
            )
        members.append(member)
    return Fallback(members, metrics)


def _escalates(decision: RouteDecision) -> bool:
    return decision.mode is Mode.AUTO and decision.cloud_allowed and decision.escalate_below is not None


__all__ = ["build_plan"]
