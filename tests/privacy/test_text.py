"""Text, however it is written: every text part, any language, any spelling (privacy/text.py via the router).

The cases live in YAML next to this file: `bypass_prompts.yaml` (adversarial rewrites and tricky
benign controls) and `multilingual_cases.yaml` (sensitive prompts and benign controls per language).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fastvlm_gemini_hybrid.privacy import vocab
from fastvlm_gemini_hybrid.privacy.normalize import latin_view, script_view
from fastvlm_gemini_hybrid.privacy.text import scan_text, schema_text
from fastvlm_gemini_hybrid.routing import detect_signals
from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions, Request

HERE = Path(__file__).parent
BYPASS = yaml.safe_load((HERE / "bypass_prompts.yaml").read_text(encoding="utf-8"))
MULTI = yaml.safe_load((HERE / "multilingual_cases.yaml").read_text(encoding="utf-8"))
LANGUAGES = ("en", "es", "de", "fr", "it", "pt", "nl", "zh", "ja", "ar", "hi", "ru")


def _id(item: dict[str, Any]) -> str:
    return f"{item.get('trick', item.get('category'))}:{item['text'][:40]}"


@pytest.mark.parametrize("item", BYPASS["sensitive"], ids=_id)
def test_every_rewritten_sensitive_prompt_stays_local(item: dict[str, Any]) -> None:
    signals = detect_signals(Request(item["text"]))
    assert signals.sensitive, item


@pytest.mark.parametrize("item", BYPASS["benign"], ids=_id)
def test_tricky_benign_controls_may_leave(item: dict[str, Any]) -> None:
    signals = detect_signals(Request(item["text"]))
    assert not signals.sensitive, (item, signals.sensitivity_reasons)


def test_the_sets_are_as_large_as_promised() -> None:
    assert len(BYPASS["sensitive"]) >= 70 and len(BYPASS["benign"]) >= 30
    assert set(MULTI) >= set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_sensitive_prompts_are_caught(lang: str) -> None:
    cases = MULTI[lang]["sensitive"]
    assert len(cases) >= 8
    missed = [c["text"] for c in cases if not detect_signals(Request(c["text"])).sensitive]
    assert missed == [], missed


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_benign_controls_pass(lang: str) -> None:
    cases = MULTI[lang]["benign"]
    assert len(cases) >= 6
    results = [(t, detect_signals(Request(t))) for t in cases]
    flagged = [(t, s.sensitivity_reasons) for t, s in results if s.sensitive]
    assert flagged == [], flagged


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_has_a_vocabulary_file(lang: str) -> None:
    assert lang in vocab.languages()
    data = yaml.safe_load((vocab.VOCAB_DIR / f"{lang}.yaml").read_text(encoding="utf-8"))
    assert set(data["terms"]) >= {"phi", "pii", "credentials"}


# --------------------------------------------------------------------------- every text part


SECRET_SYSTEM = "Patient John Doe, SSN 078-05-1120, HIV positive."


@pytest.mark.parametrize(
    "request_",
    [
        Request("Describe this image.", options=GenerationOptions(system=SECRET_SYSTEM)),
        Request("Describe this image.", options=GenerationOptions(json_schema={
            "type": "object", "properties": {"summary": {"type": "string", "description": SECRET_SYSTEM}}})),
        Request("Describe this image.", options=GenerationOptions(json_schema={
            "type": "object", "properties": {"x": {"type": "string", "examples": ["4111 1111 1111 1111"]}}})),
    ],
    ids=["system", "schema-description", "schema-example"],
)
def test_every_text_part_is_scanned(request_: Request) -> None:
    signals = detect_signals(request_)
    assert signals.sensitive and signals.hard_sensitive
    assert any(f.where in ("system", "schema") for f in signals.findings)


def test_an_attachment_name_with_data_is_scanned(png_bytes: bytes) -> None:
    att = Attachment.from_bytes(png_bytes, name="card-4111-1111-1111-1111.png")
    signals = detect_signals(Request("Describe this image.", attachments=(att,)))
    assert signals.sensitive and any(f.where == "name" and f.kind == "card" for f in signals.findings)


def test_a_camera_style_name_says_nothing(png_bytes: bytes) -> None:
    att = Attachment.from_bytes(png_bytes, name="IMG_4517.png")
    assert not detect_signals(Request("What does this say?", attachments=(att,))).sensitive


def test_schema_text_reads_keys_descriptions_and_examples() -> None:
    text = schema_text({"properties": {"dob": {"description": "born on", "examples": ["x"]}, "n": {"enum": [1, 2]}}})
    assert "dob" in text and "born on" in text and "x" in text


# --------------------------------------------------------------------------- the detectors themselves


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pa\u200btient", "patient"),  # zero-width space
        ("pa\u00adtient", "patient"),  # soft hyphen
        ("p\u0430tient", "patient"),  # Cyrillic a
        ("p@t1ent", "patient"),  # leetspeak
        ("S.S.N.", "ssn"),  # spelled out
        ("\u202edrowssap\u202c", "password"),  # right-to-left override, as displayed
        ("ＰＡＳＳＷＯＲＤ", "password"),  # full-width letters
    ],
)
def test_latin_view_reads_what_people_see(raw: str, expected: str) -> None:
    assert expected in latin_view(raw)


def test_script_view_makes_every_digit_ascii() -> None:
    assert script_view("٤١١١ ४१११ ４１１１") == "4111 4111 4111"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("4111\u00a01111\u00a01111\u00a01111", "card"),
        ("4111/1111/1111/1111", "card"),
        ("4111\u20131111\u20131111\u20131111", "card"),
        ("4111_1111_1111_1111", "card"),
        ("٤١١١ ١١١١ ١١١١ ١١١١", "card"),
        ("DE89-3704-0044-0532-0130-00", "iban"),
        ("078-05-1120", "ssn"),
        ("QQ 12 34 56 C", "national_id"),
        ("12345678Z", "national_id"),  # Spanish DNI with its check letter
        ("RSSMRA85T10A562S", "national_id"),  # Italian codice fiscale
        ("passport no. X1234567", "id_document"),
        ("jane.doe [at] example [dot] com", "email"),
        ("jane dot doe at example dot com", "email"),
        ("call 0049 30 12345678", "phone"),
        ("\uff0b44 20 7946 0958", "phone"),
        ("glpat-abcdefghij1234567890", "secret"),
        ("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", "secret"),
        ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "secret"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "secret"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "secret"),
        ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "mrz"),
        ("Paciente: Juan García", "name"),
        ("Дата рождения 01.02.1980", "dob"),
    ],
)
def test_detectors_find_each_kind(text: str, kind: str) -> None:
    kinds = {f.kind for f in scan_text(text)}
    assert kind in kinds, (text, kinds)


@pytest.mark.parametrize(
    "text",
    [
        "Order 1234 5678 9012 3456 is late",  # fails Luhn
        "Tracking 1234-5678-1234-5678, where is the parcel now?",
        "ISBN 978-0-306-40615-7",
        "password = getpass.getpass()",
        'token = request.headers.get("Authorization")',
        "version v2.14.1 released 2024-01-15 at 12:30",
        "call 112 in an emergency",
        "Price: €1,299.00 (was €1,499.00)",
    ],
)
def test_detectors_leave_harmless_numbers_and_code_alone(text: str) -> None:
    hard = [f for f in scan_text(text) if f.hard]
    assert hard == [], hard


def test_reasons_name_the_category_never_the_value() -> None:
    for text in ("card 4111 1111 1111 1111", "jane.doe@example.com", "ghp_" + "a1" * 18):
        for f in scan_text(text):
            assert "4111" not in f.reason and "jane" not in f.reason and "a1a1" not in f.reason
