"""Append-only audit trail: JSONL records chained with HMAC-SHA256 under a per-install key.

Each line is one record with `seq` (0, 1, 2, ...), `prev` (the previous record's MAC) and `hash` (the
HMAC-SHA256, under the install's secret key, of seq, prev and the record's canonical JSON). Without
the key an edited record cannot be re-chained: re-hashing the whole log with plain sha256 fails
`verify()`. The key lives beside the log (`audit.key`, 0600, created on first use); keep a copy of it
elsewhere if the log must survive a lost home directory.

A sidecar `<log>.head` holds the last seq, MAC and a MAC over both, and exists from the log's first
byte on, so removing records from the end, or the head itself, is detected. `verify()` tells what a
crash can do (a torn last line, a head one group behind the log) from what only an edit can do.

Durability (PostgreSQL's rule): a record is on disk before the request it records is answered.
`append()` writes and fsyncs before it returns. With `background=True` the processor uses `submit()`,
which queues the record for a writer thread and returns a future that completes after the group it
joined was fsynced: concurrent requests share one write and one fsync (group commit), and each answer
still waits for its own record. Records never hold media bytes or the text of a sensitive prompt;
prompts are fingerprinted with the same key (`prompt_hmac`), so a guessed prompt cannot be confirmed
from the log without the key.

Errors: `AuditWriteError` (a `HybridError`, 500) when the disk refuses a record: no answer goes out
without its record.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import HybridError
from .files import private_dir
from .types import new_id

GENESIS = "0" * 64
KEY_FILE = "audit.key"

try:  # POSIX advisory locks keep two processes from interleaving records.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
_CHAIN_KEYS = ("seq", "prev", "hash")


class AuditWriteError(HybridError):
    """The audit record could not be made durable, so the request is not answered."""

    code = "audit_unavailable"


def _body(record: dict[str, Any]) -> str:
    """The canonical JSON of a record without its chain fields (what the MAC covers, with them)."""
    data = {k: v for k, v in record.items() if k not in _CHAIN_KEYS}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def load_key(path: Path) -> bytes:
    """The install's audit key at `path`, created (0600, 32 random bytes) when absent."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
        fh.flush()
        os.fsync(fh.fileno())
    return bytes.fromhex(path.read_text().strip())


@dataclass
class VerifyReport:
    """`ok` is false only for what an edit can do; `truncated` counts torn lines a crash can leave."""

    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    truncated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "problems": self.problems, "notes": self.notes,
                "truncated_tail_lines": self.truncated}


