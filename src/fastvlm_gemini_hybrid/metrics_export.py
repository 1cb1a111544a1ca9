"""Prometheus export of the in-process counters, through `prometheus-client` (the `server` extra).

Two paths, one set of family definitions (`Family`), so names, HELP and TYPE always agree:

* One process (the default): the counters stay plain dicts (`metrics.Metrics`, `server.state.HttpStats`);
  a collector turns them into metric families at scrape time, in a registry per instance, never the
  library's global one. Recording costs a dict increment; the families cost nothing until scraped.
* Several processes on one machine (`PROMETHEUS_MULTIPROC_DIR` set, as `serve --ray` does for its
  replicas): each process also writes its values into prometheus_client's multiprocess files
  (`FileSink`), and a scrape merges every file with `multiprocess.MultiProcessCollector`, so whichever
  process answers `/metrics` reports all of them. Live gauges of dead processes are dropped.

prometheus_client is imported lazily: the processor and the CLI work without it, and `/metrics`
answers 501 naming the extra to install.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._optional import require

log = logging.getLogger(__name__)

PREFIX = "fastvlm_hybrid"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Classic text format: every name here is a legacy-valid Prometheus name, so 0.0.4 is exact.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; covers a cache hit (sub-ms) to a slow CPU generation (minutes).
BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
CIRCUIT_STATES = ("closed", "open", "half-open")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


@dataclass(frozen=True)
class Family:
    """One metric family: `suffix` follows the prefix; counters get `_total` from the library."""

    suffix: str
    kind: str  # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()

    def name(self, prefix: str = PREFIX) -> str:
        return f"{prefix}_{self.suffix}"


REQUESTS = Family("requests", "counter", "Backend calls by backend, mode (call, batch) and outcome (ok, blocked, "
                  "timeout or the error code).", ("backend", "mode", "outcome"))
FALLBACKS = Family("fallbacks", "counter", "Backend failures after which the next backend was tried, by the failed "
                   "backend and error code.", ("backend", "error"))
CACHE = Family("cache", "counter", "Result cache lookups by result (hit, miss).", ("result",))
PRIVACY = Family("privacy_verdicts", "counter", "Egress gate verdicts (allow, redact, refuse).", ("verdict",))
ESCALATIONS = Family("escalations", "counter", "Low-confidence local answers escalated to another backend.")
TOKENS = Family("tokens", "counter", "Model tokens by backend and direction (input, output).", ("backend", "direction"))
COST = Family("cost_usd", "counter", "Estimated spend in US dollars by backend.", ("backend",))
LATENCY = Family("request_seconds", "histogram", "Backend call latency in seconds, by backend.", ("backend",))
CIRCUIT = Family("circuit_state", "gauge", "Processes whose circuit breaker for the backend is in this state (one "
                 "process: 1 for the current state).", ("backend", "state"))
HTTP = Family("http_requests", "counter", "HTTP requests by method, route template and status class.",
              ("method", "route", "status"))
QUEUE_RUNNING = Family("queue_running", "gauge", "Model requests running.")
QUEUE_WAITING = Family("queue_waiting", "gauge", "Model requests waiting for a slot.")
SHED = Family("shed", "counter", "Requests refused with 503 because the work queue was full.")
JOBS = Family("jobs", "gauge", "Background jobs by state.", ("state",))


def gauge_family(name: str) -> Family:
    """The family of a free-form `Metrics.set_gauge` value; refuses a name Prometheus would reject."""
    if not _NAME.match(name):
        raise ValueError(f"gauge name {name!r} is not a Prometheus metric name ([a-zA-Z_][a-zA-Z0-9_]*)")
    return Family(name, "gauge", f"Gauge {name} set by the processor.")


def client(module: str = "prometheus_client") -> ModuleType:
    """prometheus_client (or one of its modules), or `MissingDependencyError` naming the extra."""
    return require(module, "server", "Prometheus metrics (prometheus-client)")


# ------------------------------------------------------------------ one process: families at scrape time


def family(spec: Family, rows: Iterable[tuple[Sequence[str], float]], prefix: str = PREFIX) -> Any:
    """A counter or gauge family with one sample per (label values, value) row."""
    core = client("prometheus_client.core")
    cls = core.CounterMetricFamily if spec.kind == "counter" else core.GaugeMetricFamily
    out = cls(spec.name(prefix), spec.help, labels=list(spec.labels))
    for labels, value in rows:
        out.add_metric(list(labels), value)
    return out


def histogram(spec: Family, rows: Iterable[tuple[Sequence[str], Sequence[int], float]], prefix: str = PREFIX) -> Any:
    """A histogram family from (label values, per-bucket counts incl. the +Inf overflow, sum) rows."""
    core = client("prometheus_client.core")
    go = client("prometheus_client.utils").floatToGoString
    out = core.HistogramMetricFamily(spec.name(prefix), spec.help, labels=list(spec.labels))
    bounds = [go(b) for b in (*BUCKETS, float("inf"))]
    for labels, counts, total in rows:
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        out.add_metric(list(labels), buckets, total)
    return out


class FunctionCollector:
    """A prometheus_client collector whose families come from `collect_fn` at each scrape."""

    def __init__(self, collect_fn: Callable[[], Iterable[Any]]) -> None:
        self._collect = collect_fn

    def collect(self) -> Iterable[Any]:
        return list(self._collect())


def registry(*collect_fns: Callable[[], Iterable[Any]]) -> Any:
    """A private `CollectorRegistry` (never the library's global one) reading `collect_fns`."""
    reg = client("prometheus_client").CollectorRegistry(auto_describe=False)
    for fn in collect_fns:
        reg.register(FunctionCollector(fn))
    return reg


# ------------------------------------------------------------------ several processes: prometheus_client's files


def multiprocess_dir() -> str | None:
    """The shared directory of multi-process mode, or None for one process."""
    return os.environ.get(MULTIPROC_ENV) or None


class FileSink:
    """This process's values in prometheus_client's multiprocess file format, one file per type.

    Written directly (prometheus_client's `mmap_dict`), not through `Counter`/`Gauge` objects: those
    pick single- or multi-process mode once, when prometheus_client is first imported, and take the
    directory from the environment at that moment. Our files are named `<type>_hybrid-<pid>.db`, so
    they never share a file with metrics some other code in this process keeps through the library
    (two writers of one mmap file corrupt it); `MultiProcessCollector` reads every `*.db` alike.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pid = -1
        self._files: dict[str, Any] = {}
        self._slots: dict[tuple[str, tuple[str, ...]], list[Any]] = {}  # (sample, labels) -> [file, key, value]
        self._le = [client("prometheus_client.utils").floatToGoString(b) for b in (*BUCKETS, float("inf"))]

    def _reset_if_forked(self) -> None:
        """After a fork the child must not write into its parent's files (lock held)."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._files.clear()
            self._slots.clear()

    def _slot(self, spec: Family, sample: str, labels: tuple[str, ...], names: tuple[str, ...]) -> list[Any]:
        slot = self._slots.get((sample, labels))
        if slot is None:
            mmap_dict = client("prometheus_client.mmap_dict")
            file_type = "gauge_livesum" if spec.kind == "gauge" else spec.kind
            handle = self._files.get(file_type)
            if handle is None:
                os.makedirs(self.path, exist_ok=True)
                name = os.path.join(self.path, f"{file_type}_hybrid-{self._pid}.db")
                handle = self._files[file_type] = mmap_dict.MmapedDict(name)
            key = mmap_dict.mmap_key(spec.name(), sample, list(names), list(labels), spec.help)
            slot = self._slots[(sample, labels)] = [handle, key, handle.read_value(key)[0]]
        return slot

    def _write(self, slot: list[Any], value: float) -> None:
        slot[2] = value
        slot[0].write_value(slot[1], value, 0.0)

    def inc(self, spec: Family, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        with self._lock:
            self._reset_if_forked()
            slot = self._slot(spec, spec.name() + "_total", labels, spec.labels)
            self._write(slot, slot[2] + amount)

    def set(self, spec: Family, labels: tuple[str, ...], value: float) -> None:
        """A gauge's value, or a counter's running total kept elsewhere (the work gate's shed count)."""
        sample = spec.name() + ("_total" if spec.kind == "counter" else "")
        with self._lock:
            self._reset_if_forked()
            self._write(self._slot(spec, sample, labels, spec.labels), value)

    def observe(self, spec: Family, labels: tuple[str, ...], bucket: int, seconds: float) -> None:
        """One observation in bucket index `bucket` (non-cumulative, as the library stores them)."""
        name = spec.name()
        with self._lock:
            self._reset_if_forked()
            names = (*spec.labels, "le")
            if (name + "_sum", labels) not in self._slots:  # every bucket exists from the first observation
                for le in self._le:
                    self._slot(spec, name + "_bucket", (*labels, le), names)
            slot = self._slot(spec, name + "_bucket", (*labels, self._le[bucket]), names)
            self._write(slot, slot[2] + 1)
            slot = self._slot(spec, name + "_sum", labels, spec.labels)
            self._write(slot, slot[2] + seconds)

    def forget_live_gauges(self) -> None:
        """At exit: this process's gauges stop counting (its counters still do)."""
        with contextlib.suppress(OSError):
            drop_dead_process(os.getpid(), self.path)


_sinks: dict[str, FileSink] = {}
_sinks_lock = threading.Lock()


def process_sink() -> FileSink | None:
    """This process's sink when multi-process mode is on (None otherwise, or without prometheus_client).

    One per directory per process: two sinks in one process would overwrite each other's values.
    """
    path = multiprocess_dir()
    if path is None:
        return None
    with _sinks_lock:
        sink = _sinks.get(path)
        if sink is None:
            try:
                sink = FileSink(path)
            except ImportError:  # MissingDependencyError too: metrics must never break a request
                log.warning("%s is set but prometheus-client is not installed: counting this process only",
                            MULTIPROC_ENV)
                return None
            _sinks[path] = sink
            atexit.register(sink.forget_live_gauges)
        return sink


def drop_dead_process(pid: int, path: str) -> None:
    """prometheus_client's `mark_process_dead` for its files, plus the same for ours."""
    client("prometheus_client.multiprocess").mark_process_dead(pid, path)
    for name in glob.glob(os.path.join(glob.escape(path), f"gauge_live*_hybrid-{pid}.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def _live_gauge_pids(path: str) -> set[int]:
    pids = set()
    for name in glob.glob(os.path.join(glob.escape(path), "gauge_live*_*.db")):
        pid = os.path.basename(name)[:-3].rsplit("_", 1)[-1].removeprefix("hybrid-")
        if pid.isdigit():
            pids.add(int(pid))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def drop_dead_processes(path: str) -> None:
    """Forget the live gauges of processes that are gone without saying so (killed, crashed).

    The processes sharing a directory share this machine, so their pids can be checked here.
    """
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return
    for pid in _live_gauge_pids(path):
        if pid != os.getpid() and not _alive(pid):
            drop_dead_process(pid, path)


def exposition(local: Callable[[], Any], sink: FileSink | None) -> bytes:
    """The text for `/metrics`: every process's files when `sink` is set, else `local()`'s registry."""
    pc = client()
    if sink is None:
        return pc.generate_latest(local())
    drop_dead_processes(sink.path)
    merged = pc.CollectorRegistry(auto_describe=False)
    client("prometheus_client.multiprocess").MultiProcessCollector(merged, path=sink.path)
    return pc.generate_latest(merged)


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh directory for the processes a server starts, removed afterwards.

    Fresh, because counters are summed over every file in it: files left by an earlier run would be
    added to this one's.
    """
    path = tempfile.mkdtemp(prefix="fastvlm-hybrid-metrics-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
