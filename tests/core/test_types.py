from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.errors import BadInputError, UnsupportedMediaError
from fastvlm_gemini_hybrid.types import Attachment, Domain, Generation, Mode, Request, sniff_mime


def test_mime_is_sniffed_from_content_not_the_name(tmp_path: Path, png_bytes: bytes) -> None:
    lying = tmp_path / "photo.jpg"
    lying.write_bytes(png_bytes)
    att = Attachment.from_path(lying)
    assert att.mime == "image/png"
    assert att.kind == "image"
    assert att.sha256 == hashlib.sha256(png_bytes).hexdigest()


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\xff\xd8\xff\xe0" + b"\0" * 20, "image/jpeg"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (b"\0\0\0\x18ftypisom" + b"\0" * 8, "video/mp4"),
        (b"\0" * 128 + b"DICM" + b"\0" * 8, "application/dicom"),
        (b"hello world, plain text", None),
    ],
)
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff_mime(head) == mime


def test_missing_directory_and_unsupported_files_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        Attachment.from_path(tmp_path / "nope.png")
    with pytest.raises(BadInputError, match="is a directory"):
        Attachment.from_path(tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UnsupportedMediaError, match="not a supported"):
        Attachment.from_path(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty"):
        Attachment.from_path(empty)


def test_urls_youtube_and_data_uris(png_bytes: bytes) -> None:
    import base64

    yt = Attachment.parse("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert yt.kind == "youtube" and yt.data is None
    assert Attachment.parse("https://youtu.be/dQw4w9WgXcQ").kind == "youtube"
    data = Attachment.parse("data:image/png;base64," + base64.b64encode(png_bytes).decode())
    assert data.kind == "image" and data.data == png_bytes
    with pytest.raises(BadInputError):
        Attachment.parse("ftp://example.org/x.png")


def test_enums_parse_user_values_with_clear_errors() -> None:
    assert Mode.parse("LOCAL_ONLY") is Mode.LOCAL_ONLY
    assert Domain.parse("medical") is Domain.MEDICAL
    with pytest.raises(BadInputError, match="choose one of: local-only"):
        Mode.parse("turbo")


def test_request_and_generation_validate() -> None:
    with pytest.raises(BadInputError):
        Request(prompt="   ")
    with pytest.raises(BadInputError):
        Request(prompt="hi", max_latency_ms=0)
    with pytest.raises(ValueError):
        Generation(text="x", model="m", confidence=1.5)
