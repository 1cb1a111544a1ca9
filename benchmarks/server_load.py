"""Bounded local load test of the HTTP server: cached /v1/analyze (audit off, then on), then overload.

    python benchmarks/server_load.py [--duration 20] [--concurrency 64] [--overload-duration 15]
                                     [--client auto|wrk|python] [--no-compare-uvloop]

Starts uvicorn on 127.0.0.1 in a child process with a fast test-only backend (FunctionBackend,
never reachable from product config), warms the cache with one image, then drives requests with C in
flight over keep-alive connections for a fixed time (wrk runs by duration; 20 s at >= 1,000
requests/s is >= 20,000 requests). The load generator is Debian's `wrk`
(C, with a Lua script for the multipart POST) when installed, else a Python httpx client, which
needs about as much CPU per request as the server and so measures mostly itself.

Printed: requests/s, p50/p99 and the server's RSS at start/middle/end for the cached path with the
audit trail off and on (the users' default), side by side, with ratios to the targets, and the
audit-on phase again on uvloop (why `serve` uses asyncio's loop); then an
overload phase (cache off, 50 ms backend, 8 slots + 16 queue, 256 connections) counting 200s, 503s
(each must carry Retry-After) and anything else. Every phase stops by itself after its
duration; nothing leaves 127.0.0.1. Client and server share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import io
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BOUNDARY = "benchboundary"

# wrk script: POST the multipart body from a file, count statuses and 503s without Retry-After,
# print one JSON line at the end.
WRK_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  local f = io.open(args[1], "rb"); wrk.body = f:read("*all"); f:close()
  wrk.method = "POST"; wrk.path = "/v1/analyze"
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. args[2]
  statuses = {}; retry_missing = 0
end
function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == 503 and not (headers["retry-after"] or headers["Retry-After"]) then
    retry_missing = retry_missing + 1
  end
end
function done(summary, latency, requests)
  local codes = {}; local missing = 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do codes[k] = (codes[k] or 0) + v end
    missing = missing + t:get("retry_missing")
  end
  local parts = {}
  for k, v in pairs(codes) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"socket_errors":%d,"timeouts":%d,"retry_after_missing":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write, e.timeout, missing, table.concat(parts, ",")))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, home: str, delay_s: float, audit: bool, cache: bool, concurrency: int, queue: int,
           loop: str) -> None:
    from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
    from fastvlm_gemini_hybrid.server import create_app
    from fastvlm_gemini_hybrid.server.app import run_uvicorn

    settings = load_settings(home=home, audit_enabled=audit, cache_enabled=cache, server_concurrency=concurrency,
                             server_queue=queue)
    backends = {"fastvlm": FunctionBackend("fastvlm", "bench answer", delay_s=delay_s),
                "gemini": FunctionBackend("gemini", "bench answer", kind="cloud", delay_s=delay_s)}
    for backend in backends.values():
        backend.calls = collections.deque(maxlen=8)  # type: ignore[assignment]  # the fake's call log stays bounded
    app = create_app(processor=HybridVLMProcessor(settings, backends=backends))
    run_uvicorn(app, host="127.0.0.1", port=port, log_level="error", loop=loop)  # as `fastvlm-hybrid serve` runs it


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (5, 100, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(image: bytes, prompt: str = "Describe") -> bytes:
    b = BOUNDARY
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n{prompt}\r\n'.encode(),
             f'--{b}\r\nContent-Disposition: form-data; name="mode"\r\n\r\nlocal-only\r\n'.encode(),
             f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode() + image + b"\r\n", f"--{b}--\r\n".encode()]
    return b"".join(parts)


class Server:
    """The server under test in a spawned child process, killed on exit."""

    def __init__(self, *, delay_s: float = 0.0, audit: bool = False, cache: bool = True, concurrency: int = 8,
                 queue: int = 64, loop: str = "asyncio") -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = Path(tempfile.mkdtemp(prefix="bench-home-"))  # the child's FASTVLM_HYBRID_HOME (audit trail)
        self.proc = mp.get_context("spawn").Process(
            target=_serve, daemon=True,
            args=(self.port, str(self.home), delay_s, audit, cache, concurrency, queue, loop))

    def __enter__(self) -> Server:
        import httpx

        self.proc.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        raise SystemExit("the server did not start")

    def __exit__(self, *_exc: object) -> None:
        self.proc.kill()
        self.proc.join(5)

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 1e6


class RssSampler(threading.Thread):
    """The server's RSS every 0.2 s while a phase runs: start / middle / end / peak."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[float] = [server.rss_mb()]
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.samples.append(self.server.rss_mb())

    def finish(self) -> dict[str, float]:
        self.stop.set()
        self.join()
        self.samples.append(self.server.rss_mb())
        s = self.samples
        return {"start": s[0], "middle": s[len(s) // 2], "end": s[-1], "peak": max(s)}


def run_wrk(url: str, body: bytes, duration_s: int, connections: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_path, script = Path(tmp) / "body.bin", Path(tmp) / "post.lua"
        body_path.write_bytes(body)
        script.write_text(WRK_LUA)
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s", "-s", str(script), url,
               "--", str(body_path), BOUNDARY]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out.stdout}{out.stderr}")
    raw = json.loads(line[len("WRKJSON "):])
    wall = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "wall": wall, "rps": raw["requests"] / wall, "p50": raw["p50_us"] / 1000,
            "p99": raw["p99_us"] / 1000, "statuses": {int(k): v for k, v in raw["statuses"].items()},
            "errors": raw["socket_errors"] + raw["timeouts"], "retry_after_missing": raw["retry_after_missing"]}


