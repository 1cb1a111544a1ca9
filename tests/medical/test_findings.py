"""Findings: parsing the model's JSON, negation-aware critical rules, severity, notifications."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fastvlm_gemini_hybrid.medical import findings
from fastvlm_gemini_hybrid.medical.findings import Finding, Parsed


def test_parse_strict_json_and_fenced_json() -> None:
    body = '{"findings": [{"finding": "Left pneumothorax", "location": "left apex"}], "impression": "PTX"}'
    text = f"```json\n{body}\n```"
    parsed = findings.parse_model_output(text)
    assert parsed.valid_json and parsed.impression == "PTX" and parsed.reason is None
    assert [(f.text, f.location, f.present) for f in parsed.findings] == [("Left pneumothorax", "left apex", True)]
    absent = findings.parse_model_output(
        '{"findings": [{"finding": "effusion", "present": false}, {"finding": "nodule", "location": null}],'
        ' "impression": ""}'
    )
    assert [(f.text, f.present) for f in absent.findings] == [("effusion", False), ("nodule", True)]
    assert not absent.indeterminate


def test_invalid_json_claims_nothing_and_says_why() -> None:
    parsed = findings.parse_model_output("The lungs look  clear to me")
    assert not parsed.valid_json and parsed.findings == [] and parsed.impression == ""
    assert parsed.reason == "the model's answer was not valid JSON"
    assert findings.grade(parsed) == "indeterminate"


@pytest.mark.parametrize(
    ("text", "kwargs", "reason"),
    [
        ("", {}, "the model's answer was empty"),
        ("  \n ", {}, "the model's answer was empty"),
        ("Declined: large pneumothorax", {"blocked": True, "finish_reason": "SAFETY"},
         "the model declined to answer (blocked: SAFETY)"),
        ('{"findings": [], "impression": "Normal."}', {"finish_reason": "error"},
         "the model's answer ended with an error"),
        ("I'm sorry, but I can't help with interpreting medical images.", {}, "the model declined to read the image"),
        ('{"findings": [], "impression": "I cannot interpret medical images."}', {},
         "the model declined to read the image"),
        ('{"findings": [{"finding": "pneumoth', {"finish_reason": "length"},
         "the model's answer was cut off before its JSON ended"),
        ("Normal chest, no acute findings.", {}, "the model's answer was not valid JSON"),
        ('["normal"]', {}, "the model's answer was not valid JSON"),
        ('{"findings": [{"finding": "Large pneumothorax"}]}', {}, "'impression' is missing"),
        ('{"impression": "Normal study."}', {}, "'findings' is missing"),
        ('{"findings": "normal", "impression": "Normal."}', {}, "'findings' is not a list"),
        ('{"findings": [], "impression": 3}', {}, "'impression' is not a string"),
        ('{"findings": ["nodule"], "impression": ""}', {}, "findings[0] is not an object"),
        ('{"findings": [{"finding": 7}], "impression": ""}', {}, "findings[0].finding is missing or not a string"),
        ('{"findings": [{"finding": "pneumothorax", "present": "no"}], "impression": "Normal."}', {},
         "findings[0].present is not true or false"),
        ('{"findings": [{"finding": "x", "location": 4}], "impression": ""}', {}, "findings[0].location is not"),
        ('{"findings": [{"finding": "  "}], "impression": " "}', {}, "held no findings and no impression"),
    ],
)
def test_unreadable_answers_are_indeterminate_with_a_reason(text: str, kwargs: dict[str, Any], reason: str) -> None:
    parsed = findings.parse_model_output(text, **kwargs)
    assert parsed.indeterminate and reason in (parsed.reason or "")
    assert parsed.findings == [] and parsed.impression == "" and not parsed.valid_json
    assert findings.grade(parsed) == "indeterminate"
    assert findings.notifications(parsed, "r1") == []


@pytest.mark.parametrize(
    "impression",
    ["I cannot exclude a small pneumothorax.", "I cannot see a fracture.", "The left base cannot be assessed."],
)
def test_hedged_readings_are_not_refusals(impression: str) -> None:
    parsed = findings.parse_model_output(json.dumps({"findings": [], "impression": impression}))
    assert not parsed.indeterminate and parsed.impression == impression


def test_rules_neither_escalate_nor_clear_an_indeterminate_study() -> None:
    critical = Parsed([Finding("Large pneumothorax")], "Free air.", False, reason="the model's answer was empty")
    assert findings.grade(critical) == "indeterminate" and findings.notifications(critical, "r1") == []
    clear = Parsed([Finding("Lungs clear")], "Normal study.", False, reason="the model's answer was empty")
    assert findings.grade(clear) == "indeterminate"
    assert "indeterminate" in findings.SEVERITIES and "indeterminate" not in findings.GRADES


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
