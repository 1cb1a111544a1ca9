"""Sensitivity evidence for the router: what in a request suggests, or proves, that it must stay local.

Split from `signals.py`, which decides the domain and applies the request's hints; this module collects
the evidence (privacy/findings.py `Finding`s) from the lexicon matches (`matching.py`) and the privacy
detectors (`privacy/text.py`) over every text part a backend receives. Hard evidence (a valid card
number, a credential, a DICOM file, health terms tied to a person) survives a `sensitive=False` hint;
soft evidence (words that only suggest sensitivity) does not.
"""

from __future__ import annotations

import re

from ..privacy.findings import Finding
from ..privacy.text import scan_text, text_parts
from ..types import Request
from . import lexicon
from .matching import Entry, matches, stem, tokens

_AGE = re.compile(r"\b\d{1,3}[- ](?:year|yr|month|week)s?[- ]old\b", re.I)
# Health words tied to a person are PHI even when another domain won ("my knee" in a question about a receipt):
# a medical lexicon score this high, next to a person word, marks the request as health information.
_PHI_PERSON_SCORE = 2.0
_PHI_SCORE = 3.0

_PERSON = frozenset(stem(w) for w in lexicon.PERSON_WORDS)
_IDENTITY = frozenset(stem(w) for w in lexicon.IDENTITY_WORDS)
_NAME = stem("name")
_POSSESSORS = frozenset(stem(w) for w in lexicon.POSSESSORS)
_RECORDS = frozenset(stem(w) for w in lexicon.PERSONAL_RECORDS)


def _personal_record(toks: list[str]) -> str | None:
    """The first "my statement" / "patient's chart" pair: a possessor within three words of a record."""
    for i, tok in enumerate(toks):
        if tok in _POSSESSORS:
            for other in toks[i + 1 : i + 4]:
                if other in _RECORDS:
                    return f"{tok} {other}"
    return None


def _names(items: list[str]) -> str:
    unique = list(dict.fromkeys(items))
    if len(unique) <= 1:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " and " + unique[-1]


def find_sensitivity(
    request: Request, toks: list[str], entries: list[Entry], name_entries: list[tuple[str, Entry]],
    domain: str, triggers: list[str], medical_score: float = 0.0,
) -> list[Finding]:
    """All evidence of sensitivity, hard first (see the module docstring for hard vs soft)."""
    text = request.prompt
    tokset = set(toks)
    by_cat: dict[str, list[str]] = {}
    for e in entries:
        if e.sensitive is not None:
            for cat in e.sensitive[0]:
                by_cat.setdefault(cat, []).append(e.sensitive[1])
    # The multilingual vocabulary speaks only where the English lexicon (with its person logic) is silent.
    found = [f for f in scan_text(text, "prompt") if f.kind != "vocabulary" or f.category not in by_cat]
    if _NAME in tokset and tokset & _IDENTITY:
        by_cat.setdefault("pii", []).append("a person's name with identifying details")
    if tokset & _POSSESSORS and tokset & _RECORDS:
        pair = _personal_record(toks)
        if pair:
            by_cat.setdefault("pii", []).append(f"a personal record ({pair!r})")
    person = bool(tokset & _PERSON) or ("old" in text and bool(_AGE.search(text)))
    if "phi" in by_cat:
        if person:
            who = "a patient" if "a patient" in by_cat["phi"] else "a person"
            found.append(Finding("phi", "vocabulary", _names([who, *by_cat["phi"]]), verb="names"))
        else:
            found.append(Finding("phi", "vocabulary", f"{_names(by_cat['phi'])} (health information)", hard=False,
                                 verb="mentions"))
    for cat in ("pii", "credentials", "confidential", "media"):
        if cat in by_cat:
            found.append(Finding(cat, "vocabulary", _names(by_cat[cat]), hard=False, verb="names"))
    what = f" ({_names(triggers[:3])})" if triggers else ""
    if domain == "medical" and "phi" not in by_cat:
        found.append(Finding("phi", "domain", f"health{what}", "request", hard=person))
    elif domain != "medical" and "phi" not in by_cat and (
        medical_score >= _PHI_SCORE or (person and medical_score >= _PHI_PERSON_SCORE)
    ):
        found.append(Finding("phi", "domain", "health details" + (" of a person" if person else ""), hard=person,
                             verb="mentions"))
    elif domain == "financial" and person and "pii" not in by_cat:
        found.append(Finding("pii", "domain", f"someone's own finances{what}", "request", hard=False))
    elif domain == "legal" and any(t not in lexicon.PUBLIC_LEGAL for t in triggers):
        private = [t for t in triggers if t not in lexicon.PUBLIC_LEGAL]
        found.append(Finding("confidential", "domain", f"legal papers, treated as confidential ({_names(private[:3])})",
                             "request", hard=False, verb="involves"))
    for a in request.attachments:
        if a.kind == "dicom":
            found.append(Finding("media", "dicom", "a DICOM study (medical imaging carries PHI)", "attachment"))
    for _name, e in name_entries:
        if e.sensitive is not None:
            for cat in e.sensitive[0]:
                found.append(Finding(cat, "vocabulary", e.sensitive[1], "name", hard=False, verb="suggests"))
    found += other_parts(request)
    return found


def other_parts(request: Request) -> list[Finding]:
    """Sensitivity of the text a backend receives besides the prompt: system instructions, the JSON
    schema's descriptions, attachment names. The same detectors and the same word lists as the prompt."""
    found: list[Finding] = []
    for where, text in text_parts(request):
        if where == "prompt":
            continue
        hits = scan_text(text, where)
        found += [f for f in hits if where != "name" or f.hard]  # a name's words are judged above
        if where == "name":
            continue
        toks = tokens(text)
        labels: dict[str, list[str]] = {}
        for e in matches(toks):
            if e.sensitive is not None:
                for cat in e.sensitive[0]:
                    labels.setdefault(cat, []).append(e.sensitive[1])
        person = bool(set(toks) & _PERSON)
        for cat, whats in labels.items():
            hard = cat == "phi" and person
            found.append(Finding(cat, "vocabulary", _names(whats), where, hard=hard, verb="names"))
    return found
