"""Soak test of the HTTP server: mixed good and bad traffic for a bounded time, then a PASS/FAIL verdict.

    python benchmarks/soak.py [--duration 60] [--concurrency 16] [--seed 0] [--json] [--timeout 30]
                              [--huge-prompt-mb MB] [--skip CASE[,CASE]]
                              [--max-growth-mib 50] [--max-growth-ratio 1.15]

Starts the real app (`create_app`) under uvicorn on 127.0.0.1 in a child process with
benchmarks/server_load.py's `Server`: a processor over the test-only FunctionBackend as "fastvlm"
(local) and "gemini" (cloud), the audit trail and the cache on as users have them, 4 slots + 64
queue, a temp home. Then C clients each pick cases at random by weight (seeded: --seed gives every
client the same sequence of picks) for --duration seconds, after a warm-up (each case once, then the
mix until the result cache's in-memory LRU is full, at most 30 s).

Good cases: /v1/analyze with a small PNG, chat text-only, chat with a data: URI image, streaming chat
read to `[DONE]`, /v1/route, /healthz or /readyz, /v1/models, and a chat prompt 4 KiB under the body
limit (--huge-prompt-mb to choose another size). Bad cases: malformed JSON, a wrong content-type, a
truncated multipart body, a non-image upload (415), a PNG header of 400 megapixels (413), a GIF of 40
frames of 3000x3000 (413), `"temperature": NaN`, max_tokens 1e30, an unknown model (404), an http
image URL (fetching is off: 400), a chunked body past the body limit (413), a client that sends half
a body and hangs up, and one that hangs up after the first bytes of a stream. At most one of the two
huge bodies is in flight. Ollama-style paths (`/api/chat`) are driven only if the app lists them (it
does not today). --skip leaves cases out, to tell one problem from another.

Printed (plain text, or one JSON object with --json): requests and requests/s, statuses per endpoint
and per case against each case's expected set (with p50/p99), p50/p99 of good and of bad requests,
5xx and unexpected outcomes with a first example (warm-up included), the server's RSS after warm-up,
every ~10 s and at the end, the work gate and open files once the traffic has drained, and `audit
verify` on the trail with its "ok" records against the 200s of /v1/analyze and /v1/chat/completions.
PASS (exit 0) when there is no 5xx, every outcome is in its case's expected set, the gate drained to 0
running / 0 waiting, the RSS floor (minimum of the last third of 1 s samples against the first third;
single samples swing by tens of MiB) grew at most --max-growth-mib or --max-growth-ratio, and the
trail verifies with the expected count; else FAIL (exit 1). Nothing leaves 127.0.0.1. Client and
server share this machine's cores, so requests/s measure both.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib
import io
import json
import os
import random
import shutil
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDITED = ("POST /v1/analyze", "POST /v1/chat/completions")
# Warm-up answers: past the result cache's in-memory LRU (1,024 entries, each prompt here is new), so what
# fills bounded structures is not counted as growth; at most WARM_MAX_S seconds.
WARM_ANSWERS, WARM_MAX_S = 1200, 30.0
# (status code or "closed"/"transport:<error>", a snippet for the report, "METHOD /path" or "" for the case's kind)
Outcome = tuple[str, str, str]


def _server_load() -> Any:
    """benchmarks/server_load.py, by module name so the spawned server child can import it too."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("server_load")


