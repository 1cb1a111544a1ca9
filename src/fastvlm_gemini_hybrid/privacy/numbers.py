"""Identifiers that carry a checksum or a strict format: cards, IBANs, SSNs, national IDs, MRZs, phones.

Why validation and not bare patterns: a tracking number is also "16 digits", and flagging it would
push harmless requests off the cloud. So card numbers must pass Luhn (and start like a card),
IBANs their country's length and mod 97, MRZ lines the ICAO 9303 check digits, national IDs their
own check (python-stdnum's validators), UK NI numbers and SSNs their issuing rules. Phone numbers
are judged by Google's libphonenumber metadata (the `phonenumbers` package).

All of it reads the *script view* of the text (normalize.py): every digit ASCII whatever script it
was written in, so "４１１１", "٤١١١" and "4111" are one number, and any run of separators people
put inside numbers (space, NBSP, dashes of every width, dots, slashes, underscores, bars) splits
groups without ending the number. Optional libraries are imported on first need only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache

from .findings import Finding

# Inside a number: spaces, dashes of every width, dots, slashes, underscores, bars, middle dots,
# brackets. Never a comma, colon or semicolon: those separate *lists* of numbers.
_SEP_CLASS = r"[ \t\-\u2010-\u2015\u2212./_|·•()\[\]]"
_RUN = re.compile(rf"(\+?)\(?\d(?:{_SEP_CLASS}{{0,3}}\d)*")
_SEP_RUN = re.compile(rf"{_SEP_CLASS}+")
_ANY_DIGIT = re.compile(r"\d")
# OCR's habits inside numbers: O for 0, l/I/| for 1, S for 5, B for 8, Z for 2 (only in tokens that
# are mostly digits already, so words are not turned into numbers).
_OCR_TOKEN = re.compile(r"(?<![a-zA-Z0-9])[0-9oOlIi|sSbBzZ]{4,}(?![a-zA-Z0-9])")  # whole tokens only
_OCR_FIX = str.maketrans({"o": "0", "O": "0", "l": "1", "I": "1", "i": "1", "|": "1", "s": "5", "S": "5",
                          "b": "8", "B": "8", "z": "2", "Z": "2"})

# What each card length can start with (the ISO/IEC 7812 issuer ranges in use): Visa 4, Mastercard
# 51-55 and 2221-2720, Maestro 50 and 56-69, Amex 34/37 (15 digits), Diners 30/36/38/39 (14 and 16),
# JCB 3528-3589, Discover/UnionPay/RuPay 6. A phone's "20261102_221409.jpg" or an EAN barcode is none of them.
def _issuer_plausible(digits: str) -> bool:
    n = len(digits)
    first, two, four = digits[0], int(digits[:2]), int(digits[:4])
    if first == "4":
        return n in (13, 16, 19)
    if first == "5":
        return n in (16, 17, 18, 19) and (51 <= two <= 55 or two == 50 or 56 <= two <= 58)
    if first == "2":
        return n == 16 and 2221 <= four <= 2720
    if first == "3":
        return (n == 15 and two in (34, 37)) or (n in (14, 16) and two in (30, 36, 38, 39)) or (
            n in (16, 17, 18, 19) and 3528 <= four <= 3589)
    if first == "6":
        return 16 <= n <= 19
    return False


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
    """ISO 13616: the country's length and format, then mod 97 == 1 (python-stdnum when installed)."""
    s = re.sub(r"[^0-9A-Za-z]", "", text).upper()
    if not (15 <= len(s) <= 34) or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    stdnum_iban = _stdnum("iban")
    if stdnum_iban is not None:
        return bool(stdnum_iban.is_valid(s))
    rotated = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rotated)) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    if len(area) != 3 or len(group) != 2 or len(serial) != 4:
        return False
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def aba_valid(digits: str) -> bool:
    """US bank routing (ABA) numbers: 3, 7, 1 weights over nine digits, sum divisible by 10."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    d = [int(c) for c in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


def mrz_check_digit(field: str) -> str:
    """ICAO 9303: weights 7, 3, 1 over digits, letters A=10..Z=35 and '<' = 0."""
    total = 0
    for i, ch in enumerate(field):
        value = int(ch) if ch.isdigit() else (ord(ch) - 55 if "A" <= ch <= "Z" else 0)
        total += value * (7, 3, 1)[i % 3]
    return str(total % 10)


@cache
def _stdnum(name: str) -> object | None:
    import importlib

    try:
        return importlib.import_module(f"stdnum.{name}")
    except ImportError:
        return None


# ----------------------------------------------------------------------------- candidates


def ocr_digits(text: str) -> str:
    """Undo OCR's letter-for-digit swaps inside tokens that are mostly digits."""

    def fix(match: re.Match[str]) -> str:
        token = match.group(0)
        digits = sum(ch.isdigit() for ch in token)
        return token.translate(_OCR_FIX) if digits * 3 >= len(token) * 2 else token

    return _OCR_TOKEN.sub(fix, text)