def run_python(url: str, body: bytes, duration_s: int, concurrency: int) -> dict[str, Any]:
    """Fallback client (httpx, asyncio): same outputs as `run_wrk`, far more client CPU per request."""
    import httpx

    async def drive() -> dict[str, Any]:
        headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors = missing = 0
        deadline = time.monotonic() + duration_s
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

            async def worker() -> None:
                nonlocal errors, missing
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    try:
                        resp = await client.post("/v1/analyze", content=body, headers=headers)
                    except httpx.HTTPError:
                        errors += 1
                        continue
                    latencies.append(time.perf_counter() - t0)
                    statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                    missing += resp.status_code == 503 and "retry-after" not in resp.headers

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall = time.perf_counter() - start
        latencies.sort()
        return {"requests": len(latencies), "wall": wall, "rps": len(latencies) / wall,
                "p50": statistics.median(latencies) * 1000, "p99": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
                "statuses": statuses, "errors": errors, "retry_after_missing": missing}

    return asyncio.run(drive())


def phase(server: Server, client: Any, body: bytes, duration_s: int, connections: int) -> dict[str, Any]:
    import httpx

    first = httpx.post(f"{server.url}/v1/analyze", content=body, timeout=10,
                       headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    if first.status_code != 200:
        raise SystemExit(f"warm-up request failed: {first.status_code} {first.text[:200]}")
    client(server.url, body, 2, connections)  # 2 s warm-up: allocator and caches reach steady state
    sampler = RssSampler(server)
    sampler.start()
    out = client(server.url, body, duration_s, connections)
    out["rss"] = sampler.finish()
    return out


def _rss_line(rss: dict[str, float]) -> str:
    return (f"server RSS MB start/middle/end {rss['start']:.1f} / {rss['middle']:.1f} / {rss['end']:.1f}"
            f" (peak {rss['peak']:.1f}, growth {rss['end'] - rss['start']:+.1f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=20, help="seconds per cached phase")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--overload-duration", type=int, default=15, help="seconds of the overload phase")
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--no-compare-uvloop", dest="compare_uvloop", action="store_false",
                    help="skip the side-by-side audit-on phase on uvloop")
    args = ap.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    if args.client == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client python")
    client = run_wrk if use_wrk else run_python
    body = _multipart(_png())
    print(f"client: {'wrk (C, 1 thread)' if use_wrk else 'python httpx'}; {os.cpu_count()} cores shared by client"
          " and server; timings are noisy on a shared box: run it a few times")

    cached: dict[str, dict[str, Any]] = {}
    for label, audit in (("audit on", True), ("audit off", False)):
        with Server(audit=audit) as server:
            cached[label] = out = phase(server, client, body, args.duration, args.concurrency)
        other = {k: v for k, v in out["statuses"].items() if k != 200}
        print(f"cached /v1/analyze, {label}: {out['requests']} requests in {out['wall']:.1f} s,"
              f" {args.concurrency} in flight")
        print(f"  {out['rps']:.0f} requests/s (target >= 500: {out['rps'] / 500:.2f}x)"
              f"; p50 {out['p50']:.1f} ms, p99 {out['p99']:.1f} ms (target <= 50 ms: {out['p99'] / 50:.2f}x)")
        print(f"  non-200: {other or 'none'}, socket errors/timeouts: {out['errors']}; {_rss_line(out['rss'])}")
    off, on = cached["audit off"], cached["audit on"]
    print(f"audit on vs off: {on['rps'] / off['rps']:.2f}x requests/s, {on['p99'] / max(off['p99'], 1e-9):.2f}x p99")
    if args.compare_uvloop and importlib.util.find_spec("uvloop") is not None:
        # Why `serve` runs on asyncio's loop: libuv accepts one new connection per loop iteration, so
        # wrk's 64 fresh connections wait behind the busy ones (a tail at the start of every run).
        with Server(audit=True, loop="uvloop") as server:
            uv = phase(server, client, body, args.duration, args.concurrency)
        print(f"same audit-on phase on uvloop: {uv['rps']:.0f} requests/s, p50 {uv['p50']:.1f} ms,"
              f" p99 {uv['p99']:.1f} ms; asyncio vs uvloop: {on['rps'] / uv['rps']:.2f}x requests/s,"
              f" {on['p99'] / max(uv['p99'], 1e-9):.2f}x p99")

    # Overload: the cache off (so every admitted request costs 50 ms of backend time), 8 slots + 16
    # queue, far more connections than that: the excess must be shed at once with 503 + Retry-After.
    with Server(delay_s=0.05, cache=False, concurrency=8, queue=16) as server:
        burst = phase(server, client, body, args.overload_duration, 256)
    st = burst["statuses"]
    other = {k: v for k, v in st.items() if k not in (200, 503)}
    print(f"overload: {burst['requests']} requests, 256 in flight against 8 slots + 16 queue (50 ms each, no cache)")
    print(f"  200: {st.get(200, 0)}, 503: {st.get(503, 0)} (without Retry-After: {burst['retry_after_missing']}),"
          f" other: {other or 'none'}, socket errors/timeouts: {burst['errors']}")
    print(f"  {burst['rps']:.0f} responses/s, p50 {burst['p50']:.1f} ms, p99 {burst['p99']:.1f} ms;"
          f" {_rss_line(burst['rss'])}")
    bad = bool(other) or burst["errors"] or burst["retry_after_missing"] or not st.get(503)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    raise SystemExit(main())
