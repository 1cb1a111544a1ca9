"""Signals: validated numbers, secrets, hints, latency and task detection."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastvlm_gemini_hybrid.privacy.numbers import iban_valid, luhn_valid, ssn_valid
from fastvlm_gemini_hybrid.routing import detect_signals
from fastvlm_gemini_hybrid.routing.signals import stem
from fastvlm_gemini_hybrid.types import Domain, GenerationOptions, Latency, Request, Task

# ----------------------------------------------------------------------------- checksums


@pytest.mark.parametrize("number", ["4111111111111111", "5500000000000004", "378282246310005", "6011111111111117"])
def test_luhn_accepts_real_test_card_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345678", "5500000000000005", "12ab", ""])
def test_luhn_rejects_numbers_with_a_wrong_check_digit(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "iban", ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "fr1420041010050500013m02606"]
)
def test_iban_mod97_accepts_valid_ibans(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize("iban", ["GB82 WEST 1234 5698 7654 33", "DE89370400440532013001", "GB00", "1234567890123456"])
def test_iban_mod97_rejects_altered_ibans(iban: str) -> None:
    assert not iban_valid(iban)


@pytest.mark.parametrize(
    ("area", "group", "serial", "ok"),
    [("123", "45", "6789", True), ("000", "45", "6789", False), ("666", "45", "6789", False),
     ("912", "45", "6789", False), ("123", "00", "6789", False), ("123", "45", "0000", False)],
)
def test_ssn_format_rules(area: str, group: str, serial: str, ok: bool) -> None:
    assert ssn_valid(area, group, serial) is ok


# ----------------------------------------------------------------------------- numbers in prompts


def test_a_luhn_valid_card_in_the_prompt_is_hard_pii() -> None:
    s = detect_signals(Request(prompt="charge 4111 1111 1111 1111 for the framed print"))
    assert s.sensitive and s.hard_sensitive and "pii" in s.sensitivity
    assert any("Luhn" in r for r in s.sensitivity_reasons)


def test_a_random_sixteen_digit_number_is_not_a_card() -> None:
    s = detect_signals(Request(prompt="where is parcel 1234 5678 9012 3456 going, per this label?"))
    assert not s.sensitive, s.sensitivity_reasons


def test_valid_and_invalid_iban_in_prompt() -> None:
    assert detect_signals(Request(prompt="Wire it to DE89 3704 0044 0532 0130 00 today")).sensitive
    assert not detect_signals(Request(prompt="Wire it to DE89 3704 0044 0532 0130 01 today")).sensitive


def test_ssn_in_prompt_is_validated() -> None:
    assert detect_signals(Request(prompt="form shows 123-45-6789, right?")).sensitive
    assert not detect_signals(Request(prompt="form shows 666-45-6789, right?")).sensitive


@pytest.mark.parametrize(
    "prompt",
    [
        "why does boto fail with AKIAIOSFODNN7EXAMPLE here",
        "the config says sk-proj-8f3kD93kdl0Qpz7XvN2mLw1a",
        "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA",
        "my password: hunter22 is on the sticky note",
        "DATABASE_URL=postgres://admin:s3cret@db/prod",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "user jsmith pass Summer2024!",
    ],
)
def test_credentials_are_hard_evidence(prompt: str) -> None:
    s = detect_signals(Request(prompt=prompt))
    assert s.sensitive and "credentials" in s.sensitivity and s.hard_sensitive


@pytest.mark.parametrize(
    "prompt",
    ["email it to jane.doe@example.com", "call me on +1 415 555 0132", "ship to 221 Baker Street please",
     "phone (415) 555-2671 is on the flyer"],
)
def test_contact_details_are_pii(prompt: str) -> None:
    s = detect_signals(Request(prompt=prompt))
    assert s.sensitive and "pii" in s.sensitivity


@pytest.mark.parametrize(
    "prompt",
    ["Describe this sunset", "What breed is this dog?", "How many birds are sitting on the wire?",
     "What time does the clock on the wall show?", "Write a haiku about the cherry blossoms",
     "Explain this Python stack trace", "Resolution is 1920 1080 at 60 fps", "Meeting on 2024-01-15 at 10:30"],
)
def test_everyday_prompts_are_not_sensitive(prompt: str) -> None:
    s = detect_signals(Request(prompt=prompt))
    assert not s.sensitive, s.sensitivity_reasons


# ----------------------------------------------------------------------------- media and names


def test_dicom_attachment_is_medical_and_hard_sensitive(req: Callable[..., Request]) -> None:
    s = detect_signals(req("Describe this study", "dicom"))
    assert s.domain is Domain.MEDICAL and s.sensitive and s.hard_sensitive and "media" in s.sensitivity


def test_attachment_name_suggesting_an_id_document_is_sensitive(req: Callable[..., Request]) -> None:
    s = detect_signals(req("Describe", {"kind": "image", "name": "passport_scan_front.jpg"}))
    assert s.sensitive and any("passport" in r for r in s.sensitivity_reasons)


def test_phi_reason_names_the_patient_and_the_scan() -> None:
    s = detect_signals(Request(prompt="What does this MRI show for the patient?"))
    assert "the prompt names a patient and an MRI" in s.sensitivity_reasons


@pytest.mark.parametrize("word", ["X-rays", "x-ray", "xray", "X-ray's"])
def test_stemming_matches_word_forms(word: str) -> None:
    s = detect_signals(Request(prompt=f"look at these {word}"))
    assert s.domain is Domain.MEDICAL


def test_stem_folds_plurals_and_final_e() -> None:
    assert stem("images") == stem("image")
    assert stem("policies") == stem("policy")
    assert stem("boxes") == stem("box")


# ----------------------------------------------------------------------------- hints


def test_domain_hint_wins_over_detection() -> None:
    s = detect_signals(Request(prompt="Write a poem about this painting", domain=Domain.LEGAL))
    assert s.domain is Domain.LEGAL


def test_sensitive_hint_true_forces_sensitive() -> None:
    s = detect_signals(Request(prompt="Describe this sunset", sensitive=True))
    assert s.sensitive and "user" in s.sensitivity


def test_sensitive_hint_false_waives_soft_evidence_only() -> None:
    soft = detect_signals(Request(prompt="Summarize this bank statement", sensitive=False))
    assert not soft.sensitive
    assert detect_signals(Request(prompt="Summarize this bank statement")).sensitive


@pytest.mark.parametrize(
    "prompt",
    ["pay with 4111 1111 1111 1111", "the patient's MRI from last week", "key AKIAIOSFODNN7EXAMPLE"],
)
def test_sensitive_hint_false_cannot_waive_hard_evidence(prompt: str) -> None:
    s = detect_signals(Request(prompt=prompt, sensitive=False))
    assert s.sensitive and all("cannot waive" in r for r in s.sensitivity_reasons)


def test_sensitive_hint_false_cannot_waive_a_dicom_file(req: Callable[..., Request]) -> None:
    assert detect_signals(req("Describe", "dicom", sensitive=False)).sensitive


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(1, "realtime"), (1000, "realtime"), (1001, "low-latency"), (3000, "low-latency"), (3001, "normal"),
     (59999, "normal"), (60000, "batch"), (600000, "batch")],
)
def test_latency_budget_maps_to_a_class(ms: int, expected: str) -> None:
    assert detect_signals(Request(prompt="describe", max_latency_ms=ms)).latency.value == expected


def test_latency_hint_beats_budget_and_prompt() -> None:
    s = detect_signals(Request(prompt="describe in real-time", latency=Latency.BATCH, max_latency_ms=10))
    assert s.latency is Latency.BATCH


def test_latency_from_prompt_cues() -> None:
    assert detect_signals(Request(prompt="track this in real-time")).latency is Latency.REALTIME
    assert detect_signals(Request(prompt="no rush, caption these overnight")).latency is Latency.BATCH
    assert detect_signals(Request(prompt="describe this")).latency is Latency.NORMAL


# ----------------------------------------------------------------------------- tasks


@pytest.mark.parametrize(
    ("prompt", "kinds", "task"),
    [
        ("Transcribe the handwritten note", ("image",), Task.OCR),
        ("How many cars are in the lot?", ("image",), Task.DETECT),
        ("Write alt text for this", ("image",), Task.CAPTION),
        ("Why is the sky orange here?", ("image",), Task.REASONING),
        ("Describe this photo", ("image",), Task.DESCRIBE),
        ("Is the door open?", ("image",), Task.QUESTION),
        ("Which looks nicer", ("image", "image"), Task.COMPARE),
        ("What happens here", ("video",), Task.VIDEO),
        ("Summarize", ("youtube",), Task.YOUTUBE),
    ],
)
def test_task_detection(req: Callable[..., Request], prompt: str, kinds: tuple[str, ...], task: Task) -> None:
    assert detect_signals(req(prompt, *kinds)).task is task


def test_json_schema_option_means_structured() -> None:
    opts = GenerationOptions(json_schema={"type": "object"})
    assert detect_signals(Request(prompt="Describe", options=opts)).task is Task.STRUCTURED


def test_detection_is_linear_enough_for_long_prompts() -> None:
    # 40x longer prompt must not cost wildly more than 40x (no regex blow-up on digits or symbols).
    import time

    short = Request(prompt="1 2-3 x@y " * 10)
    long = Request(prompt="1 2-3 x@y " * 400)
    detect_signals(short), detect_signals(long)

    def best(r: Request) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            detect_signals(r)
            times.append(time.perf_counter() - t)
        return min(times)

    assert best(long) < best(short) * 40 * 4


@pytest.mark.parametrize("prompt", ["Describe", "describe it", "What is this?", "Explain", "Caption"])
def test_one_bare_word_is_general_not_a_classifier_guess(prompt: str) -> None:
    assert detect_signals(Request(prompt=prompt)).domain.value == "general"
