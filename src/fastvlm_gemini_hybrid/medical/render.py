"""Turn DICOM pixel data into the 8-bit pictures a vision-language model can read.

Why per modality: raw DICOM values are not pixels. CT stores attenuation that only means something
in Hounsfield units seen through a named window (lung, soft tissue, bone); MR and ultrasound carry
their own VOI LUT or none at all (then robust percentiles); MONOCHROME1 radiographs are stored
inverted; cine loops need a few representative frames, not frame 0. The model gets one image per
study: a montage whose panels the prompt names left to right.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import UnsupportedMediaError
from . import EXTRA
from .ingest import Study, load_dataset, load_pixels

#: name -> (center, width) in Hounsfield units
WINDOWS: dict[str, tuple[float, float]] = {
    "soft-tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "liver": (60.0, 160.0),
}
_CT_WINDOW_SETS: dict[str, tuple[str, ...]] = {
    "HEAD": ("brain", "subdural", "bone"),
    "BRAIN": ("brain", "subdural", "bone"),
    "CHEST": ("lung", "soft-tissue", "bone"),
    "THORAX": ("lung", "soft-tissue", "bone"),
    "LUNG": ("lung", "soft-tissue", "bone"),
}
_DEFAULT_CT_WINDOWS = ("soft-tissue", "lung", "bone")
TILE = 512  # longest side of one montage panel, in pixels


@dataclass
class Rendered:
    """The image the model sees, plus what it shows (for the prompt and the report)."""

    png: bytes
    panels: list[str]
    width: int
    height: int
    pixels: Any = field(repr=False, default=None)  # uint8 montage, for the burned-in text check
    source: Any = field(repr=False, default=None)  # the dataset rendered (header used for de-id/SR)


def _np() -> Any:
    return require("numpy", EXTRA, "rendering medical images")


def apply_window(values: Any, center: float, width: float) -> Any:
    """DICOM PS3.3 C.11.2.1.2 linear windowing to 0..255 (uint8)."""
    np = _np()
    width = max(float(width), 1.0)
    x = np.asarray(values, dtype=np.float32)
    low = center - 0.5 - (width - 1) / 2
    scaled = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    out = np.clip(scaled, 0.0, 255.0)
    out[x <= low] = 0.0
    out[x > center - 0.5 + (width - 1) / 2] = 255.0
    return np.rint(out).astype(np.uint8)


def to_hounsfield(ds: Any, pixels: Any) -> Any:
    """Stored values -> Hounsfield units via Rescale Slope/Intercept (float32)."""
    np = _np()
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return np.asarray(pixels, dtype=np.float32) * slope + intercept


def percentile_window(values: Any, low: float = 1.0, high: float = 99.0) -> Any:
    """Stretch between robust percentiles: for MR/US with no VOI LUT, where one hot pixel must not
    flatten the rest of the image to black."""
    np = _np()
    x = np.asarray(values, dtype=np.float32)
    lo, hi = np.percentile(x, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return np.rint(np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def _first(value: Any) -> float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def voi_render(ds: Any, frame: Any) -> Any:
    """MR, US, DX, CR, ...: the file's own window if it has one, its VOI LUT table, else percentiles;
    MONOCHROME1 is inverted so bone is white as radiologists expect."""
    np = _np()
    px = require("pydicom.pixels", EXTRA, "rendering medical images")
    values = px.apply_modality_lut(frame, ds) if "RescaleSlope" in ds or "ModalityLUTSequence" in ds else frame
    try:
        if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
            out = apply_window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
        elif "VOILUTSequence" in ds:
            out = percentile_window(px.apply_voi_lut(values, ds), 0.0, 100.0)
        else:
            out = percentile_window(values)
    except (ValueError, TypeError, IndexError):
        out = percentile_window(values)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = np.uint8(255) - out
    return out


def color_render(ds: Any, frame: Any) -> Any:
    """RGB (pydicom already converts YBR) or PALETTE COLOR -> 8-bit RGB."""
    np = _np()
    px = require("pydicom.pixels", EXTRA, "rendering medical images")
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        frame = px.apply_color_lut(frame, ds)
    bits = int(ds.get("BitsStored", 8) or 8)
    if frame.dtype != np.uint8 or bits > 8:
        frame = percentile_window(frame, 0.0, 100.0)
    return np.asarray(frame, dtype=np.uint8)


def frames_of(ds: Any, pixels: Any) -> list[Any]:
    """Split a decoded array into frames: (R,C), (F,R,C), (R,C,3) or (F,R,C,3)."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    single_ndim = 2 if samples == 1 else 3
    if n > 1 and pixels.ndim == single_ndim + 1:
        return [pixels[i] for i in range(pixels.shape[0])]
    return [pixels]


