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


def test_request_record_drops_prompt_of_sensitive_requests() -> None:
    common = dict(
        request_id="r",
        user=None,
        media_hashes=["abc"],
        route={"mode": "auto"},
        backend="fastvlm",
        outcome="ok",
        latency_ms=1.0,
    )
    secret = AuditLog.request_record(prompt="Patient John Smith MRI", sensitive=True, **common)
    public = AuditLog.request_record(prompt="describe the sunset", sensitive=False, **common)
    assert "John" not in json.dumps(secret) and "prompt" not in secret
    assert public["prompt"] == "describe the sunset"
    assert secret["prompt_sha256"] != public["prompt_sha256"]


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
    log.head_path.write_text(json.dumps({"seq": 2, "hash": records[2]["hash"]}))  # crash before the head moved
    assert log.verify().ok
    log.head_path.write_text(json.dumps({"seq": 2, "hash": "f" * 64}))
    assert not log.verify().ok