def _png(rng: random.Random) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (rng.randrange(256), rng.randrange(256), rng.randrange(256))).save(buf, format="PNG")
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width`x`height` in its IHDR with (almost) no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _animated_gif(frames: int, size: tuple[int, int]) -> bytes:
    """One encoded frame's image block repeated (as tests/server/test_media_limits.py builds it)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("P", size, 0).save(buf, format="GIF")
    data = buf.getvalue()
    start = data.index(b"\x2c\x00\x00\x00\x00")
    control = b"\x21\xf9\x04\x00\x00\x00\x00\x00"
    return data[:start] + (control + data[start:-1]) * frames + b"\x3b"


def _data_uri(data: bytes, mime: str) -> str:
    import base64

    return f"data:{mime};base64," + base64.b64encode(data).decode()


@dataclass
class Ctx:
    client: Any  # httpx.AsyncClient
    port: int
    body_limit: int
    big_png: bytes
    gif: bytes
    huge_under: bytes  # a chat body just under the body limit
    huge_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one huge body in flight at a time


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "METHOD /path", the endpoint the status mix is reported under
    good: bool
    weight: float
    expect: frozenset[str]
    send: Callable[[Ctx, random.Random], Awaitable[Outcome]]


def _out(resp: Any, snippet: str | None = None) -> Outcome:
    return str(resp.status_code), resp.text[:160] if snippet is None else snippet, \
        f"{resp.request.method} {resp.request.url.path}"


def _prompt(rng: random.Random) -> str:
    return f"Describe picture {rng.randrange(1_000_000)}"  # mostly unique: the cache and audit keep growing


def _chat(rng: random.Random, content: Any = None, **extra: Any) -> dict[str, Any]:
    return {"model": "hybrid", "messages": [{"role": "user", "content": content or _prompt(rng)}], **extra}


def _image_content(rng: random.Random, url: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": _prompt(rng)}, {"type": "image_url", "image_url": {"url": url}}]


async def _post(ctx: Ctx, path: str, content: bytes | str, ctype: str) -> Outcome:
    return _out(await ctx.client.post(path, content=content, headers={"content-type": ctype}))


async def _analyze(ctx: Ctx, rng: random.Random, data: bytes, name: str, mime: str) -> Outcome:
    files = {"file": (name, data, mime)}
    return _out(await ctx.client.post("/v1/analyze", data={"prompt": _prompt(rng), "mode": "local-only"}, files=files))


# ---------------------------------------------------------------- good cases
async def analyze_png(ctx: Ctx, rng: random.Random) -> Outcome:
    return await _analyze(ctx, rng, _png(rng), "a.png", "image/png")


async def chat_text(ctx: Ctx, rng: random.Random) -> Outcome:
    return _out(await ctx.client.post("/v1/chat/completions", json=_chat(rng)))


async def chat_image(ctx: Ctx, rng: random.Random) -> Outcome:
    content = _image_content(rng, _data_uri(_png(rng), "image/png"))
    return _out(await ctx.client.post("/v1/chat/completions", json=_chat(rng, content)))


async def chat_stream(ctx: Ctx, rng: random.Random) -> Outcome:
    async with ctx.client.stream("POST", "/v1/chat/completions", json=_chat(rng, stream=True)) as resp:
        text = (await resp.aread()).decode()
    if resp.status_code == 200 and not text.rstrip().endswith("data: [DONE]"):
        return "200-no-[DONE]", text[-160:], "POST /v1/chat/completions"
    return _out(resp, text[:160])


async def route(ctx: Ctx, rng: random.Random) -> Outcome:
    return _out(await ctx.client.post("/v1/route", json={"prompt": _prompt(rng)}))


async def health(ctx: Ctx, rng: random.Random) -> Outcome:
    return _out(await ctx.client.get(rng.choice(("/healthz", "/readyz"))))


async def models(ctx: Ctx, _rng: random.Random) -> Outcome:
    return _out(await ctx.client.get("/v1/models"))


async def _huge(ctx: Ctx, send: Callable[[], Awaitable[Any]]) -> Outcome:
    """One huge body at a time: when the client gives up first, the lock is kept until the server answers
    /healthz again, so a stalled server never holds two of them (one near-limit prompt peaks at ~1.4 GB)."""
    import httpx

    async with ctx.huge_lock:
        try:
            return _out(await send())
        except httpx.TransportError:
            with contextlib.suppress(httpx.HTTPError):
                await ctx.client.get("/healthz", timeout=120)
            raise


async def huge_prompt(ctx: Ctx, _rng: random.Random) -> Outcome:
    return await _huge(ctx, lambda: ctx.client.post("/v1/chat/completions", content=ctx.huge_under,
                                                    headers={"content-type": "application/json"}))


async def ollama_chat(ctx: Ctx, rng: random.Random) -> Outcome:
    body = {"model": "hybrid", "messages": [{"role": "user", "content": _prompt(rng)}], "stream": False}
    return _out(await ctx.client.post("/api/chat", json=body))


# ---------------------------------------------------------------- bad cases
async def bad_json(ctx: Ctx, rng: random.Random) -> Outcome:
    path = rng.choice(("/v1/chat/completions", "/v1/analyze", "/v1/route"))
    return await _post(ctx, path, '{"model": "hybrid", "messages": [{"role": "us', "application/json")


async def wrong_content_type(ctx: Ctx, rng: random.Random) -> Outcome:
    if rng.random() < 0.5:  # the native API reads multipart or JSON only
        return await _post(ctx, "/v1/analyze", f"prompt={_prompt(rng)}", "text/plain")
    return await _post(ctx, "/v1/chat/completions", "model=hybrid&prompt=hi", "application/x-www-form-urlencoded")


async def truncated_multipart(ctx: Ctx, rng: random.Random) -> Outcome:
    sl = _server_load()
    body, ctype = sl._multipart(_png(rng), _prompt(rng)), f"multipart/form-data; boundary={sl.BOUNDARY}"
    return await _post(ctx, "/v1/analyze", body[: len(body) * 2 // 3], ctype)


async def non_image(ctx: Ctx, rng: random.Random) -> Outcome:
    return await _analyze(ctx, rng, b"just some text, not a picture\n" * 20, "notes.png", "image/png")


async def pixel_bomb_png(ctx: Ctx, rng: random.Random) -> Outcome:
    if rng.random() < 0.5:
        return await _analyze(ctx, rng, ctx.big_png, "big.png", "image/png")
    content = _image_content(rng, _data_uri(ctx.big_png, "image/png"))
    return _out(await ctx.client.post("/v1/chat/completions", json=_chat(rng, content)))


async def gif_frames(ctx: Ctx, rng: random.Random) -> Outcome:
    if rng.random() < 0.5:
        return await _analyze(ctx, rng, ctx.gif, "a.gif", "image/gif")
    content = _image_content(rng, _data_uri(ctx.gif, "image/gif"))
    return _out(await ctx.client.post("/v1/chat/completions", json=_chat(rng, content)))


async def nan_temperature(ctx: Ctx, rng: random.Random) -> Outcome:
    raw = json.dumps(_chat(rng))[:-1] + ', "temperature": NaN}'  # what Python's and JS's encoders send
    return await _post(ctx, "/v1/chat/completions", raw, "application/json")


async def huge_max_tokens(ctx: Ctx, rng: random.Random) -> Outcome:
    return _out(await ctx.client.post("/v1/chat/completions", json=_chat(rng, max_tokens=1e30)))


async def unknown_model(ctx: Ctx, rng: random.Random) -> Outcome:
    return _out(await ctx.client.post("/v1/chat/completions", json={**_chat(rng), "model": "no-such-model"}))


async def http_image_url(ctx: Ctx, rng: random.Random) -> Outcome:
    content = _image_content(rng, f"http://127.0.0.1:{ctx.port}/ui/nothing-{rng.randrange(1000)}.png")
    return _out(await ctx.client.post("/v1/chat/completions", json=_chat(rng, content)))


async def over_body_limit(ctx: Ctx, _rng: random.Random) -> Outcome:
    """A chunked body (no Content-Length to refuse up front) that runs past the limit while it arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        prefix = b'{"model": "hybrid", "messages": [{"role": "user", "content": "'
        yield prefix
        block = b"lorem ipsum " * (1 << 16)
        for _ in range(ctx.body_limit // len(block) + 2):
            yield block

    return await _huge(ctx, lambda: ctx.client.post("/v1/chat/completions", content=chunks(),
                                                    headers={"content-type": "application/json"}))


async def half_body_hangup(ctx: Ctx, rng: random.Random) -> Outcome:
    """Open a connection, send the headers and half the body it announces, close it."""
    sl = _server_load()
    body = sl._multipart(_png(rng), _prompt(rng))
    head = (f"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1:{ctx.port}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={sl.BOUNDARY}\r\n\r\n").encode()
    _reader, writer = await asyncio.open_connection("127.0.0.1", ctx.port)
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(rng.uniform(0, 0.05))
    writer.close()
    await writer.wait_closed()
    return "closed", "", ""


async def stream_hangup(ctx: Ctx, rng: random.Random) -> Outcome:
    """Start a streaming chat, read its first bytes, then drop the connection."""
    async with ctx.client.stream("POST", "/v1/chat/completions", json=_chat(rng, stream=True)) as resp:
        if resp.status_code != 200:
            await resp.aread()
            return _out(resp)
        async for _chunk in resp.aiter_raw():
            break
    return "closed", "", ""


def _s(*codes: str) -> frozenset[str]:
    return frozenset(codes)


CASES = [
    Case("analyze_png", "POST /v1/analyze", True, 14, _s("200"), analyze_png),
    Case("chat_text", "POST /v1/chat/completions", True, 14, _s("200"), chat_text),
    Case("chat_image_data_uri", "POST /v1/chat/completions", True, 10, _s("200"), chat_image),
    Case("chat_stream", "POST /v1/chat/completions", True, 8, _s("200"), chat_stream),
    Case("route", "POST /v1/route", True, 6, _s("200"), route),
    Case("healthz_readyz", "GET /healthz or /readyz", True, 6, _s("200"), health),
    Case("models", "GET /v1/models", True, 4, _s("200"), models),
    # served (200) or refused as too long (400/413) are both fine; a stall past --timeout is not
    Case("huge_prompt_under_limit", "POST /v1/chat/completions", True, 0.3, _s("200", "400", "413"), huge_prompt),
    Case("malformed_json", "POST (several)", False, 4, _s("400"), bad_json),
    Case("wrong_content_type", "POST (several)", False, 3, _s("400"), wrong_content_type),
    Case("truncated_multipart", "POST /v1/analyze", False, 3, _s("400"), truncated_multipart),
    Case("non_image_upload", "POST /v1/analyze", False, 3, _s("415"), non_image),
    Case("png_header_400_megapixels", "POST (several)", False, 3, _s("413"), pixel_bomb_png),
    Case("gif_40x3000x3000", "POST (several)", False, 2, _s("413"), gif_frames),
    Case("temperature_nan", "POST /v1/chat/completions", False, 3, _s("400"), nan_temperature),
    Case("max_tokens_1e30", "POST /v1/chat/completions", False, 3, _s("400"), huge_max_tokens),
    Case("unknown_model", "POST /v1/chat/completions", False, 3, _s("404"), unknown_model),
    Case("http_image_url", "POST /v1/chat/completions", False, 3, _s("400"), http_image_url),
    Case("chunked_body_over_limit", "POST /v1/chat/completions", False, 0.3, _s("413"), over_body_limit),
    Case("half_body_hangup", "POST /v1/analyze", False, 3, _s("closed"), half_body_hangup),
    Case("stream_hangup", "POST /v1/chat/completions", False, 3, _s("closed"), stream_hangup),
]
HUGE = (huge_prompt, over_body_limit)
OLLAMA = Case("ollama_api_chat", "POST /api/chat", True, 6, _s("200"), ollama_chat)


@dataclass
class Stats:
    outcomes: dict[str, collections.Counter[str]] = field(default_factory=lambda: collections.defaultdict(
        collections.Counter))
    by_endpoint: dict[str, collections.Counter[str]] = field(default_factory=lambda: collections.defaultdict(
        collections.Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    examples: dict[tuple[str, str], str] = field(default_factory=dict)  # (case, outcome) -> first snippet

    def record(self, case: Case, outcome: Outcome, seconds: float) -> None:
        label, snippet, endpoint = outcome
        self.outcomes[case.name][label] += 1
        self.by_endpoint[endpoint or case.kind][label] += 1
        if label.isdigit():
            self.latencies[case.name].append(seconds)
        if label not in case.expect or label.startswith("5"):
            self.examples.setdefault((case.name, label), snippet)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.outcomes.values())


async def attempt(case: Case, ctx: Ctx, rng: random.Random, stats: Stats) -> None:
    t0 = time.perf_counter()
    try:
        outcome = await case.send(ctx, rng)
    except Exception as exc:  # noqa: BLE001 - a client-side failure (timeout, reset) is an outcome, not a crash
        note = f"no answer after {time.perf_counter() - t0:.1f} s {exc}"[:160]
        outcome = (f"transport:{type(exc).__name__}", note, "")
    stats.record(case, outcome, time.perf_counter() - t0)


async def drive(ctx: Ctx, cases: list[Case], stats: Stats, seconds: float, concurrency: int, seed: int) -> float:
    deadline = time.monotonic() + seconds
    weights = [c.weight for c in cases]

    async def worker(index: int) -> None:
        rng = random.Random(f"{seed}-{index}")
        while time.monotonic() < deadline:
            case = rng.choices(cases, weights)[0]
            if case.send in HUGE and ctx.huge_lock.locked():
                continue  # one huge body at a time: the rest of the mix keeps flowing
            await attempt(case, ctx, rng, stats)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return time.perf_counter() - start


def _pct(values: list[float], q: float) -> float | None:
    """The q-quantile in ms (None when nothing answered: JSON has no NaN)."""
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * (len(s) - 1)))] * 1000, 1) if s else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


async def soak(args: argparse.Namespace, server: Any) -> dict[str, Any]:
    import httpx
    import psutil

    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.server.app import _JSON_OVERHEAD

    upload = load_settings().max_upload_bytes
    limit = upload + upload // 3 + _JSON_OVERHEAD  # the GuardMiddleware's body cap
    size = int(args.huge_prompt_mb * 2**20) if args.huge_prompt_mb else limit - 4096  # default: just under the cap
    pad = size - len(json.dumps(_chat(random.Random(0), "")))
    huge = json.dumps(_chat(random.Random(0), ("describe the picture " * (pad // 21 + 1))[:pad])).encode()
    proc = psutil.Process(server.proc.pid)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=args.timeout) as client:
        ctx = Ctx(client, server.port, limit, _png_header(20_000, 20_000), _animated_gif(40, (3000, 3000)), huge)
        paths = (await client.get("/openapi.json")).json().get("paths", {})
        cases = [c for c in CASES + ([OLLAMA] if "/api/chat" in paths else []) if c.name not in args.skip]
        warm = Stats()
        light = [c for c in cases if c.send not in HUGE]
        for case in light:  # each case once, then the mix until the bounded caches are full (see WARM_ANSWERS)
            await attempt(case, ctx, random.Random(args.seed), warm)
        warm_s = 0.0
        while warm_s < WARM_MAX_S and sum(warm.by_endpoint[ep]["200"] for ep in AUDITED) < WARM_ANSWERS:
            warm_s += await drive(ctx, light, warm, 2.0, args.concurrency, args.seed + 1 + int(warm_s))
        rss: list[tuple[float, float]] = [(0.0, _rss_mib(proc.pid))]
        fds_start = proc.num_fds()
        stats = Stats()
        t_start = time.monotonic()

        async def sample() -> None:  # every second: the verdict compares floors (see `rss_summary`)
            while True:
                await asyncio.sleep(1)
                rss.append((time.monotonic() - t_start, _rss_mib(proc.pid)))

        sampler = asyncio.create_task(sample())
        wall = await drive(ctx, cases, stats, args.duration, args.concurrency, args.seed)
        sampler.cancel()
        await asyncio.sleep(0.5)  # the server finishes what hung-up clients left behind
        rss.append((time.monotonic() - t_start, _rss_mib(proc.pid)))
        try:
            gate = (await client.get("/readyz")).json().get("queue", {})
        except httpx.HTTPError as exc:
            gate = {"error": f"/readyz did not answer: {type(exc).__name__}"}
        fds_end = proc.num_fds()
    return {"cases": cases, "stats": stats, "warm": warm, "wall": wall, "rss": rss, "gate": gate,
            "fds": (fds_start, fds_end), "ollama": "/api/chat" in paths, "huge_body_bytes": len(huge),
            "body_limit": limit, "warmup_s": warm_s}


def audit_check(home: Path, warm: Stats, stats: Stats) -> dict[str, Any]:
    """`fastvlm-hybrid audit verify` on the server's trail, and its "ok" records against the 200s."""
    from fastvlm_gemini_hybrid.audit import AuditLog
    from fastvlm_gemini_hybrid.config import load_settings

    log = AuditLog(load_settings(home=home).audit_path)
    report = log.verify()
    outcomes = collections.Counter(str(r.get("outcome")) for r in log.records())
    log.close()
    n200 = sum(s.by_endpoint[ep]["200"] for s in (warm, stats) for ep in AUDITED)
    # Answers the client never read (a dropped stream, a client timeout) may or may not have their record.
    unread = sum(s.outcomes["stream_hangup"]["closed"] for s in (warm, stats)) + sum(
        v for s in (warm, stats) for ep in AUDITED for k, v in s.by_endpoint[ep].items() if k.startswith("transport:"))
    ok = outcomes.get("ok", 0)
    return {"verify": report.to_dict(), "records_by_outcome": dict(outcomes), "answered_200": n200,
            "unread_answers": unread, "count_ok": n200 <= ok <= n200 + unread}


def rss_summary(samples: list[tuple[float, float]], args: argparse.Namespace) -> dict[str, Any]:
    """Start (after warm-up), ~every 10 s and end, and the verdict's measure: the floor (minimum) of the last
    third of the 1 s samples against that of the first third. Single samples swing by tens of MiB with
    what is in flight and when the collector last ran; a leak raises the floor."""
    start, end = samples[0][1], samples[-1][1]
    third = max(1, len(samples) // 3)
    low, high = min(m for _, m in samples[:third]), min(m for _, m in samples[-third:])
    shown, mark = [samples[0]], 10.0
    for t, m in samples[1:-1]:
        if t >= mark:
            shown.append((t, m))
            mark += 10
    shown.append(samples[-1])
    growth, ratio = high - low, high / low
    return {"samples_10s": [[round(t, 1), round(m, 1)] for t, m in shown], "start": round(start, 1),
            "end": round(end, 1), "growth": round(end - start, 1), "ratio": round(end / start, 3),
            "floor_first_third": round(low, 1), "floor_last_third": round(high, 1),
            "floor_growth": round(growth, 1), "floor_ratio": round(ratio, 3),
            "peak": round(max(m for _, m in samples), 1),
            "bound": f"<= {args.max_growth_mib:g} MiB or <= {args.max_growth_ratio:g}x",
            "ok": growth <= args.max_growth_mib or ratio <= args.max_growth_ratio}


def _problems(stats: Stats, cases: list[Case]) -> tuple[list[dict[str, Any]], list[str]]:
    """(each unexpected outcome per case with a first example, the cases that got a 5xx)."""
    unexpected = [{"case": c.name, "got": k, "count": v, "expected": sorted(c.expect),
                   "example": stats.examples.get((c.name, k), "")}
                  for c in cases for k, v in stats.outcomes[c.name].items() if k not in c.expect]
    return unexpected, sorted({c.name for c in cases for k in stats.outcomes[c.name] if k.startswith("5")})


def summarize(args: argparse.Namespace, run: dict[str, Any], audit: dict[str, Any]) -> dict[str, Any]:
    cases: list[Case] = run["cases"]
    stats: Stats = run["stats"]
    per_case = {}
    for case in cases:
        got = stats.outcomes[case.name]
        lat = stats.latencies[case.name]
        per_case[case.name] = {"kind": case.kind, "good": case.good, "expected": sorted(case.expect),
                               "outcomes": dict(got), "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99),
                               "unexpected": {k: v for k, v in got.items() if k not in case.expect}}
    unexpected, server_errors = _problems(stats, cases)
    warm_unexpected, warm_errors = _problems(run["warm"], cases)
    rss = rss_summary(run["rss"], args)
    rss_ok, growth, ratio = rss["ok"], rss["floor_growth"], rss["floor_ratio"]
    gate_ok = run["gate"].get("running") == 0 and run["gate"].get("waiting") == 0
    audit_ok = audit["verify"]["ok"] and audit["count_ok"]
    never_ran = [c.name for c in cases if not stats.outcomes[c.name]]
    lat = {g: [x for c in cases if c.good is g for x in stats.latencies[c.name]] for g in (True, False)}
    fails = ([f"5xx from {', '.join(server_errors)}"] if server_errors else []) + (
        [f"warm-up: 5xx from {', '.join(warm_errors)}"] if warm_errors else []) + (
        [f"warm-up: {sum(u['count'] for u in warm_unexpected)} unexpected outcome(s)"] if warm_unexpected else []) + (
        [f"{sum(u['count'] for u in unexpected)} unexpected outcome(s)"] if unexpected else []) + (
        [] if rss_ok else [f"RSS floor grew {growth:+.1f} MiB ({ratio:.2f}x)"]) + (
        [] if gate_ok else [f"work gate not drained: {run['gate']}"]) + (
        [] if audit_ok else ["audit trail does not verify or its count does not match"])
    return {
        "duration_s": args.duration, "warmup_s": round(run["warmup_s"], 1), "concurrency": args.concurrency,
        "seed": args.seed, "cores": os.cpu_count(),
        "requests": stats.total, "wall_s": round(run["wall"], 2), "requests_per_s": round(stats.total / run["wall"], 1),
        "good_requests": sum(sum(stats.outcomes[c.name].values()) for c in cases if c.good),
        "latency_ms": {g: {"p50": _pct(lat[k], 0.5), "p99": _pct(lat[k], 0.99)}
                       for g, k in (("good", True), ("bad", False))},
        "status_by_endpoint": {k: dict(v) for k, v in sorted(stats.by_endpoint.items())},
        "body_limit_bytes": run["body_limit"], "huge_prompt_body_bytes": run["huge_body_bytes"],
        "cases": per_case, "cases_never_run": never_ran, "server_errors_5xx": server_errors,
        "unexpected": unexpected, "ollama_endpoints": run["ollama"],
        "warmup": {"requests": run["warm"].total, "server_errors_5xx": warm_errors, "unexpected": warm_unexpected},
        "rss_mib": rss,
        "gate_after": run["gate"], "open_fds": {"start": run["fds"][0], "end": run["fds"][1]},
        "audit": audit, "fail_reasons": fails, "verdict": "FAIL" if fails else "PASS",
    }


def print_report(r: dict[str, Any]) -> None:
    print(f"soak: {r['duration_s']} s after {r['warmup_s']} s of warm-up, {r['concurrency']} clients,"
          f" seed {r['seed']}, {r['cores']} cores shared by client and server")
    print(f"requests: {r['requests']} in {r['wall_s']} s = {r['requests_per_s']} requests/s"
          f" (good {r['good_requests']}, bad {r['requests'] - r['good_requests']})")
    lat = r["latency_ms"]
    print(f"latency ms: good p50 {_ms(lat['good']['p50'])} p99 {_ms(lat['good']['p99'])};"
          f" bad p50 {_ms(lat['bad']['p50'])} p99 {_ms(lat['bad']['p99'])}")
    print("statuses per endpoint:")
    for kind, mix in r["status_by_endpoint"].items():
        print(f"  {kind:28} " + "  ".join(f"{k}: {v}" for k, v in sorted(mix.items())))
    print(f"cases (huge prompt body {r['huge_prompt_body_bytes'] / 2**20:.1f} MiB, body limit"
          f" {r['body_limit_bytes'] / 2**20:.1f} MiB):")
    print(f"  {'case':27} {'':4}  {'expect':13} {'':8} {'p50 ms':>8} {'p99 ms':>8}  outcomes")
    for name, c in r["cases"].items():
        mix = "  ".join(f"{k}: {v}" for k, v in sorted(c["outcomes"].items())) or "never ran"
        flag = "ok" if not c["unexpected"] and c["outcomes"] else "MISMATCH" if c["unexpected"] else "-"
        print(f"  {name:27} {'good' if c['good'] else 'bad':4}  {'/'.join(c['expected']):13} {flag:8}"
              f" {_ms(c['p50_ms']):>8} {_ms(c['p99_ms']):>8}  {mix}")
    if not r["ollama_endpoints"]:
        print("  (no Ollama-style /api/chat in the app: not driven)")
    print(f"5xx: {', '.join(r['server_errors_5xx']) or 'none'}")
    w = r["warmup"]
    print(f"warm-up: {w['requests']} requests, 5xx: {', '.join(w['server_errors_5xx']) or 'none'},"
          f" unexpected: {sum(u['count'] for u in w['unexpected']) or 'none'}")
    for when, items in (("warm-up", w["unexpected"]), ("", r["unexpected"])):
        for u in items:
            print(f"{when + ' ' if when else ''}unexpected: {u['case']} answered {u['got']} x{u['count']}"
                  f" (expected {'/'.join(u['expected'])}), e.g. {u['example']!r}")
    m = r["rss_mib"]
    samples = ", ".join(f"{t:.0f} s {v:.1f}" for t, v in m["samples_10s"])
    print(f"server RSS MiB from the end of warm-up: {samples} (peak {m['peak']})")
    print(f"  end vs start {m['growth']:+.1f} MiB ({m['ratio']:.3f}x); floor (minimum) of the last third vs the"
          f" first {m['floor_last_third']} vs {m['floor_first_third']}: {m['floor_growth']:+.1f} MiB"
          f" ({m['floor_ratio']:.3f}x), bound {m['bound']}: {'ok' if m['ok'] else 'EXCEEDED'}")
    g = r["gate_after"]
    print(f"work gate after drain: running {g.get('running')}, waiting {g.get('waiting')}, admitted"
          f" {g.get('admitted')}, shed {g.get('shed')}; open fds {r['open_fds']['start']} -> {r['open_fds']['end']}")
    a = r["audit"]
    v = a["verify"]
    print(f"audit verify: {'intact' if v['ok'] else 'TAMPERED'}, {v['records']} records"
          + (f", problems: {v['problems']}" if v["problems"] else "")
          + (f", notes: {v['notes']}" if v["notes"] else ""))
    print(f"  records by outcome {a['records_by_outcome']}; 200s on {'/'.join(AUDITED)} incl. warm-up:"
          f" {a['answered_200']} (+ up to {a['unread_answers']} answers the client dropped or timed out on):"
          f" {'match' if a['count_ok'] else 'MISMATCH'}")
    print(f"verdict: {r['verdict']}" + (f" ({'; '.join(r['fail_reasons'])})" if r["fail_reasons"] else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=60, help="seconds of measured traffic (after a short warm-up)")
    ap.add_argument("--concurrency", type=int, default=16, help="clients in flight")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    ap.add_argument("--timeout", type=float, default=30.0, help="client timeout per request, seconds")
    ap.add_argument("--huge-prompt-mb", type=float, default=0.0,
                    help="MiB of the huge chat body; 0 (default): 4 KiB under the server's body limit")
    ap.add_argument("--skip", type=lambda v: set(v.split(",")), default=set(), metavar="CASE[,CASE]",
                    help=f"cases to leave out of the mix: {', '.join(c.name for c in CASES)}")
    ap.add_argument("--max-growth-mib", type=float, default=50.0)
    ap.add_argument("--max-growth-ratio", type=float, default=1.15)
    args = ap.parse_args()
    unknown = args.skip - {c.name for c in [*CASES, OLLAMA]}
    if unknown:
        ap.error(f"--skip: no case named {', '.join(sorted(unknown))}")
    server_load = _server_load()
    server = server_load.Server(audit=True, concurrency=4, queue=64)  # the users' defaults
    home = server.home
    with server:
        run = asyncio.run(soak(args, server))
    audit = audit_check(home, run["warm"], run["stats"])
    shutil.rmtree(home, ignore_errors=True)
    report = summarize(args, run, audit)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    raise SystemExit(main())
