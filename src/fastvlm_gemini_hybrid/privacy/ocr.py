"""Read the text in a picture, locally: PP-OCRv4 through rapidocr-onnxruntime.

Why this engine: its wheel carries the PP-OCRv4 detection and recognition ONNX models (Apache-2.0),
so it runs offline with nothing to download, on onnxruntime, on every platform pip users have.
tesseract is better at dense Latin pages but is a system package pip users lack. The recognition
model is PaddleOCR's Chinese/English one: Latin and Han text read well; other scripts poorly (that
is why the gate also reads layout and faces, and why a picture it cannot read fails closed).

OCR's habits the detectors must survive (see text.py, numbers.py): spaces lost between words
("Dateofbirth"), a number split across boxes ("4111 | 1111 | 1111 | 1111"), O/0 and l/1 swaps.
Lines are returned in reading order, and `rows()` joins boxes that share a baseline so a split
number is one string again.

The engine is built once per process (~0.2 s) behind a lock; onnxruntime runs its sessions
thread-safely, so concurrent pictures share it.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import MissingDependencyError
from .findings import Box

INSTALL_HINT = "pip install 'rapidocr-onnxruntime>=1.4.4'"


class OcrUnavailable(RuntimeError):
    """No local OCR: pictures cannot be read, so they must not leave the machine."""


@dataclass(frozen=True)
class TextLine:
    text: str
    box: Box
    score: float


#: Engine settings. Recognition reads each text line scaled to this height, PaddleOCR's own 48 px. 32 px
#: costs a third of the time but misread an MRZ and an API key the 48-px reading got (docs/routing.md).
REC_HEIGHT = 48
#: Detection sees the picture with its shorter side at least this long (small pictures are enlarged).
DET_SIDE, DET_LIMIT = 736, "min"

_lock = threading.Lock()
_engine: Any = None


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def engine() -> Any:
    """The shared RapidOCR instance; raises `OcrUnavailable` naming the exact install command."""
    global _engine
    if _engine is not None:
        return _engine
    with _lock:
        if _engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                if sys.version_info >= (3, 13):
                    raise OcrUnavailable(
                        "no local OCR: rapidocr-onnxruntime supports Python 3.10-3.12 only; run this on one of "
                        "those so pictures can be inspected before they leave"
                    ) from None
                raise OcrUnavailable(f"no local OCR is installed ({exc.name or exc}); run: {INSTALL_HINT}") from None
            threads = _threads()
            _engine = RapidOCR(
                intra_op_num_threads=threads,
                inter_op_num_threads=1,
                # Low-contrast text (grey on white, light on dark) still counts: recall over speed.
                text_score=0.4,
                rec_img_shape=[3, REC_HEIGHT, 320],
                det_limit_side_len=DET_SIDE,
                det_limit_type=DET_LIMIT,
            )
    return _engine


def available() -> bool:
    try:
        engine()
    except (OcrUnavailable, MissingDependencyError):
        return False
    return True


def read_lines(image: Any) -> list[TextLine]:
    """Every text line in an RGB numpy array (H x W x 3, uint8), in reading order."""
    import numpy as np

    ocr = engine()
    result, _elapsed = ocr(np.ascontiguousarray(image))
    lines: list[TextLine] = []
    for points, text, score in result or ():
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
        box = (x0, y0, max(1, int(max(xs)) - x0), max(1, int(max(ys)) - y0))
        lines.append(TextLine(str(text), box, float(score)))
    return lines


def rows(lines: list[TextLine]) -> list[list[TextLine]]:
    """Lines grouped into rows (boxes whose vertical middles overlap), each row left to right."""
    ordered = sorted(lines, key=lambda line: (line.box[1] + line.box[3] / 2, line.box[0]))
    out: list[list[TextLine]] = []
    for line in ordered:
        middle = line.box[1] + line.box[3] / 2
        if out:
            last = out[-1]
            top = min(item.box[1] for item in last)
            bottom = max(item.box[1] + item.box[3] for item in last)
            if top <= middle <= bottom:
                last.append(line)
                continue
        out.append([line])
    return [sorted(row, key=lambda line: line.box[0]) for row in out]


def row_text(row: list[TextLine]) -> str:
    return " ".join(line.text for line in row)


def union(boxes: list[Box]) -> Box:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


__all__ = ["INSTALL_HINT", "OcrUnavailable", "TextLine", "available", "engine", "read_lines", "row_text", "rows",
           "union"]
