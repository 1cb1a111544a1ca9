"""Findings: the strict JSON prompt for the local model, parsing its answer, and the rules that turn
critical-finding terms into ACR actionable-finding categories, a severity and a notification.

Why rules on top of the model: a small local VLM is not trusted to grade urgency. The model lists
what it sees; deterministic, reviewable rules (with negation handling, so "no pneumothorax" is not
an emergency) decide severity, and a critical term always produces a notification record for a
clinician to acknowledge.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

SEVERITIES = ("normal", "minor", "significant", "critical")

#: the JSON shape the model must answer with (also passed as `json_schema` to backends that enforce it)
FINDINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "finding": {"type": "string"},
                    "location": {"type": "string"},
                    "present": {"type": "boolean"},
                },
                "required": ["finding"],
            },
        },
        "impression": {"type": "string"},
    },
    "required": ["findings", "impression"],
}


@dataclass(frozen=True)
class CriticalRule:
    """One actionable-finding term: its ACR category (1: minutes, 2: hours, 3: days)."""

    name: str
    pattern: str
    category: int

    @property
    def severity(self) -> str:
        return "critical" if self.category == 1 else "significant"

    @property
    def communicate_within(self) -> str:
        return {1: "minutes", 2: "hours", 3: "days"}[self.category]


# ACR Actionable Reporting Work Group categories (Larson et al., JACR 2014), as terms a model writes.
CRITICAL_RULES: tuple[CriticalRule, ...] = (
    CriticalRule("pneumothorax", r"(tension )?pneumothora(x|ces)", 1),
    CriticalRule("intracranial haemorrhage",
                 r"(intracranial|intracerebral|subarachnoid|subdural|epidural|extradural) (haemorrhage|hemorrhage|"
                 r"bleed|hematoma|haematoma)|brain (bleed|haemorrhage|hemorrhage)", 1),
    CriticalRule("free air", r"free (intraperitoneal )?air|pneumoperitoneum|free gas", 1),
    CriticalRule("aortic dissection", r"aortic dissection|dissection of the aorta", 1),
    CriticalRule("pulmonary embolism", r"pulmonary embol(ism|i|us)|saddle embol", 1),
    CriticalRule("ruptured aneurysm", r"ruptured (aortic )?aneurysm", 1),
    CriticalRule("brain herniation", r"(midline shift|herniation|mass effect)", 1),
    CriticalRule("acute stroke", r"acute (ischemic |ischaemic )?(stroke|infarct)", 1),
    CriticalRule("cord compression", r"(spinal )?cord compression", 1),
    CriticalRule("torsion", r"(testicular|ovarian) torsion", 1),
    CriticalRule("ectopic pregnancy", r"ectopic pregnancy", 1),
    CriticalRule("malpositioned tube", r"malposition\w* (tube|line|catheter)|(tube|line) in the (right )?bronchus", 1),
    CriticalRule("bowel ischaemia", r"(bowel|mesenteric) isch(a)?emia|pneumatosis", 1),
    CriticalRule("acute fracture", r"(acute |displaced )?fracture", 2),
    CriticalRule("bowel obstruction", r"(small bowel |bowel )?obstruction", 2),
    CriticalRule("appendicitis", r"appendicitis", 2),
    CriticalRule("abscess", r"abscess", 2),
    CriticalRule("deep vein thrombosis", r"deep ve(in|nous) thrombosis|\bdvt\b", 2),
    CriticalRule("pneumonia", r"pneumonia|consolidation", 2),
    CriticalRule("large pleural effusion", r"(large|massive) (pleural )?effusion", 2),
    CriticalRule("suspicious mass", r"(suspicious|spiculated) (mass|lesion|nodule)|malignan\w+|neoplasm", 3),
    CriticalRule("mass or nodule", r"\b(mass|nodule|lesion)\b", 3),
    CriticalRule("aneurysm", r"aneurysm", 3),
)
# A cue up to five words before the term, in the same clause. Commas end a clause on purpose: "no
# fracture, large pneumothorax" must alert; the price is over-alerting on long negated lists.
_NEGATION_BEFORE = re.compile(
    r"\b(no|not|without|negative for|absence of|absent|free of|ruled out|rule out|resolved|no evidence of|"
    r"no sign of|no signs of|nor)\b(\W+\w+){0,5}\W*$",
    re.I,
)
_CLAUSE_END = re.compile(r"[.;:,]|\b(but|however|although|though)\b", re.I)
_NEGATION_AFTER = re.compile(r"^[^.;:]{0,20}\b(is |are |was |were )?(not seen|not present|absent|excluded|"
                             r"ruled out|resolved)\b", re.I)
_NORMAL = re.compile(
    r"\b(normal|unremarkable|clear lungs?|lungs? (are |is )?clear|no acute|within normal limits|no abnormalit\w*|"
    r"no significant)\b",
    re.I,
)


@dataclass
class Finding:
    text: str
    location: str = ""
    present: bool = True
    category: int | None = None  # ACR actionable-finding category, when a rule matched
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Parsed:
    findings: list[Finding]
    impression: str
    valid_json: bool
    notes: list[str] = field(default_factory=list)


def build_prompt(modality: str, body_part: str, panels: list[str]) -> str:
    """The instruction for the local model. It names only modality, body part and panel layout:
    nothing from the patient's header is ever put into a prompt."""
    part = f" of the {body_part.lower()}" if body_part else ""
    layout = "; ".join(f"panel {i + 1}: {p}" for i, p in enumerate(panels)) if len(panels) > 1 else panels[0]
    return (
        f"This is a {modality} image{part} for a radiologist's review ({layout}, panels left to right, top to "
        "bottom). List the imaging findings you can see. Answer with JSON only, no other text, in exactly this "
        'shape: {"findings": [{"finding": "short description", "location": "anatomical location", '
        '"present": true}], "impression": "one sentence"}. Use "present": false for an important finding '
        "you looked for and did not see. Do not transcribe any text, names, numbers or dates written on the image."
    )


