"""The two documented ways to start the Ray Serve scale-out, each as a real process, end to end.

`fastvlm-hybrid serve --ray` and Ray's own `serve run deploy/ray-serve.yaml`: each must start a
local Ray, answer from two replicas behind one port, stop cleanly on a signal and take every Ray
process it started down with it. No model weights exist in the temp home: `/v1/route` needs none,
and `/v1/analyze` must then fail with the API's JSON error, not a traceback.

Slow (each starts its own Ray cluster: ~15-40 s on a 2-core box), so marked `slow`; skipped when
the `ray` extra is not installed. Every wait is bounded, and teardown ends whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import free_port

pytestmark = pytest.mark.slow

psutil = pytest.importorskip("psutil")

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "ray-serve.yaml"
START_S = 240  # Ray's start-up on a loaded 2-core box; bounded so a hung start fails instead of hanging
STOP_S = 60  # signal to exit: serve.shutdown drains replicas (~3-6 s here)
GONE_S = 30  # exit to the last Ray process gone (raylet and workers fate-share with the driver)


@pytest.fixture(autouse=True)
def _needs_ray() -> None:
    pytest.importorskip("ray.serve")  # here, not at import: no skip line when slow tests are deselected


class RayRun:
    """A command that starts its own local Ray, run in a subprocess with its output in files.

    Files, not pipes: Ray logs every replica's access lines to the driver's stderr, which would fill
    a pipe nobody reads while the test is busy sending requests, and block the server.
    """

    def __init__(self, cmd: list[str], tmp_path: Path) -> None:
        self.out_path, self.err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        env = {
            **os.environ,
            "FASTVLM_HYBRID_HOME": str(tmp_path / "home"),  # empty: no model weights, no config
            "RAY_ADDRESS": "local",  # a fresh cluster, never one a developer left running
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            # A background job (`cmd &` in a script) inherits SIGINT ignored, and Python then never
            # raises KeyboardInterrupt: restore the default, as for a foreground process given Ctrl-C.
            self.proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=err,
                                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.tree: list[Any] = []
        self.session = ""

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def why(self) -> str:
        return f"exit code {self.proc.poll()}; stderr ends:\n{self.err[-3000:]}"

    def wait_ready(self, url: str, banner: str = "") -> None:
        """Until /healthz answers 200 and `banner` is on stderr.

        Ray's proxy answers 404 before the app is deployed, and routes to the first replica up before
        the deployment is complete: a command that announces readiness must have said so first.
        """
        deadline, last = time.monotonic() + START_S, "nothing"
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exited before serving ({last}); {self.why()}"
            try:
                resp = httpx.get(f"{url}/healthz", timeout=5)
                if resp.status_code == 200 and banner in self.err:
                    assert resp.json() == {"status": "ok"}
                    return
                last = f"{resp.status_code} {resp.text[:200]}, banner {'seen' if banner in self.err else 'not seen'}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise AssertionError(f"not ready within {START_S} s (last: {last}); {self.why()}")

    def snapshot(self) -> None:
        """Remember every process this run started, and check it is a Ray cluster of its own."""
        self.tree = psutil.Process(self.proc.pid).children(recursive=True)
        names = {_name(p) for p in self.tree}
        assert {"raylet", "gcs_server"} <= names, f"no local Ray started by this run: {sorted(names)}"
        # Ray names the session directory after the driver's pid: the raylet's command line carries it.
        for p in self.tree:
            found = re.search(rf"session_[\d_-]+_{self.proc.pid}\b", " ".join(_cmdline(p)))
            self.session = self.session or (found.group(0) if found else "")
        assert self.session, "no Ray session directory of this run in its children's command lines"

    def survivors(self) -> list[Any]:
        """Processes of this run still alive: the snapshot plus anything naming its session (zombies are gone)."""
        seen = {p.pid: p for p in self.tree}
        if self.session:
            for p in psutil.process_iter():
                if self.session in " ".join(_cmdline(p)):
                    seen.setdefault(p.pid, p)
        return [p for p in seen.values() if _alive(p) and p.pid != self.proc.pid]

    def stop(self, sig: signal.Signals) -> tuple[int, float]:
        """Send `sig`; (exit code, seconds to exit)."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {STOP_S} s after {sig.name}; {self.why()}") from None
        return code, time.monotonic() - start

    def wait_gone(self) -> list[str]:
        """Up to GONE_S for every Ray process of this run to exit; what is still there after that."""
        deadline = time.monotonic() + GONE_S
        while (left := self.survivors()) and time.monotonic() < deadline:
            time.sleep(0.5)
        return [f"{p.pid} {' '.join(_cmdline(p))[:120]}" for p in left]

    def cleanup(self) -> None:
        """Teardown: end this run and whatever it left, by pid (psutil checks it is still the same process)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_S)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for p in self.survivors():
            with contextlib.suppress(psutil.Error):
                p.kill()


def _name(p: Any) -> str:
    with contextlib.suppress(psutil.Error):
        return str(p.name())
    return ""


def _cmdline(p: Any) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return list(p.cmdline())
    return []


def _alive(p: Any) -> bool:
    try:
        return bool(p.is_running()) and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def ray_run(cmd: list[str], tmp_path: Path) -> Iterator[RayRun]:
    run = RayRun(cmd, tmp_path)
    try:
        yield run
    finally:
        run.cleanup()


def check_two_replicas_behind_one_port(url: str, run: RayRun) -> set[str]:
    """Route requests until two replicas have answered; the replica ids seen."""
    replicas: set[str] = set()
    deadline, sent = time.monotonic() + 90, 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while len(replicas) < 2 and time.monotonic() < deadline:
            sent += 1
            # A sensitive request: every replica must apply the privacy rule (no cloud backend).
            resp = client.post("/v1/route", data={"prompt": f"Describe photo {sent}", "sensitive": "true"})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["sensitive"] is True and body["cloud_allowed"] is False, body
            assert body["backends"] and "gemini" not in body["backends"], body
            replicas.add(resp.headers["x-hybrid-replica"])
        assert len(replicas) == 2, f"only replicas {replicas} answered {sent} requests"
        # No weights in the temp home: the local model cannot answer, and the API says so in JSON.
        resp = client.post("/v1/analyze", data={"prompt": "Describe this", "mode": "local-only"})
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert error["code"] == "all_backends_failed" and "models pull" in error["message"], error
    assert "Traceback" not in resp.text and resp.headers["x-hybrid-replica"] in replicas
    # Two replicas, two processes (each loads its own model in production).
    run.snapshot()
    workers = [p for p in run.tree if " ".join(_cmdline(p)).startswith("ray::ServeReplica:")]
    assert len(workers) == 2, [" ".join(_cmdline(p)) for p in run.tree]
    return replicas


def test_cli_serve_ray_two_replicas_and_clean_sigterm(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "fastvlm_gemini_hybrid", "serve", "--ray", "--replicas", "2", "--port", str(port)]
    with ray_run(cmd, tmp_path) as run:
        run.wait_ready(url, banner=f"serving 2 Ray Serve replicas on {url}/")  # progress, on stderr
        check_two_replicas_behind_one_port(url, run)
        code, took = run.stop(signal.SIGTERM)
        left = run.wait_gone()
        out, err = run.out, run.err
    assert code == 0, run.why()
    assert not left, f"Ray processes left {GONE_S} s after exit: {left}"
    assert "Traceback" not in err and "SIGTERM received" not in err, err[-3000:]  # no crash-like dump
    assert out == "", out  # serve answers nothing on stdout, with or without Ray
    print(f"stopped {took:.1f} s after SIGTERM")


def test_ray_serve_run_shipped_config(tmp_path: Path) -> None:
    serve_bin = Path(sys.executable).with_name("serve")
    if not serve_bin.exists():
        pytest.skip(f"Ray's `serve` command is not installed next to {sys.executable}")
    port = free_port()
    shipped = SHIPPED_CONFIG.read_text()
    config = re.sub(r"(?m)^(\s+port:\s*)\d+", rf"\g<1>{port}", shipped, count=1)
    # The copy is the shipped config but for the port: the test runs what users run.
    original, copied = yaml.safe_load(shipped), yaml.safe_load(config)
    assert copied["http_options"].pop("port") == port and original["http_options"].pop("port") != port
    assert copied == original
    changed = [(a, b) for a, b in zip(shipped.splitlines(), config.splitlines(), strict=True) if a != b]
    assert len(changed) == 1, changed
    (tmp_path / "ray-serve.yaml").write_text(config)

    url = f"http://127.0.0.1:{port}"
    with ray_run([str(serve_bin), "run", "ray-serve.yaml"], tmp_path) as run:
        run.wait_ready(url)
        check_two_replicas_behind_one_port(url, run)
        code, took = run.stop(signal.SIGINT)  # Ctrl-C: what Ray documents for `serve run`
        left = run.wait_gone()
        out, err = run.out, run.err
    assert code == 0, run.why()
    assert not left, f"Ray processes left {GONE_S} s after exit: {left}"
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    print(f"stopped {took:.1f} s after SIGINT")
