"""Synthetic test clips: a textured static scene with dark boxes at known places and times.

Everything a test asserts against (when a box crosses into a zone, when a flash happens) is a
pure function of time here, so expected event times are computed, not hand-typed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path

import av
import cv2
import numpy as np

Box = tuple[int, int, int, int]
BoxesAt = Callable[[float], Iterable[Box]]

W, H, FPS = 320, 240, 10


def background(width: int = W, height: int = H, seed: int = 0) -> np.ndarray:
    """A smooth, textured BGR scene (so hashes and motion have something real to work with)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)


def render(t: float, boxes_at: BoxesAt, bg: np.ndarray, rng: np.random.Generator, flash: bool = False,
           noise: int = 3) -> np.ndarray:
    img = bg.copy()
    for x, y, w, h in boxes_at(t):
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (20, 20, 30), -1)
    if noise:
        img = cv2.add(img, rng.integers(0, noise + 1, img.shape, dtype=np.uint8))
    if flash:
        img = cv2.add(img, np.full(img.shape, 90, np.uint8))
    return img


def encode(frames: Iterable[np.ndarray], fps: int = FPS, fmt: str = "mp4", codec: str = "libx264") -> bytes:
    """Encode BGR frames into an in-memory container."""
    buf = io.BytesIO()
    out = av.open(buf, "w", format=fmt)
    stream = None
    for img in frames:
        if stream is None:
            stream = out.add_stream(codec, rate=fps)
            stream.height, stream.width = img.shape[:2]
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            out.mux(packet)
    if stream is not None:
        for packet in stream.encode():
            out.mux(packet)
    out.close()
    return buf.getvalue()


def make_clip(path: Path, duration_s: float, boxes_at: BoxesAt, *, fps: int = FPS,
              flash_at: Iterable[float] = (), size: tuple[int, int] = (W, H), fmt: str = "mp4",
              seed: int = 0) -> Path:
    """Write a clip of `duration_s` where `boxes_at(t)` gives the boxes drawn at time t."""
    bg = background(*size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    flashes = [round(f * fps) for f in flash_at]
    n = round(duration_s * fps)
    frames = (render(i / fps, boxes_at, bg, rng, flash=any(i in (f, f + 1) for f in flashes)) for i in range(n))
    path.write_bytes(encode(frames, fps=fps, fmt=fmt))
    return path


def walker(enter_t: float = 1.0, speed: float = 40.0, stop_x: float = 230.0, leave_t: float = 9.0,
           leave_speed: float = 60.0, y: int = 150, w: int = 30, h: int = 60) -> BoxesAt:
    """One box: appears at x=20 at `enter_t`, walks right to `stop_x`, waits, walks back left, vanishes."""

    def at(t: float) -> list[Box]:
        if t < enter_t:
            return []
        x = min(20 + speed * (t - enter_t), stop_x)
        if t >= leave_t:
            x = stop_x - leave_speed * (t - leave_t)
            if x < 10:
                return []
        elif x >= stop_x:
            x += 2 * ((int(t * 10) % 2) * 2 - 1)  # a person standing still still sways
        return [(int(x), y, w, h)]

    return at


def crossing_time(x_line: float, enter_t: float = 1.0, speed: float = 40.0, w: int = 30) -> float:
    """When `walker`'s bottom-centre first reaches `x_line` on the way in."""
    return enter_t + (x_line - w / 2 - 20) / speed


def leaving_time(x_line: float, stop_x: float = 230.0, leave_t: float = 9.0, leave_speed: float = 60.0,
                 w: int = 30) -> float:
    """When `walker`'s bottom-centre goes back below `x_line` on the way out."""
    return leave_t + (stop_x + w / 2 - x_line) / leave_speed


ZONE_X = 200
ZONES_YAML = f"""
zones:
  - name: loading-dock
    polygon: [[{ZONE_X}, 0], [319, 0], [319, 239], [{ZONE_X}, 239]]
    restricted: true
    loiter_s: 2
"""
