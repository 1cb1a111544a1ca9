"""Static int8 quantisation of the vision encoder (models/onnx_vision_quant.py) on the tiny random FastVLM:
the dense convolutions really run in int8, the encoder still runs, and its features stay near fp32 only
when it was calibrated on the right pictures."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skimage")
pytest.importorskip("onnxscript", reason="the ONNX exporter needs the `browser` extra (onnxscript)")

import onnx
import onnxruntime as ort

from fastvlm_gemini_hybrid.models.onnx_variants import ensure_variant
from fastvlm_gemini_hybrid.models.onnx_vision_quant import (
    calibration_pixels,
    dense_conv_nodes,
    int8_conv_count,
    quantize_vision_static,
)

HELD_OUT = ("rocket", "cat", "immunohistochemistry")


@pytest.fixture(scope="module")
def fp32_encoder(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_variant(tiny_model_dir, cache_dir=tmp_path_factory.mktemp("onnx-cache"), progress=False).vision


@pytest.fixture(scope="module")
def held_out(tiny_model_dir: Path) -> list[np.ndarray]:
    return list(calibration_pixels(tiny_model_dir, HELD_OUT))


@pytest.fixture(scope="module")
def int8_encoder(tiny_model_dir: Path, fp32_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("visq") / "vision_encoder.onnx"
    quantize_vision_static(fp32_encoder, dst, calibration_pixels(tiny_model_dir))
    return dst


def _session(path: Path, optimized: Path | None = None) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = 2, 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized is not None:
        opts.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _rel_errors(fp32: Path, int8: Path, pictures: list[np.ndarray]) -> list[float]:
    ref, got = _session(fp32), _session(int8)
    errors = []
    for pixels in pictures:
        a = ref.run(None, {"pixel_values": pixels})[0].astype(np.float64)
        b = got.run(None, {"pixel_values": pixels})[0].astype(np.float64)
        assert a.shape == b.shape and np.isfinite(b).all()
        errors.append(float(np.linalg.norm(b - a) / np.linalg.norm(a)))
    return errors


def test_calibration_pictures_are_processed_like_the_engine(tiny_model_dir: Path) -> None:
    pixels = list(calibration_pixels(tiny_model_dir))
    assert len(pixels) == 3
    assert all(p.shape == (1, 3, 256, 256) and p.dtype == np.float32 for p in pixels)
    assert 0.05 < float(np.mean([p.std() for p in pixels])) < 1.0  # real photographs, not blank frames
    assert not np.allclose(pixels[0], pixels[1])


def test_dense_convolutions_are_int8_in_the_file_and_in_the_running_graph(
        fp32_encoder: Path, int8_encoder: Path, tmp_path: Path) -> None:
    dense = dense_conv_nodes(onnx.load(str(fp32_encoder), load_external_data=False))
    assert dense and int8_conv_count(fp32_encoder) == 0
    assert int8_conv_count(int8_encoder) == len(dense)
    assert int8_encoder.with_name(int8_encoder.name + ".data").is_file()
    optimized = tmp_path / "optimized.onnx"
    _session(int8_encoder, optimized)  # what ORT's CPU optimiser makes of the QDQ graph
    ops = collections.Counter(n.op_type for n in onnx.load(str(optimized), load_external_data=False).graph.node)
    assert ops["QLinearConv"] == len(dense), ops


def test_features_stay_near_fp32_only_with_the_right_calibration(
        tiny_model_dir: Path, fp32_encoder: Path, int8_encoder: Path, held_out: list[np.ndarray],
        tmp_path: Path) -> None:
    good = _rel_errors(fp32_encoder, int8_encoder, held_out)
    assert max(good) < 0.15, good
    # calibrated on dim pictures (ranges 20x too narrow): real pictures clip, the features fall apart
    dim = tmp_path / "dim.onnx"
    quantize_vision_static(fp32_encoder, dim, [p * 0.05 for p in calibration_pixels(tiny_model_dir)])
    bad = _rel_errors(fp32_encoder, dim, held_out)
    assert min(bad) > 2 * max(good), (good, bad)


def test_bad_arguments_are_refused(fp32_encoder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="calibration method"):
        quantize_vision_static(fp32_encoder, tmp_path / "x.onnx", [], method="kl")
    with pytest.raises(ValueError, match="at least one"):
        quantize_vision_static(fp32_encoder, tmp_path / "x.onnx", [])
