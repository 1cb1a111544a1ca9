"""Modes as backends (execution/): streaming gets the same timeout, metrics, fallback, escalation and
parallel race as a whole answer, and the plan for each decision is the documented tree."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.backends.base import Backend, Capabilities
from fastvlm_gemini_hybrid.backends.testing import failing
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.errors import (
    AllBackendsFailedError,
    BackendTimeoutError,
    BadInputError,
    ServerError,
)
from fastvlm_gemini_hybrid.execution.call import Guarded
from fastvlm_gemini_hybrid.execution.modes import Escalation, Fallback, Parallel
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import BackendKind, Generation, Mode, Request, Result


class Scripted(Backend):
    """Streams `pieces` with `gap_s` between them; raises `error` after `fail_after` pieces."""

    def __init__(self, name: str, pieces: list[str], *, kind: str = "local", gap_s: float = 0.0,
                 fail_after: int | None = None, error: Exception | None = None, confidence: float | None = None):
        self.name = name
        self.capabilities = Capabilities(kind=BackendKind.parse(kind), media=frozenset({"image"}), max_images=8,
                                         streaming=True, confidence=confidence is not None)
        self.default_model = f"{name}-model"
        self.pieces, self.gap_s, self.fail_after = pieces, gap_s, fail_after
        self.error = error or ServerError(f"{name} broke", name)
        self.confidence = confidence
        self.streams = 0
        self.generates = 0
        self.cancelled = False

    async def generate(self, request: Request) -> Generation:
        self.generates += 1
        text = "".join([p async for p in self.stream(request)])
        return Generation(text=text, model=self.default_model, confidence=self.confidence)

    async def stream(self, request: Request) -> AsyncIterator[str]:
        self.streams += 1
        try:
            for i, piece in enumerate(self.pieces):
                if self.fail_after is not None and i == self.fail_after:
                    raise self.error
                await asyncio.sleep(self.gap_s)
                yield piece
            if self.fail_after is not None and self.fail_after >= len(self.pieces):
                raise self.error
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def collect(proc: HybridVLMProcessor, request: Request) -> tuple[list[str], Result]:
    pieces: list[str] = []
    result: Result | None = None
    async for item in proc.astream(request):
        if isinstance(item, Result):
            result = item
        else:
            pieces.append(item)
    assert result is not None
    return pieces, result


async def test_streaming_fallback_moves_on_before_the_first_piece(settings: Settings) -> None:
    local = Scripted("fastvlm", ["never"], fail_after=0)
    cloud = Scripted("gemini", ["cloud ", "answer"], kind="cloud")
    proc = make_processor(settings, local, cloud, cache=False)
    pieces, result = await collect(proc, Request("Describe it", mode=Mode.FALLBACK))
    assert pieces == ["cloud ", "answer"]
    assert (result.backend, result.response) == ("gemini", "cloud answer")
    assert [(a.backend, a.error) for a in result.fallbacks] == [("fastvlm", "fastvlm broke")]


async def test_streaming_fallback_stops_after_a_piece_was_sent(settings: Settings) -> None:
    local = Scripted("fastvlm", ["half ", "answer"], fail_after=1)
    cloud = Scripted("gemini", ["cloud"], kind="cloud")
    proc = make_processor(settings, local, cloud, cache=False)
    seen: list[str] = []
    with pytest.raises(ServerError):
        async for item in proc.astream(Request("Describe it", mode=Mode.FALLBACK)):
            seen.append(item)  # type: ignore[arg-type]
    assert seen == ["half "] and cloud.streams == 0  # nobody can continue another model's sentence
    assert proc.audit.records()[-1]["outcome"] == "server_error"  # type: ignore[union-attr]


async def test_streaming_has_the_same_timeout_and_metrics_as_a_whole_answer(tmp_path: Any) -> None:
    settings = load_settings(home=tmp_path / "home", request_timeout_s=0.3)
    slow = Scripted("fastvlm", ["a ", "b ", "c ", "d "], gap_s=0.2)
    proc = make_processor(settings, slow, Scripted("gemini", ["cloud"], kind="cloud"), cache=False)
    seen: list[Any] = []
    with pytest.raises(BackendTimeoutError):  # after a piece was sent, the error itself ends the stream
        async for item in proc.astream(Request("Describe it", mode=Mode.LOCAL_ONLY)):
            seen.append(item)
    assert seen == ["a "]
    assert slow.cancelled  # the backend's stream was stopped, not left running
    assert proc.metrics.requests[("fastvlm", "stream", "timeout")] == 1
    fast = Scripted("fastvlm", ["a ", "b"])
    proc = make_processor(settings, fast, Scripted("gemini", ["cloud"], kind="cloud"), cache=False)
    await collect(proc, Request("Describe it", mode=Mode.LOCAL_ONLY))
    assert proc.metrics.requests[("fastvlm", "stream", "ok")] == 1
    assert proc.metrics.latency["fastvlm"].total == 1


async def test_streaming_in_auto_mode_escalates_a_doubtful_local_answer(settings: Settings) -> None:
    local = Scripted("fastvlm", ["unsure"], confidence=0.1)
    cloud = Scripted("gemini", ["sure ", "answer"], kind="cloud")
    proc = make_processor(settings, local, cloud, cache=False)
    pieces, result = await collect(proc, Request("Describe the street", mode=Mode.AUTO))
    assert pieces == ["sure ", "answer"]  # the doubtful local answer was never shown
    assert result.backend == "gemini"
    assert any("low confidence" in a.error for a in result.fallbacks)


async def test_streaming_escalation_keeps_the_local_answer_when_the_cloud_fails(settings: Settings) -> None:
    local = Scripted("fastvlm", ["unsure"], confidence=0.1)
    cloud = Scripted("gemini", ["x"], kind="cloud", fail_after=0)
    proc = make_processor(settings, local, cloud, cache=False)
    pieces, result = await collect(proc, Request("Describe the street", mode=Mode.AUTO))
    assert pieces == ["unsure"] and result.backend == "fastvlm"
    assert [a.backend for a in result.fallbacks] == ["gemini"]


async def test_streaming_a_confident_local_answer_is_not_escalated(settings: Settings) -> None:
    local = Scripted("fastvlm", ["sure"], confidence=0.99)
    cloud = Scripted("gemini", ["x"], kind="cloud")
    proc = make_processor(settings, local, cloud, cache=False)
    pieces, result = await collect(proc, Request("Describe the street", mode=Mode.AUTO))
    assert pieces == ["sure"] and result.backend == "fastvlm" and cloud.streams == 0


async def test_parallel_stream_streams_the_first_backend_to_send_and_cancels_the_other(settings: Settings) -> None:
    local = Scripted("fastvlm", ["slow ", "local"], gap_s=0.5)
    cloud = Scripted("gemini", ["fast ", "cloud"], kind="cloud", gap_s=0.01)
    proc = make_processor(settings, local, cloud, cache=False)
    pieces, result = await collect(proc, Request("Describe it", mode=Mode.PARALLEL))
    assert pieces == ["fast ", "cloud"] and result.backend == "gemini"
    assert local.cancelled


async def test_parallel_stream_survives_a_backend_that_fails_before_sending(settings: Settings) -> None:
    local = Scripted("fastvlm", ["local ", "answer"], gap_s=0.05)
    cloud = Scripted("gemini", ["x"], kind="cloud", fail_after=0)
    proc = make_processor(settings, local, cloud, cache=False)
    pieces, result = await collect(proc, Request("Describe it", mode=Mode.PARALLEL))
    assert "".join(pieces) == "local answer" and result.backend == "fastvlm"
    assert [a.backend for a in result.fallbacks] == ["gemini"]


async def test_parallel_stream_when_every_backend_fails(settings: Settings) -> None:
    local = Scripted("fastvlm", ["x"], fail_after=0)
    cloud = Scripted("gemini", ["x"], kind="cloud", fail_after=0)
    with pytest.raises(AllBackendsFailedError) as caught:
        await collect(make_processor(settings, local, cloud, cache=False), Request("Describe it", mode=Mode.PARALLEL))
    assert sorted(n for n, _ in caught.value.attempts) == ["fastvlm", "gemini"]


async def test_a_non_recoverable_error_stops_a_streaming_fallback(settings: Settings) -> None:
    local = Scripted("fastvlm", ["x"], fail_after=0, error=BadInputError("bad picture"))
    cloud = Scripted("gemini", ["cloud"], kind="cloud")
    with pytest.raises(BadInputError):
        await collect(make_processor(settings, local, cloud, cache=False), Request("Describe it", mode=Mode.FALLBACK))
    assert cloud.streams == 0


async def test_streamed_and_whole_answers_come_from_the_same_plan(settings: Settings) -> None:
    """The same decision gives the same backend, fallbacks and text whether streamed or not."""
    for mode in (Mode.FALLBACK, Mode.AUTO, Mode.LOCAL_ONLY, Mode.CLOUD_ONLY):
        proc = make_processor(settings, failing(ServerError("down", "fastvlm")), "cloud words here", cache=False)
        request = Request("Describe the street", mode=mode)
        try:
            whole = await proc.arun(request)
        except AllBackendsFailedError:
            with pytest.raises(AllBackendsFailedError):
                await collect(proc, request)
            continue
        pieces, streamed = await collect(proc, request)
        # (FunctionBackend streams word by word, each with a trailing space)
        assert (streamed.backend, streamed.response.strip(), [a.backend for a in streamed.fallbacks]) == (
            whole.backend, whole.response, [a.backend for a in whole.fallbacks]), mode
        assert "".join(pieces) == streamed.response


def test_the_plan_for_each_mode_is_the_documented_tree(settings: Settings) -> None:
    proc = make_processor(settings, "a", "b", local_kw={"confidence": 0.9}, cache=False)
    fallback = proc.plan(proc.decide(Request("Describe it", mode=Mode.FALLBACK)))
    assert isinstance(fallback, Fallback) and all(isinstance(m, Guarded) for m in fallback.members)
    # In a fallback chain only the last backend may retry inside its SDK.
    assert [m.retry_in_sdk for m in fallback.members] == [False] * (len(fallback.members) - 1) + [True]
    parallel = proc.plan(proc.decide(Request("Describe it", mode=Mode.PARALLEL)))
    assert isinstance(parallel, Parallel) and len(parallel.members) == 2
    auto = proc.plan(proc.decide(Request("Describe the street", mode=Mode.AUTO)))
    assert isinstance(auto, Fallback) and isinstance(auto.members[0], Escalation)
    assert isinstance(auto.members[0].cloud, Fallback)
    local_only = proc.plan(proc.decide(Request("Describe it", mode=Mode.LOCAL_ONLY)))
    assert [m.name for m in local_only.members] == ["fastvlm"]  # type: ignore[attr-defined]


def test_a_backend_is_built_only_when_the_plan_calls_it(settings: Settings) -> None:
    built: list[str] = []
    proc = make_processor(settings, "a", "b", cache=False)
    original = proc.backend

    def spy(name: str) -> Backend:
        built.append(name)
        return original(name)

    proc.backend = spy  # type: ignore[method-assign]
    plan = proc.plan(proc.decide(Request("Describe it", mode=Mode.FALLBACK)))
    assert built == []
    asyncio.run(plan.generate(Request("Describe it")))
    assert set(built) == {"fastvlm"}  # the cloud backend was never built


async def test_a_stream_that_sends_nothing_in_time_falls_back(tmp_path: Any) -> None:
    settings = load_settings(home=tmp_path / "home", request_timeout_s=0.2)
    slow = Scripted("fastvlm", ["late"], gap_s=1.0)
    cloud = Scripted("gemini", ["cloud"], kind="cloud")
    proc = make_processor(settings, slow, cloud, cache=False)
    pieces, result = await collect(proc, Request("Describe it", mode=Mode.FALLBACK))
    assert pieces == ["cloud"] and result.backend == "gemini"
    assert result.fallbacks[0].backend == "fastvlm" and "0.2 s" in result.fallbacks[0].error
