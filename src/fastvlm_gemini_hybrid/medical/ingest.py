"""Find DICOM (and PNG/JPEG) files, read their headers cheaply, group them into studies and series,
and pick the one series per study that the model should read.

Why headers first: a CT study is hundreds of files but the model sees one key image. Reading every
header with large values deferred (pixel data is never loaded here) is what makes a 100-slice study
cheap; pixels are decoded later, only for the slices that get rendered (`load_pixels`).

Bad files never stop a folder: each one becomes a `Skipped` entry with a one-line reason, and only a
folder with nothing usable at all is an error (exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import BadInputError, UnsupportedMediaError
from ..types import sniff_mime
from . import EXTRA

#: modalities whose series hold images a VLM can read, with a preference rank
IMAGE_MODALITIES: dict[str, int] = {
    "CT": 6, "MR": 6, "DX": 5, "CR": 5, "MG": 5, "US": 4, "XA": 3, "RF": 3, "PT": 3, "NM": 3,
    "IO": 3, "PX": 3, "ES": 2, "XC": 2, "SC": 1, "OT": 1,
}
#: header values that mark a series nobody wants read first
_AVOID_DESCRIPTION = re.compile(r"scout|locali[sz]er|survey|topogram|dose|screen ?save|report|calib|plan", re.I)
_PREFER_DESCRIPTION = re.compile(r"\b(ax|axial|std|standard|soft|body|chest|thorax|abd|brain|head|pa|ap)\b", re.I)
_PLAIN_IMAGE_MIMES = {"image/png", "image/jpeg"}
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, and why (one line)."""

    path: Path
    reason: str


@dataclass
class DicomFile:
    """The header facts of one DICOM instance that grouping, selection and ordering need."""

    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str
    series_description: str
    image_type: tuple[str, ...]
    body_part: str
    instance_number: int
    position: float | None
    frames: int
    transfer_syntax: str
    has_pixels: bool


@dataclass
class Series:
    uid: str
    modality: str
    description: str
    files: list[DicomFile] = field(default_factory=list)
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.files)

    @property
    def body_part(self) -> str:
        return next((f.body_part for f in self.files if f.body_part), "")

    def ordered(self) -> list[DicomFile]:
        """Files in anatomical order (slice position, else instance number), so 'middle' means middle."""
        if all(f.position is not None for f in self.files):
            return sorted(self.files, key=lambda f: (f.position, f.instance_number))
        return sorted(self.files, key=lambda f: (f.instance_number, str(f.path)))


@dataclass
class Study:
    uid: str
    series: list[Series] = field(default_factory=list)
    selected: Series | None = None
    plain_image: Path | None = None  # a PNG/JPEG "study" of one image
    modality_hint: str | None = None

    @property
    def modality(self) -> str:
        if self.selected is not None:
            return self.selected.modality
        return self.modality_hint or ""

    @property
    def file_count(self) -> int:
        return 1 if self.plain_image else sum(len(s.files) for s in self.series)


@dataclass
class Scan:
    studies: list[Study]
    skipped: list[Skipped]
    files_seen: int


def _pydicom() -> Any:
    return require("pydicom", EXTRA, "reading DICOM")


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _position(ds: Any) -> float | None:
    """Distance along the slice normal (falls back to z), so slices sort head-to-foot whatever the tilt."""
    pos = ds.get("ImagePositionPatient")
    if not pos or len(pos) != 3:
        return None
    orient = ds.get("ImageOrientationPatient")
    try:
        if orient and len(orient) == 6:
            r, c = [float(v) for v in orient[:3]], [float(v) for v in orient[3:]]
            normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
            return sum(float(p) * n for p, n in zip(pos, normal, strict=True))
        return float(pos[2])
    except (TypeError, ValueError):
        return None


