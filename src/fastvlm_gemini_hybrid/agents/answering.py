"""What an agent asks its answers through: the processor's methods the agents call, as Protocols.

The value is usually a `HybridVLMProcessor` (the CLI's, the server's, a library caller's); the server's
surveillance jobs hand `AlertDescriber` their `LoopBridge` (server/jobs.py), and tests may pass anything
with the same methods. Typing the seam here keeps agents/ free of imports from server/ and cli/
(tests/core/test_import_graph.py).

    Answerer          on the caller's event loop: `arun`, plus `decide`, `backend` and `settings`
                      (every agent's `arun`, `Agent.ask`, `ask_structured`, `clip_has_route`)
    BlockingAnswerer  from a worker thread: `run` (the surveillance `AlertDescriber`)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..config import Settings
    from ..types import Request, Result, RouteDecision

__all__ = ["Answerer", "BlockingAnswerer"]


@runtime_checkable
class Answerer(Protocol):
    """Answers requests on the caller's event loop, and shows how it would route them.

    `arun` is the call every agent makes; `decide` (the route a request would take, with nothing sent)
    and `backend` (a backend by name, for its capabilities) tell the video agents whether a whole clip
    has a backend that takes it; `settings` gives the surveillance agent its confidence threshold.
    Implementations may take more keyword arguments (`HybridVLMProcessor.arun(request, return_all=...)`):
    the agents pass none.
    """

    @property
    def settings(self) -> Settings: ...

    async def arun(self, request: Request) -> Result: ...

    def decide(self, request: Request) -> RouteDecision: ...

    def backend(self, name: str) -> Backend: ...


@runtime_checkable
class BlockingAnswerer(Protocol):
    """Answers one request from a synchronous caller, blocking until the answer is there.

    `HybridVLMProcessor.run`, the server's `LoopBridge.run` (the answer computed on the server's loop,
    through its admission gate) and the surveillance agent's `_OnLoop.run` (the caller's loop).
    """

    def run(self, request: Request) -> Result: ...
