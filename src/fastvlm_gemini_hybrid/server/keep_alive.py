"""Keep-alive: unload a local model once it has been idle for a while, as Ollama does.

Why: a local model holds gigabytes of (GPU) memory between requests. Ollama frees it after `keep_alive`
(5 minutes unless a request says otherwise) and clients expect the same here: `keep_alive: 0` frees it
now, `"1h"` keeps it an hour, a negative value keeps it for good. The default is the setting
`keep_alive_s` (`FASTVLM_HYBRID_KEEP_ALIVE_S`, 300 s).

How: one asyncio task on the server's loop (started and cancelled by the app's lifespan) sleeps until
the earliest deadline, then calls `Backend.unload()` on each local backend whose deadline passed. A
request through the Ollama API sets its backend's deadline (`touch`). Requests through every other face
(`/v1/analyze`, the OpenAI API, jobs, agents) are seen in the processor's metrics: the task polls the
per-backend request counts every few seconds, and a count that moved pushes that backend's deadline out
by the default, so a model in use is not unloaded for being "idle" on the Ollama side. A request still
running when a deadline passes is not counted yet: the PyTorch backend then declines to unload (busy) and
is looked at again when that request finishes; the MLX backend unloads right after it (its one worker
thread runs the unload after the generation, never under it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..errors import BadInputError

if TYPE_CHECKING:
    from ..processor import HybridVLMProcessor

log = logging.getLogger(__name__)

FOREVER = math.inf
_GO_FOREVER_S = (2**63 - 1) / 1e9  # Go's largest time.Duration, what Ollama adds for "keep forever"
#: how often other faces' requests are looked for; a deadline is at most this late, never early
POLL_S = 5.0
# Go's time.ParseDuration units, which Ollama's keep_alive strings use ("5m", "1h30m", "300ms")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_keep_alive(value: Any) -> float | None:
    """Ollama's `keep_alive` in seconds: None when absent, `FOREVER` when negative, else a number >= 0.

    Numbers are seconds; strings are Go durations ("5m", "1h30m", "-1m") or plain numbers of seconds
    ("0", "300"). Anything else is a `BadInputError` (400).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadInputError(f"keep_alive must be a duration such as '5m' or a number of seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration(value.strip())
    else:
        raise BadInputError(f"keep_alive must be a duration such as '5m' or a number of seconds, got {value!r}")
    if math.isnan(seconds):
        raise BadInputError("keep_alive must be a number, got NaN")
    return FOREVER if seconds < 0 else seconds


def _duration(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.removeprefix("+"))
    parts = _PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise BadInputError(f"keep_alive {text[:40]!r} is not a duration such as '5m', '1h30m' or '0'")
    return sign * sum(float(n) * _UNITS[u] for n, u in parts)


class KeepAlive:
    """Per-backend unload deadlines for one processor's local backends, and the task that keeps them."""

    def __init__(self, processor: HybridVLMProcessor, default_s: float, *, poll_s: float = POLL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.processor = processor
        self.default_s = FOREVER if default_s < 0 else float(default_s)
        self.poll_s = poll_s
        self.clock = clock
        # Only these can hold a model in this process; a cloud backend's `unload` has nothing to free.
        self.local = [i.name for i in processor.backend_infos if not i.capabilities.is_cloud]
        self.deadlines: dict[str, float] = {}
        # Unloads a request asked for (keep_alive 0) that the backend declined, busy answering someone else:
        # tried again right after its next use instead of waiting out the default.
        self._asked: set[str] = set()
        self._seen = self._counts()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ what requests say
    def touch(self, name: str, seconds: float | None = None) -> None:
        """`name` just answered: keep it `seconds` more (None: the default; `FOREVER`; 0: unload at once)."""
        if name not in self.local:
            return
        self.deadlines[name] = self.clock() + (self.default_s if seconds is None else seconds)
        if seconds == 0:
            self._asked.add(name)
        else:
            self._asked.discard(name)  # the latest request's keep_alive wins, as in Ollama
        # This request is in the metrics already: it must not count again as another face's use (which
        # would stretch a short keep_alive, or a 0, to the default).
        self._seen[name] = self._counts().get(name, 0)
        self._wake.set()

    async def unload(self, name: str) -> bool:
        """Unload `name` now (a `keep_alive: 0` request); False when it held nothing or was busy (then it is
        tried again right after the request that kept it busy)."""
        if name in self.local:
            self._asked.add(name)
        return await self._unload(name)

    async def _unload(self, name: str) -> bool:
        self.deadlines.pop(name, None)
        if name not in self.local:
            return False
        try:
            done = await self.processor.backend(name).unload()
        except Exception:  # a failed unload leaves the model loaded; it must not fail the caller
            log.warning("unloading %s failed", name, exc_info=True)
            return False
        if done:
            self._asked.discard(name)
        return done

    def expires_at(self, name: str) -> datetime | None:
        """When `name` will be unloaded (wall clock, UTC), None when it is not counted down. Kept for good
        reads as Ollama shows it: the longest Go duration from now (about 292 years)."""
        deadline = self.deadlines.get(name)
        if deadline is None:
            return None
        left = _GO_FOREVER_S if deadline == FOREVER else max(0.0, deadline - self.clock())
        return datetime.now(timezone.utc) + timedelta(seconds=left)

    # ------------------------------------------------------------------ the task
    def start(self) -> None:
        """Start the task on the running loop (the app's lifespan); idempotent."""
        if self._task is None and self.local:
            self._wake = asyncio.Event()  # bound to this loop
            self._task = asyncio.get_running_loop().create_task(self._run(), name="keep-alive")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            now = self.clock()
            wait = min([self.poll_s, *(d - now for d in self.deadlines.values())])
            self._wake.clear()
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            try:
                await self.check()
            except Exception:  # one bad round must not end the countdowns
                log.warning("keep-alive check failed", exc_info=True)

    async def check(self) -> list[str]:
        """One round: push out the deadlines of backends used since the last round, unload the expired ones."""
        self.refresh()
        now = self.clock()
        unloaded = []
        for name in [n for n, d in self.deadlines.items() if d <= now]:
            if await self._unload(name):
                unloaded.append(name)
                log.info("unloaded %s after its keep-alive", name)
        return unloaded

    def refresh(self) -> None:
        """Count the requests other faces sent since the last look as uses with the default keep-alive (they
        carry none of their own). They only ever push a deadline out: a model kept for good stays."""
        counts, now = self._counts(), self.clock()
        for name, count in counts.items():
            if count != self._seen.get(name, 0):
                later = max(self.deadlines.get(name, -FOREVER), now + self.default_s)
                self.deadlines[name] = now if name in self._asked else later
        self._seen = counts

    def _counts(self) -> dict[str, int]:
        latency = self.processor.metrics.snapshot()["latency_s"]
        return {name: int(latency.get(name, {}).get("count", 0)) for name in self.local}
