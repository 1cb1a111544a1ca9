"""DICOM attachments as images, for backends that read pictures, not DICOM.

The router lists a local backend for a DICOM request (it can be served: this module adapts it); the
processor calls `as_images` just before a backend whose capabilities lack "dicom". Rendering follows
the medical pipeline (HU windows for CT, VOI LUT for the rest, representative frames for cine), and
only pixels leave this function: no header, so no patient data reaches the model's prompt.
"""

from __future__ import annotations

import io
from dataclasses import replace

from .._optional import require
from ..errors import UnsupportedMediaError
from ..types import Attachment, Request


def dicom_to_image(attachment: Attachment) -> Attachment:
    """One DICOM attachment rendered to a PNG attachment (pixels only)."""
    pydicom = require("pydicom", "medical", "reading DICOM attachments")
    from ..medical.render import render_dataset

    try:
        dataset = pydicom.dcmread(io.BytesIO(attachment.data or b""))
    except Exception as exc:  # noqa: BLE001 - pydicom raises several unrelated types for bad files
        raise UnsupportedMediaError(f"{attachment.name or 'attachment'} is not a readable DICOM file: {exc}") from None
    rendered = render_dataset(dataset, "DICOM image")
    return Attachment.from_bytes(rendered.png, name="dicom-render.png")


def as_images(request: Request) -> Request:
    """`request` with every DICOM attachment replaced by its rendered image (same request otherwise)."""
    if not any(a.kind == "dicom" for a in request.attachments):
        return request
    converted = tuple(dicom_to_image(a) if a.kind == "dicom" else a for a in request.attachments)
    return replace(request, attachments=converted)
