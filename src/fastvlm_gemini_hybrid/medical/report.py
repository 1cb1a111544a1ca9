"""The report object (the `medical --json` contract) and its JSON, Markdown and HTML exports.

Why a scrub at the last step: whatever path a string took (model output, header value, file name),
`Report.to_dict` is the one door every export goes through, so the PHI scrub happens there.

Why `severity_of`: every view (terminal, Markdown, HTML, SR) reads the severity through it, so a
report dict with a missing or unknown severity shows as indeterminate, never as normal.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .deid import scrub
from .findings import INDETERMINATE, SEVERITIES, Finding

DISCLAIMER = (
    "AI-generated draft for review by a qualified clinician. It is not a diagnosis and must not be "
    "acted on without clinical review."
)
#: what an indeterminate study means for whoever reads the report (no word that could read as "normal")
UNREAD = "this study was not read by the model and needs a clinician's read"
_NO_REASON = "the model's answer could not be read"


def severity_of(data: Mapping[str, Any]) -> tuple[str, str | None]:
    """(severity, reason) of a report dict. Reason is set only for indeterminate; a missing or unknown
    severity is indeterminate too, so no view can fall back to a default that reads as normal."""
    severity = data.get("severity")
    if severity not in SEVERITIES:
        return INDETERMINATE, "the report carries no valid severity"  # the bad value is not echoed: it may say normal
    if severity == INDETERMINATE:
        return INDETERMINATE, str(data.get("severity_reason") or _NO_REASON)
    return str(severity), None


@dataclass
class Report:
    """One study's draft report. Holds no patient-identifying data by construction (scrubbed)."""

    report_id: str
    study_ref: str  # a one-way pseudonym of the Study Instance UID
    modality: str
    body_part: str
    findings: list[Finding]
    impression: str
    severity: str  # one of findings.SEVERITIES
    backend: str
    model: str
    panels: list[str]
    series: dict[str, Any]
    burned_in_text: dict[str, Any]
    notifications: list[dict[str, Any]] = field(default_factory=list)
    valid_model_json: bool = True
    notes: list[str] = field(default_factory=list)
    audit_id: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    identifiers: set[str] = field(default_factory=set, repr=False)  # what to scrub; never exported
    severity_reason: str | None = None  # why the study is indeterminate; None for a graded study

    def __post_init__(self) -> None:
        # Fail loudly on a severity outside the contract rather than let a view guess one.
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; expected one of {', '.join(SEVERITIES)}")
        if self.severity == INDETERMINATE:
            self.severity_reason = self.severity_reason or _NO_REASON
        else:
            self.severity_reason = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "modality": self.modality,
            "body_part": self.body_part,
            "findings": [f.to_dict() for f in self.findings],
            "impression": self.impression,
            "severity": self.severity,
            "severity_reason": self.severity_reason,
            "backend": self.backend,
            "deidentified": True,
            "disclaimer": DISCLAIMER,
            "audit_id": self.audit_id,
            "report_id": self.report_id,
            "study": self.study_ref,
            "model": self.model,
            "series": self.series,
            "panels": self.panels,
            "burned_in_text": self.burned_in_text,
            "notifications": self.notifications,
            "valid_model_json": self.valid_model_json,
            "notes": self.notes,
            "files": self.files,
            "created": self.created,
        }
        return scrub(data, self.identifiers)


def to_markdown(data: dict[str, Any]) -> str:
    """A human-readable draft, disclaimer first so nobody reads findings without it. An indeterminate
    study says so, with its reason, in the severity line, the findings and the impression."""
    severity, reason = severity_of(data)
    lines = [
        f"# Draft {data['modality']} report" + (f": {data['body_part'].lower()}" if data["body_part"] else ""),
        "",
        f"> **{data['disclaimer']}**",
        "",
        f"- Severity: **{severity}**" + (f": {reason}; {UNREAD}" if reason else ""),
        f"- Read locally by: {data['backend']} ({data['model']})",
        f"- Study: {data['study']} (pseudonymous); report {data['report_id']}; audit {data['audit_id']}",
        f"- Image shown to the model: {', '.join(data['panels'])}",
    ]
    if data["burned_in_text"].get("suspected"):
        lines.append(f"- Burned-in text suspected: {data['burned_in_text']['reason']}")
    lines += ["", "## Findings", ""]
    if reason:
        lines.append(f"None recorded: {reason}.")
    elif not data["findings"]:
        lines.append("The model reported no findings.")
    for f in [] if reason else data["findings"]:
        where = f" ({f['location']})" if f.get("location") else ""
        tag = f" - ACR category {f['category']} ({f['rule']})" if f.get("category") else ""
        prefix = "" if f.get("present", True) else "Not seen: "
        lines.append(f"- {prefix}{f['text']}{where}{tag}")
    impression = f"Indeterminate: {reason}; {UNREAD}." if reason else data["impression"]
    lines += ["", "## Impression", "", impression or "The model gave no impression.", ""]
    if data["notifications"]:
        lines += ["## Critical-finding notifications", ""]
        for n in data["notifications"]:
            lines.append(f"- {n['finding']}: communicate within {n['communicate_within']} ({n['status']})")
        lines.append("")
    for note in data["notes"]:
        lines.append(f"_Note: {note}_")
    return "\n".join(lines).rstrip() + "\n"


def to_html(data: dict[str, Any]) -> str:
    """The Markdown report as a standalone, escaped HTML page (no scripts, no external assets)."""
    body: list[str] = []
    for line in to_markdown(data).splitlines():
        text = html.escape(line.lstrip("#>-_ *").replace("**", ""))
        if line.startswith("# "):
            body.append(f"<h1>{text}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{text}</h2>")
        elif line.startswith(">"):
            body.append(f'<p class="disclaimer"><strong>{text}</strong></p>')
        elif line.startswith("- "):
            body.append(f"<li>{text}</li>")
        elif line.strip():
            body.append(f"<p>{text}</p>")
    title = html.escape(f"Draft {data['modality']} report")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><style>body{{font-family:sans-serif;max-width:48em;margin:2em auto}}"
        ".disclaimer{background:#fff3cd;padding:.6em;border:1px solid #d39e00}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_exports(data: dict[str, Any], directory: Path, stem: str) -> dict[str, Path]:
    """Write `<stem>.json`, `.md` and `.html` under `directory`; return the paths by format."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / f"{stem}.json",
        "markdown": directory / f"{stem}.md",
        "html": directory / f"{stem}.html",
    }
    paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(to_markdown(data), encoding="utf-8")
    paths["html"].write_text(to_html(data), encoding="utf-8")
    return paths
