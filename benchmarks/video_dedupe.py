"""Model calls per minute on a 5-minute static scene with one short intrusion, with and without near-duplicate skipping.

Run: python benchmarks/video_dedupe.py [--minutes 5] [--every-s 1]
The `video` pipeline (sampling -> near-duplicate filter -> processor) runs twice over the same
synthesised clip (640x360, 10 fps, sensor noise and a slow exposure drift, one person-sized
intrusion of 8 s in the middle). The processor is the real one; its only backend is a
FunctionBackend that counts calls, standing in for the model so the figure measures the pipeline,
not the model. Prints calls/minute for both runs, the reduction (target >= 90%), and whether the
intrusion was still sent to the model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import BackendKind
from fastvlm_gemini_hybrid.video.analyze import VideoAnalyzer
from fastvlm_gemini_hybrid.video.decode import VideoSource
from fastvlm_gemini_hybrid.video.sampling import Sampler

W, H, FPS = 640, 360, 10


def make_clip(path: Path, minutes: float, intrusion: tuple[float, float]) -> Path:
    rng = np.random.default_rng(1)
    bg = cv2.resize(rng.integers(40, 220, (H // 8, W // 8, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"preset": "ultrafast", "g": str(FPS * 4)}
    n = int(minutes * 60 * FPS)
    for i in range(n):
        t = i / FPS
        drift = 1.0 + 0.04 * np.sin(2 * np.pi * t / 120.0)  # slow exposure drift
        img = cv2.convertScaleAbs(bg, alpha=drift)
        img = cv2.add(img, rng.integers(0, 5, img.shape, dtype=np.uint8))
        if intrusion[0] <= t < intrusion[1]:
            x = int(40 + (t - intrusion[0]) * 60)
            cv2.rectangle(img, (x, 150), (x + 50, 300), (30, 30, 40), -1)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def run(
    clip: Path, home: Path, every_s: float, dedupe: bool, intrusion: tuple[float, float]
) -> tuple[int, bool, float]:
    counter = FunctionBackend("fastvlm", "counted", capabilities=Capabilities(kind=BackendKind.LOCAL))
    settings = load_settings(home=home, cache_enabled=False, audit_enabled=False)
    proc = HybridVLMProcessor(settings, backends={"fastvlm": counter})
    analyzer = VideoAnalyzer(proc, "What is happening?", sampler=Sampler(every_s=every_s), dedupe=dedupe)
    start = time.perf_counter()
    try:
        with VideoSource(clip) as src:
            times = [line["t_s"] for line in analyzer.frames(src)]
    finally:
        proc.close()
    saw_intrusion = any(intrusion[0] <= t < intrusion[1] for t in times)
    return len(counter.calls), saw_intrusion, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--every-s", type=float, default=1.0, help="sampling interval (default one frame a second)")
    args = ap.parse_args()
    intrusion = (args.minutes * 30.0, args.minutes * 30.0 + 8.0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        clip = make_clip(Path(tmp) / "static.mp4", args.minutes, intrusion)
        print(f"clip encoded in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        plain, plain_seen, plain_s = run(clip, Path(tmp) / "a", args.every_s, False, intrusion)
        dedup, dedup_seen, dedup_s = run(clip, Path(tmp) / "b", args.every_s, True, intrusion)
    per_min = args.minutes
    cut = 1.0 - dedup / plain if plain else 0.0
    print(f"{'run':<22}{'model calls':>12}{'calls/min':>11}{'intrusion sent':>16}{'wall s':>8}")
    print(f"{'without skipping':<22}{plain:>12}{plain / per_min:>11.1f}{plain_seen!s:>16}{plain_s:>8.1f}")
    print(f"{'near-duplicate skip':<22}{dedup:>12}{dedup / per_min:>11.1f}{dedup_seen!s:>16}{dedup_s:>8.1f}")
    print(f"reduction {cut:.1%} (target >= 90%): {'PASS' if cut >= 0.9 and dedup_seen else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
