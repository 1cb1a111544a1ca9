"""Static int8 quantisation (with calibration) of the FastVLM vision encoder for ONNX Runtime on CPU.

Why: FastViT-HD spends about 70 % of its CPU time in its 186 convolutions, and `quantize_dynamic` (the
former `vision="int8"` recipe of models/onnx_variants.py) leaves convolutions in fp32, so only a static,
calibrated quantisation can make them int8. What was measured (benchmarks/ort_vision_int8.py, the
full-size random-weight FastVLM-0.5B at 1024 x 1024, 2 threads, AVX2 + FMA without VNNI, ORT 1.32):

- every Conv int8 (QDQ, per-channel, MinMax): 0.7 to 0.8 x the fp32 time, but the features are lost
  (relative error 2.6 on held-out photographs, cosine 0.35). The 90 depthwise convolutions (3x3 / 7x7,
  few taps, heavy-tailed inputs) carry almost all the error, and in int8 they are *slower* than ORT's
  fp32 NCHWc depthwise kernels (int8 convolutions run NHWC, with a Transpose at every layout change).
- only the 96 dense convolutions (group 1: the 1x1 MLP / projection convolutions, most of the FLOPs)
  int8, the depthwise ones fp32: about 0.7 x the fp32 time, relative error about 0.2, cosine about
  0.97. Percentile calibration at 99.99 beats 99.999, 99.9, Entropy and MinMax; per-channel weights
  are kept; `reduce_range` (7-bit weights) avoids the u8s8 `vpmaddubsw` saturation of AVX2 hosts
  without VNNI (less error, same speed; U8U8 is as accurate but slower). QOperator runs like QDQ, and
  int8 weight MatMuls (attention, projector) on top add error and no measurable speed.

The random weights say nothing about answer quality: the error above is that of a random network, and
a trained one must be re-measured (with the same benchmark) before this is offered to users.

Calibration runs the fp32 model on each picture and keeps histograms of every tensor a quantised
Conv reads or writes; pictures are collected one at a time (`CalibStridedMinMax` = 1), so peak memory
stays near one 1024 x 1024 pass (about 7 GB for the full-size encoder), whatever their number.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require

#: scikit-image photographs used for calibration; keep evaluation pictures out of this list.
CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea")
CALIBRATION_METHODS = ("percentile", "minmax", "entropy")


def dense_conv_nodes(model: Any) -> list[str]:
    """Names of the Conv nodes with group == 1 (pointwise / dense); depthwise convolutions stay fp32."""
    onnx = require("onnx", "browser", "quantising ONNX models")
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        group = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
        if group == 1:
            names.append(node.name)
    return names


def calibration_pixels(model_dir: str | Path, photos: Iterable[str] = CALIBRATION_PHOTOS,
                       image_size: int | None = None) -> Iterator[np.ndarray]:
    """`pixel_values` float32 [1, 3, H, W] of scikit-image photographs, prepared as the engine does
    (pad to a square with the processor's mean colour, then the model's own image processor)."""
    skdata = require("skimage.data", "browser", "calibration photographs (scikit-image)")
    from PIL import Image

    from .ort_processor import load_parts
    from .preprocess import fill_colour, pad_to_square, set_input_size

    processor = load_parts(Path(model_dir)).processor.image_processor  # the ONNX engine's own preprocessing
    if image_size:
        set_input_size(processor, image_size)
    fill = fill_colour(processor)
    for name in photos:
        array = np.asarray(getattr(skdata, name)())
        image = pad_to_square(Image.fromarray(array).convert("RGB"), fill)
        yield np.asarray(processor(images=[image], return_tensors="np")["pixel_values"], dtype=np.float32)


class _Reader:
    """A CalibrationDataReader over pixel batches, with the `set_range` the strided collection uses."""

    def __init__(self, batches: list[np.ndarray], input_name: str) -> None:
        self.batches, self.input_name = batches, input_name
        self.start, self.end = 0, len(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, end_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= self.end:
            return None
        self.start += 1
        return {self.input_name: np.ascontiguousarray(self.batches[self.start - 1], dtype=np.float32)}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter({self.input_name: b} for b in self.batches)


def quantize_vision_static(src: str | Path, dst: str | Path, pixel_batches: Iterable[np.ndarray], *,
                           method: str = "percentile", percentile: float = 99.99, dense_only: bool = True,
                           per_channel: bool = True, reduce_range: bool = True,
                           quant_format: str = "qdq") -> None:
    """Write the static int8 quantisation of the vision encoder `src` to `dst` (weights in `<dst>.data`).

    Calibrates on `pixel_batches` (the encoder's `pixel_values`, float32 [N, 3, H, W]); quantises the
    dense (group 1) Conv nodes only unless `dense_only` is False; activations uint8 (asymmetric),
    weights int8 (per output channel, 7-bit with `reduce_range`). `quant_format` "qdq" (what ORT's CPU
    graph optimiser fuses into QLinearConv) or "qoperator" (QLinearConv written directly).
    """
    onnx = require("onnx", "browser", "quantising ONNX models")
    require("onnxruntime", "browser", "quantising ONNX models")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .onnx_export import quiet_logs

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    if quant_format not in ("qdq", "qoperator"):
        raise ValueError(f"unknown quantisation format {quant_format!r}; choose qdq or qoperator")
    src, dst = Path(src), Path(dst)
    batches = [np.asarray(b, dtype=np.float32) for b in pixel_batches]
    if not batches:
        raise ValueError("calibration needs at least one batch of pixel_values")
    graph = onnx.load(str(src), load_external_data=False)
    input_name = graph.graph.input[0].name
    nodes = dense_conv_nodes(graph) if dense_only else None
    extra: dict[str, Any] = {"CalibStridedMinMax": 1}  # collect picture by picture (any calibrator)
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    calibrate = {"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax,
                 "entropy": CalibrationMethod.Entropy}[method]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with (tempfile.TemporaryDirectory(prefix=".visq-", dir=dst.parent) as tmp, quiet_logs(),
          contextlib.redirect_stdout(io.StringIO())):  # the histogram calibrators print their progress
        out = Path(tmp) / dst.name
        quantize_static(src, out, _Reader(batches, input_name),
                        quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
                        op_types_to_quantize=["Conv"], nodes_to_quantize=nodes, per_channel=per_channel,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=calibrate,
                        use_external_data_format=True, extra_options=extra)
        data = out.with_name(out.name + ".data")
        if not data.is_file():  # small models may come back with their weights inline: keep one layout
            from .onnx_export import consolidate

            consolidate(out, out)
        # the graph names its data file by base name, so move the data first, then the graph
        os.replace(data, dst.with_name(dst.name + ".data"))
        os.replace(out, dst)


def int8_conv_count(path: str | Path) -> int:
    """How many convolutions of the ONNX file at `path` read int8 weights (QDQ or QLinearConv)."""
    onnx = require("onnx", "browser", "inspecting ONNX models")
    model = onnx.load(str(path), load_external_data=False)
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return sum(1 for n in model.graph.node
               if n.op_type in ("QLinearConv", "ConvInteger")
               or (n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in dequantized))
