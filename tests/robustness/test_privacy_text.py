"""The text privacy detectors (privacy/text.py `scan_text` over normalize.py, numbers.py, secrets.py,
contacts.py and vocab.py) on arbitrary Unicode.

Properties:
- any text — every Unicode category (no surrogates: a `str` from a request cannot hold them), combining
  marks, right-to-left text and overrides, zero-width characters, digits of every script, sensitive
  snippets — is scanned without an exception, within a 2 s deadline per example, and every finding is
  well formed (a known category, the `where` it was asked about, a reason);
- long inputs (up to ~20,000 characters) made of short tokens finish within the same deadline;
- zero-width characters and soft hyphens inserted anywhere into a sensitive text (an SSN, a Luhn-valid
  card number, an e-mail address, an IBAN) do not hide it: the same kind of finding comes back.

The deadline is what catches catastrophic regex backtracking. It did: long runs without spaces took
25-55 s (regexes tried from every position of a run, or looking ahead through all of it). The tests at
the end pin those inputs, each run in a child process that is stopped after 2 s.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fastvlm_gemini_hybrid.privacy import normalize, text, vocab
from fastvlm_gemini_hybrid.privacy.findings import CATEGORIES, Finding
from fastvlm_gemini_hybrid.privacy.text import scan_text

from .conftest import examples

DEADLINE_MS = 2000
#: Longest run of one repeated character generated (kept moderate so each example stays fast).
MAX_RUN = 5_000

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff"]  # ZWSP, ZWNJ, ZWJ, WJ, soft hyphen, BOM
BIDI = ["\u202e", "\u202d", "\u202c", "\u2066", "\u2067", "\u2069", "\u200e", "\u200f", "\u061c"]
COMBINING = [chr(c) for c in (*range(0x300, 0x370), 0x483, 0x93C, 0x94D, 0x3099, 0x20DD, 0xFE0F)]
SNIPPETS = [
    "SSN 078-05-1120", "4111 1111 1111 1111", "jane.doe@example.com", "jane [at] example [dot] com",
    "DE89 3704 0044 0532 0130 00", "QQ 12 34 56 C", "password: hunter22", "sk-proj-abc123DEF456ghi789JKLmno",
    "AKIAIOSFODNN7EXAMPLE", "-----BEGIN RSA PRIVATE KEY-----", "patient John Smith, HIV", "paciente Juan García",
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    "call +49 30 1234567", "dob 12/03/1980", "221B Baker Street", "患者张伟", "пароль: qwerty12", "١٢٣٤٥٦٧٨٩٠",
    "４１１１ １１１１ １１１１ １１１１", "p@t1ent", "S.S.N.", "\u202edrowssap\u202c: x9Kq2mZ",
]
CHUNKS = st.one_of(
    st.text(max_size=40),  # every category but surrogates
    st.sampled_from(SNIPPETS),
    st.sampled_from(ZERO_WIDTH + BIDI + COMBINING),
    st.text(st.characters(categories=("Mn", "Me", "Cf", "Zs", "Nd")), max_size=20),
    st.text(st.characters(min_codepoint=0x590, max_codepoint=0x8FF), max_size=20),  # Hebrew, Arabic, Syriac...
    st.builds(lambda ch, n: ch * n, st.sampled_from(["1", "a", "A", "@", "<", ".", "-", " ", "\n", "٣", "x1"]),
              st.integers(1, MAX_RUN)),
)
TEXTS = st.lists(CHUNKS, max_size=25).map("".join)
WHERE = st.sampled_from(["prompt", "system", "schema", "name", "picture 1", "video 2 (frame at 3.0 s)"])


def scan_cold(value: str, where: str = "prompt", *, ocr: bool = False) -> list[Finding]:
    """`scan_text` with its memo caches emptied, so a rerun of a slow example is as slow as the first run."""
    for cached in (text._scan, normalize.plain_view, normalize.script_view, normalize.latin_view, vocab.find_terms):
        cached.cache_clear()
    return scan_text(value, where, ocr=ocr)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Load the vocabulary, detect-secrets and phonenumbers once, outside any example's deadline."""
    scan_text("patient Jane Smith sk-proj-abc123DEF456ghi789JKLmno 4111 1111 1111 1111 +49 30 1234567 a@b.co", ocr=True)
    scan_text("warm up once more: пароль 患者", "picture 1")


