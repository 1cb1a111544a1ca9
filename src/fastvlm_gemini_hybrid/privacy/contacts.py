"""People in text: e-mail addresses (however obfuscated), street addresses, dates of birth, names
tied to records ("patient John Smith", "Paciente: Juan García", "患者张伟"), and requests to identify
or locate someone.

A name alone is not sensitive ("a photo of Ada Lovelace's house"); a name tied to a record is,
because the record then belongs to someone. The record words of every language come from the
vocabulary files (`vocab/*.yaml`, key `record_person`).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .findings import Finding
from .normalize import latin_view

# Starting only where a run starts keeps a long run without "@" linear (tried from every position it is
# quadratic); the leftmost match started there anyway.
_EMAIL = re.compile(r"(?<![a-z0-9._%+\-])[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}")
# "jane [at] example [dot] com", "jane(at)example(dot)org", "jane at example dot com".
_AT = re.compile(r"\s*[\[({<]\s*(?:at|@|arroba|chez|klammeraffe)\s*[\])}>]\s*")
_DOT = re.compile(r"\s*[\[({<]\s*(?:dot|punto|point|punkt|\.)\s*[\])}>]\s*")
_SPOKEN = re.compile(
    r"\b[a-z0-9][a-z0-9._+\-]{0,63}(?:\s+dot\s+[a-z0-9_+\-]+)*\s+at\s+[a-z0-9\-]+(?:\s+dot\s+[a-z0-9\-]+)*"
    r"\s+dot\s+(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|info|biz|me|ai|dev)\b"
)
# Mailboxes that belong to an organisation, not a person (a museum sign's info@...): in pictures these
# are reported but do not by themselves keep the picture local.
_ROLE_MAILBOX = re.compile(
    r"^(?:info|contact|hello|hi|support|help|sales|press|media|admin|office|enquiries|inquiries|reservations?|"
    r"bookings?|team|noreply|no-reply|service|webmaster|marketing|careers|jobs|orders|billing|feedback|events|"
    r"tickets|shop|store|news|newsletter|mail|general|reception|privacy|legal)@"
)
_ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,? (?:[A-Z][A-Za-z'-]+ ){1,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
    r"Close|Crescent|Square|Sq|Highway|Hwy|Parkway|Pkwy)\b"
    r"|\b[A-ZÄÖÜ][a-zäöüß]+(?:stra(?:ß|ss)e|weg|gasse|allee|platz) \d{1,4}[a-z]?\b"
    r"|\b(?:Calle|Avenida|Rue|Via|Rua|Avenue|Boulevard|Plaza|Piazza|Viale|Corso) [A-ZÀ-Ý][\w'-]+"
    r"(?: [\w'-]+){0,3},? \d{1,4}\b"
    r"|\b\d{1,4},? (?:rue|avenue|boulevard|place|chemin|allée) [\w'-]+"
)
# Dates of birth: a birth cue, then a date within a few characters, in the vocabulary's languages.
_BIRTH = re.compile(
    r"(?:\bborn\b|\bdob\b|d\.o\.b\.?|\bbirthday\b|date of birth|dateofbirth|birth ?date|geboren|geburtsdatum|"
    r"fecha de nacimiento|nacido|nacida|ne le|nee le|date de naissance|data di nascita|nato il|nata il|"
    r"data de nascimento|nascido|geboortedatum|дата рождения|родил|出生日期|生年月日|出生|تاريخ الميلاد|"
    r"जन्म तिथि|जन्मतिथि)"
    r"[^\n\d]{0,15}?\d{1,4}\s?[/.\-年]\s?\d{1,2}"
)
_WHO = re.compile(
    r"(?i)\b(?:who(?:'s| is| are| was)|identify|recogni[sz]e|name of)\b[^.?!\n]{0,40}?"
    r"\b(?:wom[ae]n|m[ae]n|person|people|guy|girl|boy|lady|kid|child|he|she|him|them|face|faces|celebrity|actor|"
    r"actress|individual)\b"
)
_WHERE_LIVE = re.compile(r"(?i)\bwhere\b[^.?!\n]{0,40}?\b(?:lives?|living|stays?|works?)\b")
# English names given as data: "his name is Liam O'Connor", "patient: Jane Smith", "Mr. Patel".
_NAMED = re.compile(
    r"\b(?:(?:[Nn]ame(?:d| is|:)|[Pp]atient:|[Cc]lient:|[Ee]mployee:|[Ss]tudent:)\s*"
    r"[A-Z][a-z]+(?:[ -]?[A-Z][A-Za-z'-]+)?"
    r"|(?:Mr|Mrs|Ms|Dr|Miss)\.? [A-Z][a-z]{2,})"
)
_CAP_NAME = r"[A-ZÀ-ÖØ-ÞĀ-Ž][a-zà-öø-ÿā-ž'’\-]+(?:[ \-][A-ZÀ-ÖØ-ÞĀ-Ž][a-zà-öø-ÿā-ž'’\-]+)?"
_HAN_NAME = r"[\u4e00-\u9fff]{2,4}"


def find_emails(view: str, *, ocr: bool = False) -> list[Finding]:
    """E-mail addresses in the script view, de-obfuscated. In pictures, an organisation's mailbox is soft."""
    if "@" not in view and " at " not in view and "at)" not in view and "at]" not in view and "arroba" not in view:
        return []
    text = _DOT.sub(".", _AT.sub("@", view)) if ("[" in view or "(" in view or "{" in view or "<" in view) else view
    personal = False
    seen = False
    for match in _EMAIL.finditer(text):
        seen = True
        if not _ROLE_MAILBOX.match(match.group(0)):
            personal = True
            break
    if not personal and _SPOKEN.search(text):
        seen = personal = True
    if not seen:
        return []
    return [Finding("pii", "email", "an e-mail address", hard=personal or not ocr)]


