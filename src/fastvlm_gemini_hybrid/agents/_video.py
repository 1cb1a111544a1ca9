"""Video helpers shared by `product-demo` and `video-summary`: whole clip or keyframes, timestamps.

Why: Gemini takes a video file natively, which is both better and cheaper than frames, but the
local model takes images only and a sensitive clip may not leave the machine. So an agent first
asks the router whether the whole clip has a route; if not, it decodes keyframes (evenly spread,
plus scene changes for screen recordings) with the `video` extra and sends those as images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..errors import BadInputError, HybridError, PolicyViolationError
from ..types import Request

if TYPE_CHECKING:
    from .answering import Answerer


@dataclass(frozen=True)
class Keyframe:
    t_s: float
    jpeg: bytes

    @property
    def name(self) -> str:
        return f"frame-{fmt_ts(self.t_s).replace(':', '-')}.jpg"


def fmt_ts(seconds: float) -> str:
    """`m:ss` under an hour, `h:mm:ss` above."""
    total = round(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_TS = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")


def parse_ts(value: Any) -> Any:
    """Seconds from a number or an `m:ss` / `h:mm:ss` string (models write both); else unchanged."""
    if isinstance(value, str):
        match = _TS.match(value)
        if match:
            hours, minutes, secs = match.groups()
            return int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
        try:
            return float(value.strip().rstrip("s"))
        except ValueError:
            return value
    return value


def probe_duration(path: str) -> float | None:
    """The container's duration in seconds, or None if it does not say."""
    av = require("av", "video", "video keyframes")
    try:
        with av.open(path) as container:
            if container.duration:
                return float(container.duration) / 1_000_000.0
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except (av.FFmpegError, IndexError) as exc:
        raise BadInputError(f"cannot read video {path}: {exc}") from None
    return None


def extract_keyframes(path: str, max_frames: int, *, scene_change: bool = False) -> list[Keyframe]:
    """Up to `max_frames` JPEG keyframes spread over the clip (and at scene changes if asked)."""
    from ..video.analyze import encode_jpeg
    from ..video.decode import VideoSource
    from ..video.sampling import Sampler

    if max_frames < 1:
        raise BadInputError("--max-frames must be at least 1")
    duration = probe_duration(path)
    # Oversample 3x, then thin evenly: the final set covers the whole clip without knowing its length.
    every = max(0.25, (duration or 60.0) / (max_frames * 3))
    sampler = Sampler(every_s=every, scene_change=scene_change, min_gap_s=min(1.0, every))
    frames: list[Keyframe] = []
    with VideoSource(path, live=False) as source:
        for frame in source:
            if sampler.take(frame.t_s, frame.gray()):
                frames.append(Keyframe(frame.t_s, encode_jpeg(frame.bgr(), max_side=1024)))
                if len(frames) > max_frames * 6:
                    frames = frames[::2]  # bound memory on long clips
    if not frames:
        raise BadInputError(f"{path} holds no decodable video frames")
    return thin(frames, max_frames)


def thin(frames: list[Keyframe], limit: int) -> list[Keyframe]:
    """`limit` frames evenly spread over `frames`, first and last kept."""
    if len(frames) <= limit:
        return frames
    if limit == 1:
        return frames[:1]
    step = (len(frames) - 1) / (limit - 1)
    return [frames[round(i * step)] for i in range(limit)]


def clip_has_route(processor: Answerer, request: Request) -> tuple[bool, str]:
    """(True, "") if the router lists a backend for the whole clip; else (False, why not).

    A `PolicyViolationError` (for instance `--mode cloud-only` on a sensitive clip) is the user's
    to fix and propagates; any other routing refusal just means "use keyframes".
    """
    try:
        decision = processor.decide(request)
    except PolicyViolationError:
        raise
    except HybridError as exc:
        return False, str(exc)
    if not decision.backends:
        return False, "no allowed backend takes video"
    primary = decision.backends[0]
    why = processor.backend(primary).capabilities.accepts(request)
    if why:  # the router's static view can differ from the backend's own (FastVLM takes images only)
        return False, f"{primary} {why}"
    return True, ""
