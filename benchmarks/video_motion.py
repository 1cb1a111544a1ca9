"""Decode + motion throughput at 720p H.264, and real-time factor for four simultaneous 15 fps streams.

Run: python benchmarks/video_motion.py [--frames 600] [--repeats 3]
Prints frames/s for PyAV decode alone (the ceiling), decode + motion (the pipeline's front end),
and the whole surveillance agent (motion + tracking + zones + events), with ratios side by side;
then runs four agents on four 15 fps streams at once and prints each one's real-time factor
(how many times faster than real time it keeps up). The clip is synthesised: a textured scene
with sensor noise and two moving objects, encoded once with libx264 into a temp directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np

from fastvlm_gemini_hybrid.agents.surveillance import AgentConfig, SurveillanceAgent
from fastvlm_gemini_hybrid.video.decode import VideoSource
from fastvlm_gemini_hybrid.video.motion import MotionDetector
from fastvlm_gemini_hybrid.video.zones import Zone, ZoneConfig

W, H = 1280, 720


def make_clip(path: Path, frames: int, fps: int) -> Path:
    rng = np.random.default_rng(0)
    bg = cv2.resize(rng.integers(40, 220, (H // 16, W // 16, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"preset": "veryfast", "g": str(fps * 2)}
    for i in range(frames):
        img = cv2.add(bg, rng.integers(0, 14, bg.shape, dtype=np.uint8))
        x = (i * 7) % (W - 120)
        cv2.rectangle(img, (x, 300), (x + 90, 520), (25, 25, 35), -1)
        cv2.circle(img, (W - 100 - (i * 4) % (W - 200), 150), 40, (200, 220, 240), -1)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def decode_only(path: Path) -> float:
    start = time.perf_counter()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        n = sum(1 for _ in c.decode(s))
    return n / (time.perf_counter() - start)


def decode_motion(path: Path) -> float:
    det = MotionDetector()
    start = time.perf_counter()
    n = 0
    with VideoSource(path) as src:
        for frame in src:
            det.update(frame.gray())
            n += 1
    return n / (time.perf_counter() - start)


def zones() -> ZoneConfig:
    dock = ((600.0, 250.0), (1000.0, 250.0), (1000.0, 700.0), (600.0, 700.0))
    return ZoneConfig(zones=[Zone("dock", dock, restricted=True, loiter_s=5.0)])


def agent_run(path: Path) -> tuple[float, int]:
    agent = SurveillanceAgent(zones(), AgentConfig())
    start = time.perf_counter()
    with VideoSource(path) as src:
        events = sum(1 for _ in agent.run(src))
    return agent.frames / (time.perf_counter() - start), events


def four_streams(path: Path, fps: int) -> list[float]:
    """Four agents at once; each stream's real-time factor = (its frames / wall time) / fps."""
    rates: list[float] = [0.0] * 4

    def one(i: int) -> None:
        rates[i], _ = agent_run(path)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r / fps for r in rates]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # OpenCV's pool only adds contention on small images; PyAV keeps its threads
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        clip30 = make_clip(Path(tmp) / "720p30.mp4", args.frames, 30)
        clip15 = make_clip(Path(tmp) / "720p15.mp4", args.frames // 2, 15)
        print(f"clips encoded in {time.perf_counter() - t0:.1f}s ({args.frames} frames 720p H.264)", file=sys.stderr)
        results: dict[str, list[float]] = {"decode": [], "decode+motion": [], "agent": []}
        events = 0
        for _ in range(args.repeats):
            results["decode"].append(decode_only(clip30))
            results["decode+motion"].append(decode_motion(clip30))
            fps, events = agent_run(clip30)
            results["agent"].append(fps)
        base = statistics.median(results["decode"])
        print(f"{'stage':<16}{'min fps':>10}{'median fps':>12}{'max fps':>10}{'vs decode':>11}")
        for name, vals in results.items():
            med = statistics.median(vals)
            print(f"{name:<16}{min(vals):>10.0f}{med:>12.0f}{max(vals):>10.0f}{med / base:>10.2f}x")
        target = statistics.median(results["decode+motion"])
        print(f"decode+motion target >= 300 fps: {'PASS' if target >= 300 else 'FAIL'} ({target:.0f} fps); "
              f"agent raised {events} events")
        rtf_runs = [four_streams(clip15, 15) for _ in range(args.repeats)]
        worst = [min(r) for r in rtf_runs]
        print(f"4 x 720p15 streams at once: real-time factor per stream (worst of 4) "
              f"min {min(worst):.1f}x, median {statistics.median(worst):.1f}x "
              f"(>= 1.0x keeps up; aggregate {statistics.median(sum(r) for r in rtf_runs) * 15:.0f} fps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
