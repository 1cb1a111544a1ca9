"""Turn uploaded bytes, data: URIs and http(s) URLs into validated `Attachment`s.

Why here and not in the processor: the server must refuse bad media *before* it costs a model
slot, with the right status (413 too big, 415 not media, 400 corrupt), and must bound what it
downloads on a client's behalf (size, time, redirects) so a URL cannot make it fetch forever.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

from .._optional import require
from ..config import Settings
from ..errors import BadInputError, MediaTooLargeError
from ..types import Attachment

CHUNK = 1 << 20


async def read_upload(upload: Any, limit: int) -> bytes:
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
        _check_image(att, settings.max_image_pixels)
    elif att.kind == "video":
        _check_video(att, settings.max_video_s)


def _check_image(att: Attachment, max_pixels: int) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(att.data or b"")) as img:  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise MediaTooLargeError(
                    f"{att.name or 'image'} is {width}x{height} = {width * height:,} pixels; "
                    f"the limit is {max_pixels:,}"
                )
            img.verify()  # catches truncated or corrupt data cheaply, without a full decode
    except MediaTooLargeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInputError(f"{att.name or 'image'} is not a readable {att.mime} image: {exc}") from None


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


def _duration_s(container: Any) -> float | None:
    if container.duration:
        return float(container.duration) / 1_000_000.0
    stream = container.streams.video[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


async def attachment_from_url(url: str, settings: Settings, client: Any = None) -> Attachment:
    """A data: URI decoded in place, an http(s) URL downloaded (bounded), a YouTube link kept as a URL."""
    if url.startswith("data:"):
        budget = settings.max_upload_bytes * 4 // 3 + 64
        if len(url) > budget:
            raise MediaTooLargeError(f"an image data URI is larger than the {_mb(settings.max_upload_bytes)} limit")
        att = Attachment.from_url(url)
        check_limits(att, settings)
        return att
    att = Attachment.from_url(url)
    if att.kind == "youtube":
        return att
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"unsupported image URL scheme in {url[:60]!r}; use http(s) or a data: URI")
    if not settings.fetch_image_urls:
        raise BadInputError("this server does not download image URLs; send the image as a data: URI")
    data = await fetch(url, settings.max_upload_bytes, client)
    return attachment_from_bytes(data, url.rsplit("/", 1)[-1][:80] or "image", settings)


async def fetch(url: str, limit: int, client: Any = None, timeout_s: float = 15.0) -> bytes:
    """GET `url` with a byte limit and a timeout; every failure is one `BadInputError` line."""
    import httpx

    own = client is None
    client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=True, max_redirects=3)
    try:
        async with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise BadInputError(f"fetching {url[:80]} answered HTTP {resp.status_code}")
            declared = int(resp.headers.get("content-length") or 0)
            if declared > limit:
                raise MediaTooLargeError(f"{url[:80]} is larger than the {_mb(limit)} upload limit")
            buf = bytearray()
            async for chunk in resp.aiter_bytes():
                buf += chunk
                if len(buf) > limit:
                    raise MediaTooLargeError(f"{url[:80]} is larger than the {_mb(limit)} upload limit")
            return bytes(buf)
    except httpx.HTTPError as exc:
        raise BadInputError(f"cannot fetch {url[:80]}: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            await client.aclose()


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
    except (TypeError, ValueError):
        raise BadInputError(f"{field} must be a number, got {value!r}") from None


def _mb(n: int) -> str:
    return f"{n / 1e6:g} MB"
