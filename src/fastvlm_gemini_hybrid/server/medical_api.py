"""`POST /v1/medical/render`: one slice of an uploaded DICOM series as a PNG, through a named window.

The web UI's medical view shows the study it just sent to the medical agent: a slider over the slices
and a button per window preset. Rendering is local (pydicom, numpy and Pillow on this machine); no
model is asked and nothing is fetched, so the endpoint takes no work-gate slot and no URL.

Input as the other endpoints read it (`inputs.read_input`): multipart `file` parts (the slices of one
study; repeatable) and the fields `window` (a preset name, see below), `slice` (0-based, in the
series' anatomical order; default the middle one) and `info`. The series rendered is the one the
medical agent would read (`medical.ingest.scan`). Answers:

* `info=true`: JSON `{"slices", "presets", "window", "slice", "modality", "skipped"}`: the slice count
  (frames of multi-frame files counted one by one), the presets this series can be shown with, and the
  default window and slice.
* otherwise: `image/png`, the slice's pixels alone (a fresh PNG with no text chunks: no header value,
  identifying or not, reaches it), with `X-Slice`, `X-Slice-Count` and `X-Window` headers.

Presets: CT gets the Hounsfield windows `medical.render` knows (`lung`, `soft-tissue`, `bone`, `brain`,
`subdural`, `liver`) and `default`; every other modality only `default`. `default` is the file's own
window (or VOI LUT, else robust percentiles; colour images as they are). Errors are the server's JSON:
400 for a file that is not DICOM, an unknown preset or a slice out of range; 413 for an upload over
the limit.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..attachment import sniff_mime
from ..errors import BadInputError
from ..types import Attachment
from .api import state_of
from .inputs import read_input
from .media import parse_bool, parse_number

router = APIRouter()

#: the preset that means "as the file says" (its window, VOI LUT, or percentiles)
DEFAULT = "default"


@dataclass
class SliceRef:
    """One displayable slice: a file and a frame in it."""

    path: Path
    frame: int


@router.post("/v1/medical/render")
async def render_slice(request: Request) -> Any:
    """A slice as PNG, or (`info=true`) the series' slice count and presets as JSON."""
    state = state_of(request)
    fields, uploads = await read_input(request, state, media=False, fetch_urls=False)
    files = [_upload(item, i) for i, item in enumerate(uploads, 1)]
    if not files:
        raise BadInputError("upload the DICOM files of one study as 'file' parts")
    info = parse_bool(fields.get("info"), "info") or False
    window = fields.get("window") or None
    if window is not None and not isinstance(window, str):
        raise BadInputError("window must be a string")
    index = parse_number(fields.get("slice"), "slice")
    with tempfile.TemporaryDirectory(prefix="fastvlm-render-") as folder:  # 0700, removed on return
        root = Path(folder)
        for i, (_name, data) in enumerate(files, 1):
            (root / f"slice-{i}.dcm").write_bytes(data)  # never the client's file name: it may carry the patient's
        return await asyncio.to_thread(_answer, root, window, index, info)


def _upload(item: tuple[str, bytes] | Attachment, i: int) -> tuple[str, bytes]:
    """(name, bytes) of one upload that is DICOM; anything else is a 400."""
    name, data = (item.name or f"attachment-{i}", item.data) if isinstance(item, Attachment) else item
    if data is None:
        raise BadInputError("upload the DICOM files; this endpoint fetches nothing")
    if sniff_mime(data[:512]) != "application/dicom":
        raise BadInputError(f"file {i} is not a DICOM file (no DICM marker)")
    return name, data


def _answer(root: Path, window: str | None, index: int | None, info: bool) -> Response:
    """Scan the uploads, pick the series and slice, and answer JSON or a PNG (runs in a worker thread)."""
    from ..medical.ingest import scan

    found = scan(root)
    series = found.studies[0].selected
    if series is None:
        raise BadInputError("the upload holds no readable image series")
    slices = _slices(series.ordered())
    modality = series.modality
    presets = _presets(modality)
    chosen = window or _default_window(modality, series.body_part)
    if chosen not in presets:
        raise BadInputError(f"unknown window {chosen!r} for {modality or 'this series'}; one of: {', '.join(presets)}")
    index = len(slices) // 2 if index is None else index
    if not 0 <= index < len(slices):
        raise BadInputError(f"slice must be from 0 to {len(slices) - 1}, got {index}")
    if info:
        return JSONResponse({"slices": len(slices), "presets": presets, "window": chosen, "slice": index,
                             "modality": modality, "skipped": len(found.skipped)},
                            headers={"Cache-Control": "no-store"})
    png = _render(slices[index], chosen)
    return Response(png, media_type="image/png", headers={
        "Cache-Control": "no-store", "X-Slice": str(index), "X-Slice-Count": str(len(slices)), "X-Window": chosen})


def _slices(files: list[Any]) -> list[SliceRef]:
    """Every frame of every file, in the series' anatomical order."""
    return [SliceRef(f.path, frame) for f in files for frame in range(max(int(f.frames or 1), 1))]


def _presets(modality: str) -> list[str]:
    from ..medical.render import WINDOWS

    return [*WINDOWS, DEFAULT] if modality.upper() == "CT" else [DEFAULT]


def _default_window(modality: str, body_part: str) -> str:
    """The window the medical agent shows first for this body part (CT); the file's own otherwise."""
    from ..medical.render import ct_windows

    return ct_windows(body_part)[0] if modality.upper() == "CT" else DEFAULT


def _render(ref: SliceRef, window: str) -> bytes:
    """The slice through `window`, scaled like a montage panel, as a fresh PNG (pixels only)."""
    from ..medical import render
    from ..medical.ingest import load_dataset, load_pixels

    ds = load_dataset(ref.path)
    frames = render.frames_of(ds, load_pixels(ds, "slice"))
    frame = frames[min(ref.frame, len(frames) - 1)]
    if window == DEFAULT:
        color = int(ds.get("SamplesPerPixel", 1) or 1) > 1 or (
            str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR")
        panel = render.color_render(ds, frame) if color else render.voi_render(ds, frame)
    else:
        [(_label, panel)] = render.render_frame(ds, frame, (window,))
    return render._encode(render.montage([panel]))  # the one PNG encoder the medical agent uses
