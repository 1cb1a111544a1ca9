"""Health, identity and credential vocabulary in many languages, as data (`vocab/<lang>.yaml`).

Each file lists terms by category (phi, pii, credentials) under the English phrase a reason uses
("a diagnosis"), plus `record_person`: words that tie a following name to a record. Matching reads
both normalised views (normalize.py), so accents, case, look-alike letters and leetspeak do not
matter:

- `match: word` files (Latin, Cyrillic, Devanagari scripts): a term matches at a word start, and
  may carry up to three more letters (inflections: "patient" -> "patienten", "пациент" ->
  "пациентом"); terms shorter than four letters match whole words only.
- `match: substring` files (Chinese, Japanese, Arabic, whose words are not space-delimited or take
  attached particles): a term matches anywhere.

Lookups are dictionary probes per token (no big alternation regex), so the router's per-request cost
stays in microseconds; the files load once, on first use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .normalize import latin_view, script_view

VOCAB_DIR = Path(__file__).with_name("vocab")
_MAX_INFLECTION = 3
_MIN_STEM = 4
# Word characters plus the combining marks of Devanagari, Arabic and Cyrillic words (Python's \\w
# splits Hindi words at their vowel signs).
_TOKEN = re.compile(
    r"[\w\u0300-\u036f\u0483-\u0489\u0610-\u061a\u064b-\u065f\u0670\u0900-\u0903\u093a-\u094f\u0951-\u0957"
    r"\u0962\u0963\u3099-\u309c]+"
)
_NON_LATIN_SUBSTRING = re.compile(r"[\u0600-\u06ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


@dataclass(frozen=True)
class Term:
    category: str
    what: str
    language: str


@dataclass(frozen=True)
class _Vocabulary:
    words: dict[str, tuple[Term, ...]]  # single-word terms (normalised)
    phrases: dict[str, tuple[tuple[tuple[str, ...], Term], ...]]  # first word -> (all words, term)
    substrings: tuple[tuple[str, Term], ...]
    record_words: tuple[str, ...]
    languages: tuple[str, ...]
    keys: frozenset[str] = frozenset()  # every key of `words` and `phrases`: one probe rules a token out


def _norm_words(term: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(script_view(term)))


@lru_cache(maxsize=1)
def load() -> _Vocabulary:
    """Every `vocab/*.yaml` file, normalised and indexed."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    words: dict[str, list[Term]] = {}
    phrases: dict[str, list[tuple[tuple[str, ...], Term]]] = {}
    substrings: list[tuple[str, Term]] = []
    record: list[str] = []
    languages: list[str] = []
    for path in sorted(VOCAB_DIR.glob("*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
        language = str(data.get("language") or path.stem)
        languages.append(language)
        mode = str(data.get("match") or "word")
        for category, groups in (data.get("terms") or {}).items():
            for what, items in (groups or {}).items():
                term = Term(str(category), str(what), language)
                for raw in items or ():
                    if mode == "substring":
                        key = script_view(str(raw)).strip()
                        if key:
                            substrings.append((key, term))
                        continue
                    parts = _norm_words(str(raw))
                    if len(parts) == 1:
                        words.setdefault(parts[0], []).append(term)
                    elif parts:
                        phrases.setdefault(parts[0], []).append((parts, term))
        record.extend(str(w) for w in data.get("record_person") or ())
    return _Vocabulary(
        words={k: tuple(v) for k, v in words.items()},
        phrases={k: tuple(v) for k, v in phrases.items()},
        substrings=tuple(substrings),
        record_words=tuple(dict.fromkeys(record)),
        languages=tuple(languages),
        keys=frozenset(words) | frozenset(phrases),
    )


def record_words() -> tuple[str, ...]:
    return load().record_words


def languages() -> tuple[str, ...]:
    return load().languages


def _word_matches(token: str, term: str) -> bool:
    if token == term:
        return True
    return (len(term) >= _MIN_STEM and token.startswith(term) and len(token) - len(term) <= _MAX_INFLECTION
            and not token.endswith(_NOT_INFLECTIONS))


# Endings that make another word, not an inflection: "patiently" is not a patient.
_NOT_INFLECTIONS = ("ly",)


def _lookup(token: str, keys: frozenset[str]) -> list[str]:
    """Vocabulary keys that `token` matches: itself, or a stem of it up to three letters shorter."""
    out = [token] if token in keys else []
    if len(token) > _MIN_STEM and not token.endswith(_NOT_INFLECTIONS):
        for cut in range(1, min(_MAX_INFLECTION, len(token) - _MIN_STEM) + 1):
            stem = token[:-cut]
            if stem in keys:
                out.append(stem)
    return out


@lru_cache(maxsize=4096)
def find_terms(text: str) -> tuple[Term, ...]:
    """Every vocabulary term in `text`, each once, in order of appearance."""
    vocab = load()
    found: dict[tuple[str, str], Term] = {}
    views = {script_view(text), latin_view(text)}
    for view in views:
        tokens = _TOKEN.findall(view)
        for i, token in enumerate(tokens):
            keys = _lookup(token, vocab.keys)
            if not keys and "l" in token and token.replace("l", "i") in vocab.words:
                token = token.replace("l", "i")  # OCR and people both write "l" for "i": "HlV", "paTlent"
                keys = [token]
            for key in keys:
                for term in vocab.words.get(key, ()):
                    found.setdefault((term.category, term.what), term)
                for parts, term in vocab.phrases.get(key, ()):
                    rest = tokens[i + 1 : i + len(parts)]
                    if len(rest) == len(parts) - 1 and all(
                        _word_matches(tok, part) for tok, part in zip(rest, parts[1:], strict=True)
                    ):
                        found.setdefault((term.category, term.what), term)
        if _NON_LATIN_SUBSTRING.search(view):
            for key, term in vocab.substrings:
                if key in view:
                    found.setdefault((term.category, term.what), term)
    return tuple(found.values())


__all__ = ["VOCAB_DIR", "Term", "find_terms", "languages", "load", "record_words"]
