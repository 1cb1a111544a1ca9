"""Append-only, hash-chained JSONL audit trail.

Each line is one record with `seq` (0, 1, 2, ...), `prev` (the previous record's hash) and `hash`
(sha256 of the record's canonical JSON without `hash`). A sidecar `<log>.head` holds the last seq and
hash, so removing the newest lines is detected as well as editing, reordering or deleting any line.
Every record is flushed and fsynced before `append` returns, unless the log was opened with
`background=True` (the processor does): then a writer thread appends and fsyncs in group commits, so
a request does not wait ~10 ms for the disk; `flush()` (called by `close()`, `verify()` and
`records()`) waits until everything queued is durable. Records never hold media bytes, and the caller
leaves out the prompt text of sensitive requests (`AuditLog.request_record` does this).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .types import new_id

GENESIS = "0" * 64

try:  # POSIX advisory locks keep two processes from interleaving records.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


_CHAIN_KEYS = ("seq", "prev", "hash")


def _body(record: dict[str, Any]) -> str:
    """The canonical JSON of a record without its chain fields (what the hash covers, with them)."""
    data = {k: v for k, v in record.items() if k not in _CHAIN_KEYS}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _link(seq: int, prev: str, body: str) -> str:
    return hashlib.sha256(f"{seq}\n{prev}\n{body}".encode()).hexdigest()


def _line(seq: int, prev: str, body: str) -> tuple[str, str]:
    """(hash, JSONL line): the body with the chain fields appended, no re-serialisation needed."""
    digest = _link(seq, prev, body)
    head = "{" if body == "{}" else body[:-1] + ","
    return digest, f'{head}"seq":{seq},"prev":"{prev}","hash":"{digest}"}}\n'


@dataclass
class VerifyReport:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "problems": self.problems}


class AuditLog:
    """The audit trail at `path`. Safe for threads and processes on one machine."""

    def __init__(
        self, path: Path, *, clock: Any = time.time, background: bool = False, linger_s: float = 0.02
    ) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.clock = clock
        self._lock = threading.Lock()
        self.background = background
        self.linger_s = linger_s
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._lock_file: Any = None
        self._known: tuple[int, str, int] | None = None  # (seq, hash, log size) after our last write
        self.write_errors = 0

    @contextlib.contextmanager
    def _locked(self) -> Any:
        with self._lock:
            if self._lock_file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file = open(self.path.with_name(self.path.name + ".lock"), "a")
            if fcntl is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _tail(self) -> tuple[int, str]:
        """(seq, hash) of the log's last record: from memory when this object wrote it and the file has
        not grown since (another process may share the log), else from the file itself."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return -1, GENESIS
        if self._known is not None and self._known[2] == size:
            return self._known[0], self._known[1]
        with open(self.path, "rb") as fh:
            fh.seek(max(0, size - 65536))
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        if not lines:
            return -1, GENESIS
        try:
            last = json.loads(lines[-1])
            return int(last["seq"]), str(last["hash"])
        except (ValueError, KeyError, TypeError):
            return self._read_head()  # a torn last line: the head names the last whole record

    def _read_head(self) -> tuple[int, str]:
        try:
            data = json.loads(self.head_path.read_text())
            return int(data["seq"]), str(data["hash"])
        except (OSError, ValueError, KeyError):
            return -1, GENESIS

    def append(self, event: dict[str, Any]) -> str:
        """Write one record and return its audit id.

        In the default (foreground) mode the record is on disk when this returns; in background mode
        it is queued and made durable by the writer thread within one disk sync.
        """
        event = {
            **event,
            "audit_id": event.get("audit_id") or new_id(),
            "time": event.get("time") or self.clock(),
        }
        # Serialise here, in the caller's thread: the writer thread then only chains and does I/O, so
        # it never holds the GIL for long while the server's event loop waits for it.
        body = _body(event)
        if not self.background:
            self._write([body])
            return str(event["audit_id"])
        self._ensure_writer()
        self._queue.put(body)
        return str(event["audit_id"])

    def _write(self, bodies: list[str]) -> None:
        """Chain, append and fsync serialised records as one group commit (one fsync), then move the head."""
        with self._locked():
            seq, prev = self._tail()
            lines = []
            for body in bodies:
                seq += 1
                prev, line = _line(seq, prev, body)
                lines.append(line)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, "".join(lines).encode())
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            # The head is replaced atomically but not fsynced: after a crash it may lag the log, which
            # verify() accepts; it only has to catch records removed from the end.
            tmp = self.head_path.with_name(self.head_path.name + ".tmp")
            tmp.write_text(json.dumps({"seq": seq, "hash": prev}))
            os.replace(tmp, self.head_path)
            self._known = (seq, prev, size)

    def _ensure_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._drain, name="fastvlm-hybrid-audit", daemon=True)
                self._writer.start()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None and self.linger_s:
                # Let a group gather: one wake-up, one write and one fsync for many records, instead of a
                # thread that competes with the event loop for the GIL on every request.
                time.sleep(self.linger_s)
            batch = [first]
            while True:  # take whatever else is waiting: one fsync for the group
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [e for e in batch if e is not None]
            if events:
                try:
                    self._write(events)
                except OSError as exc:
                    self.write_errors += len(events)
                    logging.getLogger(__name__).error("could not write %d audit records: %s", len(events), exc)
            for _ in batch:
                self._queue.task_done()
            if None in batch:
                return

    def flush(self) -> None:
        """Block until every queued record is on disk (no-op in foreground mode)."""
        if self.background and self._writer is not None and self._writer.is_alive():
            self._queue.join()

    def close(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=10)
        self._writer = None
        with self._lock:
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    def records(self) -> list[dict[str, Any]]:
        self.flush()
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def verify(self) -> VerifyReport:
        """Check every link of the chain and the head; report each problem found."""
        self.flush()
        problems: list[str] = []
        hashes: dict[int, str] = {}
        prev, expected_seq, count = GENESIS, 0, 0
        if self.path.exists():
            for lineno, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                count += 1
                try:
                    record = json.loads(line)
                except ValueError:
                    problems.append(f"line {lineno}: not valid JSON")
                    continue
                if record.get("seq") != expected_seq:
                    problems.append(f"line {lineno}: expected record {expected_seq}, found {record.get('seq')}")
                if record.get("prev") != prev:
                    problems.append(f"line {lineno}: chain broken (a record before it was removed or changed)")
                if not isinstance(record.get("seq"), int) or record.get("hash") != _link(
                    record["seq"], str(record.get("prev")), _body(record)
                ):
                    problems.append(f"line {lineno}: record was edited (hash mismatch)")
                prev = record.get("hash", "")
                if isinstance(record.get("seq"), int):
                    hashes[record["seq"]] = prev
                expected_seq = (record.get("seq") if isinstance(record.get("seq"), int) else expected_seq) + 1
        head_seq, head_hash = self._read_head()
        last_seq = expected_seq - 1
        if head_seq > last_seq:
            problems.append(f"the log ends at record {last_seq} but its head says {head_seq}: records were removed")
        elif head_seq >= 0 and hashes.get(head_seq) != head_hash:
            problems.append(f"record {head_seq} does not match the head: it was replaced")
        return VerifyReport(ok=not problems, records=count, problems=problems)

    @staticmethod
    def request_record(
        *,
        request_id: str,
        user: str | None,
        prompt: str,
        sensitive: bool,
        media_hashes: list[str],
        route: dict[str, Any],
        backend: str | None,
        outcome: str,
        latency_ms: float,
        cached: bool = False,
        error: str | None = None,
        privacy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An audit record for one request; the prompt text is kept only when not sensitive. `privacy` is the
        egress gate's verdict and the categories it found (`pii/card`), never what it read."""
        record: dict[str, Any] = {
            "type": "request",
            "request_id": request_id,
            "user": user,
            "sensitive": sensitive,
            "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
            "media_sha256": media_hashes,
            "route": {"mode": route.get("mode"), "backends": route.get("backends"), "domain": route.get("domain")},
            "backend": backend,
            "outcome": outcome,
            "latency_ms": round(latency_ms, 3),
            "cached": cached,
        }
        if not sensitive:
            record["prompt"] = prompt[:500]
        if error:
            record["error"] = error
        if privacy:
            record["privacy"] = privacy
        return record
