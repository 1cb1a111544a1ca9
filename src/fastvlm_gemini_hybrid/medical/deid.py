"""De-identification: DICOM PS3.15 basic profile on anything exported, PHI scrubbing of every string
we write, and a check for identifiers burned into the pixels.

Why three layers: dicognito applies the basic profile to headers, but identifiers also reach us by
other roads. Free-text attributes can quote a name; a vision model can read a name burned into an
ultrasound frame and repeat it in its findings. So the identifying values of each source file are
collected first, every exported header is checked against them after de-identification, and every
piece of text the report carries is scrubbed of them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from .._optional import require
from . import EXTRA

REDACTED = "[removed]"

#: attributes whose values identify the patient or the people and places around them
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers",
    "MedicalRecordLocator", "AccessionNumber", "StudyID", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician", "StationName",
    "IssuerOfPatientID", "MilitaryRank", "EthnicGroup", "Occupation", "PatientComments",
)
#: free-text attributes the basic profile removes (X) that dicognito leaves alone
_FREE_TEXT_REMOVE = (
    "StudyDescription", "SeriesDescription", "ImageComments", "AdditionalPatientHistory",
    "PatientComments", "RequestedProcedureDescription", "PerformedProcedureStepDescription",
    "AdmittingDiagnosesDescription", "DerivationDescription", "ProtocolName", "InterpretationText",
    "TextComments", "ReasonForStudy", "RequestAttributesSequence",
)
_MODALITIES_WITH_OVERLAID_TEXT = {"US", "SC", "OT", "XA", "RF", "ES", "XC"}
_MIN_TOKEN = 3


@dataclass(frozen=True)
class BurnedInCheck:
    suspected: bool
    reason: str


def _date_variants(value: str) -> set[str]:
    """A DICOM date also written the ways a person or a model would write it."""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value.strip())
    if not m:
        return set()
    y, mo, d = m.groups()
    return {f"{y}-{mo}-{d}", f"{d}/{mo}/{y}", f"{mo}/{d}/{y}", f"{d}.{mo}.{y}", f"{y}/{mo}/{d}"}


def collect_identifiers(ds: Any) -> set[str]:
    """Every identifying string in a dataset: the attributes above (names also split into parts),
    dates in common spellings, and the string values of private tags."""
    found: set[str] = set()

    def add(text: str) -> None:
        text = text.strip()
        if len(text) >= _MIN_TOKEN:
            found.add(text)

    for keyword in IDENTIFYING_KEYWORDS:
        value = ds.get(keyword)
        if value in (None, ""):
            continue
        values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        is_person = keyword.endswith(("Name", "Names")) and "Institution" not in keyword and keyword != "StationName"
        for item in values:
            text = str(item)
            add(text)
            if is_person:  # "Doe^Jane" is also written "Jane Doe": keep each name part
                for part in re.split(r"[\^=,\s]+", text):
                    add(part)
            for variant in _date_variants(text):
                add(variant)
    for elem in ds.iterall():
        # private string values (not the private creator names, which only name the vendor)
        if elem.tag.is_private and elem.tag.element >= 0x1000 and elem.VR in ("LO", "SH", "ST", "LT", "UT", "PN"):
            text = str(elem.value)
            if re.search(r"[A-Za-z]", text) or len(text.strip()) >= 6:
                add(text)
    return found


def scrub_text(text: str, identifiers: set[str]) -> str:
    """Replace every identifier (case-insensitive, longest first) and MRN-like labels in `text`."""
    if not text:
        return text
    for ident in sorted(identifiers, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(ident)}(?!\w)", REDACTED, text, flags=re.IGNORECASE)
    return re.sub(r"\b(MRN|DOB|patient id|accession)\s*[:#]?\s*[\w/.-]+", rf"\1 {REDACTED}", text, flags=re.I)


def scrub(obj: Any, identifiers: set[str]) -> Any:
    """`scrub_text` applied to every string inside nested dicts and lists."""
    if isinstance(obj, str):
        return scrub_text(obj, identifiers)
    if isinstance(obj, dict):
        return {k: scrub(v, identifiers) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, identifiers) for v in obj]
    return obj


def deidentify(ds: Any, *, keep_pixels: bool = True, seed: str | None = None) -> Any:
    """A de-identified copy of `ds`: dicognito's basic profile, private tags removed, free text the
    profile removes dropped, then any element still quoting an identifier of the original deleted."""
    require("pydicom", EXTRA, "de-identifying DICOM")
    anonymizer_mod = require("dicognito.anonymizer", EXTRA, "de-identifying DICOM")
    identifiers = collect_identifiers(ds)
    out = copy.deepcopy(ds)
    if not keep_pixels:
        for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if tag in out:
                delattr(out, tag)
    anonymizer_mod.Anonymizer(seed=seed).anonymize(out)
    out.remove_private_tags()
    for keyword in _FREE_TEXT_REMOVE:
        if keyword in out:
            delattr(out, keyword)
    remove_leaks(out, identifiers)
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "PS3.15 Basic Profile (dicognito); private tags removed"
    return out


def remove_leaks(ds: Any, identifiers: set[str]) -> list[str]:
    """Delete every string element (nested too) that still contains an identifier; return their names."""
    removed: list[str] = []
    patterns = [re.compile(rf"(?<!\w){re.escape(i)}(?!\w)", re.IGNORECASE) for i in identifiers]

    def visit(dataset: Any) -> None:
        for elem in list(dataset):
            if elem.VR == "SQ":
                for item in elem.value:
                    visit(item)
                continue
            if elem.VR in ("OB", "OW", "OF", "OD", "UN", "UI") or elem.tag.group == 0x0002:
                continue  # binary values, and UIDs (which dicognito already replaced)
            text = str(elem.value)
            if any(p.search(text) for p in patterns):
                removed.append(elem.keyword or str(elem.tag))
                del dataset[elem.tag]

    visit(ds)
    return removed


def burned_in_text(ds: Any | None, pixels: Any, modality: str) -> BurnedInCheck:
    """Flag images that may carry identifiers in their pixels.

    The header's Burned In Annotation wins when present; modalities that usually overlay text (US,
    secondary capture, fluoroscopy) are suspected unless the header says NO; otherwise a pixel test
    looks for thin bright strokes on a dark background in the top and bottom bands, where scanners
    stamp names and dates.
    """
    flag = str(ds.get("BurnedInAnnotation", "")).upper() if ds is not None else ""
    if flag == "YES":
        return BurnedInCheck(True, "the header says the pixels carry burned-in annotation")
    if not flag and modality.upper() in _MODALITIES_WITH_OVERLAID_TEXT:
        return BurnedInCheck(True, f"{modality} images usually carry burned-in text and the header does not say")
    if text_like_bands(pixels):
        return BurnedInCheck(True, "text-like strokes found near the image edge")
    return BurnedInCheck(False, "no sign of burned-in text")


def text_like_bands(pixels: Any, band: float = 0.15) -> bool:
    """Whether the top or bottom band of an 8-bit image looks like rows of text (many short bright
    runs on a dark ground), as opposed to anatomy (few long runs)."""
    np = require("numpy", EXTRA, "checking for burned-in text")
    gray = np.asarray(pixels)
    if gray.ndim == 3:
        gray = gray.max(axis=2)
    h = gray.shape[0]
    rows = max(int(h * band), 4)
    for strip in (gray[:rows], gray[h - rows :]):
        if float(np.median(strip)) > 60:
            continue
        bright = strip >= 180
        fraction = float(bright.mean())
        if not 0.002 < fraction < 0.3:
            continue
        edges = float(np.abs(np.diff(bright.astype(np.int8), axis=1)).mean())
        if edges / fraction > 0.45 and edges > 0.002:
            return True
    return False
