"""HybridVLMProcessor: executes the router's decision in one of five modes.

    decide (pure)  ->  cache lookup  ->  execute mode  ->  cache store, metrics, audit

Modes: `local-only` / `cloud-only` / `fallback` walk the decision's backend list, moving on only
after an error that allows it (errors.py); `auto` does the same and escalates a local answer whose
confidence is under the decision's threshold to the next cloud backend when the route allows the
cloud; `parallel` asks every listed backend at once, keeps the first good answer and cancels the
rest (or, with `return_all`, waits for all and returns the others as `alternatives`).

Privacy: every backend off this machine is an `EgressGate` (privacy/gate.py), built by the registry
or wrapped here when a caller injects one. When a route can reach the cloud, the processor starts
the gate's inspection of the pictures at once, in the background (`Inspector.start`), so a local
answer never waits for it; a cloud call awaits it, and a refusal moves on like any other failure
(`EgressRefusedError`), or is the answer when nothing else could answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from .audit import AuditLog
from .backends.base import Backend
from .backends.catalogue import routable
from .backends.circuit import sdk_retries
from .backends.registry import create_backend
from .cache import ResultCache, cache_key
from .config import Settings, load_settings
from .errors import (
    AllBackendsFailedError,
    BackendTimeoutError,
    BadInputError,
    EgressRefusedError,
    HybridError,
    InvalidResponseError,
    ServerError,
    fallback_allowed,
)
from .metrics import Metrics
from .privacy.gate import gated
from .privacy.inspector import Inspection, Inspector, PrivacyPolicy
from .request_builder import MediaInput, build_request  # re-exported: the seed API builds requests here
from .routing import BackendInfo, Router, configured_backends, load_rules
from .types import Attempt, Generation, Mode, Request, Result, RouteDecision, Usage

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
        self._loop_thread: Any = None

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
        return await self._execute(request, time.perf_counter(), return_all=return_all)

    async def _execute(
        self,
        request: Request,
        start: float,
        *,
        decision: RouteDecision | None = None,
        return_all: bool = False,
        first: Generation | BaseException | None = None,
    ) -> Result:
        """Decide (unless given), look up the cache, run the mode, then store, count and audit.

        `first` is the primary backend's outcome when a batch already computed it.
        """
        try:
            self._admit(request)
            if decision is None:
                decision = await self.adecide(request)
            request = _pinned(request, decision)
            if decision.sensitive and not request.sensitive:
                # Backends refuse sensitive requests themselves too: let them see what the router found.
                request = replace(request, sensitive=True)
            decision = await self._plan_privacy(request, decision)
            cached = None if first is not None else self._cache_lookup(request, decision)
            if cached is not None:
                result = cached
            elif decision.mode is Mode.PARALLEL and len(decision.backends) > 1:
                result = await self._parallel(request, decision, return_all)
            else:
                result = await self._sequential(request, decision, first)
            result.latency_ms = (time.perf_counter() - start) * 1000.0
            result.request_id = request.request_id
            result.route = decision = self._explained(request, result.route)
            if not result.cached:
                self._cache_store(request, decision, result)
            durable = self._audit(request, decision, result=result)
        except HybridError as exc:
            self._audit(request, decision, error=exc, latency_ms=(time.perf_counter() - start) * 1000.0)
            raise
        await _durable(durable)  # the answer waits for its record (group commit keeps this cheap)
        return result

    def run(self, request: Request, *, return_all: bool = False) -> Result:
        """Synchronous `arun`, on the processor's private loop (safe inside a running loop too)."""
        from ._loop import LoopThread

        if self._loop_thread is None:
            self._loop_thread = LoopThread()
        return self._loop_thread.run(self.arun(request, return_all=return_all))

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
    ) -> list[Result | HybridError]:
        """Answer many requests with at most `concurrency` units of work in flight.

        With `batch_size > 1`, requests whose primary backend batches (`Capabilities.batching`) go to it
        `batch_size` at a time in one forward pass; each item then continues alone (fallback,
        escalation, cache, audit) exactly as `arun` would. Errors are returned in place, typed.
        """
        items = list(requests)
        out: list[Result | HybridError] = [None] * len(items)  # type: ignore[list-item]
        gate = asyncio.Semaphore(max(1, concurrency))

        def done(i: int, value: Result | HybridError) -> None:
            out[i] = value
            if on_result is not None:
                on_result(i, value)

        async def single(
            i: int, req: Request, decision: RouteDecision | None = None, first: Generation | BaseException | None = None
        ) -> None:
            try:
                done(i, await self._execute(req, time.perf_counter(), decision=decision, first=first))
            except HybridError as exc:
                done(i, exc)

        async def gated(i: int, req: Request) -> None:
            async with gate:
                await single(i, req)

        groups: dict[str, list[tuple[int, Request, RouteDecision]]] = {}
        work = []
        for i, req in enumerate(items):
            decision = self._batchable(req) if batch_size > 1 else None
            if decision is None:
                work.append(gated(i, req))
            else:
                groups.setdefault(decision.backends[0], []).append((i, req, decision))

        async def batch(name: str, chunk: list[tuple[int, Request, RouteDecision]]) -> None:
            async with gate:
                outcomes = await self._call_batch(name, [req for _, req, _ in chunk])
                await asyncio.gather(*(single(i, req, d, o) for (i, req, d), o in zip(chunk, outcomes, strict=True)))

        for name, members in groups.items():
            for k in range(0, len(members), batch_size):
                work.append(batch(name, members[k : k + batch_size]))
        await asyncio.gather(*work)
        return out

    def _batchable(self, request: Request) -> RouteDecision | None:
        """The decision for `request` if its primary backend can batch it and the cache cannot answer."""
        try:
            decision = self.router.decide(request)
        except HybridError:
            return None  # arun reports it, audited
        if decision.mode is Mode.PARALLEL or not decision.backends:
            return None
        name = decision.backends[0]
        if not self._infos.get(name) or not self._infos[name].capabilities.batching:
            return None
        if self.cache is not None and self.cache.get(self._key(request, name)) is not None:
            return None
        return decision

    async def _call_batch(self, name: str, requests: list[Request]) -> list[Generation | BaseException]:
        try:
            backend = self.backend(name)
            outcomes = await asyncio.wait_for(
                backend.generate_batch(requests), timeout=self.settings.request_timeout_s * len(requests)
            )
        except (asyncio.TimeoutError, TimeoutError):
            return [BackendTimeoutError("the batch took too long", name)] * len(requests)
        except HybridError as exc:
            return [exc] * len(requests)
        if len(outcomes) != len(requests):
            wrong = InvalidResponseError(f"{name} answered {len(outcomes)} of {len(requests)} batch items", name)
            return [wrong] * len(requests)
        for outcome in outcomes:
            if isinstance(outcome, Generation):
                self.metrics.record_request(name, "batch", "blocked" if outcome.blocked else "ok", 0.0)
        return outcomes

    # ------------------------------------------------------------------ modes
    async def _call(self, name: str, request: Request, *, sdk_retry: bool = True) -> Generation:
        """One backend call with the processor's timeout; library errors become typed ones.

        `sdk_retry=False` stops HTTP backends from retrying inside the call: in fallback mode the next
        backend, not a retry loop, is the answer to a failure.
        """
        backend = self.backend(name)
        request = await self._outgoing(name, backend, request)
        backend.check(request)
        start = time.perf_counter()
        try:
            with contextlib.nullcontext() if sdk_retry else sdk_retries(0):
                gen = await asyncio.wait_for(backend.generate(request), timeout=self.settings.request_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            self.metrics.record_request(name, "call", "timeout", time.perf_counter() - start)
            raise BackendTimeoutError(f"no answer within {self.settings.request_timeout_s:g} s", name) from None
        except HybridError as exc:
            self.metrics.record_request(name, "call", exc.code, time.perf_counter() - start)
            self._note_circuit(name, backend)
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("backend %s raised %s: %s", name, type(exc).__name__, exc)
            self.metrics.record_request(name, "call", "error", time.perf_counter() - start)
            raise ServerError(f"{type(exc).__name__}: {exc}", name) from exc
        self.metrics.record_request(name, "call", "blocked" if gen.blocked else "ok", time.perf_counter() - start)
        self._note_circuit(name, backend)
        self.metrics.record_usage(name, gen.usage.input_tokens, gen.usage.output_tokens, gen.usage.cost_usd)
        return gen

    async def _sequential(
        self, request: Request, decision: RouteDecision, first: Generation | BaseException | None = None
    ) -> Result:
        attempts: list[Attempt] = []
        failures: list[tuple[str, BaseException]] = []
        kept: tuple[str, Generation] | None = None  # a low-confidence local answer, kept in case escalation fails
        escalation: Attempt | None = None
        names = list(decision.backends)
        for i, name in enumerate(names):
            if kept is not None and not self._is_cloud(name):
                continue  # escalation goes to the cloud only
            try:
                if first is not None and i == 0:
                    gen = _settle(first, name)
                else:
                    more_to_try = i < len(names) - 1
                    gen = await self._call(
                        name, request, sdk_retry=decision.mode is not Mode.FALLBACK or not more_to_try
                    )
            except HybridError as exc:
                if not fallback_allowed(exc):
                    raise
                attempts.append(Attempt(name, str(exc)))
                failures.append((name, exc))
                self.metrics.record_fallback(name, exc.code)
                continue
            if self._should_escalate(decision, name, gen, names[i + 1 :]):
                self.metrics.record_escalation()
                escalation = Attempt(name, f"low confidence {gen.confidence:.2f} < {decision.escalate_below:.2f}")
                attempts.append(escalation)
                kept = (name, gen)
                continue
            return self._result(request, decision, name, gen, attempts)
        if kept is not None:
            # Escalation failed: the local answer is still the best there is.
            return self._result(request, decision, kept[0], kept[1], [a for a in attempts if a is not escalation])
        raise _failure(failures)

    def _note_circuit(self, name: str, backend: Backend) -> None:
        """Copy an HTTP backend's circuit-breaker state into the metrics (closed, open, half-open)."""
        state = getattr(backend, "circuit_state", None)
        if isinstance(state, str):
            self.metrics.set_circuit(name, state)

    @staticmethod
    def _adapt(backend: Backend, request: Request) -> Request:
        """Render DICOM, and sample video frames, for a backend that reads pictures only (the router
        counted on this when it listed the backend)."""
        media = backend.capabilities.media
        kinds = {a.kind for a in request.attachments}
        if "dicom" in kinds and "dicom" not in media:
            from .media.dicom import as_images

            request = as_images(request)
        if "video" in kinds and "video" not in media:
            from .media.keyframes import as_frames

            request = as_frames(request, backend.capabilities.max_images)
        return request

    def _should_escalate(self, decision: RouteDecision, name: str, gen: Generation, rest: list[str]) -> bool:
        return (
            decision.mode is Mode.AUTO
            and decision.cloud_allowed
            and decision.escalate_below is not None
            and gen.confidence is not None
            and gen.confidence < decision.escalate_below
            and not self._is_cloud(name)
            and any(self._is_cloud(n) for n in rest)
        )

    async def _parallel(self, request: Request, decision: RouteDecision, return_all: bool) -> Result:
        tasks = {asyncio.ensure_future(self._call(n, request)): n for n in decision.backends}
        failures: list[tuple[str, BaseException]] = []
        done_results: list[tuple[str, Generation]] = []
        winner: tuple[str, Generation] | None = None
        try:
            pending = set(tasks)
            while pending and (winner is None or return_all):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    name = tasks[task]
                    exc = task.exception()
                    if exc is not None:
                        if isinstance(exc, HybridError) and not fallback_allowed(exc):
                            raise exc
                        failures.append((name, exc))
                        continue
                    gen = task.result()
                    done_results.append((name, gen))
                    if winner is None and not gen.blocked:
                        winner = (name, gen)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if winner is None:
            if done_results:  # only blocked answers: report the first
                winner = done_results[0]
            else:
                raise _failure(failures)
        attempts = [Attempt(n, str(e)) for n, e in failures]
        result = self._result(request, decision, winner[0], winner[1], attempts)
        result.alternatives = [self._result(request, decision, n, g, []) for n, g in done_results if g is not winner[1]]
        return result

    def _result(
        self, request: Request, decision: RouteDecision, name: str, gen: Generation, attempts: list[Attempt]
    ) -> Result:
        return Result(
            response=gen.text,
            backend=name,
            model=gen.model,
            mode=decision.mode,
            route=decision,
            usage=gen.usage,
            confidence=gen.confidence,
            fallbacks=list(attempts),
            blocked=gen.blocked,
            finish_reason=gen.finish_reason,
            request_id=request.request_id,
        )

    def _is_cloud(self, name: str) -> bool:
        info = self._infos.get(name)
        return info is not None and info.capabilities.is_cloud

    # ------------------------------------------------------------------ streaming
    async def astream(self, request: Request) -> AsyncIterator[str | Result]:
        """Yield text pieces as they come, then the final `Result`.

        Falls back to the next backend only if one fails before its first piece; parallel mode streams
        from the primary backend and falls back like `fallback` mode.
        """
        start = time.perf_counter()
        self._admit(request)
        decision = await self.adecide(request)
        request = _pinned(request, decision)
        if decision.sensitive and not request.sensitive:
            request = replace(request, sensitive=True)
        decision = await self._plan_privacy(request, decision)
        cached = self._cache_lookup(request, decision)
        if cached is not None:
            yield cached.response
            cached.latency_ms = (time.perf_counter() - start) * 1000.0
            await _durable(self._audit(request, decision, result=cached))
            yield cached
            return
        attempts: list[Attempt] = []
        failures: list[tuple[str, BaseException]] = []
        for name in decision.backends:
            backend = self.backend(name)
            pieces: list[str] = []
            try:
                outgoing = await self._outgoing(name, backend, request)
                backend.check(outgoing)
                async for piece in backend.stream(outgoing):
                    pieces.append(piece)
                    yield piece
            except HybridError as exc:
                if pieces or not fallback_allowed(exc):
                    self._audit(request, decision, error=exc, latency_ms=(time.perf_counter() - start) * 1000.0)
                    raise
                attempts.append(Attempt(name, str(exc)))
                failures.append((name, exc))
                continue
            gen = Generation(text="".join(pieces), model=request.model or backend.default_model, usage=Usage())
            result = self._result(request, decision, name, gen, attempts)
            result.route = decision = self._explained(request, decision)
            result.latency_ms = (time.perf_counter() - start) * 1000.0
            self._cache_store(request, decision, result)
            await _durable(self._audit(request, decision, result=result))
            yield result
            return
        error = _failure(failures)
        self._audit(request, decision, error=error, latency_ms=(time.perf_counter() - start) * 1000.0)
        raise error

    def _admit(self, request: Request) -> None:
        """Limits the settings put on any request, whichever face it came through."""
        chars, most = _text_size(request), self.settings.max_prompt_chars
        if chars > most:
            raise BadInputError(
                f"the prompt and system text are {chars:,} characters; the limit is {most:,} "
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

    async def _outgoing(self, name: str, backend: Backend, request: Request) -> Request:
        """The request as backend `name` gets it: a named model only for the backend that serves it,
        cleared by the egress gate when `name` is off this machine, media converted for what it reads."""
        if request.backend is not None and name != request.backend and request.model is not None:
            request = replace(request, model=None)
        return self._adapt(backend, await self._cleared(name, request))

    async def _cleared(self, name: str, request: Request) -> Request:
        """What may go to backend `name`: the request itself when it is local, else the gate's verdict."""
        if not self._is_cloud(name):
            return request
        inspection = await self.inspector.ainspect(request)
        if inspection.refused or inspection.request is None:
            raise EgressRefusedError(f"kept on this machine: {inspection.reason}", name, inspection.findings)
        return inspection.request

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
    def _key(self, request: Request, backend: str) -> str:
        # The backend's configured model is part of the key: switching FASTVLM_HYBRID_LOCAL_MODEL (or
        # the Gemini model) must not return answers another model gave.
        instance = self.backend(backend)
        configured = getattr(instance, "model_name", None) or instance.default_model
        return cache_key(
            [a.sha256 for a in request.attachments],
            request.prompt,
            backend,
            f"{request.model or ''}|{configured}",
            request.options.key(),
        )

    def _cache_lookup(self, request: Request, decision: RouteDecision) -> Result | None:
        if self.cache is None:
            return None
        for name in decision.backends:
            hit = self.cache.get(self._key(request, name))
            if hit is not None:
                self.metrics.record_cache(True)
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
        self.metrics.record_cache(False)
        return None

    def _cache_store(self, request: Request, decision: RouteDecision, result: Result) -> None:
        if self.cache is None or result.blocked or result.finish_reason in ("length_partial", "error"):
            return
        value = {
            "response": result.response,
            "model": result.model,
            "confidence": result.confidence,
            "finish_reason": result.finish_reason,
        }
        # Sensitive answers stay in memory only: never on disk.
        self.cache.put(
            self._key(request, result.backend), value, backend=result.backend, persist=not decision.sensitive
        )

    def _audit(
        self,
        request: Request,
        decision: RouteDecision | None,
        *,
        result: Result | None = None,
        error: HybridError | None = None,
        latency_ms: float | None = None,
    ) -> concurrent.futures.Future[None] | None:
        """Queue the request's audit record; the returned future is done once it is on disk."""
        if self.audit is None:
            return None
        sensitive = decision.sensitive if decision is not None else True  # unknown: assume the worst
        record = self.audit.request_record(
            request_id=request.request_id,
            user=request.user or self.settings.user,
            prompt=request.prompt,
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
            privacy=_privacy_summary(decision, error),
        )
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


INLINE_TEXT_CHARS = 16_384  # below this, reading the text takes under ~20 ms: not worth a thread hop


def _text_size(request: Request) -> int:
    return len(request.prompt) + len(request.options.system or "")


async def _durable(future: concurrent.futures.Future[None] | None) -> None:
    """Wait, without blocking the loop, until an audit record is on disk; `AuditWriteError` if it cannot be.

    Shielded: a client that hangs up cancels this wait, and `wrap_future` would pass the cancellation on to
    the writer's future, which belongs to the writer thread and to the group it was written with.
    """
    if future is not None:
        await asyncio.shield(asyncio.wrap_future(future))


def _privacy_summary(decision: RouteDecision | None, error: HybridError | None) -> dict[str, Any] | None:
    """The gate's verdict and the categories it found, for the audit trail (never values or places)."""
    privacy = decision.privacy if decision is not None else None
    if privacy is None and isinstance(error, EgressRefusedError):
        kinds = sorted({f"{f.category}/{f.kind}" for f in error.findings})  # type: ignore[attr-defined]
        return {"verdict": "refuse", "categories": kinds}
    if privacy is None:
        return None
    kinds = sorted({f"{f['category']}/{f['kind']}" for f in privacy.get("findings", ())})
    return {"verdict": privacy.get("verdict"), "categories": kinds, "redacted": bool(privacy.get("redactions"))}


def _failure(failures: list[tuple[str, BaseException]]) -> HybridError:
    """Nothing answered: when every failure was the egress gate's refusal, the refusal is the answer
    (exit 2, HTTP 403, as for sensitive text); otherwise the list of what each backend said."""
    if failures and all(isinstance(exc, EgressRefusedError) for _, exc in failures):
        return failures[0][1]  # type: ignore[return-value]
    return AllBackendsFailedError(failures)


def _settle(outcome: Generation | BaseException, name: str) -> Generation:
    """A batch item's outcome as if `_call` had produced it."""
    if isinstance(outcome, Generation):
        return outcome
    if isinstance(outcome, HybridError):
        raise outcome
    raise ServerError(f"{type(outcome).__name__}: {outcome}", name) from outcome


__all__ = ["HybridVLMProcessor", "build_request"]
