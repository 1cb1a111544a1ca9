"""Turn uploaded bytes, data: URIs and http(s) URLs into validated `Attachment`s.

Why here and not in the processor: the server must refuse bad media *before* it costs a model
slot, with the right status (413 too big, 415 not media, 400 corrupt), and must bound what it
downloads on a client's behalf (size, time, redirects) so a URL cannot make it fetch forever.
Downloading is off unless `fetch_image_urls` is set, and then reaches public addresses only (SSRF:
a client must not be able to make this server read its own network, cloud metadata included); the
download itself is `fetch.py`.
"""

from __future__ import annotations

import io
import logging
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..config import Settings
from ..errors import BadInputError, MediaTooLargeError
from ..types import Attachment
from .fetch import FETCH_DISABLED, FETCH_FAILED, Unfetchable, fetch

if TYPE_CHECKING:
    from av.container import InputContainer
    from PIL.Image import Image
    from starlette.datastructures import UploadFile

CHUNK = 1 << 20
log = logging.getLogger(__name__)


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """Read a Starlette `UploadFile` in chunks, refusing more than `limit` bytes (413)."""
    buf = bytearray()
    while True:
        chunk = await upload.read(CHUNK)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise MediaTooLargeError(f"{upload.filename or 'upload'} is larger than the {_mb(limit)} upload limit")
    return bytes(buf)


class CheckedMedia:
    """sha256 digests of media that already passed `check_limits` under one server's settings.

    Why: clients resend the same image (retries, a UI asking several questions, cached answers);
    opening it with a decoder each time costs more than the cached answer itself. The digest is
    computed anyway (it keys the result cache), identical bytes give identical verdicts, and the
    settings are fixed for the server's life. Bounded LRU, so memory stays flat.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, digest: object) -> bool:
        if digest in self._seen:
            self._seen.move_to_end(digest)  # type: ignore[arg-type]
            return True
        return False

    def add(self, digest: str) -> None:
        self._seen[digest] = None
        self._seen.move_to_end(digest)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def attachment_from_bytes(
    data: bytes, name: str | None, settings: Settings, checked: CheckedMedia | None = None,
) -> Attachment:
    """Sniff (415 when not media), then check the limits that need a decoder (pixels, video length)."""
    if len(data) > settings.max_upload_bytes:
        raise MediaTooLargeError(f"{name or 'upload'} is larger than the {_mb(settings.max_upload_bytes)} upload limit")
    att = Attachment.from_bytes(data, name=name)
    if checked is not None and att.sha256 in checked:
        return att
    check_limits(att, settings)
    if checked is not None and att.sha256:
        checked.add(att.sha256)
    return att


def check_limits(att: Attachment, settings: Settings) -> None:
    if att.data is None:
        return
    if att.kind == "image":
        _check_image(att, settings.max_image_pixels, settings.max_image_frames)
    elif att.kind == "video":
        _check_video(att, settings.max_video_s)


def _check_image(att: Attachment, max_pixels: int, max_frames: int = 64) -> None:
    """Refuse pictures over the pixel or frame limit (413) or unreadable (400), decoding nothing.

    Every frame of an animation counts against `max_pixels`: a small GIF can hold dozens of huge frames,
    and decoding them all is what the limit exists to prevent. Frames are counted from headers, stopping
    one past `max_frames`, so the check costs the same however many frames the file claims.
    """
    from PIL import Image, UnidentifiedImageError

    label = att.name or "image"
    try:
        with Image.open(io.BytesIO(att.data or b"")) as img:  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise MediaTooLargeError(
                    f"{label} is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
                )
            frames, pixels = _frames(img, att.data or b"", max_frames)
            if frames > max_frames:
                raise MediaTooLargeError(f"{label} has more than {max_frames} frames; the limit is {max_frames}")
            if pixels > max_pixels:
                raise MediaTooLargeError(
                    f"{label} is {frames} frames of {width}x{height} = {pixels:,} pixels; the limit is {max_pixels:,}"
                )
            img.verify()  # catches truncated or corrupt data cheaply, without a full decode
    except Image.DecompressionBombError as exc:  # PIL's own ceiling (2x its MAX_IMAGE_PIXELS): too large, not corrupt
        raise MediaTooLargeError(f"{label} is too large to open: {exc}") from None
    except MediaTooLargeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise BadInputError(f"{label} is not a readable {att.mime} image: {exc}") from None


# Formats whose frame count PIL reads from a header field (APNG acTL, WebP ANIM, HEIF/AVIF boxes, MPO index).
_HEADER_COUNTED = frozenset({"PNG", "WEBP", "HEIF", "AVIF", "MPO"})


def _frames(img: Image, data: bytes, max_frames: int) -> tuple[int, int]:
    """(frames, pixels over all frames), counting at most `max_frames + 1` frames.

    GIF is walked block by block here: PIL's `seek` decodes the previous frame and `n_frames` walks the
    whole file. Other multi-frame formats (TIFF pages, MPO) seek, which reads their headers only.
    """
    width, height = img.size
    if img.format == "GIF":
        return _gif_frames(data, max_frames + 1)
    if img.format in _HEADER_COUNTED or not getattr(img, "is_animated", False):
        frames = int(getattr(img, "n_frames", 1) or 1)
        return frames, frames * width * height
    frames, pixels = 1, width * height
    while frames <= max_frames:
        try:
            img.seek(frames)
        except EOFError:
            break
        frames += 1
        pixels += img.size[0] * img.size[1]
    img.seek(0)
    return frames, pixels


def _gif_frames(data: bytes, stop_at: int) -> tuple[int, int]:
    """(frames, frames x canvas area) of a GIF from its block structure, without LZW decoding.

    The canvas grows as PIL grows it (a frame reaching past the logical screen enlarges it), and every
    frame is counted at the canvas size, since that is what decoding one costs. Stops at `stop_at` frames.
    """
    if len(data) < 13:
        raise ValueError("truncated GIF header")
    width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    end = len(data)
    frames = 0
    while pos < end and frames < stop_at:
        tag = data[pos]
        pos += 1
        if tag == 0x3B:  # trailer
            break
        if tag == 0x21:  # extension: a label byte, then data sub-blocks
            pos = _skip_sub_blocks(data, pos + 1)
        elif tag == 0x2C:  # image descriptor: x, y, w, h, flags; a local palette; LZW code size; sub-blocks
            if pos + 9 > end:
                break
            x0, y0 = int.from_bytes(data[pos:pos + 2], "little"), int.from_bytes(data[pos + 2:pos + 4], "little")
            w, h = int.from_bytes(data[pos + 4:pos + 6], "little"), int.from_bytes(data[pos + 6:pos + 8], "little")
            flags = data[pos + 8]
            pos += 9 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
            width, height = max(width, x0 + w), max(height, y0 + h)
            frames += 1
        # any other byte is skipped, as PIL skips it
    return max(frames, 1), max(frames, 1) * width * height


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The offset after a chain of GIF data sub-blocks (length byte, bytes; a zero length ends it)."""
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def _check_video(att: Attachment, max_seconds: float) -> None:
    av = require("av", "video", "video uploads")
    try:
        with av.open(io.BytesIO(att.data or b"")) as container:
            if not container.streams.video:
                raise BadInputError(f"{att.name or 'video'} has no video stream")
            duration = _duration_s(container)
    except BadInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise BadInputError(f"{att.name or 'video'} is not a readable video: {exc}") from None
    if duration is not None and duration > max_seconds:
        raise MediaTooLargeError(f"{att.name or 'video'} lasts {duration:.1f} s; the limit is {max_seconds:g} s")


