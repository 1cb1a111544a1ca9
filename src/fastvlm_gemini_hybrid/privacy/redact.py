"""Redaction: black out text regions and blur faces, leaving every other pixel as it was.

The redacted picture is written back in its own format (PNG stays lossless; JPEG at quality 95 so
the rest of the picture is not visibly touched) without metadata, because it goes straight to a cloud
backend. Boxes are grown by a small margin: OCR boxes hug the glyphs and a face box the features.
"""

from __future__ import annotations

import io
from typing import Any

from .findings import Box

TEXT_MARGIN = 0.15  # of the box height, on every side
FACE_MARGIN = 0.20  # of the box size, on every side


def _grow(box: Box, margin_x: float, margin_y: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    dx, dy = round(margin_x), round(margin_y)
    return max(0, x - dx), max(0, y - dy), min(size[0], x + w + dx), min(size[1], y + h + dy)


def redact_image(image: Any, *, text_boxes: list[Box] = (), face_boxes: list[Box] = ()) -> Any:  # type: ignore[assignment]
    """A copy of the RGB PIL `image` with `text_boxes` filled black and `face_boxes` blurred beyond recognition."""
    from PIL import ImageDraw, ImageFilter

    out = image.copy()
    draw = ImageDraw.Draw(out)
    for box in text_boxes:
        margin = box[3] * TEXT_MARGIN
        draw.rectangle(_grow(box, margin, margin, out.size), fill=(0, 0, 0))
    for box in face_boxes:
        x0, y0, x1, y1 = _grow(box, box[2] * FACE_MARGIN, box[3] * FACE_MARGIN, out.size)
        if x1 <= x0 or y1 <= y0:
            continue
        region = out.crop((x0, y0, x1, y1))
        # Pixelate, then blur: a blur alone can be partly undone; 8x8 blocks of a face cannot be.
        small = region.resize((max(1, (x1 - x0) // 16), max(1, (y1 - y0) // 16)))
        region = small.resize(region.size).filter(ImageFilter.GaussianBlur(radius=max(2, (x1 - x0) // 20)))
        out.paste(region, (x0, y0))
    return out


def encode_like(image: Any, mime: str) -> tuple[bytes, str]:
    """Encode `image` for the cloud: PNG/WebP/GIF/BMP/TIFF as PNG, JPEG as JPEG quality 95. (bytes, mime)."""
    buf = io.BytesIO()
    if mime == "image/jpeg":
        image.save(buf, format="JPEG", quality=95, subsampling=0)
        return buf.getvalue(), "image/jpeg"
    image.save(buf, format="PNG")
    return buf.getvalue(), "image/png"


__all__ = ["encode_like", "redact_image"]
