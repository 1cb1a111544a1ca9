"""The audit trail's HMAC chain: the install's key, the MACs made with it, and checking a log against them.

Split from `audit.py` (which owns the files and the write path): this module knows what a record's MAC
covers and how a chain is judged, and touches no file but the key. See `audit.py` for the format.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import private_dir

GENESIS = "0" * 64
KEY_FILE = "audit.key"
CHAIN_KEYS = ("seq", "prev", "hash")


def canonical_body(record: dict[str, Any]) -> str:
    """The canonical JSON of a record without its chain fields (what the MAC covers, with them)."""
    data = {k: v for k, v in record.items() if k not in CHAIN_KEYS}
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


class ChainKey:
    """The key at `path` (read, or created, on first use) and every MAC the trail makes with it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = load_key(self.path)
        return self._key

    def mac(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def link(self, seq: int, prev: str, body: str) -> str:
        """The MAC of record `seq`: its place, the previous record's MAC and its canonical body."""
        return self.mac(f"{seq}\n{prev}\n{body}")

    def head_mac(self, seq: int, digest: str) -> str:
        return self.mac(f"head\n{seq}\n{digest}")

    def fingerprint(self, text: str) -> str:
        """A keyed fingerprint of `text`: equal texts match, a guess cannot be checked without the key."""
        return self.mac(f"prompt\n{text}")

    def line(self, seq: int, prev: str, body: str) -> tuple[str, str]:
        """(MAC, JSONL line): the body with the chain fields appended, no re-serialisation needed."""
        digest = self.link(seq, prev, body)
        head = "{" if body == "{}" else body[:-1] + ","
        return digest, f'{head}"seq":{seq},"prev":"{prev}","hash":"{digest}"}}\n'


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


def verify_chain(text: str, head: tuple[int, str, str | None], head_exists: bool, keys: ChainKey) -> VerifyReport:
    """Check every link of the log `text` and its head `(seq, MAC, head MAC)`; report each problem found.

    A head seq of -2 means the head file could not be read; `head_exists` whether the head file is there.
    A crash can leave a torn last line (no newline, not JSON) and a head one group behind: both are
    notes, not problems (`truncated` counts the torn lines). Anything else is tampering."""
    problems: list[str] = []
    notes: list[str] = []
    macs: dict[int, str] = {}
    prev, expected_seq, count, truncated = GENESIS, 0, 0, 0
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
            str(record.get("hash", "")), keys.link(seq, str(record.get("prev")), canonical_body(record))
        ):
            problems.append(f"line {lineno}: record was edited (its MAC does not match)")
        prev = str(record.get("hash", ""))
        if isinstance(seq, int):
            macs[seq] = prev
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
    head_seq, head_hash, head_mac = head
    last_seq = expected_seq - 1
    if head_seq == -2:
        problems.append("the head file is unreadable")
    elif head_mac is None and (count or head_exists):
        problems.append("the head is missing or unsigned: records may have been removed from the end")
    elif head_mac is not None and not hmac.compare_digest(head_mac, keys.head_mac(head_seq, head_hash)):
        problems.append("the head was rewritten (its MAC does not match)")
    elif head_seq > last_seq:
        problems.append(f"the log ends at record {last_seq} but its head says {head_seq}: records were removed")
    elif head_seq >= 0 and macs.get(head_seq) != head_hash:
        problems.append(f"record {head_seq} does not match the head: it was replaced")
    elif head_seq < last_seq:
        notes.append(f"the head is {last_seq - head_seq} record(s) behind the log (a crash before it moved)")
    return VerifyReport(ok=not problems, records=count, problems=problems, notes=notes, truncated=truncated)
