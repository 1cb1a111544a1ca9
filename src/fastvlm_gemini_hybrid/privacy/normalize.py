"""Text as a detector should read it, however it was written.

People (and OCR) write the same sensitive word many ways: full-width or Arabic-Indic digits, a
zero-width space or soft hyphen inside "patient", Cyrillic letters that look Latin ("pаtient"),
leetspeak ("p@t1ent"), letters spelled out ("S.S.N."). Every detector reads one of two views:

- `plain_view(text)`: NFKC, invisible and bidi controls removed, every digit ASCII; case kept, for
  secrets and machine-readable zones, whose letters' case matters.
- `script_view(text)`: NFKC, case-folded, invisible and bidi controls removed, every Unicode decimal
  digit as ASCII, diacritics stripped from Latin/Greek/Cyrillic letters. Non-Latin words survive, so
  the Russian, Arabic, Hindi, Chinese and Japanese vocabularies match here.
- `latin_view(text)`: the script view with confusable letters folded to the Latin letters they
  imitate and leetspeak folded inside words, spelled-out letters joined. English vocabulary and
  word-shaped patterns (labels, keywords) match here.

Numbers are read from the script view, where every digit is ASCII but no letter became a digit.
Both views keep one character per input character where they can, but callers must not rely on
offsets: findings name what was found, never where in the raw text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Zero-width characters, soft hyphen, word joiner, BOM, bidi embeddings/isolates/marks, Mongolian
# vowel separator, and the invisible math operators: all of them can sit inside a word unseen.
_INVISIBLE = dict.fromkeys(
    [
        0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0,
        *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), *range(0xFE00, 0xFE10),
    ],
    None,
)

# Letters from other scripts that render like Latin ones (Unicode's confusables, the subset that
# matters for words people hide: Cyrillic, Greek, Armenian, and a few Latin look-alikes). Lower case
# only: the views are case-folded first.
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "һ": "h", "ӏ": "l", "ɡ": "g", "ү": "y", "ы": "bi", "ь": "b", "п": "n", "г": "r", "з": "3",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
        "υ": "u", "χ": "x", "ω": "w", "γ": "y", "μ": "u", "ς": "c", "σ": "o", "ϲ": "c", "ϳ": "j",
        # Armenian and others
        "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n", "ք": "p", "ɑ": "a", "ı": "i", "ȷ": "j", "ℓ": "l",
    }
)
# Capital look-alikes, folded before case-folding: Greek "Η" is an H, but its lower case "η" looks like n.
_UPPER_CONFUSABLES = str.maketrans(
    {
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H",
        "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ү": "Y", "Һ": "H",
    }
)
# Leetspeak inside a word: only applied to tokens that also hold letters, so numbers stay numbers.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
                       "!": "i", "|": "l", "€": "e", "9": "g", "6": "g"})
_LEET_TOKEN = re.compile(r"(?<![\w@$!|€])[\w@$!|€]*[a-z][\w@$!|€]*")  # from a run's start only: linear
_HAS_LEET = re.compile(r"[013456789@$!|€]")
# "p a t i e n t", "S.S.N.", "p-a-s-s-w-o-r-d": three or more single letters with one separator each.
_SPELLED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*·]){2,}[^\W\d_](?![^\W\d_])")
_SPELLED_SEP = re.compile(r"[ .\-_*·]")
# Combining marks are dropped only after these scripts' letters (Latin, Greek, Cyrillic): elsewhere
# (Devanagari vowel signs, Japanese voicing marks) they carry meaning.
_STRIP_MARKS_BELOW = 0x0530


def _digits_ascii(text: str) -> str:
    """Every Unicode decimal digit (Arabic-Indic, Devanagari, full-width, ...) as its ASCII digit."""
    if text.isascii():
        return text
    out = []
    for ch in text:
        if ch.isdigit() and not ("0" <= ch <= "9"):
            value = unicodedata.digit(ch, None)
            out.append(str(value) if value is not None else ch)
        else:
            out.append(ch)
    return "".join(out)


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    out: list[str] = []
    base = 0
    for ch in decomposed:
        if unicodedata.combining(ch):
            if base >= _STRIP_MARKS_BELOW:
                out.append(ch)
            continue
        base = ord(ch)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


_RLO_SPAN = re.compile("\u202e([^\u202c\n]*)\u202c?")


def _as_displayed(text: str) -> str:
    """Right-to-left overrides as a reader sees them ("\u202edrowssap\u202c" reads "password"), followed by
    the characters in stored order: a detector then sees both what is shown and what is kept."""
    return _RLO_SPAN.sub(lambda m: m.group(1)[::-1], text) + "\n" + text


@lru_cache(maxsize=4096)
def plain_view(text: str) -> str:
    """NFKC, invisible characters removed, ASCII digits; case kept (tokens and MRZ lines are case-sensitive)."""
    if text.isascii():
        return text
    if "\u202e" in text:
        text = _as_displayed(text)
    return _digits_ascii(unicodedata.normalize("NFKC", text).translate(_INVISIBLE))


def _folded(text: str) -> str:
    text = text.casefold()
    if not text.isascii():
        text = _strip_marks(text)
    return text


@lru_cache(maxsize=4096)
def script_view(text: str) -> str:
    """NFKC, invisible characters removed, case-folded, ASCII digits, Latin-family diacritics stripped."""
    return _folded(plain_view(text))


def fold_confusables(text: str) -> str:
    """Cyrillic/Greek/Armenian look-alikes as the Latin letters they imitate (input already case-folded)."""
    return text.translate(_CONFUSABLES) if not text.isascii() else text


def _fold_leet(match: re.Match[str]) -> str:
    token = match.group(0)
    if not _HAS_LEET.search(token) or token.isdigit():
        return token
    # A token that is mostly digits is a number with a letter in it ("4111x"), not a word.
    digits = sum(ch.isdigit() for ch in token)
    if digits * 2 > len(token):
        return token
    return token.translate(_LEET)


def _join_spelled(match: re.Match[str]) -> str:
    return _SPELLED_SEP.sub("", match.group(0))


@lru_cache(maxsize=4096)
def latin_view(text: str) -> str:
    """The script view with look-alike letters folded, leetspeak read as letters, spelled-out words joined."""
    plain = plain_view(text)
    text = fold_confusables(_folded(plain.translate(_UPPER_CONFUSABLES) if not plain.isascii() else plain))
    if _HAS_LEET.search(text):
        text = _LEET_TOKEN.sub(_fold_leet, text)
    if _SPELLED.search(text):
        text = _SPELLED.sub(_join_spelled, text)
    return text


def is_mixed_script_word(word: str) -> bool:
    """True when a word mixes Latin letters with Cyrillic or Greek ones: nobody writes that by accident."""
    scripts = set()
    for ch in word:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            scripts.add(name.split(" ", 1)[0])
    return "LATIN" in scripts and bool(scripts & {"CYRILLIC", "GREEK", "ARMENIAN"})


__all__ = ["fold_confusables", "is_mixed_script_word", "latin_view", "plain_view", "script_view"]
