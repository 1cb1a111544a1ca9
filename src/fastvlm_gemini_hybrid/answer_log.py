"""The answer log: every answer `ask` and `batch` print, kept in a small private SQLite file (like `llm logs`).

    log = AnswerLog.open(settings)          # None when logging is off (see `logging_state`)
    log.record(result, prompt="...", system=None, source="ask")
    log.recent(10, backend="gemini", search="invoice")   # oldest first, newest last

Where: `settings.home/answers.sqlite3`, a 0600 file in the 0700 home (files.py), so only its owner reads
it; SQLite gives its journal the same mode. What: time, request id, prompt, system prompt, response,
backend, model, mode, a route summary, latency, tokens, cost, cached, and which command answered.

Privacy first: a request the router judged sensitive (`result.route.sensitive`), or one whose pictures
the egress gate kept local or redacted, keeps neither its prompt, its system prompt nor its response:
those columns hold "[sensitive: not kept]"; the metadata (time, backend, tokens) is still kept.

On/off: the `log_answers` setting (env `FASTVLM_HYBRID_LOG_ANSWERS`, default on) and a marker file that
`logs off` writes and `logs on` removes (`settings.home/answers-log-off`). Logging happens only when the
setting is on AND there is no marker: either one turns it off.

A data layer: no CLI imports. Writing is best effort for callers (`record` raises `sqlite3.Error`,
which the CLI turns into a warning): a full disk must not cost the user the answer they already have.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import private_dir, private_file

if TYPE_CHECKING:
    from .config import Settings
    from .types import Result, RouteDecision

LOG_FILE = "answers.sqlite3"
OFF_MARKER = "answers-log-off"
NOT_KEPT = "[sensitive: not kept]"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    request_id TEXT NOT NULL,
    source TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system TEXT,
    response TEXT NOT NULL,
    sensitive INTEGER NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    route TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    cached INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_backend ON answers (backend);
"""
COLUMNS = ("id", "time", "request_id", "source", "prompt", "system", "response", "sensitive", "backend", "model",
           "mode", "route", "latency_ms", "input_tokens", "output_tokens", "cost_usd", "cached")


def log_path(home: Path) -> Path:
    """The answer log under a home directory."""
    return home / LOG_FILE


@dataclass(frozen=True)
class LoggingState:
    """Whether answers are logged now, and why not when they are not."""

    enabled: bool
    setting: bool
    marker: bool
    path: Path

    @property
    def reason(self) -> str:
        if not self.setting:
            return "log_answers is false (FASTVLM_HYBRID_LOG_ANSWERS or the config file)"
        if self.marker:
            return "turned off with `fastvlm-hybrid logs off`"
        return "on"


def logging_state(settings: Settings) -> LoggingState:
    """The effective on/off state: the setting and the `logs off` marker (either one turns logging off)."""
    marker = (settings.home / OFF_MARKER).exists()
    setting = bool(settings.log_answers)
    return LoggingState(setting and not marker, setting, marker, log_path(settings.home))


def set_logging(home: Path, on: bool) -> None:
    """Remove (on) or write (off) the `logs off` marker in `home`."""
    marker = home / OFF_MARKER
    if on:
        marker.unlink(missing_ok=True)
    else:
        private_dir(home)
        private_file(marker)


def keeps_text(route: RouteDecision) -> bool:
    """False for a sensitive request, or pictures the egress gate kept local or redacted: no text is kept."""
    if route.sensitive:
        return False
    privacy = route.privacy or {}
    return privacy.get("verdict") not in ("redact", "refuse")


def route_summary(route: RouteDecision) -> str:
    """The route in one line, without content: mode, backend order, domain, task, sensitivity."""
    parts = [f"{route.mode.value}: {' -> '.join(route.backends) or '-'}", f"domain {route.domain.value}",
             f"task {route.task.value}"]
    if route.sensitive:
        parts.append("sensitive")
    if route.privacy is not None:
        parts.append(f"pictures {route.privacy.get('verdict', '?')}")
    return " · ".join(parts)


class AnswerLog:
    """The SQLite answer log. Thread-safe for the few writers a CLI process has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_dir(path.parent)
        private_file(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def open(cls, settings: Settings) -> AnswerLog | None:
        """The log of `settings.home`, or None when logging is off."""
        state = logging_state(settings)
        return cls(state.path) if state.enabled else None

    def record(self, result: Result, *, prompt: str, system: str | None = None, source: str = "ask") -> int:
        """Append one answer; returns its row id. Sensitive requests keep no prompt, system or response text."""
        keep = keeps_text(result.route)
        row = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "request_id": result.request_id,
            "source": source,
            "prompt": prompt if keep else NOT_KEPT,
            "system": (system if keep else NOT_KEPT) if system is not None else None,
            "response": result.response if keep else NOT_KEPT,
            "sensitive": int(not keep),
            "backend": result.backend,
            "model": result.model,
            "mode": result.mode.value,
            "route": route_summary(result.route),
            "latency_ms": round(float(result.latency_ms), 3),
            "input_tokens": int(result.usage.input_tokens),
            "output_tokens": int(result.usage.output_tokens),
            "cost_usd": float(result.usage.cost_usd),
            "cached": int(result.cached),
        }
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._lock, self._db:
            cursor = self._db.execute(f"INSERT INTO answers ({names}) VALUES ({marks})", row)
        return int(cursor.lastrowid or 0)

    def recent(self, n: int = 10, *, backend: str | None = None, search: str | None = None) -> list[dict[str, Any]]:
        """The last `n` answers (0 = all), oldest first; `backend` filters exactly, `search` is a
        case-insensitive substring of the prompt or the response."""
        where, params = [], []
        if backend:
            where.append("backend = ?")
            params.append(backend)
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(prompt LIKE ? ESCAPE '\\' OR response LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        sql = f"SELECT {', '.join(COLUMNS)} FROM answers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(n if n > 0 else -1)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_plain(row) for row in reversed(rows)]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def last_used(self) -> dict[str, str]:
        """model -> time of its latest answer (for `models ps`)."""
        with self._lock:
            rows = self._db.execute("SELECT model, MAX(time) FROM answers GROUP BY model").fetchall()
        return {str(model): str(when) for model, when in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AnswerLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(row: sqlite3.Row) -> dict[str, Any]:
    out = {key: row[key] for key in COLUMNS}
    out["sensitive"] = bool(out["sensitive"])
    out["cached"] = bool(out["cached"])
    return out


__all__ = ["NOT_KEPT", "AnswerLog", "LoggingState", "keeps_text", "log_path", "logging_state", "route_summary",
           "set_logging"]