class AuditLog:
    """The audit trail at `path`. Safe for threads and processes on one machine."""

    def __init__(
        self, path: Path, *, clock: Any = time.time, background: bool = False, linger_s: float = 0.0,
        key_path: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.key_path = Path(key_path) if key_path is not None else self.path.with_name(KEY_FILE)
        self.clock = clock
        self._lock = threading.Lock()
        self.background = background
        self.linger_s = linger_s
        self._queue: queue.Queue[tuple[str, concurrent.futures.Future[None]] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._lock_file: Any = None
        self._key: bytes | None = None
        self._known: tuple[int, str, int] | None = None  # (seq, mac, log size) after our last write
        self.write_errors = 0

    # ------------------------------------------------------------------ keyed hashing
    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = load_key(self.key_path)
        return self._key

    def _mac(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def _link(self, seq: int, prev: str, body: str) -> str:
        return self._mac(f"{seq}\n{prev}\n{body}")

    def _head_mac(self, seq: int, digest: str) -> str:
        return self._mac(f"head\n{seq}\n{digest}")

    def fingerprint(self, text: str) -> str:
        """A keyed fingerprint of `text`: equal texts match, a guess cannot be checked without the key."""
        return self._mac(f"prompt\n{text}")

    def _line(self, seq: int, prev: str, body: str) -> tuple[str, str]:
        """(MAC, JSONL line): the body with the chain fields appended, no re-serialisation needed."""
        digest = self._link(seq, prev, body)
        head = "{" if body == "{}" else body[:-1] + ","
        return digest, f'{head}"seq":{seq},"prev":"{prev}","hash":"{digest}"}}\n'

    # ------------------------------------------------------------------ files
    @contextlib.contextmanager
    def _locked(self) -> Any:
        with self._lock:
            if self._lock_file is None:
                private_dir(self.path.parent)
                fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
                self._lock_file = os.fdopen(fd, "a")
            if fcntl is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _tail(self) -> tuple[int, str]:
        """(seq, MAC) of the log's last whole record: from memory when this object wrote it and the file
        has not grown since (another process may share the log), else from the file itself."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return -1, GENESIS
        if self._known is not None and self._known[2] == size:
            return self._known[0], self._known[1]
        with open(self.path, "rb") as fh:
            fh.seek(max(0, size - 65536))
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        for line in reversed(lines):  # a torn last line (a crash mid-write) is skipped, not chained onto
            try:
                last = json.loads(line)
                return int(last["seq"]), str(last["hash"])
            except (ValueError, KeyError, TypeError):
                continue
        return self._read_head()[:2]

    def _read_head(self) -> tuple[int, str, str | None]:
        """(seq, MAC, head MAC) from the head file; (-1, GENESIS, None) when it does not exist."""
        try:
            data = json.loads(self.head_path.read_text())
            return int(data["seq"]), str(data["hash"]), data.get("mac")
        except FileNotFoundError:
            return -1, GENESIS, None
        except (OSError, ValueError, KeyError, TypeError):
            return -2, "", None

    def _write_head(self, seq: int, digest: str, *, sync: bool = False) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"seq": seq, "hash": digest, "mac": self._head_mac(seq, digest)}))
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self.head_path)

    def _ensure_started(self) -> None:
        """A log's head exists before its first record, so a missing head always means a removed one."""
        if not self.head_path.exists() and not self.path.exists():
            self._write_head(-1, GENESIS, sync=True)
            with contextlib.suppress(OSError):
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)

    # ------------------------------------------------------------------ writing
    def _event(self, event: dict[str, Any]) -> tuple[str, str]:
        event = {**event, "audit_id": event.get("audit_id") or new_id(), "time": event.get("time") or self.clock()}
        # Serialise here, in the caller's thread: the writer thread then only chains and does I/O, so it
        # never holds the GIL for long while the server's event loop waits for it.
        return str(event["audit_id"]), _body(event)

    def append(self, event: dict[str, Any]) -> str:
        """Write one record and return its audit id; it is on disk (fsynced) when this returns."""
        audit_id, body = self._event(event)
        if self.background:
            self._submit(body).result()
        else:
            self._write([body])
        return audit_id

    def submit(self, event: dict[str, Any]) -> tuple[str, concurrent.futures.Future[None]]:
        """(audit id, a future done once the record is on disk). Foreground logs write before returning."""
        audit_id, body = self._event(event)
        if not self.background:
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            try:
                self._write([body])
                future.set_result(None)
            except OSError as exc:
                future.set_exception(AuditWriteError(f"the audit trail could not be written: {exc}"))
            return audit_id, future
        return audit_id, self._submit(body)

    def _submit(self, body: str) -> concurrent.futures.Future[None]:
        self._ensure_writer()
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((body, future))
        return future

    def _write(self, bodies: list[str]) -> None:
        """Chain, append and fsync serialised records as one group commit (one fsync), then move the head."""
        with self._locked():
            self._ensure_started()
            seq, prev = self._tail()
            lines = []
            for body in bodies:
                seq += 1
                prev, line = self._line(seq, prev, body)
                lines.append(line)
            self._drop_torn_tail()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, "".join(lines).encode())
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            # The head moves after the records are durable and is not fsynced itself: after a crash it
            # may lag the log by the last group, which verify() accepts; it is never ahead of it.
            self._write_head(seq, prev)
            self._known = (seq, prev, size)

    def _drop_torn_tail(self) -> None:
        """A crash mid-write leaves a last line without its newline. It was never acknowledged (its request
        got no answer), so it is cut before the next record is appended, which would otherwise glue onto it."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0 or (self._known is not None and self._known[2] == size):
                return  # empty, or this object wrote the tail itself
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            fh.seek(max(0, size - 65536))
            chunk = fh.read()
            keep = size - len(chunk) + chunk.rfind(b"\n") + 1
            log.warning("audit log %s: cutting an unfinished last record (%d bytes) left by a crash",
                        self.path, size - keep)
            fh.truncate(keep)
            os.fsync(fh.fileno())

    def _ensure_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._drain, name="fastvlm-hybrid-audit", daemon=True)
                self._writer.start()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None and self.linger_s:
                time.sleep(self.linger_s)
            batch = [first]
            while True:  # whatever queued while the last group was being fsynced joins this group
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [item for item in batch if item is not None]
            if items:
                try:
                    self._write([body for body, _ in items])
                except OSError as exc:
                    self.write_errors += len(items)
                    log.error("could not write %d audit records: %s", len(items), exc)
                    error = AuditWriteError(f"the audit trail could not be written: {exc}")
                    for _, future in items:
                        _settle(future, error)
                else:
                    for _, future in items:
                        _settle(future, None)
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

    # ------------------------------------------------------------------ reading
    def records(self) -> list[dict[str, Any]]:
        self.flush()
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def head(self) -> dict[str, Any]:
        """What to copy somewhere else now and then (`audit head --json`): a later rewrite of anything up
        to that record, even with the key, no longer matches the copy."""
        self.flush()
        seq, digest, mac = self._read_head()
        return {"seq": seq, "hash": digest, "mac": mac, "records": seq + 1 if seq >= 0 else 0,
                "log": str(self.path)}

    def verify(self) -> VerifyReport:
        """Check every link of the chain and the head; report each problem found.

        A crash can leave a torn last line (no newline, not JSON) and a head one group behind: both are
        notes, not problems (`truncated` counts the torn lines). Anything else is tampering."""
        self.flush()
        problems: list[str] = []
        notes: list[str] = []
        macs: dict[int, str] = {}
        prev, expected_seq, count, truncated = GENESIS, 0, 0, 0
        text = self.path.read_text() if self.path.exists() else ""
        lines = text.split("\n")
        last_index = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            lineno = index + 1
            try:
                record = json.loads(line)
            except ValueError:
                if index == last_index and not text.endswith("\n"):
                    truncated += 1
                    notes.append(f"line {lineno}: an unfinished last record (a crash while it was being written)")
                else:
                    problems.append(f"line {lineno}: not valid JSON")
                continue
            count += 1
            seq = record.get("seq")
            if seq != expected_seq:
                problems.append(f"line {lineno}: expected record {expected_seq}, found {seq}")
            if record.get("prev") != prev:
                problems.append(f"line {lineno}: chain broken (a record before it was removed or changed)")
            if not isinstance(seq, int) or not hmac.compare_digest(
                str(record.get("hash", "")), self._link(seq, str(record.get("prev")), _body(record))
            ):
                problems.append(f"line {lineno}: record was edited (its MAC does not match)")
            prev = str(record.get("hash", ""))
            if isinstance(seq, int):
                macs[seq] = prev
            expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        head_seq, head_hash, head_mac = self._read_head()
        last_seq = expected_seq - 1
        if head_seq == -2:
            problems.append("the head file is unreadable")
        elif head_mac is None and (count or self.head_path.exists()):
            problems.append("the head is missing or unsigned: records may have been removed from the end")
        elif head_mac is not None and not hmac.compare_digest(head_mac, self._head_mac(head_seq, head_hash)):
            problems.append("the head was rewritten (its MAC does not match)")
        elif head_seq > last_seq:
            problems.append(f"the log ends at record {last_seq} but its head says {head_seq}: records were removed")
        elif head_seq >= 0 and macs.get(head_seq) != head_hash:
            problems.append(f"record {head_seq} does not match the head: it was replaced")
        elif head_seq < last_seq:
            notes.append(f"the head is {last_seq - head_seq} record(s) behind the log (a crash before it moved)")
        return VerifyReport(ok=not problems, records=count, problems=problems, notes=notes, truncated=truncated)

    # ------------------------------------------------------------------ records
    def request_record(
        self,
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
        """An audit record for one request; the prompt text is kept only when not sensitive, and its
        fingerprint is keyed. `privacy` is the egress gate's verdict and categories, never what it read."""
        record: dict[str, Any] = {
            "type": "request",
            "request_id": request_id,
            "user": user,
            "sensitive": sensitive,
            "prompt_hmac": self.fingerprint(prompt),
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


__all__ = ["GENESIS", "KEY_FILE", "AuditLog", "AuditWriteError", "VerifyReport", "load_key"]


def _settle(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    """Complete a waiter's future unless it was cancelled (its client left); never raise in the writer.

    One waiter's cancelled future must not stop the writer from settling the rest of its group, or every
    other request of that group would wait forever.
    """
    if not future.set_running_or_notify_cancel():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
