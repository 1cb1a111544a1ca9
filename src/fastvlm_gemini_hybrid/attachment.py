"""`Attachment`: one piece of media (bytes with their sha256, or a URL), its MIME type sniffed from content.

Re-exported by types.py, where every other request type lives; nothing here imports a heavy dependency.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadInputError, UnsupportedMediaError

_YOUTUBE = re.compile(r"^https?://(www\.|m\.)?(youtube\.com/(watch|shorts|live)|youtu\.be/)", re.I)

# (magic bytes at offset, mime). Sniffed from content, never trusted from the file name.
_MAGIC: list[tuple[int, bytes, str]] = [
    # DICOM first: its 128-byte preamble is free-form and some files put a TIFF header there.
    (128, b"DICM", "application/dicom"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
]


def sniff_mime(data: bytes) -> str | None:
    """Return the MIME type of `data` judged by its first bytes, or None if unknown."""
    for offset, magic, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video/x-msvideo"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"heim", b"heis"):
            return "image/heic"
        if brand.startswith(b"qt"):
            return "video/quicktime"
        return "video/mp4"
    if data[:3] == b"\x00\x00\x01" and data[3:4] in (b"\xba", b"\xb3"):
        return "video/mpeg"
    if data[:1] == b"\x47" and len(data) > 188 and data[188:189] == b"\x47":
        return "video/mp2t"
    return None


SUPPORTED_MIME_PREFIXES = ("image/", "video/", "application/dicom")


@dataclass(frozen=True)
class Attachment:
    """One piece of media: bytes already read (with their sha256) or a URL.

    Build it with `from_path`, `from_bytes` or `from_url`; they validate and sniff the MIME type.
    """

    mime: str
    data: bytes | None = field(default=None, repr=False)
    url: str | None = None
    name: str | None = None
    sha256: str = ""

    @property
    def kind(self) -> str:
        """One of image, video, dicom, youtube, url."""
        if self.mime == "video/youtube":
            return "youtube"
        if self.mime == "application/dicom":
            return "dicom"
        if self.mime.startswith("video/"):
            return "video"
        if self.mime.startswith("image/"):
            return "image"
        return "url"

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0

    @classmethod
    def from_bytes(cls, data: bytes, name: str | None = None, mime: str | None = None) -> Attachment:
        if not data:
            raise BadInputError(f"{name or 'attachment'} is empty")
        sniffed = sniff_mime(data) or mime
        if sniffed is None or not sniffed.startswith(SUPPORTED_MIME_PREFIXES):
            label = name or "attachment"
            raise UnsupportedMediaError(
                f"{label} is not a supported image, video or DICOM file"
                + (f" (looks like {sniffed})" if sniffed else "")
            )
        return cls(mime=sniffed, data=data, name=name, sha256=hashlib.sha256(data).hexdigest())

    @classmethod
    def from_path(cls, path: str | Path) -> Attachment:
        p = Path(path)
        if not p.exists():
            raise BadInputError(f"no such file: {p}")
        if p.is_dir():
            raise BadInputError(f"{p} is a directory, not a file")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise BadInputError(f"cannot read {p}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, name=p.name)

    @classmethod
    def from_url(cls, url: str) -> Attachment:
        if _YOUTUBE.match(url):
            return cls(mime="video/youtube", url=url, name=url, sha256=_sha(url))
        if url.startswith("data:"):
            return cls._from_data_uri(url)
        if not url.startswith(("http://", "https://", "rtsp://")):
            raise BadInputError(f"unsupported URL scheme in {url!r}")
        return cls(mime="application/octet-stream", url=url, name=url, sha256=_sha(url))

    @classmethod
    def _from_data_uri(cls, uri: str) -> Attachment:
        import base64
        import binascii

        header, _, payload = uri.partition(",")
        if ";base64" not in header:
            raise BadInputError("data: URIs must be base64-encoded")
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise BadInputError("data: URI holds invalid base64") from None
        return cls.from_bytes(data, name="data-uri", mime=header[5:].split(";")[0] or None)

    @classmethod
    def parse(cls, value: str) -> Attachment:
        """A CLI-style reference: a URL (http, https, rtsp, data:, YouTube) or a file path."""
        if "://" in value or value.startswith("data:"):
            return cls.from_url(value)
        return cls.from_path(value)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["SUPPORTED_MIME_PREFIXES", "Attachment", "sniff_mime"]
