"""Find concrete sensitive data in a prompt: validated numbers, contact details, secrets.

Why validation and not bare patterns: a tracking number or an order id is also "16 digits", and
flagging it would push harmless requests off the cloud for no reason. So card numbers must pass the
Luhn check, IBANs the ISO 13616 mod-97 check, and social security numbers the SSA's format rules.
What these detectors find is *hard* evidence: a user's "not sensitive" hint cannot waive it.

Every regex here is compiled once at import and runs in time linear in the prompt length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One piece of evidence: its category (phi, pii, credentials, confidential, media), why, and
    whether it is hard (concrete data, not waivable by the user) or soft (a word that suggests it)."""

    category: str
    reason: str
    hard: bool


# ----------------------------------------------------------------------------- validators


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod-10) checksum every payment card number carries."""
    if not digits.isdigit() or len(digits) < 12:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616: move the first four characters to the end, read letters as 10..35, mod 97 == 1."""
    s = text.replace(" ", "").upper()
    if not (15 <= len(s) <= 34) or not s[:2].isalpha() or not s[2:4].isdigit() or not s.isalnum():
        return False
    rotated = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in rotated)
    return int(number) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    if len(area) != 3 or len(group) != 2 or len(serial) != 4:
        return False
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


# ----------------------------------------------------------------------------- patterns