# "<word>[.][:] <Name>": the word is checked against the vocabulary's record words (a set lookup),
# so this one small pattern serves every language. `_LABEL_FORM` insists on the colon (pictures).
_CYRILLIC_NAME = r"[А-ЯЁ][а-яё]+(?: [А-ЯЁ][а-яё]+)?"
# Both start only at a word's start (the lookbehinds): from inside a long letter run they were quadratic.
_WORD_THEN_NAME = re.compile(rf"(?<![^\W\d_])([^\W\d_]+)\.?\s*[:：,]?\s*(?:{_CAP_NAME}|{_CYRILLIC_NAME})")
_LABEL_FORM = re.compile(
    rf"(?<![^\W\d_])([^\W\d_]+)(?: name)?\.?\s*[:：]\s*(?:{_CAP_NAME}|{_CYRILLIC_NAME}|[A-Z]{{2,}}(?: [A-Z]{{2,}})+)"
)
_HAN_WORD = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
_WORD = re.compile(r"[^\W\d_]+")
_DIGIT = re.compile(r"\d")
_BIRTH_HINT = re.compile(
    r"born|dob|d\.o\.b|birth|geb|nac|nais|nasc|nato|nata|nee? le|рожд|родил|出生|生年月日|الميلاد|जन्म"
)
_STREET_HINT = re.compile(
    r"\b(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|close|"
    r"crescent|square|sq|highway|hwy|parkway|pkwy|calle|avenida|rue|via|rua|plaza|piazza|viale|corso|chemin|allee)\b"
    r"|stra(?:ss|ß)e|weg\b|gasse|allee|platz"
)


@lru_cache(maxsize=1)
def _record_words() -> tuple[frozenset[str], re.Pattern[str] | None]:
    """The vocabulary's record words (case-folded, dot dropped) and the CJK record-then-name pattern."""
    from .vocab import record_words

    latin: set[str] = set()
    han: list[str] = []
    for word in record_words():
        if _HAN_WORD.search(word):
            han.append(re.escape(word))
        else:
            latin.add(word.casefold().rstrip("."))
    han_re = None
    if han:
        han_re = re.compile(rf"(?:{'|'.join(han)})[:：]?\s*{_HAN_NAME}|{_HAN_NAME}(?:先生|女士|さん|様|氏)")
    return frozenset(latin), han_re


def record_word_set() -> frozenset[str]:
    """The record words of every language, case-folded ("patient", "paciente", "herr", ...)."""
    return _record_words()[0]


def _record_then_name(plain: str, pattern: re.Pattern[str]) -> bool:
    words, _ = _record_words()
    return any(m.group(1).casefold() in words for m in pattern.finditer(plain))


def find_people(plain: str, view: str, *, ocr: bool = False) -> list[Finding]:
    """Names tied to records, dates of birth, street addresses, and requests to identify or locate people.

    `plain` keeps case (names are capitalised); `view` is the script view (case-folded, ASCII digits).
    With `ocr`, a name counts only in a form's label ("Patient: ..."): title-case headings on slides and
    signs ("Patient Care Unit", "Dr. Snow's house") are not records."""
    found: list[Finding] = []
    lower = view
    if not ocr:
        if ("who" in lower or "identif" in lower or "recogni" in lower or "name of" in lower) and _WHO.search(plain):
            found.append(Finding("pii", "identify", "a request to identify a person", hard=False))
        if "where" in lower and ("liv" in lower or "stay" in lower or "work" in lower) and _WHERE_LIVE.search(plain):
            found.append(Finding("pii", "locate", "a request to find where a person lives or works", hard=False))
    record_set, han_re = _record_words()
    # One set test rules most text out before any name pattern runs: no record word, no record.
    has_record = not record_set.isdisjoint(_WORD.findall(lower))
    if ocr:
        named = has_record and (":" in plain or "：" in plain) and _record_then_name(plain, _LABEL_FORM)
    else:
        named = bool(
            (("name" in lower or ":" in plain) and _NAMED.search(plain))
            or (has_record and _record_then_name(plain, _WORD_THEN_NAME))
            or (han_re is not None and _HAN_WORD.search(plain) and han_re.search(plain))
        )
    if named:
        found.append(Finding("pii", "name", "a person's name tied to a record"))
    if _DIGIT.search(lower):
        # The Latin view reads OCR's "D0B" as "dob"; the dates themselves keep their digits.
        views = (lower, latin_view(plain)) if "0" in lower or "1" in lower else (lower,)
        if any(_BIRTH_HINT.search(v) and _BIRTH.search(v) for v in views):
            found.append(Finding("pii", "dob", "a date of birth"))
        if _STREET_HINT.search(lower) and _ADDRESS.search(plain):
            # A shop's or a museum's address is printed on every notice: in a picture it needs company.
            found.append(Finding("pii", "address", "a street address", hard=not ocr))
    return found


__all__ = ["find_emails", "find_people", "record_word_set"]
