"""A whole video file as one `Attachment`, for backends with native video input (Gemini).

Why a helper: the clip must be sent as-is (no re-encoding) but only within the configured upload
limit, and a live stream or webcam has no file to send; callers get None and fall back to
per-keyframe answers instead of failing.
"""

from __future__ import annotations

from pathlib import Path

from ..types import Attachment


def clip_attachment(source: str, max_bytes: int) -> tuple[Attachment | None, str]:
    """(attachment, "") for a local video file under `max_bytes`, else (None, why not)."""
    path = Path(source)
    if source.isdigit() or "://" in source or not path.is_file():
        return None, "the source is a live stream, not a file"
    size = path.stat().st_size
    if size > max_bytes:
        return None, f"the clip is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB upload limit"
    att = Attachment.from_path(path)
    if att.kind != "video":
        return None, f"{path.name} is not recognised as a video container ({att.mime})"
    return att, ""
