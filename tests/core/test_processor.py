"""The five modes, fallback rules, escalation, cache, audit, through FunctionBackends."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fakes import fake_backends, make_processor
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend, failing
from fastvlm_gemini_hybrid.config import Settings
from fastvlm_gemini_hybrid.errors import (
    AllBackendsFailedError,
    BackendRejectedError,
    BackendTimeoutError,
    BackendUnavailableError,
    BadInputError,
    InvalidResponseError,
    ModelNotDownloadedError,
    PolicyViolationError,
    RateLimitedError,
    ServerError,
)
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor, build_request
from fastvlm_gemini_hybrid.routing import BackendInfo, Router
from fastvlm_gemini_hybrid.types import Generation, Mode, Request, Result


def calls(proc: HybridVLMProcessor, name: str) -> int:
    return len(proc.backend(name).calls)  # type: ignore[attr-defined]


def req(prompt: str = "Describe the picture", **kw: Any) -> Request:
    return Request(prompt=prompt, **kw)


async def test_local_only_never_touches_the_cloud(settings: Settings) -> None:
    proc = make_processor(settings)
    result = await proc.arun(req(mode=Mode.LOCAL_ONLY))
    assert (result.backend, result.response) == ("fastvlm", "local answer")
    assert calls(proc, "gemini") == 0
    assert "gemini" not in result.route.backends


async def test_cloud_only_answers_from_the_cloud(settings: Settings) -> None:
    proc = make_processor(settings)
    result = await proc.arun(req(mode=Mode.CLOUD_ONLY))
    assert result.backend == "gemini" and calls(proc, "fastvlm") == 0


async def test_cloud_only_on_a_sensitive_request_is_refused_and_audited(settings: Settings) -> None:
    proc = make_processor(settings)
    with pytest.raises(PolicyViolationError):
        await proc.arun(req(mode=Mode.CLOUD_ONLY, sensitive=True))
    assert calls(proc, "gemini") == 0 and calls(proc, "fastvlm") == 0
    records = proc.audit.records()  # type: ignore[union-attr]
    assert records[-1]["outcome"] == "policy_violation"
    assert "prompt" not in records[-1]


@pytest.mark.parametrize("mode", list(Mode))
async def test_sensitive_requests_never_reach_the_cloud_in_any_mode(settings: Settings, mode: Mode) -> None:
    proc = make_processor(settings, local=failing(ServerError("local down", "fastvlm")), local_kw={"confidence": 0.01})
    with pytest.raises((PolicyViolationError, AllBackendsFailedError)):
        await proc.arun(req(mode=mode, sensitive=True))
    assert calls(proc, "gemini") == 0


async def test_auto_escalates_low_confidence_local_answers(settings: Settings) -> None:
    proc = make_processor(settings, local_kw={"confidence": 0.1})
    result = await proc.arun(req(mode=Mode.AUTO))
    assert result.backend == "gemini"
    assert result.fallbacks[0].backend == "fastvlm" and "low confidence" in result.fallbacks[0].error
    assert proc.metrics.escalations == 1


async def test_auto_keeps_a_confident_local_answer(settings: Settings) -> None:
    proc = make_processor(settings, local_kw={"confidence": 0.95})
    result = await proc.arun(req(mode=Mode.AUTO))
    assert result.backend == "fastvlm" and result.confidence == 0.95
    assert calls(proc, "gemini") == 0


async def test_auto_returns_the_local_answer_when_escalation_fails(settings: Settings) -> None:
    proc = make_processor(settings, cloud=failing(ServerError("503", "gemini")), local_kw={"confidence": 0.1})
    result = await proc.arun(req(mode=Mode.AUTO))
    assert result.backend == "fastvlm"
    assert [a.backend for a in result.fallbacks] == ["gemini"]


async def test_no_escalation_for_sensitive_requests(settings: Settings) -> None:
    proc = make_processor(settings, local_kw={"confidence": 0.05})
    result = await proc.arun(req(mode=Mode.AUTO, sensitive=True))
    assert result.backend == "fastvlm" and calls(proc, "gemini") == 0


@pytest.mark.parametrize(
    "error",
    [
        BackendUnavailableError("not loaded", "fastvlm"),
        ModelNotDownloadedError("run models pull", "fastvlm"),
        RateLimitedError("429", "fastvlm"),
        BackendTimeoutError("slow", "fastvlm"),
        ServerError("500", "fastvlm"),
        InvalidResponseError("garbage", "fastvlm"),
        ConnectionError("reset"),
    ],
)
async def test_fallback_moves_on_after_transient_errors(settings: Settings, error: Exception) -> None:
    proc = make_processor(settings, local=failing(error))
    result = await proc.arun(req(mode=Mode.FALLBACK))
    assert result.backend == "gemini"
    assert result.fallbacks[0].backend == "fastvlm"


@pytest.mark.parametrize(
    "error",
    [BadInputError("bad image"), PolicyViolationError("no"), BackendRejectedError("400", "fastvlm")],
)
async def test_fallback_stops_on_errors_that_forbid_it(settings: Settings, error: Exception) -> None:
    proc = make_processor(settings, local=failing(error))
    with pytest.raises(type(error)):
        await proc.arun(req(mode=Mode.FALLBACK))
    assert calls(proc, "gemini") == 0


async def test_slow_backend_times_out_and_falls_back(settings: Settings) -> None:
    settings = settings.model_copy(update={"request_timeout_s": 0.05})
    proc = make_processor(settings, local_kw={"delay_s": 5})
    start = time.perf_counter()
    result = await proc.arun(req(mode=Mode.FALLBACK))
    assert result.backend == "gemini" and "0.05" in result.fallbacks[0].error
    assert time.perf_counter() - start < 2


async def test_all_failing_reports_every_attempt(settings: Settings) -> None:
    proc = make_processor(settings, local=failing(ServerError("a", "fastvlm")),
                          cloud=failing(RateLimitedError("b", "gemini")))
    with pytest.raises(AllBackendsFailedError) as info:
        await proc.arun(req(mode=Mode.FALLBACK))
    assert [name for name, _ in info.value.attempts] == ["fastvlm", "gemini"]
    assert info.value.exit_code == 1


async def test_parallel_first_good_answer_wins_and_the_other_is_cancelled(settings: Settings) -> None:
    proc = make_processor(settings, local_kw={"delay_s": 1.2}, cloud_kw={"delay_s": 0.3})
    start = time.perf_counter()
    result = await proc.arun(req(mode=Mode.PARALLEL))
    wall = time.perf_counter() - start
    assert result.backend == "gemini"
    assert wall < 0.3 * 1.1 + 0.1
    assert proc.backend("fastvlm").cancelled == 1  # type: ignore[attr-defined]


async def test_parallel_return_all_waits_for_both(settings: Settings) -> None:
    proc = make_processor(settings, local_kw={"delay_s": 0.2}, cloud_kw={"delay_s": 0.05})
    result = await proc.arun(req(mode=Mode.PARALLEL), return_all=True)
    assert result.backend == "gemini"
    assert [a.backend for a in result.alternatives] == ["fastvlm"]
    assert "alternatives" in result.to_dict()


async def test_parallel_survives_one_failure(settings: Settings) -> None:
    proc = make_processor(settings, cloud=failing(ServerError("down", "gemini")), local_kw={"delay_s": 0.05})
    result = await proc.arun(req(mode=Mode.PARALLEL))
    assert result.backend == "fastvlm" and result.fallbacks[0].backend == "gemini"


async def test_cache_hits_skip_the_backend_and_sensitive_results_stay_off_disk(settings: Settings) -> None:
    proc = make_processor(settings)
    first = await proc.arun(req("Describe the harbour", mode=Mode.LOCAL_ONLY))
    second = await proc.arun(req("Describe the harbour", mode=Mode.LOCAL_ONLY))
    assert not first.cached and second.cached and second.response == first.response
    assert calls(proc, "fastvlm") == 1
    await proc.arun(req("Describe the lighthouse", mode=Mode.LOCAL_ONLY))
    assert calls(proc, "fastvlm") == 2
    await proc.arun(req("Summarise the scan of patient 4471", mode=Mode.LOCAL_ONLY, sensitive=True))
    await proc.aclose()
    rows = sqlite3.connect(settings.cache_path).execute("SELECT value FROM results").fetchall()
    assert len(rows) == 2 and all("4471" not in r[0] for r in rows)


async def test_blocked_answers_are_not_cached(settings: Settings) -> None:
    blocked = Generation(text="blocked by safety filter", model="g", blocked=True)
    proc = make_processor(settings, cloud=lambda _r: blocked)
    assert (await proc.arun(req(mode=Mode.CLOUD_ONLY))).blocked
    assert (await proc.arun(req(mode=Mode.CLOUD_ONLY))).cached is False
    assert calls(proc, "gemini") == 2


async def test_audit_trail_records_each_request_and_verifies(settings: Settings, image_file: Path) -> None:
    proc = make_processor(settings)
    await proc.arun(build_request("What is shown?", image_file, mode="local-only"))
    await proc.arun(build_request("Read the passport number", image_file, mode="local-only", sensitive=True))
    records = proc.audit.records()  # type: ignore[union-attr]
    assert [r["outcome"] for r in records] == ["ok", "ok"]
    assert records[0]["prompt"] == "What is shown?" and "prompt" not in records[1]
    assert len(records[0]["media_sha256"][0]) == 64
    assert proc.audit.verify().ok  # type: ignore[union-attr]


async def test_stream_yields_pieces_then_the_result(settings: Settings) -> None:
    proc = make_processor(settings, local="one two three")
    pieces = [p async for p in proc.astream(req(mode=Mode.LOCAL_ONLY))]
    assert isinstance(pieces[-1], Result)
    assert "".join(p for p in pieces[:-1] if isinstance(p, str)).split() == ["one", "two", "three"]
    assert pieces[-1].response.split() == ["one", "two", "three"]


def test_seed_process_api_returns_the_ask_json_keys(settings: Settings, image_file: Path) -> None:
    proc = make_processor(settings)
    try:
        out = proc.process(str(image_file), "Describe this", mode="local-only")
    finally:
        proc.close()
    assert out["response"] == "local answer"
    for key in ("backend", "model", "mode", "route", "cached", "latency_ms", "usage", "confidence", "fallbacks"):
        assert key in out
    assert out["route"]["backends"] == ["fastvlm"]


def test_sync_api_works_inside_a_running_loop(settings: Settings) -> None:
    proc = make_processor(settings)

    async def inside() -> str:
        return proc.run(req(mode=Mode.LOCAL_ONLY)).response

    try:
        assert asyncio.run(inside()) == "local answer"
    finally:
        proc.close()


async def test_many_requests_run_with_bounded_concurrency(settings: Settings) -> None:
    in_flight = peak = 0

    async def slow(_r: Request) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "ok"

    proc = make_processor(settings, local=slow, cache=None)
    out = await proc.arun_many([req(f"q{i}", mode=Mode.LOCAL_ONLY) for i in range(12)], concurrency=3)
    assert all(isinstance(r, Result) for r in out) and peak == 3


async def test_batch_path_uses_one_backend_batch_call_and_keeps_fallback(settings: Settings) -> None:
    from fastvlm_gemini_hybrid.backends.base import Capabilities
    from fastvlm_gemini_hybrid.types import BackendKind

    class Batching(FunctionBackend):
        batches: ClassVar[list[int]] = []

        async def generate_batch(self, requests: list[Request]) -> list[Generation | BaseException]:
            self.batches.append(len(requests))
            return [
                ServerError("item failed", "fastvlm")
                if "bad" in r.prompt
                else Generation(f"b:{r.prompt}", "m", confidence=0.9)
                for r in requests
            ]

    local = Batching(
        "fastvlm", "unused", capabilities=Capabilities(kind=BackendKind.LOCAL, batching=True, max_images=4)
    )
    proc = make_processor(settings, local, "cloud")
    prompts = ["a", "b", "bad one", "c", "d"]
    out = await proc.arun_many([req(p, mode=Mode.FALLBACK) for p in prompts], batch_size=4)
    assert local.batches == [4, 1]
    assert [r.response for r in out] == ["b:a", "b:b", "cloud", "b:c", "b:d"]  # type: ignore[union-attr]
    assert out[2].fallbacks[0].backend == "fastvlm"  # type: ignore[union-attr]
    assert len(proc.audit.records()) == 5  # type: ignore[union-attr]


async def test_changing_the_configured_model_misses_the_cache(settings: Settings) -> None:
    first = make_processor(settings)
    await first.arun(req("Describe the harbour", mode=Mode.LOCAL_ONLY))
    await first.aclose()
    again = make_processor(settings)
    assert (await again.arun(req("Describe the harbour", mode=Mode.LOCAL_ONLY))).cached
    await again.aclose()
    other = make_processor(settings, "other model says", "cloud", local_kw={"model": "another-model"})
    result = await other.arun(req("Describe the harbour", mode=Mode.LOCAL_ONLY))
    assert not result.cached and result.response == "other model says"


async def test_dicom_is_rendered_for_a_backend_that_reads_pictures_only(settings: Settings) -> None:
    from pydicom.data import get_testdata_file

    from fastvlm_gemini_hybrid.backends.base import Capabilities
    from fastvlm_gemini_hybrid.types import Attachment, BackendKind

    seen: list[str] = []

    def look(r: Request) -> str:
        seen.extend(a.mime for a in r.attachments)
        return "a CT slice"

    caps = Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image"}), confidence=True)
    backends = fake_backends(look, "cloud", local_kw={"capabilities": caps, "confidence": 0.9})
    # The router counts on the processor adapting the media: it lists fastvlm for dicom.
    routed = [
        BackendInfo("fastvlm", caps.with_overrides({"media": ["image", "dicom"]})),
        BackendInfo("gemini", backends["gemini"].capabilities),
    ]
    proc = make_processor(settings, None, None, backends=backends, router=Router(routed))
    scan = Attachment.from_path(get_testdata_file("CT_small.dcm"))
    result = await proc.arun(Request(prompt="What does this scan show?", attachments=(scan,)))
    assert result.backend == "fastvlm" and result.route.sensitive
    assert seen == ["image/png"]
    assert len(proc.backend("gemini").calls) == 0  # type: ignore[attr-defined]


async def test_video_becomes_evenly_spaced_frames_for_a_picture_only_backend(
    settings: Settings, tmp_path: Path
) -> None:
    import av
    import numpy as np

    from fastvlm_gemini_hybrid.backends.base import Capabilities
    from fastvlm_gemini_hybrid.types import Attachment, BackendKind

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(40):  # 4 s: brightness rises with time, so each sampled frame is told apart
            img = np.full((48, 64, 3), i * 6, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)

    received: list[Request] = []
    caps = Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image"}), max_images=4)
    backends = fake_backends(lambda r: received.append(r) or "frames", "cloud", local_kw={"capabilities": caps})
    # The router counts on the processor adapting the media: it lists fastvlm for video.
    routed = [
        BackendInfo("fastvlm", caps.with_overrides({"media": ["image", "video"]})),
        BackendInfo("gemini", backends["gemini"].capabilities),
    ]
    proc = make_processor(settings, None, None, backends=backends, router=Router(routed))
    result = await proc.arun(
        Request(prompt="What changes?", attachments=(Attachment.from_path(clip),), mode=Mode.LOCAL_ONLY)
    )
    assert result.backend == "fastvlm"
    sent = received[0]
    assert [a.mime for a in sent.attachments] == ["image/jpeg"] * 4
    assert sent.prompt.startswith("(The images are frames of a video, at 0.5, 1.5, 2.5, 3.5 seconds.)")
