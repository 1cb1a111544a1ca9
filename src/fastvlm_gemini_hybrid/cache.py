"""Content-addressed result cache: sha256 of (media hashes, prompt, backend, model, options).

Two tiers: an in-memory LRU (every result, sensitive ones included, gone with the process) and a
SQLite file under `FASTVLM_HYBRID_HOME` (never a sensitive result). Entries expire after a TTL,
measured by an injectable clock so tests need not sleep. Blocked or partial answers are never cached
(the processor does not offer them).

The file is private (0600, in a 0700 home, its WAL files too), expired rows are deleted when it is
opened, and `max_bytes` caps what it holds: past the cap the rows closest to expiry (the oldest) go.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .files import private_dir, private_file

Clock = Callable[[], float]


def cache_key(media_hashes: Sequence[str], prompt: str, backend: str, model: str, options: dict[str, Any]) -> str:
    """The cache key of one answer. Any change in media, prompt, backend, model or options misses."""
    payload = json.dumps(
        {"media": list(media_hashes), "prompt": prompt, "backend": backend, "model": model, "options": options},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    entries: int
    expired: int
    hits: int
    misses: int
    bytes: int
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class ResultCache:
    """A TTL cache of JSON-able result dicts, in memory and (for non-sensitive entries) in SQLite."""

    def __init__(
        self,
        path: Path | None,
        ttl_s: float = 7 * 24 * 3600.0,
        *,
        clock: Clock = time.time,
        memory_items: int = 1024,
        max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._bytes = 0  # size of the stored values, kept up to date on put (measured at open)
        self.clock = clock
        self.memory_items = memory_items
        self._memory: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        self._flushed = (0, 0)

    # ------------------------------------------------------------------ storage
    def _conn(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._db is None:
            try:
                private_dir(self.path.parent)
                private_file(self.path)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, expires REAL NOT NULL,"
                    " backend TEXT NOT NULL, value TEXT NOT NULL)"
                )
                db.execute("CREATE INDEX IF NOT EXISTS results_expires ON results(expires)")
                db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
                for side in ("-wal", "-shm"):  # SQLite makes these with the umask's mode
                    private_file(self.path.with_name(self.path.name + side), create=False)
                db.execute("DELETE FROM results WHERE expires <= ?", (self.clock(),))
                self._bytes = int(db.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM results").fetchone()[0])
            except sqlite3.DatabaseError as exc:
                raise ConfigurationError(f"cannot open the result cache at {self.path}: {exc}") from None
            self._db = db
            self._evict(db)
        return self._db

    def _evict(self, db: sqlite3.Connection) -> None:
        """Keep the file under `max_bytes`: drop the rows that expire first until it holds 90% of the cap."""
        if self.max_bytes <= 0 or self._bytes <= self.max_bytes:
            return
        target = int(self.max_bytes * 0.9)
        rows = db.execute("SELECT key, LENGTH(value) FROM results ORDER BY expires").fetchall()
        doomed = []
        for key, size in rows:
            if self._bytes <= target:
                break
            doomed.append((key,))
            self._bytes -= int(size)
        db.executemany("DELETE FROM results WHERE key = ?", doomed)

    def _flush_counters(self, db: sqlite3.Connection) -> None:
        # Hit/miss counts live in memory (a write per lookup would cost more than the lookup) and
        # are added to the file's totals on stats() and close().
        for name, value in (("hits", self.hits - self._flushed[0]), ("misses", self.misses - self._flushed[1])):
            if value:
                db.execute(
                    "INSERT INTO counters(name, value) VALUES (?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (name, value),
                )
        self._flushed = (self.hits, self.misses)

    # ------------------------------------------------------------------ API
    def get(self, key: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None:
                if entry[0] > now:
                    self._memory.move_to_end(key)
                    self.hits += 1
                    return dict(entry[1])
                del self._memory[key]
            db = self._conn()
            value: dict[str, Any] | None = None
            if db is not None:
                row = db.execute("SELECT expires, value FROM results WHERE key = ?", (key,)).fetchone()
                if row is not None and row[0] > now:
                    value = json.loads(row[1])
                    self._remember(key, row[0], value)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def put(self, key: str, value: dict[str, Any], *, backend: str, persist: bool = True) -> None:
        """Store `value`. `persist=False` keeps it in memory only (sensitive requests)."""
        expires = self.clock() + self.ttl_s
        with self._lock:
            self._remember(key, expires, value)
            if not persist:
                return
            db = self._conn()
            if db is not None:
                text = json.dumps(value, default=str)
                db.execute(
                    "INSERT OR REPLACE INTO results(key, expires, backend, value) VALUES (?, ?, ?, ?)",
                    (key, expires, backend, text),
                )
                self._bytes += len(text)
                self._evict(db)

    def _remember(self, key: str, expires: float, value: dict[str, Any]) -> None:
        self._memory[key] = (expires, dict(value))
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def clear(self) -> int:
        """Remove every entry; return how many were on disk."""
        with self._lock:
            self._memory.clear()
            db = self._conn()
            if db is None:
                return 0
            count = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            db.execute("DELETE FROM results")
            db.execute("DELETE FROM counters")
            self._bytes = 0
            self._flushed = (self.hits, self.misses)
            db.execute("VACUUM")
            return int(count)

    def purge_expired(self) -> int:
        with self._lock:
            db = self._conn()
            if db is None:
                return 0
            return db.execute("DELETE FROM results WHERE expires <= ?", (self.clock(),)).rowcount

    def stats(self) -> CacheStats:
        with self._lock:
            db = self._conn()
            if db is None:
                return CacheStats(len(self._memory), 0, self.hits, self.misses, 0, None)
            self._flush_counters(db)
            now = self.clock()
            entries, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM results WHERE expires > ?", (now,)
            ).fetchone()
            expired = db.execute("SELECT COUNT(*) FROM results WHERE expires <= ?", (now,)).fetchone()[0]
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
            return CacheStats(
                int(entries),
                int(expired),
                int(counters.get("hits", 0)),
                int(counters.get("misses", 0)),
                int(size),
                str(self.path),
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._flush_counters(self._db)
                self._db.close()
                self._db = None
