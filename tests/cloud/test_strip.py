"""Metadata stripping before cloud calls: what could identify a person or place must be gone."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from fastvlm_gemini_hybrid.errors import UnsupportedMediaError
from fastvlm_gemini_hybrid.media.strip import strip_metadata
from synth_media import picture

from .conftest import jpeg_with_gps


def _reopen(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_jpeg_loses_exif_gps_xmp_and_comment() -> None:
    original = jpeg_with_gps()
    assert b"SecretCamCorp" in original and b"Secret Lane" in original and b"GPSLatitude" in original
    assert _reopen(original).getexif().get_ifd(0x8825)  # the fixture really carries GPS

    clean = strip_metadata(original, "image/jpeg")

    for secret in (b"SecretCamCorp", b"SecretSoftware", b"Secret Lane", b"GPSLatitude", b"Exif\x00\x00"):
        assert secret not in clean
    image = _reopen(clean)
    assert image.format == "JPEG"
    assert len(image.getexif()) == 0
    assert not image.getexif().get_ifd(0x8825)
    assert "xmp" not in image.info and "comment" not in image.info and "exif" not in image.info
    assert image.size == (64, 48)


def test_jpeg_keeps_pixels_close_to_the_original() -> None:
    original = jpeg_with_gps()
    clean = strip_metadata(original, "image/jpeg")
    from PIL import ImageChops

    a, b = _reopen(original).convert("RGB"), _reopen(clean).convert("RGB")
    _low, high = zip(*ImageChops.difference(a, b).getextrema(), strict=True)
    assert max(high) <= 8


def test_orientation_is_applied_before_the_tag_is_dropped() -> None:
    original = jpeg_with_gps(size=(80, 40), orientation=6)  # 6 = rotate 90° clockwise to display
    clean = _reopen(strip_metadata(original, "image/jpeg"))
    assert clean.size == (40, 80)
    assert 0x0112 not in clean.getexif()


def test_png_loses_text_chunks_and_exif() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "51.5N 0.1W")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPS</x:xmpmeta>")
    exif = Image.Exif()
    exif[0x010F] = "SecretCamCorp"
    original = picture((1, 2, 3, 128), (20, 10), mode="RGBA", pnginfo=info, exif=exif)
    assert b"51.5N" in original and b"SecretCamCorp" in original

    clean = strip_metadata(original, "image/png")

    assert b"51.5N" not in clean and b"SecretCamCorp" not in clean and b"xmpmeta" not in clean
    image = _reopen(clean)
    assert image.mode == "RGBA" and image.getpixel((3, 3)) == (1, 2, 3, 128)
    assert not getattr(image, "text", {})


def test_webp_loses_exif() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCamCorp"
    webp = picture((9, 9, 9), (16, 16), "webp", exif=exif)
    assert b"SecretCamCorp" in webp
    assert b"SecretCamCorp" not in strip_metadata(webp, "image/webp")


def test_non_images_pass_through_untouched() -> None:
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 64
    assert strip_metadata(video, "video/mp4") is video


def test_undecodable_image_fails_closed() -> None:
    with pytest.raises(UnsupportedMediaError, match="cannot decode"):
        strip_metadata(b"\xff\xd8\xff" + b"garbage" * 10, "image/jpeg")


def test_unsupported_format_fails_closed() -> None:
    with pytest.raises(UnsupportedMediaError, match="image/heic"):
        strip_metadata(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 32, "image/heic")
