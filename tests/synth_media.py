"""Media the tests synthesise, shared by every test area: plain pictures and short H.264 clips.

This is the one picture factory of the suite (tests/core/test_test_layout.py keeps it so): a test that
needs a picture asks here instead of writing its own `Image.new(...).save(...)`.

    picture(color=(200, 30, 30), size=(64, 48), fmt="png")  -> bytes of a plain picture
    picture(fmt="jpeg", quality=90), picture(text=["line one", "line two"], size=(1000, 560))
    picture_file(tmp_path, "photo.jpg", color=...)           -> Path of that picture, format from the suffix
    picture_attachment(name="photo.png", color=...)          -> an `Attachment` of that picture
    blank(color, size, mode)                                 -> the PIL image itself, to draw on
    encode(image_or_frames, fmt, **save_kw)                  -> any PIL image (or frames: animated) as bytes

Every argument is passed straight to Pillow, so the same call always gives the same bytes. Specialised
generators that draw real content (tests/privacy/corpus.py and holdout_corpus.py, tests/video/synth.py,
the DICOM builders in tests/medical) stay where they are.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from fastvlm_gemini_hybrid.types import Attachment

#: A Pillow colour: an RGB(A) tuple, one band value (modes "L", "P", "1") or a name such as "white".
Color = tuple[int, ...] | int | str

_FONTS = Path("/usr/share/fonts/truetype/dejavu")
_FORMATS = {"jpg": "JPEG", "tif": "TIFF"}


def blank(color: Color = (200, 30, 30), size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A plain `mode` image of `size` filled with `color`: the canvas every synthetic picture starts from."""
    from PIL import Image

    return Image.new(mode, size, color)


def encode(image: Image.Image | Sequence[Image.Image], fmt: str = "png", **save_kw: Any) -> bytes:
    """`image` encoded as `fmt` ("png", "jpeg"/"jpg", "gif", "webp", ...); `save_kw` go to `Image.save`
    (quality, exif, pnginfo, duration, ...). A sequence of frames becomes one animated picture."""
    buf = io.BytesIO()
    fmt = _FORMATS.get(fmt.lower(), fmt.upper())
    if isinstance(image, Sequence):
        first, *rest = image
        first.save(buf, format=fmt, save_all=True, append_images=rest, **save_kw)
    else:
        image.save(buf, format=fmt, **save_kw)
    return buf.getvalue()


def _font(size: int) -> Any:
    from PIL import ImageFont

    path = _FONTS / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size=size)


def picture(color: Color = (200, 30, 30), size: tuple[int, int] = (64, 48), fmt: str = "png", *,
            mode: str = "RGB", text: str | Sequence[str] | None = None, font_size: int = 40,
            text_color: Color = (20, 20, 30), **save_kw: Any) -> bytes:
    """A plain picture of `size` in `color`, encoded as `fmt` (see `encode` for `save_kw`).

    `text`: one line or a list of lines of dark DejaVu Sans text, one per row from (40, 40), rows
    `font_size * 1.7` apart: a picture whose words an OCR reads back (the privacy tests' cards and signs).
    """
    image = blank(color, size, mode)
    if text is not None:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(image)
        font = _font(font_size)
        for i, line in enumerate([text] if isinstance(text, str) else text):
            draw.text((40, 40 + i * int(font_size * 1.7)), line, font=font, fill=text_color)
    return encode(image, fmt, **save_kw)


def picture_file(directory: Path, name: str = "photo.png", **kw: Any) -> Path:
    """`picture(**kw)` written to `directory / name`; the format follows the suffix unless `fmt` is given."""
    kw.setdefault("fmt", Path(name).suffix.lstrip(".") or "png")
    path = Path(directory) / name
    path.write_bytes(picture(**kw))
    return path


def picture_attachment(name: str | None = "photo.png", **kw: Any) -> Attachment:
    """`picture(**kw)` as an `Attachment` named `name` (None: no name, as an upload without one)."""
    from fastvlm_gemini_hybrid.types import Attachment

    return Attachment.from_bytes(picture(**kw), name=name)


def make_clip(path: Path, colours: list[tuple[int, int, int]], seconds_each: float = 2.0, fps: int = 5) -> Path:
    """An H.264 clip of solid colours, each held `seconds_each`: scene changes at known times."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for colour in colours:
            frame_bgr = np.zeros((48, 64, 3), np.uint8)
            frame_bgr[:] = colour
            frame_bgr[8:20, 8:30] = (255 - colour[0], 255 - colour[1], 255 - colour[2])
            for _ in range(int(seconds_each * fps)):
                frame = av.VideoFrame.from_ndarray(frame_bgr, format="bgr24")
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
