"""Deliver alerts to a webhook: POST JSON, retried with backoff, bounded so it never stalls video.

Why a thread and a bounded queue: the pipeline must keep up with the camera even when the
receiver is slow or down. Alerts wait in a queue of `max_pending`; when it is full the oldest is
dropped and counted. Each alert is tried `retries + 1` times with exponential backoff; 4xx other
than 408/429 is not retried (the receiver will not change its mind). `close()` waits at most
`drain_s` for what is queued.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadInputError


@dataclass
class WebhookStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)


class WebhookSink:
    """Posts each alert dict to `url` from a background thread."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        max_pending: int = 100,
        drain_s: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise BadInputError(f"webhook URL must start with http:// or https://, got {url!r}")
        import httpx

        self.url = url
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.drain_s = drain_s
        self.stats = WebhookStats()
        self._client = httpx.Client(timeout=timeout_s, headers=headers or {})
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max(1, max_pending))
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._worker, name="webhook", daemon=True)
        self._thread.start()

    def send(self, alert: dict[str, Any]) -> None:
        """Queue an alert; never blocks (drops the oldest when full)."""
        while True:
            try:
                self._queue.put_nowait(alert)
                return
            except queue.Full:
                try:
                    if self._queue.get_nowait() is not None:
                        self.stats.dropped += 1
                except queue.Empty:
                    pass

    def _post(self, alert: dict[str, Any]) -> None:
        import httpx

        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                resp = self._client.post(self.url, json=alert)
                if resp.status_code < 300:
                    self.stats.sent += 1
                    return
                why = f"HTTP {resp.status_code}"
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                    break
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                # While closing, keep retrying only within the drain budget.
                time.sleep(delay)
                delay *= 2
        self.stats.failed += 1
        if len(self.stats.errors) < 20:
            self.stats.errors.append(why)

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._post(item)

    def close(self) -> None:
        """Deliver what is queued (within `drain_s`), then stop. Safe to call twice."""
        if self._closing.is_set():
            return
        self._closing.set()
        self.send_end()
        self._thread.join(timeout=self.drain_s)
        self._client.close()

    def send_end(self) -> None:
        try:
            self._queue.put(None, timeout=self.drain_s)
        except queue.Full:
            pass
