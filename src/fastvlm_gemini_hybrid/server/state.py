"""What every endpoint shares: the processor, settings, the work gate, jobs and HTTP counters."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import metrics_export as export
from ..config import Settings
from .gate import WorkGate
from .media import CheckedMedia

if TYPE_CHECKING:
    from ..processor import HybridVLMProcessor


class Jobs(Protocol):
    """What the endpoints need of the job manager (server/jobs.py imports this module, not the reverse)."""

    def counts(self) -> dict[str, int]: ...

    async def aclose(self) -> None: ...

log = logging.getLogger(__name__)

# How stale another worker's queue and job gauges may be in a multi-process scrape.
GAUGE_SYNC_S = 1.0


@dataclass
class HttpStats:
    """Per-route request counts by status class. Route labels are route templates, so bounded."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Multi-process mode only: this process's counts in the files every worker's scrape reads.
    sink: export.FileSink | None = field(default_factory=export.process_sink)

    def record(self, method: str, route: str, status: int) -> None:
        key = (method, route, f"{status // 100}xx")
        with self.lock:
            self.counts[key] += 1
        if self.sink is not None:
            self.sink.inc(export.HTTP, key)

    def collect(self) -> Any:
        """The `http_requests_total` family (built at scrape time)."""
        with self.lock:
            rows = sorted(self.counts.items())
        return export.family(export.HTTP, rows)


@dataclass
class ServerState:
    processor: HybridVLMProcessor
    settings: Settings
    gate: WorkGate
    jobs: Jobs
    http: HttpStats = field(default_factory=HttpStats)
    owns_processor: bool = False
    checked_media: CheckedMedia = field(default_factory=CheckedMedia)
    _registry: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.http.sink is not None:
            _start_gauge_sync(self)

    @property
    def browser_models_dir(self) -> Path:
        """ONNX bundles the web UI may load for in-browser inference (`<home>/models/onnx/<name>`)."""
        return self.settings.models_dir / "onnx"

    def backend_names(self) -> list[str]:
        return [info.name for info in self.processor.backend_infos]

    def backend_kind(self, name: str) -> str:
        info = next((i for i in self.processor.backend_infos if i.name == name), None)
        return "cloud" if info is not None and info.capabilities.is_cloud else "local"

    # ------------------------------------------------------------------ /metrics

    def collect(self) -> Iterator[Any]:
        """The server's own families: HTTP counts, the work gate and jobs (read at scrape time)."""
        gate = self.gate.snapshot()
        yield self.http.collect()
        yield export.family(export.QUEUE_RUNNING, [((), gate["running"])])
        yield export.family(export.QUEUE_WAITING, [((), gate["waiting"])])
        yield export.family(export.SHED, [((), gate["shed"])])
        jobs = sorted(self.jobs.counts().items()) if self.jobs is not None else []
        yield export.family(export.JOBS, (((s,), n) for s, n in jobs))

    def registry(self) -> Any:
        """This server's `CollectorRegistry`: the processor's families, then the server's."""
        if self._registry is None:
            self._registry = export.registry(self.processor.metrics.collect, self.collect)
        return self._registry

    def sync_gauges(self) -> None:
        """Multi-process mode: copy the gate's and the jobs' current figures into this process's files.

        They live in objects the request path updates without knowing about metrics, so they are
        sampled: every GAUGE_SYNC_S by a thread, and by the process that answers a scrape.
        """
        sink = self.http.sink
        if sink is None:
            return
        gate = self.gate.snapshot()
        sink.set(export.QUEUE_RUNNING, (), gate["running"])
        sink.set(export.QUEUE_WAITING, (), gate["waiting"])
        sink.set(export.SHED, (), gate["shed"])
        if self.jobs is not None:
            try:
                counts = self.jobs.counts()
            except RuntimeError:  # the event loop added a job while this thread iterated: next time
                return
            for job_state, count in counts.items():
                sink.set(export.JOBS, (job_state,), count)

    def prometheus(self) -> bytes:
        """The `/metrics` text: this process's families, or with several processes, all of theirs."""
        self.sync_gauges()
        return export.exposition(self.registry, self.http.sink)


def _start_gauge_sync(state: ServerState) -> None:
    """A daemon thread that samples `state`'s gauges until the state is gone (multi-process mode only)."""
    ref = weakref.ref(state)

    def run() -> None:
        while True:
            time.sleep(GAUGE_SYNC_S)
            current = ref()
            if current is None:
                return
            try:
                current.sync_gauges()
            except Exception:  # a sampling hiccup must not end the sampling
                log.debug("metrics gauge sampling failed", exc_info=True)
            del current

    threading.Thread(target=run, name="metrics-gauges", daemon=True).start()