def _json_block(text: str) -> Any:
    cleaned = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.M).strip()
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object")
    return json.loads(cleaned[start : end + 1])


def parse_model_output(text: str) -> Parsed:
    """The model's answer -> findings. Invalid JSON keeps the model's own words as one finding
    (flagged `valid_json: False`) rather than inventing any."""
    try:
        data = _json_block(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:
        raw = " ".join(text.split())[:2000]
        return Parsed([Finding(raw)] if raw else [], "", False, ["the model did not answer with valid JSON"])
    findings: list[Finding] = []
    for item in data.get("findings") or []:
        if isinstance(item, str) and item.strip():
            findings.append(Finding(item.strip()))
        elif isinstance(item, dict) and str(item.get("finding", "")).strip():
            present = item.get("present", True)
            findings.append(
                Finding(
                    text=str(item["finding"]).strip(),
                    location=str(item.get("location") or "").strip(),
                    present=present is not False and str(present).lower() != "false",
                )
            )
    impression = data.get("impression")
    return Parsed(findings, str(impression).strip() if impression else "", True)


def is_negated(text: str, start: int, end: int) -> bool:
    """NegEx-style: a negation cue earlier in the same clause, or a 'not seen' right after."""
    before = _CLAUSE_END.split(text[:start])[-1]
    return bool(_NEGATION_BEFORE.search(before) or _NEGATION_AFTER.search(text[end:]))


def match_rules(text: str) -> list[CriticalRule]:
    """Rules whose term appears un-negated in `text`, most urgent first."""
    hits = []
    for rule in CRITICAL_RULES:
        for m in re.finditer(rule.pattern, text, re.I):
            if not is_negated(text, m.start(), m.end()):
                hits.append(rule)
                break
    return sorted(hits, key=lambda r: r.category)


def grade(parsed: Parsed) -> str:
    """Apply the rules to each finding and the impression; return the study's severity."""
    severity = "normal"

    def raise_to(level: str) -> None:
        nonlocal severity
        if SEVERITIES.index(level) > SEVERITIES.index(severity):
            severity = level

    for finding in parsed.findings:
        if not finding.present:
            continue
        hits = match_rules(f"{finding.text} {finding.location}".strip())
        if hits:
            finding.category, finding.rule = hits[0].category, hits[0].name
            raise_to(hits[0].severity)
        elif not _NORMAL.search(finding.text):
            raise_to("minor")
    for rule in match_rules(parsed.impression):
        raise_to(rule.severity)
    return severity


def notifications(parsed: Parsed, report_ref: str) -> list[dict[str, Any]]:
    """One notification record per ACR category-1 term found (un-negated) in findings or impression."""
    seen: dict[str, CriticalRule] = {}
    texts = [f.text for f in parsed.findings if f.present] + [parsed.impression]
    for text in texts:
        for rule in match_rules(text):
            if rule.category == 1:
                seen.setdefault(rule.name, rule)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return [
        {
            "type": "critical-finding",
            "finding": rule.name,
            "acr_category": rule.category,
            "communicate_within": rule.communicate_within,
            "report": report_ref,
            "status": "pending clinician acknowledgement",
            "created": now,
        }
        for rule in seen.values()
    ]
