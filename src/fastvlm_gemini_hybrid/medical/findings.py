"""Findings: the strict JSON prompt for the local model, parsing its answer, and the rules that turn
critical-finding terms into ACR actionable-finding categories, a severity and a notification.

Why rules on top of the model: a small local VLM is not trusted to grade urgency. The model lists
what it sees; deterministic, reviewable rules (with negation handling, so "no pneumothorax" is not
an emergency) decide severity, and a critical term always produces a notification record for a
clinician to acknowledge.

An answer that cannot be read (empty, refused or blocked, not JSON, JSON that breaks the schema) is
graded `indeterminate` with a reason, never `normal`: "the model said nothing" is not "the model saw
nothing", and the rules never run on words that were not read as findings.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

#: the grades the rules assign to a read study, least to most urgent (they only ever move a study up)
GRADES = ("normal", "minor", "significant", "critical")
#: the model's answer could not be read, so the study was not graded: never shown as normal
INDETERMINATE = "indeterminate"
SEVERITIES = (*GRADES, INDETERMINATE)

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
# A first-person refusal ("I'm sorry", "I cannot interpret this image"). First person and task verbs
# on purpose: radiology prose says "cannot be assessed", "I cannot exclude" or "I cannot see a
# fracture", which are readings, not refusals.
_TASK = r"(help|assist|provide|interpret|analy[sz]e|read|review|view|open|access|diagnose|comply|answer|describe)"
_REFUSAL = re.compile(
    rf"\b(I(['\u2019]m| am)? sorry|I apologi[sz]e|as an AI\b|language model|I(['\u2019]m| am)? (unable|not able) to "
    rf"{_TASK}|I (cannot|can['\u2019]t|can not|won['\u2019]t|will not) {_TASK})\b",
    re.I,
)
_TRUNCATED = ("length", "max_tokens", "length_partial")


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
    """The model's answer as findings. `reason` set means it could not be read: no findings, no
    impression, and `grade` says indeterminate whatever the rest holds."""

    findings: list[Finding]
    impression: str
    valid_json: bool
    notes: list[str] = field(default_factory=list)
    reason: str | None = None

    @property
    def indeterminate(self) -> bool:
        return self.reason is not None


def unread(reason: str) -> Parsed:
    """An answer that was not read: it claims nothing, and says why."""
    return Parsed([], "", False, [], reason)


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


def schema_problem(data: Any) -> str | None:
    """What makes `data` break `FINDINGS_SCHEMA`, in a few words, or None when it fits. Checked by
    hand (no jsonschema dependency) and strictly: a half-right answer is not read as a full one."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for key, kind, name in (("findings", list, "a list"), ("impression", str, "a string")):
        if key not in data:
            return f"'{key}' is missing"
        if not isinstance(data[key], kind):
            return f"'{key}' is not {name}"
    for i, item in enumerate(data["findings"]):
        if not isinstance(item, dict):
            return f"findings[{i}] is not an object"
        if not isinstance(item.get("finding"), str):
            return f"findings[{i}].finding is missing or not a string"
        if item.get("location") is not None and not isinstance(item["location"], str):
            return f"findings[{i}].location is not a string"
        if "present" in item and not isinstance(item["present"], bool):
            return f"findings[{i}].present is not true or false"
    return None


def parse_model_output(text: str, *, blocked: bool = False, finish_reason: str | None = None) -> Parsed:
    """The model's answer -> findings, or an unread answer with its reason (see `unread`).

    `blocked` and `finish_reason` come from the backend's result: a safety block or an errored
    generation is unread whatever its text says."""
    if blocked:
        return unread(f"the model declined to answer (blocked{f': {finish_reason}' if finish_reason else ''})")
    if finish_reason == "error":
        return unread("the model's answer ended with an error")
    if not text.strip():
        return unread("the model's answer was empty")
    try:
        data = _json_block(text)
    except (ValueError, RecursionError):
        if _REFUSAL.search(text):
            return unread("the model declined to read the image")
        if finish_reason in _TRUNCATED:
            return unread("the model's answer was cut off before its JSON ended")
        return unread("the model's answer was not valid JSON")
    problem = schema_problem(data)
    if problem is not None:
        return unread(f"the model's answer did not match the findings schema: {problem}")
    findings = [
        Finding(text=item["finding"].strip(), location=(item.get("location") or "").strip(),
                present=item.get("present", True))
        for item in data["findings"]
        if item["finding"].strip()
    ]
    impression = data["impression"].strip()
    if not findings and not impression:
        return unread("the model's answer held no findings and no impression")
    said = [f.text for f in findings] + ([impression] if impression else [])
    if all(_REFUSAL.search(t) for t in said):  # JSON-shaped, but every word of it is a refusal
        return unread("the model declined to read the image")
    return Parsed(findings, impression, True)


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
    """Apply the rules to each finding and the impression; return the study's severity. An unread
    answer is `indeterminate` before any rule runs, so rules can neither escalate nor clear it."""
    if parsed.indeterminate:
        return INDETERMINATE
    severity = GRADES[0]

    def raise_to(level: str) -> None:
        nonlocal severity
        if GRADES.index(level) > GRADES.index(severity):
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
    """One notification record per ACR category-1 term found (un-negated) in findings or impression;
    none for an unread answer (its words were not read as findings)."""
    if parsed.indeterminate:
        return []
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