# A run of digits with the separators people type inside numbers (space, dash, dot, brackets).
_NUMBER_RUN = re.compile(r"(?<![\w.@/+])(\+?)\(?\d[\d ().-]{6,26}\d(?![\w@]|\.\d)")
_ANY_DIGIT = re.compile(r"\d")
_SPLIT = re.compile(r"[ ().-]+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", re.I)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,? (?:[A-Z][A-Za-z'-]+ ){1,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
    r"Close|Crescent|Square|Sq|Highway|Hwy|Parkway|Pkwy|Strasse|Straße)\b"
)
# (what it is, pattern, lower-case substrings one of which must occur for the pattern to be tried).
# The substring pre-check keeps the common case (no secret at all) to a few C-speed `in` tests.
_SECRETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("a private key block", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----", ("-----begin",)),
    ("an AWS access key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", ("akia", "asia")),
    ("an API key", r"\bsk-[A-Za-z0-9_-]{16,}", ("sk-",)),
    ("an API key", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}", ("k_live_", "k_test_")),
    ("a GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})", ("gh", "github_pat_")),
    ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}", ("aiza",)),
    ("a Slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}", ("xox",)),
    ("a URL with an embedded password", r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@", ("://",)),
    ("a JSON web token", r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}", ("eyj",)),
    (
        "a password or secret value",
        r"(?i)\b(?:password|passwd|pwd|passcode|pin|secret|token|api[_ -]?key|apikey)\s*(?:[:=]|is)\s*\S{4,}",
        ("pass", "pwd", "pin", "secret", "token", "key"),
    ),
    (
        "a username and password",
        r"(?i)\b(?:user(?:name)?|login)\s*[:=]?\s*\S+\s+(?:pass(?:word)?|pwd)\s*[:=]?\s*\S{3,}",
        ("pass", "pwd"),
    ),
    (
        "a door, alarm or lock code",
        r"(?i)\b(?:code|combination|combo|pin)\b[^.\n]{0,30}?\b(?:is|:|=|was)\s*#?\d{3,8}\b",
        ("code", "combination", "combo", "pin"),
    ),
    (
        "a Wi-Fi or network key",
        r"(?i)\b(?:wpa2?|wpa3|psk|wifi|wi-fi|network)\b[^.\n]{0,20}?\s*[:=]\s*\S{6,}",
        ("wpa", "psk", "wifi", "wi-fi", "network"),
    ),
)
_SECRET_RES = tuple((kind, re.compile(pattern), needles) for kind, pattern, needles in _SECRETS)
# One scan for any needle at all: most prompts have none, and then no secret pattern runs.
_ANY_NEEDLE = re.compile("|".join(re.escape(n) for _, _, needles in _SECRETS for n in needles))


def _digit_groups(run: str) -> list[str]:
    return [g for g in _SPLIT.split(run) if g]


def _is_card(groups: list[str], digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    lengths = [len(g) for g in groups]
    # Typed as one block, in fours, or the 4-6-5 / 4-6-4 layouts of Amex and Diners.
    if not (len(groups) == 1 or all(n == 4 for n in lengths[:-1]) or lengths in ([4, 6, 5], [4, 6, 4])):
        return False
    return luhn_valid(digits)


def _is_phone(plus: bool, groups: list[str], digits: str, phone_context: bool) -> bool:
    if plus:
        return 8 <= len(digits) <= 15
    if not 10 <= len(digits) <= 11:
        return False
    if len(groups) == 1:
        return phone_context  # a bare 10-digit number is an order id unless the prompt talks phones
    lengths = [len(g) for g in groups]
    return lengths[-1] >= 3 and max(lengths) <= 6 and all(n >= 2 for n in lengths[1:])


def find_numbers(text: str, *, phone_context: bool = False, ssn_context: bool = False) -> list[Finding]:
    """Validated payment cards, IBANs, SSNs and phone numbers in `text`."""
    found: list[Finding] = []
    seen: set[str] = set()
    if not _ANY_DIGIT.search(text):
        return found

    def add(key: str, category: str, reason: str) -> None:
        if key not in seen:
            seen.add(key)
            found.append(Finding(category, reason, hard=True))

    # Digits inside something shaped like an IBAN are judged as an IBAN only (valid or not), so an
    # account number that happens to pass Luhn is not also reported as a card.
    iban_spans = [(m.start(), m.end(), m.group(0)) for m in _IBAN.finditer(text)]
    for _start, _end, candidate in iban_spans:
        if iban_valid(candidate):
            add("iban", "pii", "the prompt contains a bank account number (a valid IBAN)")
    for match in _NUMBER_RUN.finditer(text):
        if any(start <= match.start() < end for start, end, _ in iban_spans):
            continue
        run = match.group(0)
        groups = _digit_groups(run.lstrip("+"))
        digits = "".join(groups)
        if _is_card(groups, digits):
            add("card", "pii", "the prompt contains a payment card number (it passes the Luhn check)")
        elif len(digits) == 9 and (
            (len(groups) == 3 and ssn_valid(*groups))
            or (ssn_context and ssn_valid(digits[:3], digits[3:5], digits[5:]))
        ):
            add("ssn", "pii", "the prompt contains a US social security number")
        elif _is_phone(bool(match.group(1)), groups, digits, phone_context):
            add("phone", "pii", "the prompt contains a phone number")
    return found


_WHO = re.compile(
    r"(?i)\b(?:who(?:'s| is| are| was)|identify|recogni[sz]e|name of)\b[^.?!\n]{0,40}?"
    r"\b(?:wom[ae]n|m[ae]n|person|people|"
    r"guy|girl|boy|lady|kid|child|he|she|him|them|face|faces|celebrity|actor|actress|individual)\b"
)


# "where does the man in this photo live", "find where she lives": locating a person.
_WHERE_LIVE = re.compile(r"(?i)\bwhere\b[^.?!\n]{0,40}?\b(?:lives?|living|stays?|works?)\b")
# A person's name given as data: "his name is Liam O'Connor", "patient: Jane Smith", "Mr. Patel".
_NAMED = re.compile(
    r"\b(?:(?:[Nn]ame(?:d| is|:)|[Pp]atient:|[Cc]lient:|[Ee]mployee:|[Ss]tudent:)\s*"
    r"[A-Z][a-z]+(?:[ -]?[A-Z][A-Za-z'-]+)?"
    r"|(?:Mr|Mrs|Ms|Dr|Miss)\.? [A-Z][a-z]{2,})"
)
# Dates of birth in the usual written shapes, next to "born"/"DOB"/"birthday".
_BIRTH = re.compile(r"(?i)\b(?:born|dob|d\.o\.b\.?|birthday|date of birth)\b[^.\n]{0,15}?\d{1,4}[/.-]\d{1,2}")


def find_contacts_and_secrets(text: str) -> list[Finding]:
    """Email addresses, street addresses, requests to identify or locate people, names given as data,
    dates of birth, and credentials."""
    found: list[Finding] = []
    lower = text.lower()
    if ("who" in lower or "identif" in lower or "recogni" in lower or "name of" in lower) and _WHO.search(text):
        found.append(Finding("pii", "the prompt asks who a person is (identifying people)", hard=False))
    if "where" in lower and ("liv" in lower or "stay" in lower or "work" in lower) and _WHERE_LIVE.search(text):
        found.append(Finding("pii", "the prompt asks where a person lives or works", hard=False))
    if ("name" in lower or ":" in text or "r" in text) and _NAMED.search(text):
        found.append(Finding("pii", "the prompt gives a person's name", hard=True))
    if _ANY_DIGIT.search(text) and _BIRTH.search(text):
        found.append(Finding("pii", "the prompt contains a date of birth", hard=True))
    if "@" in text and _EMAIL.search(text):
        found.append(Finding("pii", "the prompt contains an email address", hard=True))
    if _ANY_DIGIT.search(text) and _ADDRESS.search(text):
        found.append(Finding("pii", "the prompt contains a street address", hard=True))
    kinds: list[str] = []
    if _ANY_NEEDLE.search(lower):
        for kind, regex, needles in _SECRET_RES:
            if kind not in kinds and any(n in lower for n in needles) and regex.search(text):
                kinds.append(kind)
    for kind in kinds:
        found.append(Finding("credentials", f"the prompt contains what looks like {kind}", hard=True))
    return found
