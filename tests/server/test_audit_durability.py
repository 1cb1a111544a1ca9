"""Every answered request has its audit record on disk: `kill -9` of a loaded server loses none of them.

The server is the real `fastvlm-hybrid serve` process; its model is an OpenAI-compatible fake on
127.0.0.1 (loopback, so a local backend) that answers after a short delay, so requests are in flight
when the process is killed. Every 200 the clients received must have its record, and `audit verify`
must accept the log (a torn last line is what a crash may leave; tampering is not).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cloud.fake_openai import FakeOpenAIServer
from fastvlm_gemini_hybrid.audit import AuditLog

from .conftest import free_port

pytest.importorskip("fastapi")


def _serve(tmp_path: Path, openai_url: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {
        **os.environ, "FASTVLM_HYBRID_HOME": str(tmp_path), "FASTVLM_HYBRID_LOCAL_BACKEND": "openai",
        "FASTVLM_HYBRID_OPENAI_BASE_URL": openai_url, "FASTVLM_HYBRID_OPENAI_MODEL": "fake-vlm",
        "FASTVLM_HYBRID_CACHE_ENABLED": "false", "FASTVLM_HYBRID_SERVER_CONCURRENCY": "32",
    }
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "FASTVLM_HYBRID_API_KEYS"):
        env.pop(var, None)
    proc = subprocess.Popen([sys.executable, "-m", "fastvlm_gemini_hybrid", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return proc, url
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(proc.stderr.read() if proc.stderr else "server did not start") from None
            time.sleep(0.2)


@pytest.mark.parametrize("round_", range(2))
def test_kill_9_under_load_loses_no_answered_record(tmp_path: Path, round_: int) -> None:
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with FakeOpenAIServer(latency_s=0.02) as fake:
        proc, url = _serve(tmp_path / f"home{round_}", fake.base_url)

        def client(k: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        resp = http.post("/v1/chat/completions", json={
                            "model": "hybrid", "messages": [{"role": "user", "content": f"say {k}-{i}"}]})
                    except httpx.TransportError:
                        return  # the server is gone
                    if resp.status_code == 200:
                        with lock:
                            answered.append(resp.json()["id"].removeprefix("chatcmpl-"))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 20
            while len(answered) < 150 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)  # no shutdown handler runs
            proc.wait(timeout=10)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=15)
            if proc.poll() is None:
                proc.kill()
    assert len(answered) >= 100, "the load did not get going"
    log = AuditLog(tmp_path / f"home{round_}" / "audit.jsonl")
    recorded = {r.get("request_id") for r in log.records()}
    missing = [rid for rid in answered if rid not in recorded]
    assert missing == [], f"{len(missing)} of {len(answered)} answered requests have no audit record"
    report = log.verify()
    assert report.ok, report.problems
    assert json.dumps(report.to_dict())  # the CLI prints this object
