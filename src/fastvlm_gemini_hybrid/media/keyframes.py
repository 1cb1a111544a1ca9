"""A video attachment as a few evenly spaced frames, for backends that read pictures only.

`ask -a clip.mp4` on a local backend (a sensitive clip, or local-only mode) works this way: the router
lists the local backend for video because the processor adapts the request here, seeking to N
evenly spaced moments instead of decoding the whole file. Longer or live video belongs to the
`video` command, which samples over time.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

from .._optional import require
from ..errors import UnsupportedMediaError
from ..types import Attachment, Request


def _frame_at(container: Any, stream: Any, t_s: float) -> Any | None:
    """The first frame at or after `t_s` (seek to the keyframe before it, then decode forward)."""
    container.seek(int(t_s / stream.time_base), stream=stream, backward=True, any_frame=False)
    for frame in container.decode(stream):
        if frame.time is None or frame.time >= t_s - 1e-3:
            return frame
    return None


def video_frames(attachment: Attachment, count: int) -> list[tuple[float, bytes]]:
    """Up to `count` (time in seconds, JPEG bytes) pairs spread evenly over the clip."""
    av = require("av", "video", "reading video attachments")
    label = attachment.name or "video"
    try:
        container = av.open(io.BytesIO(attachment.data or b""))
    except Exception as exc:  # noqa: BLE001 - PyAV raises FFmpeg's many error types
        raise UnsupportedMediaError(f"{label} is not a readable video: {exc}") from None
    with container:
        if not container.streams.video:
            raise UnsupportedMediaError(f"{label} has no video stream")
        stream = container.streams.video[0]
        duration = float(container.duration) / 1_000_000 if container.duration else 0.0
        out: list[tuple[float, bytes]] = []
        try:
            for i in range(max(1, count)):
                t_s = duration * (i + 0.5) / max(1, count) if duration else 0.0
                frame = _frame_at(container, stream, t_s)
                if frame is None:
                    continue
                buf = io.BytesIO()
                frame.to_image().convert("RGB").save(buf, format="JPEG", quality=88)
                out.append((round(float(frame.time or t_s), 2), buf.getvalue()))
                if not duration:
                    break
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise UnsupportedMediaError(f"{label} could not be decoded: {exc}") from None
    if not out:
        raise UnsupportedMediaError(f"{label} holds no decodable frame")
    return out


def as_frames(request: Request, max_images: int) -> Request:
    """`request` with each video attachment replaced by evenly spaced frames, the prompt saying so."""
    videos = [a for a in request.attachments if a.kind == "video"]
    if not videos:
        return request
    others = [a for a in request.attachments if a.kind != "video"]
    per_video = max(1, (max_images - len(others)) // len(videos))
    attachments: list[Attachment] = list(others)
    notes: list[str] = []
    for video in videos:
        frames = video_frames(video, per_video)
        attachments += [Attachment.from_bytes(jpeg, name=f"t{t:.2f}s.jpg") for t, jpeg in frames]
        notes.append(", ".join(f"{t:g}" for t, _ in frames))
    note = f"(The images are frames of a video, at {'; '.join(notes)} seconds.)\n"
    return replace(request, prompt=note + request.prompt, attachments=tuple(attachments))
