"""Streaming from a blocking generation loop in a worker thread to an async consumer.

The in-process backends (PyTorch, MLX) decode token by token in a thread; `ThreadStream` carries each
piece to the event loop as it is produced, re-raises the thread's error in the consumer, and tells the
thread to stop when the consumer goes away (it checks `stopped` or raises `StreamClosed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

_DONE = object()


class StreamClosed(Exception):
    """Raised inside the generation thread once the consumer has stopped listening."""


class ThreadStream:
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.stopped = False

    def put(self, piece: str) -> None:
        """Hand one piece to the consumer (call from the worker thread)."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, piece)

    async def pieces(
        self, work: Callable[[], None], start: Callable[[Callable[[], None]], Awaitable[Any]]
    ) -> AsyncIterator[str]:
        """Run `work` through `start` (e.g. `asyncio.to_thread`) and yield what it `put`s, in order."""

        def wrapped() -> None:
            try:
                work()
                self._loop.call_soon_threadsafe(self._queue.put_nowait, _DONE)
            except StreamClosed:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer and re-raised there
                self._loop.call_soon_threadsafe(self._queue.put_nowait, exc)

        running = asyncio.ensure_future(start(wrapped))
        try:
            while True:
                piece = await self._queue.get()
                if piece is _DONE:
                    break
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            self.stopped = True
            await asyncio.shield(running)
