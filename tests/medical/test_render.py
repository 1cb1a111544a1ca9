"""Rendering: CT windows verified numerically, MONOCHROME1, VOI, cine frames, compressed syntaxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from fastvlm_gemini_hybrid.medical import ingest, render

from .conftest import hu_phantom, make_ct_slice


def bundled(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path, f"pydicom does not bundle {name}"
    return str(path)


def test_apply_window_matches_the_dicom_formula_at_hand_computed_points() -> None:
    hu = np.array([-1350, -1000, -600, 40, 400, 1000, 3000], dtype=np.float32)
    # Hand-computed from PS3.3 C.11.2.1.2: ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, clipped.
    assert render.apply_window(hu, *render.WINDOWS["lung"]).tolist() == [0, 60, 128, 236, 255, 255, 255]
    assert render.apply_window(hu, *render.WINDOWS["soft-tissue"]).tolist() == [0, 0, 0, 128, 255, 255, 255]
    assert render.apply_window(hu, *render.WINDOWS["bone"]).tolist() == [0, 0, 0, 77, 128, 213, 255]


def test_synthetic_ct_is_rendered_in_hounsfield_units_through_named_windows() -> None:
    hu = hu_phantom(64)
    ds = make_ct_slice(hu, study_uid=generate_uid(), series_uid=generate_uid(), index=0, phi=None)
    panels = dict(render.render_frame(ds, ds.pixel_array))
    assert list(panels) == ["lung window", "soft-tissue window", "bone window"]  # CHEST order
    lung, soft, bone = panels["lung window"], panels["soft-tissue window"], panels["bone window"]
    # stored values are HU + 1024; the renderer must undo the rescale before windowing
    assert set(np.unique(soft[hu == 40])) == {128} and set(np.unique(soft[hu == -1000])) == {0}
    assert set(np.unique(lung[hu == -600])) == {128} and set(np.unique(lung[hu == -1000])) == {60}
    assert set(np.unique(bone[hu == 1000])) == {213} and set(np.unique(bone[hu == 40])) == {77}


def test_head_ct_uses_brain_windows() -> None:
    ds = make_ct_slice(hu_phantom(), study_uid="1.2", series_uid="1.3", index=0, phi=None, body_part="HEAD")
    labels = [label for label, _ in render.render_frame(ds, ds.pixel_array)]
    assert labels == ["brain window", "subdural window", "bone window"]


def test_monochrome1_radiograph_is_inverted() -> None:
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (64, 1))
    ds = make_ct_slice(np.zeros((64, 64), np.int16), study_uid="1.2", series_uid="1.3", index=0, phi=None,
                       modality="DX")
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        delattr(ds, keyword)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsStored, ds.HighBit = 12, 11
    out = render.voi_render(ds, ramp)
    assert out[0, 0] == 255 and out[0, -1] == 0  # lowest stored value is brightest in MONOCHROME1
    ds.PhotometricInterpretation = "MONOCHROME2"
    assert render.voi_render(ds, ramp)[0, 0] == 0


def test_voi_window_from_the_header_wins_over_percentiles() -> None:
    ds = make_ct_slice(np.zeros((8, 8), np.int16), study_uid="1", series_uid="2", index=0, phi=None, modality="MR")
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        delattr(ds, keyword)
    ds.WindowCenter, ds.WindowWidth = 100, 101
    values = np.array([[49, 100, 151]], dtype=np.uint16)
    assert render.voi_render(ds, values).tolist() == [[0, 129, 255]]  # (100 - 99.5) / 100 + 0.5 = 0.505 -> 128.8


def test_bundled_ct_mr_and_compressed_mr_render() -> None:
    ct = render.render_study(ingest.scan(bundled("CT_small.dcm")).studies[0])
    assert len(ct.panels) == 3 and ct.png.startswith(b"\x89PNG")
    plain = render.render_study(ingest.scan(bundled("MR_small.dcm")).studies[0])
    for name in ("MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        compressed = render.render_study(ingest.scan(bundled(name)).studies[0])
        assert np.array_equal(compressed.pixels, plain.pixels), name  # lossless: identical picture


def test_multiframe_ultrasound_cine_gives_representative_frames() -> None:
    study = ingest.scan(bundled("examples_ybr_color.dcm")).studies[0]
    assert study.modality == "US" and study.selected is not None and study.selected.frames == 30
    out = render.render_study(study)
    assert len(out.panels) == 4 and all(p.startswith("frame ") for p in out.panels)
    assert out.pixels.shape[2] == 3  # colour kept


def test_representative_frames_spread_over_the_loop_and_skip_blank_frames() -> None:
    textured = np.arange(16).reshape(4, 4) * 10.0
    frames = [textured] * 10
    assert render.representative_frames(frames, k=4) == [1, 3, 6, 8]  # 10%..90% of the loop
    frames[3] = np.zeros((4, 4))
    assert render.representative_frames(frames, k=4) == [1, 6, 8]
    assert render.representative_frames(frames[:3], k=4) == [0, 1, 2]


def test_unsupported_compression_is_one_clear_error(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    from fastvlm_gemini_hybrid.errors import UnsupportedMediaError

    ds = make_ct_slice(hu_phantom(16), study_uid="1.2", series_uid="1.3", index=0, phi=None)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3not-really-mpeg"])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "mpeg.dcm"
    ds.save_as(path, enforce_file_format=True)
    study = ingest.scan(path).studies[0]
    with pytest.raises(UnsupportedMediaError, match="cannot decode pixel data compressed as MPEG2"):
        render.render_study(study)
