"""Fixtures for the privacy gate: pictures with known text, and a fake Gemini that counts every byte."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

_FONTS = Path("/usr/share/fonts/truetype/dejavu")


def _font(size: int):
    from PIL import ImageFont

    path = _FONTS / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size=size)


def text_png(lines: list[str], size: tuple[int, int] = (1000, 560), font_size: int = 40,
             background: tuple[int, int, int] = (250, 250, 245), fmt: str = "PNG") -> bytes:
    """A picture of `lines` of dark text, one per row, as encoded bytes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    font = _font(font_size)
    for i, line in enumerate(lines):
        draw.text((40, 40 + i * int(font_size * 1.7)), line, font=font, fill=(20, 20, 30))
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=95)
    return buf.getvalue()


CARD_LINES = ["NORTHWIND BANK", "4539 1488 0343 6467", "VALID THRU 09/29", "ALEX MORGAN"]
BENIGN_LINES = ["Harbour Museum", "Open daily 10:00 - 17:30", "Last entry 16:45", "Adults 12.50  Children 6.00"]


@pytest.fixture
def make_text_png() -> Callable[..., bytes]:
    return text_png


@pytest.fixture(scope="session")
def card_png() -> bytes:
    return text_png(CARD_LINES)


@pytest.fixture(scope="session")
def benign_png() -> bytes:
    return text_png(BENIGN_LINES)


@pytest.fixture(scope="session")
def face_png() -> bytes:
    """A real photograph of a person (scikit-image's astronaut, public domain)."""
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()
