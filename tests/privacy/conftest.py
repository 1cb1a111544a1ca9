"""Fixtures for the privacy gate: pictures with known text, and a fake Gemini that counts every byte."""

from __future__ import annotations

import pytest

from synth_media import encode, picture

CARD_LINES = ["NORTHWIND BANK", "4539 1488 0343 6467", "VALID THRU 09/29", "ALEX MORGAN"]
BENIGN_LINES = ["Harbour Museum", "Open daily 10:00 - 17:30", "Last entry 16:45", "Adults 12.50  Children 6.00"]
#: The pages those lines are printed on: dark 40 px text on off-white, 1000x560.
PAGE_COLOR, PAGE_SIZE = (250, 250, 245), (1000, 560)


@pytest.fixture(scope="session")
def card_png() -> bytes:
    return picture(PAGE_COLOR, PAGE_SIZE, text=CARD_LINES, font_size=40)


@pytest.fixture(scope="session")
def benign_png() -> bytes:
    return picture(PAGE_COLOR, PAGE_SIZE, text=BENIGN_LINES, font_size=40)


@pytest.fixture(scope="session")
def face_png() -> bytes:
    """A real photograph of a person (scikit-image's astronaut, public domain)."""
    from PIL import Image
    from skimage import data

    return encode(Image.fromarray(data.astronaut()))