@settings(deadline=DEADLINE_MS, max_examples=examples(150))
@given(value=TEXTS, where=WHERE, ocr=st.booleans())
def test_scan_text_any_unicode(value: str, where: str, ocr: bool) -> None:
    findings = scan_cold(value, where, ocr=ocr)
    assert isinstance(findings, list)
    for finding in findings:
        assert isinstance(finding, Finding) and finding.category in CATEGORIES, finding
        assert finding.where == where and finding.reason and finding.kind, finding


# Short tokens (what prose is made of), joined into texts of up to ~20,000 characters.
TOKENS = st.one_of(
    st.sampled_from(["patient", "user", "password:", "at", "dot", "call", "SSN", "pin", "token", "key=", "<<", "-",
                     "4111", "1111", "+49", "00", "a@b.co", "Mr.", "Smith", "street", "is", "/", "admin", "born"]),
    st.text(max_size=16),
    st.from_regex(r"\A[A-Za-z0-9_\-+/=.:@<]{1,24}\Z"),
)


def _repeat_to(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


LONG_TEXTS = st.builds(lambda tokens, sep, length: _repeat_to(sep.join(tokens) + sep, length),
                       st.lists(TOKENS, min_size=1, max_size=12), st.sampled_from([" ", "\n", ", ", " \u200b", "\t"]),
                       st.sampled_from([5_000, 10_000, 20_000]) | st.integers(2_000, 20_000))


@settings(deadline=DEADLINE_MS, max_examples=examples(25))
@given(value=LONG_TEXTS, ocr=st.booleans())
def test_long_texts_of_short_tokens_within_deadline(value: str, ocr: bool) -> None:
    event(f"{len(value) // 5000 * 5000}+ characters")
    findings = scan_cold(value, ocr=ocr)  # the property is the deadline; the result must still be findings
    assert all(isinstance(f, Finding) for f in findings)


# (sensitive text, the finding kind that names it)
SENSITIVE = [
    ("SSN 078-05-1120", "ssn"),
    ("4111 1111 1111 1111", "card"),
    ("card 5500 0000 0000 0004 exp 12/30", "card"),
    ("write to jane.doe@example.com", "email"),
    ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
]


@settings(deadline=DEADLINE_MS, max_examples=examples(150))
@given(case=st.sampled_from(SENSITIVE), data=st.data())
def test_invisible_characters_do_not_hide_sensitive_text(case: tuple[str, str], data: st.DataObject) -> None:
    original, kind = case
    assert kind in {f.kind for f in scan_text(original)}, "the unmodified text must be detected"
    inserts = data.draw(st.lists(st.tuples(st.integers(0, len(original)), st.sampled_from(ZERO_WIDTH),
                                           st.integers(1, 3)), min_size=1, max_size=8), label="inserts")
    chars = list(original)
    for at, mark, count in sorted(inserts, reverse=True):
        chars.insert(at, mark * count)
    hidden = "".join(chars)
    assert kind in {f.kind for f in scan_cold(hidden)}, f"{hidden!r} hides the {kind}"


# --------------------------------------------------------------------------- known bugs


def finishes_within(seconds: float, fn: Callable[..., Any], *args: Any) -> bool:
    """Run `fn(*args)` in a forked child; False when it is still running after `seconds` (then it is killed).

    A child process, because a regex match holds the GIL until it ends: a thread could not be timed out.
    Forked, so it starts with the detectors already loaded (spawning would spend the budget on imports)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    child = multiprocessing.get_context("fork").Process(target=fn, args=args, daemon=True)
    start = time.monotonic()
    child.start()
    child.join(seconds)
    if child.is_alive():
        child.kill()
        child.join()
        return False
    assert child.exitcode == 0, f"the scan raised (exit code {child.exitcode})"
    return time.monotonic() - start <= seconds


@pytest.mark.parametrize("value", [
    pytest.param("1" * 20_000, id="digits"),
    pytest.param("a" * 20_000, id="letters"),
    pytest.param("patient " + "a" * 20_000, id="record-word-then-letters"),
    pytest.param("x at y " + "a." * 10_000, id="spoken-email"),
    pytest.param("@" + "a" * 20_000, id="at-then-letters"),
    pytest.param("a@" * 10_000, id="at-every-other"),
    pytest.param("user:" * 4_000, id="user-labels"),
    pytest.param("\u202e" + "a" * 20_000, id="rtl-override"),
    pytest.param("aB3" * 7_000, id="mixed-case-digits"),
    pytest.param("a." * 10_000, id="dotted-scheme"),
    pytest.param("://" + "a:" * 10_000, id="url-credentials"),
])
def test_long_runs_within_deadline(value: str) -> None:
    assert finishes_within(DEADLINE_MS / 1000, scan_cold, value)
