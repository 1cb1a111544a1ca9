"""Tokenise, stem and match text against the compiled routing lexicon (`lexicon.py`, `domain_terms.yaml`).

Split from `signals.py`: this is the one linear pass both the domain scoring there and the sensitivity
evidence in `sensitivity.py` read. Tokens are lower-cased and lightly stemmed (plurals, -ing/-ed,
possessives) on both sides, lexicon and prompt, so "X-rays", "x-ray" and "xray's" all meet the same
entry without a list of every form; phrases of up to four words match as one entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..privacy.normalize import latin_view
from . import lexicon

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_MAX_PHRASE = 4


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A deliberately crude stemmer: the same function runs on lexicon and prompt, so it only has
    to be consistent, not linguistically right. Plurals, -ing, -ed, final -e/-y are folded."""
    w = word.split("'", 1)[0].split("’", 1)[0]
    if len(w) <= 3:
        return w
    if w.endswith("ies"):
        w = w[:-2]
    elif w.endswith(("sses", "xes", "zes", "ches", "shes")) or (w.endswith("es") and len(w) > 5):
        w = w[:-2]
    elif w.endswith("es"):
        w = w[:-1]  # "bones" -> "bone", "notes" -> "note": short words keep their e
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    elif w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    if w.endswith("e") and len(w) > 4:  # "bone" must not become the French "bon"
        w = w[:-1]
    elif w.endswith("y") and len(w) > 3:
        w = w[:-1] + "i"
    return w


def tokens(text: str) -> list[str]:
    return [stem(t) for t in _TOKEN.findall(text.lower())]


def folded_tokens(text: str) -> list[str]:
    """Stemmed tokens of the text's Latin view (look-alike letters, leetspeak, accents, invisible
    characters folded), with 'l' read as 'i' where only that makes a lexicon word ("HlV")."""
    out = []
    for t in _TOKEN.findall(latin_view(text)):
        s = stem(t)
        if s not in TABLE and "l" in s:
            alt = stem(t.replace("l", "i"))
            s = alt if alt in TABLE else s
        out.append(s)
    return out


@dataclass
class Entry:
    domains: list[tuple[str, float]] = field(default_factory=list)
    sensitive: tuple[tuple[str, ...], str] | None = None
    latency: str | None = None
    task: str | None = None
    display: str = ""


def _compile() -> tuple[dict[str, Entry], frozenset[str]]:
    table: dict[str, Entry] = {}

    def entry(phrase: str) -> Entry:
        key = " ".join(tokens(phrase))
        if not key or len(key.split()) > _MAX_PHRASE:
            raise ValueError(f"lexicon phrase {phrase!r} is empty or longer than {_MAX_PHRASE} words")
        return table.setdefault(key, Entry(display=phrase))

    for domain, terms in lexicon.load_domain_terms().items():
        for phrase, weight in terms.items():
            e = entry(phrase)
            # "password" and "passwords" meet in one key: keep the larger weight, do not add twice.
            old = dict(e.domains)
            old[domain] = max(old.get(domain, 0.0), float(weight))
            e.domains = list(old.items())
    for phrase, value in lexicon.SENSITIVE_TERMS.items():
        entry(phrase).sensitive = value
    for phrase, latency in lexicon.LATENCY_TERMS.items():
        entry(phrase).latency = latency
    for phrase, task in lexicon.TASK_TERMS.items():
        entry(phrase).task = task
    prefixes: set[str] = set()
    for key in table:
        words = key.split(" ")
        for n in range(1, len(words)):
            prefixes.add(" ".join(words[:n]))
    return table, frozenset(prefixes)


TABLE, _PHRASE_PREFIXES = _compile()


def matches(toks: list[str]) -> list[Entry]:
    """Every lexicon entry in `toks`, each once, in order of first appearance. Linear in len(toks)."""
    out: list[Entry] = []
    seen: set[int] = set()
    n = len(toks)
    for i, tok in enumerate(toks):
        e = TABLE.get(tok)
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            out.append(e)
        # Grow the phrase only while it is still the start of some lexicon phrase.
        key = tok
        j = i + 1
        while key in _PHRASE_PREFIXES and j < n:
            key = key + " " + toks[j]
            j += 1
            e = TABLE.get(key)
            if e is not None and id(e) not in seen:
                seen.add(id(e))
                out.append(e)
    return out
