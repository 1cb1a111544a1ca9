"""Findings: parsing the model's JSON, negation-aware critical rules, severity, notifications."""

from __future__ import annotations

import pytest

from fastvlm_gemini_hybrid.medical import findings
from fastvlm_gemini_hybrid.medical.findings import Finding, Parsed


def test_parse_strict_json_and_fenced_json() -> None:
    body = '{"findings": [{"finding": "Left pneumothorax", "location": "left apex"}], "impression": "PTX"}'
    text = f"```json\n{body}\n```"
    parsed = findings.parse_model_output(text)
    assert parsed.valid_json and parsed.impression == "PTX"
    assert [(f.text, f.location, f.present) for f in parsed.findings] == [("Left pneumothorax", "left apex", True)]
    absent = findings.parse_model_output('{"findings": [{"finding": "effusion", "present": false}, "nodule"]}')
    assert [(f.text, f.present) for f in absent.findings] == [("effusion", False), ("nodule", True)]


def test_invalid_json_keeps_the_models_own_words() -> None:
    parsed = findings.parse_model_output("The lungs look  clear to me")
    assert not parsed.valid_json and parsed.notes
    assert [f.text for f in parsed.findings] == ["The lungs look clear to me"]
    assert findings.parse_model_output("   ").findings == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Large left pneumothorax", ["pneumothorax"]),
        ("No pneumothorax.", []),
        ("No evidence of tension pneumothorax", []),
        ("pneumothorax is not seen", []),
        ("no fracture, large pneumothorax", ["pneumothorax"]),
        ("Free air under the right hemidiaphragm", ["free air"]),
        ("Acute subdural haematoma with midline shift", ["intracranial haemorrhage", "brain herniation"]),
        ("Displaced rib fracture", ["acute fracture"]),
        ("8 mm nodule in the right upper lobe", ["mass or nodule"]),
        ("Normal chest radiograph", []),
    ],
)
def test_critical_terms_respect_negation(text: str, expected: list[str]) -> None:
    assert [r.name for r in findings.match_rules(text)] == expected


@pytest.mark.parametrize(
    ("items", "impression", "severity"),
    [
        ([], "", "normal"),
        (["Lungs clear, unremarkable"], "Normal study.", "normal"),
        (["Mild degenerative change of the spine"], "", "minor"),
        (["8 mm nodule"], "", "significant"),
        (["Mild degenerative change"], "Right pneumothorax.", "critical"),
        (["Pneumothorax"], "", "critical"),
    ],
)
def test_severity_grading(items: list[str], impression: str, severity: str) -> None:
    parsed = Parsed([Finding(t) for t in items], impression, True)
    assert findings.grade(parsed) == severity


def test_absent_findings_do_not_raise_severity() -> None:
    parsed = Parsed([Finding("pneumothorax", present=False)], "", True)
    assert findings.grade(parsed) == "normal"
    assert findings.notifications(parsed, "r1") == []


def test_critical_findings_produce_notification_records() -> None:
    parsed = Parsed([Finding("Large left pneumothorax"), Finding("rib fracture")], "Free air too.", True)
    assert findings.grade(parsed) == "critical"
    assert parsed.findings[0].category == 1 and parsed.findings[1].category == 2
    notes = findings.notifications(parsed, "rep-1")
    assert sorted(n["finding"] for n in notes) == ["free air", "pneumothorax"]
    assert all(n["acr_category"] == 1 and n["communicate_within"] == "minutes" and n["report"] == "rep-1"
               for n in notes)


def test_prompt_names_only_modality_body_part_and_panels() -> None:
    prompt = findings.build_prompt("CT", "CHEST", ["lung window", "soft-tissue window"])
    assert "CT image of the chest" in prompt and "panel 2: soft-tissue window" in prompt
    assert '"findings"' in prompt and "JSON only" in prompt
