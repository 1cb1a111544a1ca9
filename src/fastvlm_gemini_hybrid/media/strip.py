"""Remove EXIF, XMP, GPS, IPTC and comments from images before they leave the machine.

Why re-encode instead of deleting known segments: metadata hides in many places (APP1 EXIF and
XMP, APP13 IPTC, COM comments, PNG text and eXIf chunks, WebP EXIF/XMP chunks). Decoding the
pixels and writing a new file with only the pixels (plus the ICC colour profile, which says
nothing about the person or place) removes all of them without a per-format blacklist. JPEG
keeps its quantisation tables (`quality="keep"`) so the image looks the same; the EXIF
orientation is applied first so the picture is not shown sideways once the tag is gone.

Fail closed: an image that cannot be re-encoded raises `UnsupportedMediaError` rather than being
sent with its metadata. Non-image data is returned unchanged (video metadata is out of scope).
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import MediaTooLargeError, UnsupportedMediaError

if TYPE_CHECKING:
    from PIL.Image import Image

# PIL format name for each MIME type we can write back in the same format.
_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}


def strip_metadata(data: bytes, mime: str) -> bytes:
    """Return `data` re-encoded without metadata (same format); non-images come back as is."""
    if not mime.startswith("image/"):
        return data
    fmt = _FORMATS.get(mime)
    if fmt is None:
        raise UnsupportedMediaError(
            f"cannot remove metadata from {mime} images before a cloud call; convert to JPEG or PNG"
        )
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaTooLargeError(f"{mime} image has too many pixels to process safely") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMediaError(f"cannot decode {mime} image to remove its metadata: {exc}") from None

    save_kwargs: dict[str, Any] = {}
    icc = image.info.get("icc_profile")
    if icc:
        save_kwargs["icc_profile"] = icc
    if fmt == "GIF" and getattr(image, "n_frames", 1) > 1:
        return _strip_animation(image, fmt)

    orientation = image.getexif().get(0x0112, 1)
    if fmt == "JPEG" and orientation in (1, None) and image.mode in ("L", "RGB", "CMYK"):
        # Same quantisation and subsampling as the original: no visible change.
        save_kwargs.update(quality="keep", subsampling="keep")
    else:
        image = ImageOps.exif_transpose(image) or image
        if fmt == "JPEG":
            save_kwargs["quality"] = 95
            if image.mode not in ("L", "RGB", "CMYK"):
                image = image.convert("RGB")
    if fmt == "WEBP":
        save_kwargs["lossless"] = image.info.get("compression") == "lossless"
        save_kwargs.setdefault("quality", 95)
    image.info = {}
    out = io.BytesIO()
    try:
        image.save(out, format=fmt, **save_kwargs)
    except (OSError, ValueError) as exc:
        raise UnsupportedMediaError(f"cannot re-encode {mime} image without metadata: {exc}") from None
    return out.getvalue()


def _strip_animation(image: Image, fmt: str) -> bytes:
    """Re-encode every frame of an animated image, dropping comments and extensions."""
    from PIL import ImageSequence

    frames = []
    durations = []
    for frame in ImageSequence.Iterator(image):
        durations.append(frame.info.get("duration", 100))
        frames.append(frame.copy())
    for frame in frames:
        frame.info = {}
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return out.getvalue()