def _duration_s(container: InputContainer) -> float | None:
    if container.duration:
        return float(container.duration) / 1_000_000.0
    stream = container.streams.video[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


# --------------------------------------------------------------------------- URLs


async def attachment_from_url(url: str, settings: Settings, *, fetch_urls: bool = True) -> Attachment:
    """A data: URI decoded in place, an http(s) URL downloaded (see `fetch`), a YouTube link kept as a URL.

    `fetch_urls=False` (for `/v1/route`, which must not reach out anywhere) keeps http(s) URLs as
    unfetched URL attachments; the egress gate then explains that it cannot inspect them.
    """
    if url.startswith("data:"):
        budget = settings.max_upload_bytes * 4 // 3 + 64
        if len(url) > budget:
            raise MediaTooLargeError(f"an image data URI is larger than the {_mb(settings.max_upload_bytes)} limit")
        att = Attachment.from_url(url)
        check_limits(att, settings)
        return att
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"unsupported image URL scheme in {url[:60]!r}; use http(s) or a data: URI")
    att = Attachment.from_url(url)
    if att.kind == "youtube" or not fetch_urls:
        return att
    if not settings.fetch_image_urls:
        raise BadInputError(FETCH_DISABLED)
    data = await fetch(url, settings)
    name = url.split("?", 1)[0].rsplit("/", 1)[-1][:80] or "image"
    try:
        att = Attachment.from_bytes(data, name=name)
        if att.kind != "image":
            raise Unfetchable(f"{att.mime} is not an image")
        check_limits(att, settings)
    except MediaTooLargeError:
        raise  # only a host that passed every check can send bytes, so this answer probes nothing
    except (BadInputError, Unfetchable) as exc:
        log.info("image URL refused: %s", exc)
        raise BadInputError(FETCH_FAILED) from None
    return att


def parse_bool(value: Any, field: str) -> bool | None:
    """Form/JSON booleans: true/false/1/0/on/off/yes/no; empty means "not given"."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise BadInputError(f"{field} must be true or false, got {value!r}")


def parse_number(value: Any, field: str, kind: type = int) -> Any:
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf), float(10**400)
        raise BadInputError(f"{field} must be a number, got {str(value)[:40]!r}") from None


def _mb(n: int) -> str:
    return f"{n / 1e6:g} MB"