def _runs(text: str) -> Iterator[tuple[bool, list[str]]]:
    """(has a leading '+', digit groups) for every digit run in `text`."""
    for match in _RUN.finditer(text):
        groups = [g for g in _SEP_RUN.split(match.group(0).lstrip("+")) if g]
        if sum(len(g) for g in groups) >= 6:
            yield bool(match.group(1)), groups


def _card_in(groups: list[str], *, ocr: bool = False) -> bool:
    """A Luhn-valid card number laid out as people write cards, anywhere in the run's groups. Typed
    text may hide one in pairs or triples; printed cards (OCR) use fours, one block, or Amex's 4-6-5."""
    n = len(groups)
    for i in range(n):
        total = 0
        for j in range(i, n):
            total += len(groups[j])
            if total > 19:
                break
            if total < 13:
                continue
            part = groups[i : j + 1]
            lengths = [len(g) for g in part]
            # One block, equal groups (fours, or pairs and triples when someone hides it), Amex/Diners.
            layout = (
                len(part) == 1
                or (len(set(lengths[:-1])) == 1 and lengths[0] >= (4 if ocr else 2) and 1 <= lengths[-1] <= lengths[0])
                or lengths in ([4, 6, 5], [4, 6, 4])
            )
            digits = "".join(part)
            # Printed 13-digit numbers are EAN barcodes far more often than the last 13-digit Visa cards.
            if ocr and total == 13:
                continue
            if layout and _issuer_plausible(digits) and len(set(digits)) > 1 and luhn_valid(digits):
                return True
    return False


def _ssn_in(groups: list[str], context: bool) -> bool:
    for i in range(len(groups) - 2):
        if [len(g) for g in groups[i : i + 3]] == [3, 2, 4] and ssn_valid(*groups[i : i + 3]):
            return True
    if context:
        for g in groups:
            if len(g) == 9 and ssn_valid(g[:3], g[3:5], g[5:]):
                return True
    return False


def _phone_national(groups: list[str], context: bool) -> bool:
    digits = "".join(groups)
    if not 10 <= len(digits) <= 11:
        return False
    if len(groups) == 1:
        return context  # a bare 10-digit number is an order id unless the text talks phones
    lengths = [len(g) for g in groups]
    return lengths[-1] >= 3 and max(lengths) <= 6 and all(n >= 2 for n in lengths[1:])


def _phone_international(groups: list[str]) -> bool:
    digits = "".join(groups)
    if not 8 <= len(digits) <= 15:
        return False
    try:
        import phonenumbers
    except ImportError:  # without the metadata, E.164's shape is the best evidence there is
        return True
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number))


# An IBAN may wrap onto the next line (a banking app's narrow column): its own checks keep that safe.
_IBAN = re.compile(rf"(?<![a-z0-9])[a-z]{{2}}\d{{2}}(?:(?:{_SEP_CLASS}|\n)?[a-z0-9]){{11,34}}")
# UK National Insurance numbers. HMRC never issues D, F, I, U, V first or D, F, I, O, U, V second, nor
# BG, GB, NK, KN, TN, NT, ZZ; its own specimen "QQ 12 34 56 C" is accepted, since people copy it.
_NINO = re.compile(
    r"(?<![a-z0-9])(?!bg|gb|nk|kn|tn|nt|zz)[a-ceghj-pqrstw-z][a-ceghj-npqrstw-z]"
    r"[ \-]?\d{2}[ \-]?\d{2}[ \-]?\d{2}[ \-]?[a-d](?![a-z0-9])"
)
# Machine-readable zones: runs of A-Z, 0-9 and '<' with a '<<' filler, as on passports and ID cards.
_MRZ = re.compile(r"[A-Z0-9<]{15,46}")
_MRZ_TD3_LINE2 = re.compile(r"([A-Z0-9<]{9})(\d)([A-Z<]{3})(\d{6})(\d)([MF<X])(\d{6})(\d)")

