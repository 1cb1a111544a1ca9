"""`fastvlm-hybrid serve` through the real entry point: usage errors, and a real process serving."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fastvlm_gemini_hybrid.cli import main

from .conftest import free_port


def test_serve_help_and_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0 and "127.0.0.1" in capsys.readouterr().out
    assert main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port" in err and "Traceback" not in err


def test_serve_subprocess_binds_localhost_and_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FASTVLM_HYBRID_HOME": str(tmp_path), "FASTVLM_HYBRID_API_KEYS": "k1"}
    proc = subprocess.Popen([sys.executable, "-m", "fastvlm_gemini_hybrid", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read() if proc.stderr else "no output") from None
                time.sleep(0.2)
        assert resp.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k1"})
        assert ok.status_code == 200 and ok.json()["data"][0]["id"] == "hybrid"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert out == ""  # answers on stdout only; serve has none, progress went to stderr
    assert f"http://127.0.0.1:{port}/" in err and "Traceback" not in err


def test_serve_runs_on_asyncio_loop_not_uvloop() -> None:
    """uvloop (libuv) accepts one new connection per loop iteration: a burst of new clients on a busy
    server then waits up to one iteration each (benchmarks/server_load.py shows the p99 side by side)."""
    from fastvlm_gemini_hybrid.server.app import uvicorn_config

    config = uvicorn_config(object(), host="127.0.0.1", port=free_port())
    assert config.loop == "asyncio"
    assert config.access_log is False and config.host == "127.0.0.1"