def read_header(path: Path) -> DicomFile:
    """Read one file's header (pixel data deferred, never decoded). Raises BadInputError if not DICOM."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(path, defer_size=256)
    except (pydicom.errors.InvalidDicomError, EOFError):
        raise UnsupportedMediaError(f"{path.name}: not a DICOM file") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnsupportedMediaError(f"{path.name}: unreadable DICOM ({type(exc).__name__})") from None
    tsyntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        number = int(ds.get("InstanceNumber") or 0)
    except (TypeError, ValueError):
        frames, number = 1, 0
    return DicomFile(
        path=path,
        study_uid=_text(ds, "StudyInstanceUID") or f"no-study:{path.parent}",
        series_uid=_text(ds, "SeriesInstanceUID") or f"no-series:{path.parent}",
        sop_uid=_text(ds, "SOPInstanceUID"),
        modality=_text(ds, "Modality").upper() or "OT",
        series_description=_text(ds, "SeriesDescription"),
        image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
        body_part=_text(ds, "BodyPartExamined").upper(),
        instance_number=number,
        position=_position(ds),
        frames=max(frames, 1),
        transfer_syntax=tsyntax,
        has_pixels=any(tag in ds for tag in _PIXEL_TAGS),
    )


def _iter_files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.name.upper() != "DICOMDIR":
            yield path


def _sniff(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return sniff_mime(fh.read(512))
    except OSError:
        return None


def scan(source: str | Path, modality: str | None = None) -> Scan:
    """Group every usable file under `source` into studies, each with its chosen series.

    `modality` is required for PNG/JPEG input and, for DICOM, restricts selection to that modality.
    Raises BadInputError (one line) when nothing usable is found; otherwise bad files are `skipped`.
    """
    root = Path(source).expanduser()
    if not root.exists():
        raise BadInputError(f"no such file or folder: {root}")
    wanted = modality.upper() if modality else None
    files = list(_iter_files(root))
    if not files:
        raise BadInputError(f"{root} holds no files")
    skipped: list[Skipped] = []
    headers: list[DicomFile] = []
    studies: list[Study] = []
    for path in files:
        mime = _sniff(path)
        if mime in _PLAIN_IMAGE_MIMES:
            if not wanted:
                skipped.append(Skipped(path, "PNG/JPEG input needs --modality (e.g. --modality DX)"))
                continue
            studies.append(Study(uid=f"image:{path}", plain_image=path, modality_hint=wanted))
            continue
        try:
            header = read_header(path)
        except BadInputError as exc:
            skipped.append(Skipped(path, str(exc).split(": ", 1)[-1]))
            continue
        if not header.has_pixels:
            skipped.append(Skipped(path, f"DICOM without pixel data ({header.modality})"))
            continue
        headers.append(header)
    studies = group(headers, wanted) + studies
    for study in studies:
        if study.plain_image is None and study.selected is None:
            for series in study.series:
                for f in series.files:
                    skipped.append(Skipped(f.path, f"no readable image series ({series.reasons[-1]})"))
    studies = [s for s in studies if s.plain_image is not None or s.selected is not None]
    if not studies:
        if root.is_file() and skipped:
            raise UnsupportedMediaError(f"{root.name}: {skipped[0].reason}")
        first = f"; e.g. {skipped[0].path.name}: {skipped[0].reason}" if skipped else ""
        raise BadInputError(f"no readable DICOM or image file in {root} ({len(skipped)} bad{first})")
    return Scan(studies=studies, skipped=skipped, files_seen=len(files))


def group(headers: list[DicomFile], modality: str | None = None) -> list[Study]:
    """Group headers by study and series, then score each series and select the best per study."""
    by_study: dict[str, dict[str, Series]] = {}
    for h in headers:
        series = by_study.setdefault(h.study_uid, {}).setdefault(
            h.series_uid, Series(uid=h.series_uid, modality=h.modality, description=h.series_description)
        )
        series.files.append(h)
    studies = []
    for uid, series_map in by_study.items():
        study = Study(uid=uid, series=list(series_map.values()))
        for series in study.series:
            score_series(series, modality)
        candidates = [s for s in study.series if s.score > 0]
        study.selected = max(candidates, key=lambda s: s.score) if candidates else None
        studies.append(study)
    return studies


def score_series(series: Series, modality: str | None = None) -> float:
    """Score how good a series is to read first; 0 means never. Reasons are kept for explanations."""
    reasons: list[str] = []
    rank = IMAGE_MODALITIES.get(series.modality)
    if rank is None:
        series.score, series.reasons = 0.0, [f"{series.modality} is not an image modality"]
        return 0.0
    if modality and series.modality != modality:
        series.score, series.reasons = 0.0, [f"{series.modality} is not the requested {modality}"]
        return 0.0
    score = 100.0 + 10 * rank
    reasons.append(f"modality {series.modality} (+{10 * rank})")
    types = {t for f in series.files for t in f.image_type}
    if types & {"LOCALIZER", "SCOUT"}:
        score -= 80
        reasons.append("localizer/scout image type (-80)")
    elif "ORIGINAL" in types and "PRIMARY" in types:
        score += 10
        reasons.append("original primary images (+10)")
    elif types & {"DERIVED", "SECONDARY"}:
        score -= 10
        reasons.append("derived/secondary images (-10)")
    if series.description and _AVOID_DESCRIPTION.search(series.description):
        score -= 50
        reasons.append("description names a scout, dose sheet or screen capture (-50)")
    elif series.description and _PREFER_DESCRIPTION.search(series.description):
        score += 5
        reasons.append("description names a diagnostic series (+5)")
    score += min(series.frames, 500) / 100
    series.score, series.reasons = max(score, 1.0), reasons
    return series.score


def load_dataset(path: Path) -> Any:
    """Read a full dataset (pixels included) for rendering or de-identification."""
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise UnsupportedMediaError(f"{path.name}: unreadable DICOM ({type(exc).__name__})") from None


def load_pixels(ds: Any, name: str = "DICOM") -> Any:
    """Decode pixel data to a numpy array. pydicom tries each installed decoder in turn
    (pylibjpeg's libjpeg/openjpeg/jpeg-ls plugins, then gdcm when present); when none can, the
    error names the transfer syntax and the extra to install."""
    _pydicom()
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        ts_name = getattr(tsyntax, "name", str(tsyntax))
        raise UnsupportedMediaError(
            f"{name}: cannot decode pixel data compressed as {ts_name} "
            f"(no installed decoder; pylibjpeg plugins or python-gdcm may help)"
        ) from exc
    except (ValueError, AttributeError, TypeError, KeyError) as exc:
        raise UnsupportedMediaError(f"{name}: damaged pixel data ({type(exc).__name__})") from None
