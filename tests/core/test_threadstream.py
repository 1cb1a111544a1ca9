from __future__ import annotations

import asyncio
import threading

import pytest

from fastvlm_gemini_hybrid.backends.threadstream import StreamClosed, ThreadStream


async def test_pieces_arrive_in_order_and_errors_reach_the_consumer() -> None:
    channel = ThreadStream()

    def work() -> None:
        for word in ("a", "b", "c"):
            channel.put(word)

    assert [p async for p in channel.pieces(work, asyncio.to_thread)] == ["a", "b", "c"]

    failing = ThreadStream()

    def boom() -> None:
        failing.put("x")
        raise RuntimeError("decode failed")

    got: list[str] = []
    with pytest.raises(RuntimeError, match="decode failed"):
        async for piece in failing.pieces(boom, asyncio.to_thread):
            got.append(piece)
    assert got == ["x"]


async def test_a_consumer_that_leaves_stops_the_worker() -> None:
    channel = ThreadStream()
    produced: list[int] = []
    finished = threading.Event()

    def work() -> None:
        try:
            for i in range(10_000):
                if channel.stopped:
                    raise StreamClosed
                produced.append(i)
                channel.put(str(i))
                threading.Event().wait(0.001)
        finally:
            finished.set()

    stream = channel.pieces(work, asyncio.to_thread)
    async for piece in stream:
        if piece == "2":
            break
    await stream.aclose()
    assert finished.is_set() and len(produced) < 10_000
