"""The draft report as a DICOM Comprehensive SR (highdicom), so it can go back to a PACS.

Why from the de-identified header: highdicom copies the patient and study modules from the evidence
it is given. Handing it only the de-identified key-image header (no pixels) means the SR can carry
nothing the de-identification removed; a final leak check against the original identifiers runs on
the SR itself before it is written.

An indeterminate study (the model's answer could not be read) carries no Finding items; its
Impression item says "Indeterminate" with the reason, so a PACS viewer never shows it as a normal
read, and the severity comment carries the reason too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._optional import require
from . import EXTRA
from .deid import remove_leaks
from .report import UNREAD, severity_of

_MANUFACTURER = "fastvlm-gemini-hybrid"
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _concept(value: str, scheme: str, meaning: str) -> Any:
    hd = require("highdicom", EXTRA, "writing DICOM Structured Reports")
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def build_sr(report: dict[str, Any], evidence: Any, identifiers: set[str]) -> Any:
    """A Comprehensive SR dataset for `report` (the scrubbed report dict), citing `evidence` (a
    de-identified header of the key image)."""
    hd = require("highdicom", EXTRA, "writing DICOM Structured Reports")
    uid = require("pydicom.uid", EXTRA, "writing DICOM Structured Reports")
    for keyword in _TYPE2_COPIED:  # highdicom copies these; type 2 means present, possibly empty
        if keyword not in evidence:
            setattr(evidence, keyword, "")
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    severity, reason = severity_of(report)
    items = []
    for finding in [] if reason else report["findings"]:
        text = finding["text"] + (f" ({finding['location']})" if finding.get("location") else "")
        if not finding.get("present", True):
            text = f"Not seen: {text}"
        items.append(hd.sr.TextContentItem(_concept("121071", "DCM", "Finding"), text[:1024], contains))
    impression = f"Indeterminate: {reason}; {UNREAD}." if reason else report["impression"]
    if impression:
        items.append(hd.sr.TextContentItem(_concept("121073", "DCM", "Impression"), impression[:1024], contains))
    comment = _concept("121106", "DCM", "Comment")
    items.append(hd.sr.TextContentItem(comment, f"Severity: {severity}" + (f" ({reason})" if reason else ""),
                                       contains))
    items.append(hd.sr.TextContentItem(comment, report["disclaimer"], contains))
    root = hd.sr.ContainerContentItem(name=_concept("18748-4", "LN", "Diagnostic imaging report"))
    root.ContentSequence = hd.sr.ContentSequence(items, is_root=False)
    sr = hd.sr.ComprehensiveSR(
        evidence=[evidence],
        content=root,
        series_instance_uid=uid.generate_uid(),
        series_number=9901,
        sop_instance_uid=uid.generate_uid(),
        instance_number=1,
        manufacturer=_MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    remove_leaks(sr, identifiers)
    return sr


def write_sr(report: dict[str, Any], evidence: Any, identifiers: set[str], path: Path) -> Path:
    sr = build_sr(report, evidence, identifiers)
    path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(path, enforce_file_format=True)
    return path
