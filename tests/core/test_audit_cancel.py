"""A client that leaves while its answer waits for the audit fsync must not stall anyone else.

Found by benchmarks/soak.py: a streaming client hanging up cancelled the writer's future through
`asyncio.wrap_future`; the writer thread then died on `set_result`, and every request of that group
(and every later one) waited forever with its slot held.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

from fastvlm_gemini_hybrid.audit import AuditLog
from fastvlm_gemini_hybrid.bookkeeping import durable


def test_a_cancelled_waiter_does_not_stop_the_writer(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", background=True, linger_s=0.05)
    futures = [log.submit({"type": "request", "request_id": f"r{i}"})[1] for i in range(6)]
    futures[2].cancel()  # its client left before the group was written
    concurrent.futures.wait([f for i, f in enumerate(futures) if i != 2], timeout=5)
    assert all(f.done() and f.exception() is None for i, f in enumerate(futures) if i != 2)
    later = log.submit({"type": "request", "request_id": "after"})[1]
    assert later.result(timeout=5) is None  # the writer is still alive
    log.close()
    report = log.verify()
    assert report.ok and report.records == 7  # the cancelled waiter's record was still written


def test_cancelling_the_wait_leaves_the_record_to_the_writer(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", background=True, linger_s=0.2)

    async def scenario() -> list[concurrent.futures.Future[None]]:
        futures = [log.submit({"type": "request", "request_id": f"r{i}"})[1] for i in range(8)]
        waits = [asyncio.create_task(durable(f)) for f in futures]
        await asyncio.sleep(0.01)
        for task in waits[::2]:  # half the clients hang up while their group lingers
            task.cancel()
        done = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout=5)
        assert [isinstance(r, asyncio.CancelledError) for r in done] == [i % 2 == 0 for i in range(8)]
        return futures

    futures = asyncio.run(scenario())
    assert not any(f.cancelled() for f in futures)
    concurrent.futures.wait(futures, timeout=5)
    assert all(f.exception() is None for f in futures)
    log.close()
    assert log.verify().records == 8


def test_a_processor_answers_after_streaming_clients_left(tmp_path: Path) -> None:
    """Through the processor: streams cancelled mid-wait, then plain requests are still answered."""
    from fakes import make_processor
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.types import Request

    settings = load_settings(home=tmp_path / "home", cache_enabled=False)
    proc = make_processor(settings, "a b c", cloud=None)
    assert proc.audit is not None
    proc.audit.linger_s = 0.1

    async def scenario() -> None:
        async def consume(i: int) -> None:
            async for _ in proc.astream(Request(f"describe {i}")):
                pass

        streams = [asyncio.create_task(consume(i)) for i in range(3)]
        await asyncio.sleep(0.05)  # every stream is now waiting for its record
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        results = await asyncio.wait_for(asyncio.gather(*(proc.arun(Request(f"again {i}")) for i in range(4))), 5)
        assert [r.response for r in results] == ["a b c"] * 4

    asyncio.run(scenario())
    proc.audit.close()
    assert proc.audit.verify().ok
