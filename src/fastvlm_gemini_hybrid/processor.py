"""HybridVLMProcessor: decide -> cache -> run the plan -> audit.

    decide (router, pure)  ->  cache lookup  ->  build_plan(decision).generate / .stream_answer
                           ->  cache store, metrics, audit (the answer waits for its record)

How each mode runs lives in execution/: `build_plan` turns the `RouteDecision` into a tree of
backends that wrap backends (`Fallback`, `Escalation`, `Parallel`, with `Guarded` leaves that add the
timeout, metrics and typed errors), so `arun` and `astream` run the same plan. Many requests go
through `execution.fanout.answer_many` (bounded, batched on a batching backend).

Privacy: every backend off this machine is an `EgressGate` (privacy/gate.py), built by the registry
or wrapped here when a caller injects one. When a route can reach the cloud, the processor starts
the gate's inspection of the pictures at once, in the background (`Inspector.start`), so a local
answer never waits for it; a cloud call awaits it, and a refusal moves on like any other failure
(`EgressRefusedError`), or is the answer when nothing else could answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from ._loop import LoopThread
from .audit import AuditLog
from .backends.base import Backend
from .backends.catalogue import routable
from .backends.registry import create_backend
from .bookkeeping import audit_record, cached_result, durable, store_result
from .cache import ResultCache
from .cache import cache_key as make_cache_key
from .config import Settings, load_settings
from .errors import BadInputError, HybridError
from .execution.call import Guarded
from .execution.fanout import answer_many
from .execution.plan import build_plan
from .metrics import Metrics
from .privacy.gate import gated
from .privacy.inspector import Inspection, Inspector, PrivacyPolicy
from .request_builder import MediaInput, build_request  # re-exported: the seed API builds requests here
from .routing import BackendInfo, Router, configured_backends, load_rules
from .types import Generation, Request, Result, RouteDecision

log = logging.getLogger(__name__)

class HybridVLMProcessor:
    """The one entry point: `process()` (the seed's dict API), `run()`/`arun()` (typed), `astream()`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backends: dict[str, Backend] | None = None,
        router: Router | None = None,
        cache: ResultCache | bool | None = True,
        audit: AuditLog | bool | None = True,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or load_settings()
        #: the egress gate's inspector, shared by every gated backend of this processor (one cache)
        self.inspector = Inspector(PrivacyPolicy.from_settings(self.settings))
        self._backends: dict[str, Backend] = {n: gated(b, self.inspector) for n, b in (backends or {}).items()}
        if backends is not None:
            infos = [BackendInfo(name=n, capabilities=routable(n, b.capabilities)) for n, b in self._backends.items()]
        else:
            infos = configured_backends(self.settings)
        self._infos = {info.name: info for info in infos}
        self.router = router or Router(
            infos,
            load_rules(self.settings.rules_file),
            default_mode=self.settings.default_mode,
            confidence_threshold=self.settings.confidence_threshold,
        )
        if cache is True:
            cache = (
                ResultCache(self.settings.cache_path, self.settings.cache_ttl_s, clock=clock,
                            max_bytes=self.settings.cache_max_bytes)
                if self.settings.cache_enabled
                else None
            )
        self.cache: ResultCache | None = cache or None
        if audit is True:
            audit = AuditLog(self.settings.audit_path, background=True) if self.settings.audit_enabled else None
        self.audit: AuditLog | None = audit or None
        self.metrics = metrics or Metrics()
        self._loop_thread: LoopThread | None = None
        self._plans: dict[tuple[object, ...], Backend] = {}

    # ------------------------------------------------------------------ backends
    def backend(self, name: str) -> Backend:
        """The backend called `name`, created on first use."""
        if name not in self._backends:
            self._backends[name] = create_backend(name, self.settings, self.inspector)
        return self._backends[name]

    @property
    def backend_infos(self) -> list[BackendInfo]:
        """Every backend the router knows (name, capabilities, availability), in configured order."""
        return list(self._infos.values())

    def decide(self, request: Request) -> RouteDecision:
        return self.router.decide(request)

    async def adecide(self, request: Request) -> RouteDecision:
        """`decide` without holding the event loop: a long text is read in a worker thread.

        Reading text costs about 1 s per MB (every detector scans it); off the loop, other requests and
        health checks keep being answered between the detectors' scans.
        """
        if _text_size(request) <= INLINE_TEXT_CHARS:
            return self.router.decide(request)
        return await asyncio.to_thread(self.router.decide, request)

    async def aexplain(self, request: Request) -> RouteDecision:
        """The decision, with what the egress gate finds in the pictures (a local inspection, no model call)."""
        self._admit(request)
        decision = await self.adecide(request)
        if any(a.data is not None for a in request.attachments):
            decision = self.router.with_inspection(decision, await self.inspector.ainspect(request, explain=True))
        return decision

    # ------------------------------------------------------------------ main path
    async def arun(self, request: Request, *, return_all: bool = False) -> Result:
        """Answer `request`; raises a `HybridError` (never returns None)."""
        return await self.execute(request, return_all=return_all)

    async def execute(
        self,
        request: Request,
        *,
        decision: RouteDecision | None = None,
        return_all: bool = False,
        first: Generation | BaseException | None = None,
    ) -> Result:
        """`arun`, for callers that already hold the decision, or (a batch) the primary backend's outcome."""
        start = time.perf_counter()
        try:
            decision = await self._decided(request, decision)
            request, decision = await self._ready(request, decision)
            result = None if first is not None else self._cache_lookup(request, decision)
            if result is None:
                plan = self.plan(decision, return_all=return_all, first=first)
                result = self._result(request, decision, await plan.generate(request))
            result, on_disk = self._finish(request, result, start)
        except HybridError as exc:
            self._audit(request, decision, error=exc, latency_ms=(time.perf_counter() - start) * 1000.0)
            raise
        await durable(on_disk)  # the answer waits for its record (group commit keeps this cheap)
        return result

    async def astream(self, request: Request) -> AsyncIterator[str | Result]:
        """Yield text pieces as they come, then the final `Result`: the same plan as `arun` (timeout,
        metrics, fallback before the first piece, escalation, a parallel race won by the first piece)."""
        start = time.perf_counter()
        decision: RouteDecision | None = None
        try:
            decision = await self._decided(request, None)
            request, decision = await self._ready(request, decision)
            result = self._cache_lookup(request, decision)
            if result is not None:
                yield result.response
            else:
                final: Generation | None = None
                async for item in self.plan(decision).stream_answer(request):
                    if isinstance(item, Generation):
                        final = item
                    else:
                        yield item
                assert final is not None  # stream_answer always ends with the whole answer
                result = self._result(request, decision, final)
            result, on_disk = self._finish(request, result, start)
        except HybridError as exc:
            self._audit(request, decision, error=exc, latency_ms=(time.perf_counter() - start) * 1000.0)
            raise
        await durable(on_disk)
        yield result

    def run(self, request: Request, *, return_all: bool = False) -> Result:
        """Synchronous `arun`, on the processor's private loop (safe inside a running loop too)."""
        return self.loop_thread.run(self.arun(request, return_all=return_all))

    @property
    def loop_thread(self) -> LoopThread:
        """The processor's private event loop, for synchronous callers (`run`, the `llm` plugin): the
        backends' clients belong to the loop they were made on, so every sync call goes through this one."""
        if self._loop_thread is None:
            self._loop_thread = LoopThread()
        return self._loop_thread

    def process(self, media: MediaInput | Sequence[MediaInput] | None, prompt: str, **hints: Any) -> dict[str, Any]:
        """The seed's API: `process("image.jpg", "Describe this")["response"]`.

        `hints` are `Request` fields: mode, domain, sensitive, latency, max_latency_ms, model, options.
        """
        return self.run(build_request(prompt, media, **hints)).to_dict()

    async def arun_many(
        self,
        requests: Iterable[Request],
        *,
        concurrency: int = 4,
        batch_size: int = 1,
        on_result: Callable[[int, Result | HybridError], None] | None = None,
        stop: Callable[[], bool] | None = None,
        slot: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    ) -> list[Result | HybridError]:
        """Answer many requests, at most `concurrency` units of work at once (execution/fanout.py).

        With `batch_size > 1`, requests whose primary backend batches (`Capabilities.batching`) go to it
        `batch_size` at a time in one forward pass; each then continues alone (fallback, escalation,
        cache, audit) exactly as `arun` would. Errors are returned in place, typed.
        """
        return await answer_many(self, list(requests), concurrency=concurrency, batch_size=batch_size,
                                 on_result=on_result, stop=stop, slot=slot)

    # ------------------------------------------------------------------ steps
    async def _decided(self, request: Request, decision: RouteDecision | None) -> RouteDecision:
        self._admit(request)
        return decision if decision is not None else await self.adecide(request)

    async def _ready(self, request: Request, decision: RouteDecision) -> tuple[Request, RouteDecision]:
        """The request as the plan gets it (pinned, marked sensitive when the router found it so) and the
        decision with the gate's verdict when the route is cloud only."""
        request = _pinned(request, decision)
        if decision.sensitive and not request.sensitive:
            # Backends refuse sensitive requests themselves too: let them see what the router found.
            request = replace(request, sensitive=True)
        return request, await self._plan_privacy(request, decision)

    def plan(
        self, decision: RouteDecision, *, return_all: bool = False, first: Generation | BaseException | None = None
    ) -> Backend:
        """The backend that carries out `decision` (execution/plan.py).

        A plan holds no request state (its leaves build their backend once, on first use), so the plan for a
        route shape is built once and reused: building it per request cost a tenth of the overhead path."""
        if first is not None:
            return build_plan(decision, self._leaf, self._is_cloud, self.metrics, return_all=return_all, first=first)
        shape = (decision.mode, decision.backends, decision.cloud_allowed, decision.escalate_below, return_all)
        plan = self._plans.get(shape)
        if plan is None:
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()  # route shapes are few; a flood of odd ones must not grow this without bound
            plan = self._plans[shape] = build_plan(
                decision, self._leaf, self._is_cloud, self.metrics, return_all=return_all
            )
        return plan

    def _leaf(self, name: str, retry_in_sdk: bool) -> Backend:
        return Guarded(
            name,
            lambda: self.backend(name),
            timeout_s=self.settings.request_timeout_s,
            metrics=self.metrics,
            inspector=self.inspector if self._is_cloud(name) else None,
            retry_in_sdk=retry_in_sdk,
        )

    def _finish(self, request: Request, result: Result, start: float) -> tuple[Result, Future[None] | None]:
        """Time, explain, cache and audit `result`; the future is done once its audit record is on disk."""
        result.latency_ms = (time.perf_counter() - start) * 1000.0
        result.request_id = request.request_id
        result.route = decision = self._explained(request, result.route)
        if not result.cached:
            self._cache_store(request, decision, result)
        return result, self._audit(request, decision, result=result)

    def _result(self, request: Request, decision: RouteDecision, gen: Generation) -> Result:
        return Result(
            response=gen.text,
            backend=gen.backend,
            model=gen.model,
            mode=decision.mode,
            route=decision,
            usage=gen.usage,
            confidence=gen.confidence,
            fallbacks=list(gen.attempts),
            blocked=gen.blocked,
            finish_reason=gen.finish_reason,
            request_id=request.request_id,
            alternatives=[self._result(request, decision, g) for g in gen.alternatives],
        )

    def _is_cloud(self, name: str) -> bool:
        info = self._infos.get(name)
        return info is not None and info.capabilities.is_cloud

    def _admit(self, request: Request) -> None:
        """Limits the settings put on any request, whichever face it came through."""
        chars, most = _text_size(request), self.settings.max_prompt_chars
        if chars > most:
            raise BadInputError(
                f"the prompt, earlier turns and system text are {chars:,} characters; the limit is {most:,} "
                "(FASTVLM_HYBRID_MAX_PROMPT_CHARS)"
            )
        limit = self.settings.max_tokens_limit
        if request.options.max_tokens > limit:
            raise BadInputError(
                f"max_tokens {request.options.max_tokens:,} is over the limit of {limit:,} "
                "(FASTVLM_HYBRID_MAX_TOKENS_LIMIT)"
            )

    # ------------------------------------------------------------------ privacy
    def _reaches_cloud(self, request: Request, decision: RouteDecision) -> bool:
        return bool(request.attachments) and any(self._is_cloud(n) for n in decision.backends)

    async def _plan_privacy(self, request: Request, decision: RouteDecision) -> RouteDecision:
        """Start the gate's inspection when the route can reach the cloud. In cloud-only mode (or any
        route with no local backend) it is awaited now, so a refusal is the same error as for
        sensitive text (exit 2, HTTP 403); otherwise it runs while the local backend answers."""
        if not self._reaches_cloud(request, decision):
            return decision
        self.inspector.start(request)
        if all(self._is_cloud(n) for n in decision.backends):
            inspection = await self.inspector.ainspect(request)
            self.metrics.record_privacy(inspection.verdict)
            return self.router.with_inspection(decision, inspection)
        return decision

    def _explained(self, request: Request, decision: RouteDecision) -> RouteDecision:
        """The decision with the gate's findings, when an inspection of this request has finished."""
        if decision.privacy is not None or not self._reaches_cloud(request, decision):
            return decision
        inspection: Inspection | None = self.inspector.finished(request)
        if inspection is None:
            return decision  # still running in the background: the local answer did not wait for it
        self.metrics.record_privacy(inspection.verdict)
        try:
            return self.router.with_inspection(decision, inspection)
        except HybridError:
            return decision

    # ------------------------------------------------------------------ cache, audit
    def cache_key(self, request: Request, backend: str) -> str:
        # The backend's configured model is part of the key: switching FASTVLM_HYBRID_LOCAL_MODEL (or
        # the Gemini model) must not return answers another model gave.
        instance = self.backend(backend)
        configured = getattr(instance, "model_name", None) or instance.default_model
        return make_cache_key(
            [a.sha256 for a in request.attachments],
            request.conversation_text(),
            backend,
            f"{request.model or ''}|{configured}",
            request.options.key(),
        )

    def _cache_lookup(self, request: Request, decision: RouteDecision) -> Result | None:
        return cached_result(self.cache, self.cache_key, request, decision, self.metrics)

    def _cache_store(self, request: Request, decision: RouteDecision, result: Result) -> None:
        store_result(self.cache, self.cache_key, request, decision, result)

    def _audit(
        self,
        request: Request,
        decision: RouteDecision | None,
        *,
        result: Result | None = None,
        error: HybridError | None = None,
        latency_ms: float | None = None,
    ) -> Future[None] | None:
        """Queue the request's audit record; the returned future is done once it is on disk."""
        if self.audit is None:
            return None
        record = audit_record(self.audit, request, decision, user=request.user or self.settings.user,
                              result=result, error=error, latency_ms=latency_ms)
        return self.audit.submit(record)[1]

    # ------------------------------------------------------------------ lifecycle
    async def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for info in self._infos.values():
            try:
                out[info.name] = (await self.backend(info.name).health()).to_dict()
            except HybridError as exc:
                out[info.name] = {"ready": False, "detail": str(exc)}
        return out

    async def aclose(self) -> None:
        for backend in self._backends.values():
            try:
                await backend.aclose()
            except Exception as exc:  # noqa: BLE001 - closing must not stop closing the others
                log.warning("closing %s failed: %s", backend.name, exc)
        if self.cache is not None:
            self.cache.close()
        if self.audit is not None:
            self.audit.close()
        self.inspector.close()

    def close(self) -> None:
        if self._loop_thread is not None:
            self._loop_thread.run(self.aclose())
            self._loop_thread.stop()
            self._loop_thread = None
        else:
            asyncio.run(self.aclose())

    def __enter__(self) -> HybridVLMProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pinned(request: Request, decision: RouteDecision) -> Request:
    """`request` with the router's reading of the model it names (backend, and that backend's model)."""
    if decision.pinned is None or (request.backend, request.model) == (decision.pinned, decision.pinned_model):
        return request
    return replace(request, backend=decision.pinned, model=decision.pinned_model)


PLAN_CACHE_SIZE = 256
INLINE_TEXT_CHARS = 16_384  # below this, reading the text takes under ~20 ms: not worth a thread hop


def _text_size(request: Request) -> int:
    return len(request.prompt) + len(request.options.system or "") + sum(len(t.text) for t in request.history)


__all__ = ["HybridVLMProcessor", "build_request"]