# Cue words before an identity-document number ("passport no. X1234567", "Ausweisnummer L01X00T47").
_ID_CUES = (
    r"passport|pass ?no|passeport|pasaporte|passaporto|passaporte|paspoort|reisepass|ausweis|"
    r"licen[cs]e ?(?:no|number|#)|driver'?s? licen[cs]e|dl ?(?:no|#)|document ?(?:no|number)|id ?(?:no|number|#)|"
    r"identity ?(?:no|number)|permis|carte d'identite|dni|nie|documento|carta d'identita|cedula|"
    r"rijbewijs|identiteitskaart|паспорт|удостоверени|护照|身份证|パスポート|免許証|جواز|पासपोर्ट|aadhaar|आधार"
)
_ID_CUE = re.compile(_ID_CUES)
_ID_NUMBER = re.compile(rf"(?:{_ID_CUES})[^\n]{{0,25}}?(?<![a-z0-9])([a-z0-9]{{6,12}})(?![a-z0-9])")
# National identifiers need a long digit run or a long letters-and-digits token: cheap to rule out.
_LONG_TOKEN = re.compile(r"\d{7}|[a-z0-9]{9,}|\d{3}[ .\-]\d{3}[ .\-]\d{3}|\d{4}[ .\-]\d{4}")

# National identifiers with their own check, validated by python-stdnum ("" = `_snils_valid`, which
# stdnum lacks): (what, stdnum module, pattern, cue words that must occur in the text, or None). A
# one-digit check passes 1 in 10 random numbers, so the weak ones wait for their own name in the text.
_NATIONAL: tuple[tuple[str, str, str, str | None], ...] = (
    ("a Spanish DNI number", "es.dni", r"\d{8}[ -]?[a-z]", None),
    ("a Spanish NIE number", "es.nie", r"[xyz][ -]?\d{7}[ -]?[a-z]", None),
    ("an Italian codice fiscale", "it.codicefiscale", r"[a-z]{6}\d{2}[a-z]\d{2}[a-z]\d{3}[a-z]", None),
    ("a French social security number (NIR)", "fr.nir", r"[12][ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?\d{3}[ ]?\d{3}[ ]?\d{2}",
     None),
    ("a Brazilian CPF number", "br.cpf", r"\d{3}\.?\d{3}\.?\d{3}-?\d{2}", None),
    ("a Chinese resident ID number", "cn.ric", r"\d{17}[\dx]", None),
    ("an Indian Aadhaar number", "in_.aadhaar", r"[2-9]\d{3}[ -]?\d{4}[ -]?\d{4}", None),
    ("a Russian SNILS number", "", r"\d{3}-\d{3}-\d{3}[ -]\d{2}", "снилс|snils"),  # "": checked here
    ("a Dutch BSN", "nl.bsn", r"\d{4}\.?\d{2}\.?\d{3}|\d{9}", "bsn|burgerservice|sofinummer"),
    ("a German tax ID", "de.idnr", r"\d{2} ?\d{3} ?\d{3} ?\d{3}", "steuer|idnr|identifikationsnummer|tax id"),
    ("a Polish PESEL number", "pl.pesel", r"\d{11}", "pesel"),
    ("an NHS number", "gb.nhs", r"\d{3}[ -]?\d{3}[ -]?\d{4}", "nhs"),
    ("a Russian taxpayer number (INN)", "ru.inn", r"\d{10}|\d{12}", "инн|inn|taxpayer"),
)


@cache
def _national_patterns() -> tuple[tuple[str, Callable[[str], bool], re.Pattern[str], re.Pattern[str] | None], ...]:
    out = []
    for what, module, pattern, cue in _NATIONAL:
        validator = _snils_valid if not module else _stdnum_validator(module)
        if validator is None:
            continue
        # Not a piece of a longer number: no digit (or digit and separator) on either side.
        regex = re.compile(rf"(?<![a-z0-9])(?<![0-9][ .\-/])(?:{pattern})(?![a-z0-9])(?![ .\-/][0-9])")
        out.append((what, validator, regex, re.compile(cue) if cue else None))
    return tuple(out)


def _stdnum_validator(module: str) -> Callable[[str], bool] | None:
    mod = _stdnum(module)
    if mod is None:
        return None
    return lambda value: bool(mod.is_valid(value))  # type: ignore[attr-defined]


