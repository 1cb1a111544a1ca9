"""Medical study throughput, without the model: files/s from disk to the rendered image.

Writes a synthetic 100-slice CT (512x512, 16-bit, made-up header) to a temp folder, then times:

  scan            headers only (pixel data deferred), grouping and series selection
  study           scan + decode/render the key slice (what `medical` does before the model call)
  render-all      decode + Hounsfield + 3 windows + montage + PNG for every slice
  naive-read      baseline: pydicom.dcmread of every file with its pixels, as a script would

and prints min/median of several runs with side-by-side ratios. Optional: --slices N --repeat R
--rle (also measure the same study stored RLE-lossless compressed).

    python benchmarks/medical_throughput.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid

from fastvlm_gemini_hybrid.medical import ingest, render


def write_study(folder: Path, slices: int, size: int = 512, rle: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    yy, xx = np.mgrid[:size, :size]
    rng = np.random.default_rng(0)
    for i in range(slices):
        hu = np.full((size, size), -1000, np.int16)
        r = 0.4 * size * (1 - abs(i - slices / 2) / slices)
        hu[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < r**2] = 40
        hu += rng.integers(-20, 20, hu.shape, dtype=np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
        ds.PatientName, ds.PatientID, ds.BodyPartExamined = "Bench^Synthetic", "BENCH-0001", "CHEST"
        ds.ImageType, ds.SeriesDescription, ds.InstanceNumber = ["ORIGINAL", "PRIMARY", "AXIAL"], "Axial", i + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, -1.25 * i], [1, 0, 0, 0, 1, 0]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = hu.tobytes()
        if rle:
            ds.compress(RLELossless)
        ds.save_as(folder / f"slice{i:04d}.dcm", enforce_file_format=True)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs)


def measure(folder: Path, repeat: int) -> dict[str, tuple[float, float]]:
    files = sorted(folder.glob("*.dcm"))

    def scan() -> None:
        ingest.scan(folder)

    def study() -> None:
        render.render_study(ingest.scan(folder).studies[0])

    def render_all() -> None:
        for path in files:
            render.render_dataset(pydicom.dcmread(path), path.name)

    def naive() -> None:
        for path in files:
            _ = pydicom.dcmread(path).pixel_array

    return {name: timed(fn, repeat) for name, fn in
            (("scan", scan), ("study", study), ("render-all", render_all), ("naive-read", naive))}


def report(label: str, n: int, t: dict[str, tuple[float, float]]) -> None:
    print(f"\n{label}: {n} slices")
    print(f"  {'stage':<12} {'min s':>8} {'median s':>9} {'files/s (median)':>17}")
    for name, (lo, med) in t.items():
        print(f"  {name:<12} {lo:8.3f} {med:9.3f} {n / med:17.0f}")
    naive = t["naive-read"][1]
    print(f"  scan / naive-read time:       {t['scan'][1] / naive:.2f}  (headers only vs every file with pixels)")
    print(f"  study / naive-read time:      {t['study'][1] / naive:.2f}  (scan + rendered key image vs pixels only)")
    print(f"  render-all / naive-read time: {t['render-all'][1] / naive:.2f}  (decode + 3 windows + PNG per slice)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rle", action="store_true", help="also measure an RLE-lossless copy of the study")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "ct"
        write_study(plain, args.slices)
        report("uncompressed 512x512 CT", args.slices, measure(plain, args.repeat))
        if args.rle:
            rle = Path(tmp) / "ct-rle"
            write_study(rle, args.slices, rle=True)
            report("RLE-lossless 512x512 CT", args.slices, measure(rle, args.repeat))


if __name__ == "__main__":
    main()
