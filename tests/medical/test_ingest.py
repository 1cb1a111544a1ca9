"""Ingest: grouping by study/series, series selection rules, bad input as one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from fastvlm_gemini_hybrid.errors import BadInputError, UnsupportedMediaError
from fastvlm_gemini_hybrid.medical import ingest
from synth_media import picture_file

from .conftest import write_ct_series


def write_sr_without_pixels(path: Path, study_uid: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, generate_uid(), "SR"
    ds.save_as(path, enforce_file_format=True)


def test_series_selection_prefers_the_axial_series_over_a_localizer(tmp_path: Path) -> None:
    study_uid, axial = write_ct_series(tmp_path / "s", 6, prefix="ax")
    write_ct_series(tmp_path / "s", 2, study_uid=study_uid, prefix="loc", image_type=("ORIGINAL", "PRIMARY",
                    "LOCALIZER"), series_description="Scout")
    write_ct_series(tmp_path / "s", 8, study_uid=study_uid, prefix="mpr", image_type=("DERIVED", "SECONDARY"),
                    series_description="Coronal MPR")
    scan = ingest.scan(tmp_path / "s")
    assert len(scan.studies) == 1
    study = scan.studies[0]
    assert len(study.series) == 3 and study.selected is not None
    assert study.selected.uid == axial, [(s.description, s.score, s.reasons) for s in study.series]
    assert "original primary images (+10)" in study.selected.reasons


def test_two_studies_in_one_folder_are_grouped_apart(tmp_path: Path) -> None:
    a, _ = write_ct_series(tmp_path / "d" / "a", 3, prefix="a")
    b, _ = write_ct_series(tmp_path / "d" / "b", 4, prefix="b", modality="MR", body_part="HEAD")
    scan = ingest.scan(tmp_path / "d")
    by_uid = {s.uid: s for s in scan.studies}
    assert set(by_uid) == {a, b}
    assert by_uid[b].modality == "MR" and by_uid[b].file_count == 4
    assert [s.uid for s in ingest.scan(tmp_path / "d", modality="MR").studies] == [b]


def test_slices_are_ordered_by_position_not_file_name(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "o", 5, prefix="x")
    series = ingest.scan(tmp_path / "o").studies[0].selected
    assert series is not None
    positions = [f.position for f in series.ordered()]
    assert positions == sorted(positions) and len(set(positions)) == 5


def test_folder_with_bad_files_keeps_the_good_and_lists_the_bad(tmp_path: Path) -> None:
    study_uid, _ = write_ct_series(tmp_path / "mix", 3, prefix="good")
    (tmp_path / "mix" / "fake.dcm").write_bytes(b"this is not DICOM at all" * 20)
    write_sr_without_pixels(tmp_path / "mix" / "report.dcm", study_uid)
    scan = ingest.scan(tmp_path / "mix")
    assert [s.uid for s in scan.studies] == [study_uid]
    reasons = {s.path.name: s.reason for s in scan.skipped}
    assert reasons["fake.dcm"] == "not a DICOM file"
    assert reasons["report.dcm"].startswith("DICOM without pixel data")


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        ("not_dicom", UnsupportedMediaError, "fake.dcm: not a DICOM file"),
        ("no_pixels", UnsupportedMediaError, "DICOM without pixel data"),
        ("empty_dir", BadInputError, "holds no files"),
        ("missing", BadInputError, "no such file or folder"),
        ("all_bad_dir", BadInputError, r"no readable DICOM or image file .*2 bad"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path: Path, setup: str, error: type, message: str) -> None:
    target = tmp_path / "in"
    if setup == "not_dicom":
        target = tmp_path / "fake.dcm"
        target.write_bytes(b"\x00" * 300)
    elif setup == "no_pixels":
        target = tmp_path / "sr.dcm"
        write_sr_without_pixels(target, generate_uid())
    elif setup == "empty_dir":
        target.mkdir()
    elif setup == "all_bad_dir":
        target.mkdir()
        (target / "a.dcm").write_text("nope")
        (target / "b.dcm").write_text("nope either")
    with pytest.raises(error, match=message) as info:
        ingest.scan(target)
    assert "\n" not in str(info.value)


def test_png_needs_a_modality_and_then_becomes_a_study(tmp_path: Path) -> None:
    path = picture_file(tmp_path, "chest.png", color=90, size=(32, 32), mode="L")
    with pytest.raises(UnsupportedMediaError, match="needs --modality"):
        ingest.scan(path)
    scan = ingest.scan(path, modality="dx")
    assert scan.studies[0].plain_image == path and scan.studies[0].modality == "DX"
