"""Fixtures for the medical agent: DICOM written by the tests with made-up identifying data, and a
processor whose backends are test-only FunctionBackends (a local one answering JSON findings, a
cloud one that must never be called), built by tests/fakes.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid  # noqa: E402

import fakes  # noqa: E402
from fastvlm_gemini_hybrid.backends.base import Backend  # noqa: E402
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend  # noqa: E402
from fastvlm_gemini_hybrid.config import load_settings  # noqa: E402

# Made-up identifying data. Every value is distinctive so a substring search proves absence.
PHI: dict[str, str] = {
    "PatientName": "Quillfeather^Zebulonia^Marguerite",
    "PatientID": "MRN-99887766",
    "PatientBirthDate": "19420317",
    "InstitutionName": "Saint Fakeington Memorial Hospital",
    "AccessionNumber": "ACC55443322",
    "ReferringPhysicianName": "Drumblewick^Oswaldo",
    "StudyDescription": "CT CHEST for Quillfeather",
    "PatientAddress": "12 Larkspur Lane, Nowhereville",
}
PRIVATE_VALUE = "PRIVATE-SECRET-4471-Quillfeather"
#: strings that must never appear in anything the agent writes or prints
LEAK_STRINGS = (
    "Quillfeather", "Zebulonia", "Marguerite", "MRN-99887766", "99887766", "19420317", "1942-03-17",
    "Fakeington", "ACC55443322", "Drumblewick", "Oswaldo", "Larkspur", "PRIVATE-SECRET-4471",
)


def hu_phantom(size: int = 64) -> np.ndarray:
    """A synthetic CT slice in Hounsfield units: air outside, a soft-tissue disc, lung and bone inserts."""
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    hu = np.full((size, size), -1000, dtype=np.int16)
    hu[(yy - c) ** 2 + (xx - c) ** 2 < (0.45 * size) ** 2] = 40
    hu[(yy - c) ** 2 + (xx - 0.3 * size) ** 2 < (0.1 * size) ** 2] = -600
    hu[(yy - c) ** 2 + (xx - 0.7 * size) ** 2 < (0.08 * size) ** 2] = 1000
    return hu


def make_ct_slice(
    hu: np.ndarray,
    *,
    study_uid: str,
    series_uid: str,
    index: int,
    phi: dict[str, str] | None = PHI,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    series_description: str = "Axial chest",
    body_part: str = "CHEST",
    modality: str = "CT",
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    ds.SeriesDescription = series_description
    ds.ImageType = list(image_type)
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(-index * 2.5)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.StudyDate = "20240102"
    for keyword, value in (phi or {}).items():
        setattr(ds, keyword, value)
    if phi:
        block = ds.private_block(0x0011, "FAKEVENDOR 1.0", create=True)
        block.add_new(0x10, "LO", PRIVATE_VALUE)
    stored = (hu.astype(np.int32) + 1024).astype(np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = stored.tobytes()
    return ds


def write_ct_series(
    folder: Path, n: int = 5, *, study_uid: str | None = None, prefix: str = "Quillfeather_Zebulonia", **kw: Any
) -> tuple[str, str]:
    """Write `n` slices (file names carry the patient's name, as real exports often do)."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    for i in range(n):
        ds = make_ct_slice(hu_phantom(), study_uid=study_uid, series_uid=series_uid, index=i, **kw)
        ds.save_as(folder / f"{prefix}_{series_uid[-6:]}_{i:03d}.dcm", enforce_file_format=True)
    return study_uid, series_uid


def findings_json(*findings: str, impression: str = "") -> str:
    return json.dumps({"findings": [{"finding": f, "location": "", "present": True} for f in findings],
                       "impression": impression})


@pytest.fixture
def ct_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "Quillfeather study"
    write_ct_series(folder)
    return folder


def medical_backends(answer: str | Callable[[Any], Any] = "") -> dict[str, Backend]:
    """The medical tests' fake backends (tests/fakes.py): a local "fastvlm" answering `answer` (a normal
    study's findings by default) and a cloud "gemini" answering other findings, which must never be asked."""
    return fakes.fake_backends(answer or findings_json("clear lungs", impression="Normal study."),
                               findings_json("cloud answer"))


@pytest.fixture(name="make_processor")
def medical_processor(tmp_path: Path) -> Callable[..., tuple[Any, FunctionBackend, FunctionBackend]]:
    """Factory `make_processor(answer="", **settings) -> (processor, local, cloud)`: `fakes.make_processor`
    over `medical_backends(answer)` with a Gemini key configured; `local` and `cloud` count their calls."""

    def build(answer: str | Callable[[Any], Any] = "", **settings: Any) -> Any:
        backends = medical_backends(answer)
        conf = load_settings(home=tmp_path / "home", gemini_api_key="fake-test-key", **settings)
        proc = fakes.make_processor(conf, local=None, cloud=None, backends=backends)
        return proc, backends["fastvlm"], backends["gemini"]

    return build
