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

Modules: this one owns the files (log, head, lock) and the write path; `audit_chain.py` the key, the
MACs and `verify`'s judgement of a chain; `audit_writer.py` the group-commit thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .audit_chain import GENESIS, KEY_FILE, ChainKey, VerifyReport, canonical_body, load_key, verify_chain
from .audit_writer import AuditWriteError, GroupCommitWriter
from .files import private_dir
from .types import new_id

try:  # POSIX advisory locks keep two processes from interleaving records.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


class AuditLog:
    """The audit trail at `path`. Safe for threads and processes on one machine."""

    def __init__(
        self, path: Path, *, clock: Callable[[], float] = time.time, background: bool = False,
        linger_s: float = 0.0, key_path: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.key_path = Path(key_path) if key_path is not None else self.path.with_name(KEY_FILE)
        self.clock = clock
        self._lock = threading.Lock()
        self.background = background
        self._writer = GroupCommitWriter(self._write, linger_s=linger_s)
        self._lock_file: TextIO | None = None
        self._chain = ChainKey(self.key_path)
        self._known: tuple[int, str, int] | None = None  # (seq, mac, log size) after our last write

    @property
    def linger_s(self) -> float:
        """How long the background writer waits for more records to join a group (settable while running)."""
        return self._writer.linger_s

    @linger_s.setter
    def linger_s(self, value: float) -> None:
        self._writer.linger_s = value

    @property
    def write_errors(self) -> int:
        """Records the background writer could not make durable."""
        return self._writer.errors

    # ------------------------------------------------------------------ keyed hashing
    @property
    def key(self) -> bytes:
        return self._chain.key

    def fingerprint(self, text: str) -> str:
        """A keyed fingerprint of `text`: equal texts match, a guess cannot be checked without the key."""
        return self._chain.fingerprint(text)

    # ------------------------------------------------------------------ files
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
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
            fh.write(json.dumps({"seq": seq, "hash": digest, "mac": self._chain.head_mac(seq, digest)}))
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
        return str(event["audit_id"]), canonical_body(event)

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
        return self._writer.submit(body)

    def _write(self, bodies: list[str]) -> None:
        """Chain, append and fsync serialised records as one group commit (one fsync), then move the head."""
        with self._locked():
            self._ensure_started()
            seq, prev = self._tail()
            lines = []
            for body in bodies:
                seq += 1
                prev, line = self._chain.line(seq, prev, body)
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

    def flush(self) -> None:
        """Block until every queued record is on disk (no-op in foreground mode)."""
        if self.background:
            self._writer.flush()

    def close(self) -> None:
        self._writer.close()
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
        """Check every link of the chain and the head; report each problem found (see `verify_chain`).

        A crash can leave a torn last line (no newline, not JSON) and a head one group behind: both are
        notes, not problems (`truncated` counts the torn lines). Anything else is tampering."""
        self.flush()
        text = self.path.read_text() if self.path.exists() else ""
        return verify_chain(text, self._read_head(), self.head_path.exists(), self._chain)

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