def _snils_valid(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if len(digits) != 11:
        return False
    total = sum(int(d) * (9 - i) for i, d in enumerate(digits[:9]))
    check = total % 101
    return f"{0 if check == 100 else check:02d}" == digits[9:]


def mrz_findings(text: str) -> list[Finding]:
    """Machine-readable zones of passports and ID cards (case-sensitive: read the NFKC text, not the folded view)."""
    found: list[Finding] = []
    if "<" not in text and "«" not in text and "く" not in text and ">>>>>" not in text:
        return found
    upper = text.upper().replace("«", "<<").replace("く", "<")
    if ">>>>>" in upper:
        # A zone photographed upside down reads its fillers as '>' (and the line backwards).
        upper += "\n" + "\n".join(line[::-1].replace(">", "<") for line in upper.splitlines() if ">>>>>" in line)
    for match in _MRZ.finditer(upper):
        line = match.group(0)
        letters = sum(ch.isalpha() for ch in line)
        full = len(line) >= 20 and "<<" in line and line.count("<") >= 3 and letters >= 4
        # OCR cuts long filler runs short: fifteen characters with five fillers in a row still are a zone.
        short = "<<<<<" in line and letters >= 2
        if not (full or short):
            continue
        validated = False
        td3 = _MRZ_TD3_LINE2.search(line)
        if td3 is not None:
            number, cd1, _nat, dob, cd2, _sex, exp, cd3 = td3.groups()
            validated = (mrz_check_digit(number) == cd1 and mrz_check_digit(dob) == cd2
                         and mrz_check_digit(exp) == cd3)
        what = "a passport or ID card's machine-readable zone" + (" (its check digits are valid)" if validated else "")
        found.append(Finding("pii", "mrz", what))
        break
    return found


def find_numbers(
    view: str, *, phone_context: bool = False, ssn_context: bool = False, ocr: bool = False
) -> list[Finding]:
    """Validated identifiers in `view` (the script view: ASCII digits, case-folded)."""
    found: list[Finding] = []
    if not _ANY_DIGIT.search(view):
        return found
    if ocr:
        view = ocr_digits(view)
    seen: set[str] = set()

    def add(kind: str, category: str, what: str, hard: bool = True) -> None:
        if kind not in seen:
            seen.add(kind)
            found.append(Finding(category, kind, what, hard=hard))

    # Digits inside something shaped like an IBAN are judged as an IBAN only (valid or not), so an
    # account number that happens to pass Luhn is not also reported as a card. OCR glues words to
    # numbers ("ID4111..."), so there only a valid IBAN claims its digits.
    iban_spans: list[tuple[int, int]] = []
    for match in _IBAN.finditer(view):
        compact = re.sub(r"[^0-9a-z]", "", match.group(0))
        valid = any(iban_valid(compact[:length]) for length in range(15, len(compact) + 1))
        if valid:
            add("iban", "pii", "a bank account number (a valid IBAN)")
        if valid or not ocr:
            iban_spans.append(match.span())
    masked = view
    for start, end in iban_spans:
        masked = masked[:start] + " " * (end - start) + masked[end:]
    if _NINO.search(masked):
        add("national_id", "pii", "a UK National Insurance number")
    if _LONG_TOKEN.search(masked):
        for what, validator, regex, cue in _national_patterns():
            if cue is not None and not cue.search(masked):
                continue
            for match in regex.finditer(masked):
                if validator(match.group(0)):
                    add("national_id", "pii", what)
                    break
    if _ID_CUE.search(masked):
        for match in _ID_NUMBER.finditer(masked):
            token = match.group(1)
            if sum(ch.isdigit() for ch in token) >= 4:
                add("id_document", "pii", "an identity document number")
                break
    for plus, groups in _runs(masked):
        # "00" is the international call prefix in most of the world: "0049 30 ..." is "+49 30 ...".
        idd = not plus and len(groups[0]) >= 3 and groups[0].startswith("00") and groups[0][2] != "0"
        if _card_in(groups, ocr=ocr):
            add("card", "pii", "a payment card number (it passes the Luhn check)")
        elif _ssn_in(groups, ssn_context):
            add("ssn", "pii", "a US social security number")
        elif (plus or idd) and _phone_international([groups[0][2:] if idd else groups[0], *groups[1:]]):
            add("phone", "pii", "a phone number", hard=not ocr)
        elif not plus and not idd and _phone_national(groups, phone_context):
            add("phone", "pii", "a phone number", hard=not ocr)
    return found


__all__ = [
    "aba_valid", "find_numbers", "iban_valid", "luhn_valid", "mrz_check_digit", "mrz_findings", "ocr_digits",
    "ssn_valid",
]
