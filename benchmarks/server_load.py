"""Bounded local load test of the HTTP server: cached /v1/analyze, then an overload burst.

    python benchmarks/server_load.py [--requests 20000] [--concurrency 64] [--audit]

Starts uvicorn on 127.0.0.1 in a child process with a fast test-only backend (FunctionBackend,
never reachable from product config), warms the cache with one image, then drives N requests with
C in flight over keep-alive connections. Prints requests/s, p50/p99 and the server's RSS at start,
middle and end; then a burst far past the queue with a slow backend, counting 200s, 503s and
anything else. Stops by itself; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, home: str, delay_s: float, audit: bool, queue: int) -> None:
    import uvicorn

    from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
    from fastvlm_gemini_hybrid.server import create_app

    settings = load_settings(home=home, audit_enabled=audit, server_concurrency=8, server_queue=queue)
    backends = {"fastvlm": FunctionBackend("fastvlm", "bench answer", delay_s=delay_s),
                "gemini": FunctionBackend("gemini", "bench answer", kind="cloud", delay_s=delay_s)}
    app = create_app(processor=HybridVLMProcessor(settings, backends=backends))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (5, 100, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _start(delay_s: float, audit: bool, queue: int) -> tuple[mp.Process, str]:
    port = _free_port()
    proc = mp.get_context("spawn").Process(
        target=_serve, args=(port, tempfile.mkdtemp(prefix="bench-home-"), delay_s, audit, queue), daemon=True)
    proc.start()
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, f"http://127.0.0.1:{port}"
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1e6


async def _drive(url: str, total: int, concurrency: int, pid: int) -> dict[str, object]:
    import httpx

    body, boundary = _multipart(_png())
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rss: list[float] = [_rss_mb(pid)]
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await client.post("/v1/analyze", content=body, headers=headers)  # warm the cache

        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                resp = await client.post("/v1/analyze", content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                if i == total // 2:
                    rss.append(_rss_mb(pid))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    rss.append(_rss_mb(pid))
    latencies.sort()
    return {"wall": wall, "rps": total / wall, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(0.99 * (len(latencies) - 1))] * 1000, "statuses": statuses, "rss": rss}


def _multipart(image: bytes) -> tuple[bytes, str]:
    b = "benchboundary"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nDescribe\r\n'.encode(),
             f'--{b}\r\nContent-Disposition: form-data; name="mode"\r\n\r\nlocal-only\r\n'.encode(),
             f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode() + image + b"\r\n", f"--{b}--\r\n".encode()]
    return b"".join(parts), b


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--overload", type=int, default=2_000, help="requests in the overload burst")
    ap.add_argument("--audit", action="store_true", help="keep the fsynced audit trail on (the default for users)")
    args = ap.parse_args()

    proc, url = _start(0.0, args.audit, 64)
    try:
        out = asyncio.run(_drive(url, args.requests, args.concurrency, proc.pid))
    finally:
        proc.kill()
    audit = "on" if args.audit else "off"
    print(f"cached /v1/analyze: {args.requests} requests, {args.concurrency} in flight, audit {audit}")
    print(f"  {out['rps']:.0f} requests/s (target >= 500: ratio {out['rps'] / 500:.2f}x)")
    print(f"  p50 {out['p50']:.1f} ms, p99 {out['p99']:.1f} ms (target p99 <= 50 ms: ratio {out['p99'] / 50:.2f}x)")
    print(f"  statuses {out['statuses']}")
    rss = out["rss"]
    print(f"  server RSS MB start/middle/end: {rss[0]:.1f} / {rss[1]:.1f} / {rss[-1]:.1f}"
          f" (growth {rss[-1] - rss[1]:+.1f} MB after warm-up)")

    proc, url = _start(0.05, False, 16)  # a slow backend: 8 running + 16 waiting, the rest must be shed
    try:
        burst = asyncio.run(_drive(url, args.overload, 256, proc.pid))
    finally:
        proc.kill()
    st = burst["statuses"]
    other = {k: v for k, v in st.items() if k not in (200, 503)}
    print(f"overload: {args.overload} requests, 256 in flight against 8 slots + 16 queue (50 ms each)")
    print(f"  200: {st.get(200, 0)}, 503: {st.get(503, 0)}, other: {other or 'none'}")
    print(f"  server RSS MB start/middle/end: {burst['rss'][0]:.1f} / {burst['rss'][1]:.1f} / {burst['rss'][-1]:.1f}")
    return 0 if not other else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    raise SystemExit(main())
