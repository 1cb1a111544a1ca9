from __future__ import annotations

import json
from pathlib import Path

from fastvlm_gemini_hybrid.audit import AuditLog


def _log(tmp_path: Path, n: int = 4) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append({"type": "request", "request_id": f"r{i}", "outcome": "ok"})
    return log


def test_intact_chain_verifies(tmp_path: Path) -> None:
    log = _log(tmp_path)
    report = log.verify()
    assert report.ok, report.problems
    assert report.records == 4
    assert [r["seq"] for r in log.records()] == [0, 1, 2, 3]


def test_edited_record_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["outcome"] = "forged"
    lines[1] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    log.path.write_text("\n".join(lines) + "\n")
    report = log.verify()
    assert not report.ok
    assert any("line 2" in p and "edited" in p for p in report.problems)


def test_removed_middle_and_tail_records_are_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    assert not log.verify().ok
    log2 = _log(tmp_path / "b")
    lines = log2.path.read_text().splitlines()
    log2.path.write_text("\n".join(lines[:-1]) + "\n")
    report = log2.verify()
    assert not report.ok and any("removed" in p for p in report.problems)


def test_request_record_drops_prompt_of_sensitive_requests(tmp_path: Path) -> None:
    common = dict(
        request_id="r",
        user=None,
        media_hashes=["abc"],
        route={"mode": "auto"},
        backend="fastvlm",
        outcome="ok",
        latency_ms=1.0,
    )
    log = AuditLog(Path(tmp_path) / "audit.jsonl")
    secret = log.request_record(prompt="Patient John Smith MRI", sensitive=True, **common)
    public = log.request_record(prompt="describe the sunset", sensitive=False, **common)
    assert "John" not in json.dumps(secret) and "prompt" not in secret
    assert public["prompt"] == "describe the sunset"
    assert secret["prompt_hmac"] != public["prompt_hmac"]
    # Keyed: a guessed prompt cannot be confirmed with a plain hash (the old log's weakness).
    import hashlib

    assert hashlib.sha256(b"Patient John Smith MRI").hexdigest() not in json.dumps(secret)
    other = AuditLog(Path(tmp_path) / "other" / "audit.jsonl")
    assert other.request_record(prompt="Patient John Smith MRI", sensitive=True, **common)["prompt_hmac"] != (
        secret["prompt_hmac"])


def test_background_writer_group_commits_in_order_and_flushes(tmp_path: Path) -> None:
    import threading

    log = AuditLog(tmp_path / "bg.jsonl", background=True)
    ids: list[str] = []

    def writer(k: int) -> None:
        for i in range(25):
            ids.append(log.append({"type": "request", "request_id": f"{k}-{i}"}))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    records = AuditLog(tmp_path / "bg.jsonl").records()
    assert len(records) == 100 and {r["audit_id"] for r in records} == set(ids)
    assert [r["seq"] for r in records] == list(range(100))
    assert AuditLog(tmp_path / "bg.jsonl").verify().ok


def test_two_writers_on_one_log_keep_one_chain(tmp_path: Path) -> None:
    """Two processes (two AuditLog objects) appending in turn must not fork the chain."""
    a, b = AuditLog(tmp_path / "shared.jsonl"), AuditLog(tmp_path / "shared.jsonl")
    for i in range(6):
        (a if i % 2 else b).append({"type": "request", "request_id": f"r{i}"})
    report = a.verify()
    assert report.ok, report.problems
    assert [r["request_id"] for r in a.records()] == [f"r{i}" for i in range(6)]


def test_a_head_lagging_after_a_crash_is_accepted_but_a_replaced_record_is_not(tmp_path: Path) -> None:
    log = _log(tmp_path)
    records = log.records()
    log._write_head(2, records[2]["hash"])  # a crash after the last group's fsync, before the head moved
    report = log.verify()
    assert report.ok and report.notes and "behind" in report.notes[0]
    log._write_head(2, "f" * 64)
    assert not log.verify().ok


def test_a_torn_last_line_is_a_crash_not_tampering(tmp_path: Path) -> None:
    log = _log(tmp_path)
    with open(log.path, "a") as fh:
        fh.write('{"type":"request","request_id":"r4","seq":4,"pr')  # killed mid-write
    report = log.verify()
    assert report.ok and report.truncated == 1 and report.records == 4
    log.append({"type": "request", "request_id": "r5"})  # the next record chains onto the last whole one
    assert [r["request_id"] for r in log.records()] == ["r0", "r1", "r2", "r3", "r5"]


def test_rehashing_an_edited_log_without_the_key_is_detected(tmp_path: Path) -> None:
    """The attack that defeated the old sha256 chain: edit a record and recompute every link and the head."""
    import hashlib

    log = _log(tmp_path)
    records = log.records()
    records[1]["outcome"] = "forged"
    prev, lines = "0" * 64, []
    for record in records:
        body = json.dumps({k: v for k, v in record.items() if k not in ("seq", "prev", "hash")},
                          sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(f"{record['seq']}\n{prev}\n{body}".encode()).hexdigest()
        record.update(prev=prev, hash=digest)
        lines.append(json.dumps(record))
        prev = digest
    log.path.write_text("\n".join(lines) + "\n")
    log.head_path.write_text(json.dumps({"seq": 3, "hash": prev, "mac": hashlib.sha256(prev.encode()).hexdigest()}))
    report = log.verify()
    assert not report.ok and any("edited" in p for p in report.problems)


def test_removing_the_tail_and_the_head_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:-1]) + "\n")
    log.head_path.unlink()
    report = log.verify()
    assert not report.ok and any("head is missing" in p for p in report.problems)


def test_the_key_is_private_and_the_files_too(tmp_path: Path) -> None:
    log = _log(tmp_path)
    for path in (log.key_path, log.path, log.head_path):
        assert path.stat().st_mode & 0o077 == 0, path


def test_submit_completes_only_after_the_record_is_on_disk(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "bg.jsonl", background=True)
    futures = [log.submit({"type": "request", "request_id": f"r{i}"})[1] for i in range(20)]
    for future in futures:
        future.result(timeout=10)
        # Whatever is acknowledged is readable by another reader already (fsynced and appended).
    assert len([line for line in log.path.read_text().splitlines() if line]) == 20
    log.close()


def test_a_write_failure_fails_the_future(tmp_path: Path) -> None:
    import pytest

    from fastvlm_gemini_hybrid.audit import AuditWriteError

    log = AuditLog(tmp_path / "bg.jsonl", background=True)
    log.path.parent.mkdir(parents=True, exist_ok=True)
    log.path.mkdir()  # the log's path is a directory: every write fails
    _, future = log.submit({"type": "request", "request_id": "r0"})
    with pytest.raises(AuditWriteError):
        future.result(timeout=10)
    log.close()