def representative_frames(frames: list[Any], k: int = 4) -> list[int]:
    """Indices of up to `k` frames spread over a cine loop, skipping blank ones (a flat frame tells
    the model nothing)."""
    np = _np()
    n = len(frames)
    if n <= k:
        return list(range(n))
    candidates = [int(np.rint(i)) for i in np.linspace(0.1 * (n - 1), 0.9 * (n - 1), k)]
    picked = [i for i in dict.fromkeys(candidates) if float(np.asarray(frames[i]).std()) > 1.0]
    return picked or candidates[:1]


def render_frame(ds: Any, frame: Any, windows: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """One frame -> labelled 8-bit panels (several for CT windows, one otherwise)."""
    modality = str(ds.get("Modality", "")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples > 1 or str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        return [("color", color_render(ds, frame))]
    if modality == "CT":
        hu = to_hounsfield(ds, frame)
        names = windows or ct_windows(str(ds.get("BodyPartExamined", "")))
        return [(f"{name} window", apply_window(hu, *WINDOWS[name])) for name in names]
    label = "inverted MONOCHROME1" if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1" else ""
    return [(label or "image", voi_render(ds, frame))]


def ct_windows(body_part: str) -> tuple[str, ...]:
    return _CT_WINDOW_SETS.get(body_part.strip().upper(), _DEFAULT_CT_WINDOWS)


def montage(panels: list[Any], cols: int | None = None) -> Any:
    """Tile 8-bit panels (each scaled to fit TILE) into one image: grayscale when every panel is
    gray (a third of the bytes to encode and send), RGB as soon as one is in colour."""
    np = _np()
    image_mod = require("PIL.Image", EXTRA, "rendering medical images")
    mode = "L" if all(np.asarray(p).ndim == 2 for p in panels) else "RGB"
    tiles = []
    for panel in panels:
        img = image_mod.fromarray(np.ascontiguousarray(panel)).convert(mode)
        if max(img.size) > TILE:
            img.thumbnail((TILE, TILE))
        tiles.append(img)
    cols = cols or len(tiles)
    rows = -(-len(tiles) // cols)
    w, h = max(t.width for t in tiles), max(t.height for t in tiles)
    canvas = image_mod.new(mode, (w * cols, h * rows))
    for i, tile in enumerate(tiles):
        canvas.paste(tile, ((i % cols) * w, (i // cols) * h))
    return np.asarray(canvas)


def _encode(pixels: Any) -> bytes:
    image_mod = require("PIL.Image", EXTRA, "rendering medical images")
    buf = io.BytesIO()
    # A fresh PNG: no metadata survives. Level 1: CT noise barely compresses, and zlib's default
    # level spent ~9x longer for a few percent smaller files (benchmarks/medical_throughput.py).
    image_mod.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_dataset(ds: Any, name: str = "DICOM", windows: tuple[str, ...] = ()) -> Rendered:
    """Render one DICOM instance: CT windows side by side, cine as up to four frames, else one image."""
    frames = frames_of(ds, load_pixels(ds, name))
    labels: list[str] = []
    panels: list[Any] = []
    if len(frames) > 1:
        for i in representative_frames(frames):
            for label, panel in render_frame(ds, frames[i], windows):
                labels.append(f"frame {i + 1}/{len(frames)} ({label})")
                panels.append(panel)
        cols = 2 if len(panels) == 4 else None
    else:
        for label, panel in render_frame(ds, frames[0], windows):
            labels.append(label)
            panels.append(panel)
        cols = None
    pixels = montage(panels, cols)
    return Rendered(_encode(pixels), labels, pixels.shape[1], pixels.shape[0], pixels, ds)


def render_study(study: Study, windows: tuple[str, ...] = ()) -> Rendered:
    """The key image of a study: the middle slice of the chosen series (CT/MR volumes), the
    representative frames of a cine, or the single image of a radiograph or PNG/JPEG."""
    if study.plain_image is not None:
        return render_plain(study.plain_image)
    if study.selected is None:
        raise UnsupportedMediaError("the study has no readable image series")
    files = study.selected.ordered()
    key = files[len(files) // 2]
    ds = load_dataset(key.path)
    return render_dataset(ds, key.path.name, windows)


def render_plain(path: Path) -> Rendered:
    """PNG/JPEG already hold display values; re-encode the pixels alone (EXIF/text chunks dropped)."""
    np = _np()
    image_mod = require("PIL.Image", EXTRA, "rendering medical images")
    try:
        with image_mod.open(path) as img:
            img.load()
            gray = img.mode in ("L", "I", "I;16", "F", "1")
            pixels = np.asarray(img.convert("L" if gray else "RGB"))
    except (OSError, ValueError) as exc:
        raise UnsupportedMediaError(f"{path.name}: unreadable image ({type(exc).__name__})") from None
    pixels = montage([pixels])
    return Rendered(_encode(pixels), ["image"], pixels.shape[1], pixels.shape[0], pixels, None)
