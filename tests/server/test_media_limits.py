"""Inputs built to exhaust the server answer 4xx quickly, before any decode, with memory bounded.

The GIF here is the one from the report: 40 frames of 3000x3000 in a few hundred KB, of which only
the first frame used to count against the pixel limit (22.7 s and +1.4 GB to decode).
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fastvlm_gemini_hybrid.server import media
from synth_media import blank, encode, picture

pytest.importorskip("fastapi")


def animated_gif(frames: int, size: tuple[int, int]) -> bytes:
    """A GIF of `frames` full-canvas frames, written without holding more than one frame in memory.

    PIL encodes one frame; its image block (descriptor, LZW data) is repeated, each copy behind a graphic
    control extension, which is exactly what an attacker's file looks like to a decoder.
    """
    data = picture(0, size, "gif", mode="P")
    block_start = data.index(b"\x2c\x00\x00\x00\x00")  # the first image descriptor, at (0, 0)
    head, block = data[:block_start], data[block_start:-1]  # drop the trailer
    control = b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control extension: no delay, no transparency
    return head + (control + block) * frames + b"\x3b"


def peak_rss_reset() -> bool:
    """Reset this process's peak RSS (Linux: clear_refs 5), so that VmHWM measures what comes next."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def data_uri(data: bytes, mime: str = "image/gif") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def chat(client: Any, url: str, **extra: Any) -> Any:
    content = [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": url}}]
    return client.post("/v1/chat/completions",
                       json={"model": "hybrid", **extra, "messages": [{"role": "user", "content": content}]})


def test_the_reported_gif_is_refused_quickly_with_memory_bounded(client: Any) -> None:
    gif = animated_gif(40, (3000, 3000))
    assert len(gif) < 400_000
    with Image.open(io.BytesIO(gif)) as img:  # PIL agrees it is 40 frames of 3000x3000
        assert img.size == (3000, 3000) and img.n_frames == 40
    measured = peak_rss_reset()
    before = status_kib("VmRSS")
    start = time.perf_counter()
    resp = chat(client, data_uri(gif))
    elapsed = time.perf_counter() - start
    assert resp.status_code == 413, resp.text
    body = resp.json()["error"]
    assert "40 frames of 3000x3000" in body["message"] and "limit" in body["message"]
    assert elapsed < 2.0, f"{elapsed:.2f} s to refuse"
    if measured:  # one decoded 3000x3000 frame alone would be 9 MB in P mode, 36 MB as RGBA
        grown_mib = (status_kib("VmHWM") - before) / 1024
        assert grown_mib < 30, f"peak RSS grew {grown_mib:.0f} MiB"
    upload = client.post("/v1/analyze", data={"prompt": "describe"}, files={"files": ("a.gif", gif, "image/gif")})
    assert upload.status_code == 413, upload.text
    assert client.processor.backend("fastvlm").calls == [] and client.processor.backend("gemini").calls == []


def test_a_frame_cap_holds_for_small_frames(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    app, _ = app_factory(max_image_frames=8)
    with TestClient(app) as c:
        refused = chat(c, data_uri(animated_gif(9, (16, 16))))
        assert refused.status_code == 413 and "more than 8 frames" in refused.json()["error"]["message"]
        assert chat(c, data_uri(animated_gif(8, (16, 16)))).status_code == 200


def test_frames_are_counted_for_animated_png_and_webp(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    app, _ = app_factory(max_image_pixels=100_000)
    frames = [blank((i * 20, 0, 0), (200, 200)) for i in range(4)]  # 4 x 40,000 pixels
    with TestClient(app) as c:
        for fmt, mime in (("PNG", "image/png"), ("WEBP", "image/webp")):
            resp = chat(c, data_uri(encode(frames, fmt), mime))
            assert resp.status_code == 413, (fmt, resp.text)
            assert "4 frames" in resp.json()["error"]["message"]


def test_a_picture_over_the_pixel_limit_is_413_and_a_bomb_is_not_decoded(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    app, _ = app_factory(max_image_pixels=1_000_000)
    over_limit = picture(0, (1500, 1000), mode="L")
    bomb = picture(0, (40_000, 40_000), mode="1")  # 1.6 gigapixels in a few hundred KB
    with TestClient(app) as c:
        over = chat(c, data_uri(over_limit, "image/png"))
        assert over.status_code == 413 and "1500x1000" in over.json()["error"]["message"]
        start = time.perf_counter()
        resp = chat(c, data_uri(bomb, "image/png"))
        assert resp.status_code == 413, resp.text
        assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(("field", "value", "words"), [
    ("max_tokens", 1e30, "max_tokens"),
    ("max_tokens", 4097, "over the limit of 4,096"),
    ("max_tokens", 0, "max_tokens"),
    ("max_tokens", 1.5, "max_tokens"),
    ("temperature", math.nan, "temperature"),
    ("temperature", math.inf, "temperature"),
    ("temperature", 2.5, "temperature"),
    ("top_p", 0, "top_p"),
    ("top_p", math.nan, "top_p"),
])
def test_sampling_parameters_out_of_range_are_400_in_the_openai_shape(
    client: Any, field: str, value: float, words: str,
) -> None:
    import json

    body = {"model": "hybrid", "messages": [{"role": "user", "content": "hi"}], field: value}
    start = time.perf_counter()
    # NaN and Infinity are what Python's and JavaScript's encoders send for them; the server must read them
    resp = client.post("/v1/chat/completions", content=json.dumps(body), headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error"
    assert "Traceback" not in resp.text and "torch" not in resp.text
    assert time.perf_counter() - start < 1.0
    assert client.processor.backend("fastvlm").calls == []


def test_gif_walk_matches_pil_on_real_animations() -> None:
    """The header walk counts what PIL counts, so the limit neither under- nor over-counts real files."""
    data = encode([blank(i, (30 + i, 20), mode="P") for i in range(5)], "gif", duration=40)
    with Image.open(io.BytesIO(data)) as img:
        expected = img.n_frames
    counted, pixels = media._gif_frames(data, 100)
    assert counted == expected
    assert pixels >= counted * 30 * 20


def test_a_prompt_over_the_limit_is_400(app_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    app, proc = app_factory(max_prompt_chars=10_000)
    with TestClient(app) as c:
        body = {"model": "hybrid", "messages": [{"role": "system", "content": "s" * 6_000},
                                                {"role": "user", "content": "describe " * 600}]}
        resp = c.post("/v1/chat/completions", json=body)
        assert resp.status_code == 400 and "the limit is 10,000" in resp.json()["error"]["message"]
        route = c.post("/v1/route", json={"prompt": "x" * 10_001})
        assert route.status_code == 400
        assert proc.backend("fastvlm").calls == []


def test_a_long_prompt_does_not_hold_the_event_loop(app_factory: Callable[..., Any], live_server: Any) -> None:
    """Reading ~2 MB of text takes seconds; meanwhile /healthz is still answered within a fraction of it."""
    import threading

    import httpx

    srv = live_server(app_factory(max_prompt_chars=4_000_000)[0])
    prompt = "describe the picture " * 100_000  # 2.1 M characters
    took: list[float] = []

    def big() -> None:
        start = time.perf_counter()
        resp = httpx.post(f"{srv.url}/v1/route", json={"prompt": prompt}, timeout=120)
        assert resp.status_code == 200, resp.text
        took.append(time.perf_counter() - start)

    worker = threading.Thread(target=big)
    worker.start()
    pings: list[float] = []
    with httpx.Client(timeout=60) as client:
        time.sleep(0.3)  # the body is in and being read
        while worker.is_alive():
            start = time.perf_counter()
            assert client.get(f"{srv.url}/healthz").status_code == 200
            pings.append(time.perf_counter() - start)
            time.sleep(0.05)
    worker.join()
    assert took and took[0] > 1.0, took  # the text really took long enough for a stall to show
    print(f"route {took[0]:.2f} s, {len(pings)} pings, max {max(pings):.3f} s")
    assert len(pings) >= 3 and max(pings) < max(0.6, took[0] / 3), (max(pings), took)
