"""What the router knows about a request: domain, sensitivity, latency class and task.

Detection is one linear pass over the prompt's tokens against a compiled lexicon (`lexicon.py`),
plus the privacy detectors (`privacy/text.py`: validated numbers, secrets, contacts, multilingual
vocabulary) over every text part a backend receives, and a small naive Bayes
classifier (`classifier.py`, trained offline) blended into the domain scores where the lexicon alone
is not decisive. Tokens are lower-cased and lightly
stemmed (plurals, -ing/-ed, possessives), on both sides, so "X-rays", "x-ray" and "xray's" all meet
the same entry without a list of every form.

Explicit hints on the request win over detection, with one exception that privacy demands: a user
saying `sensitive=False` waives only *soft* evidence (words that suggest sensitivity). Hard evidence
(a valid card number, a credential, a DICOM file, health terms tied to a person) keeps the request
sensitive, because a wrong "not sensitive" hint must never send that data to the cloud.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from ..privacy.findings import Finding
from ..privacy.normalize import latin_view
from ..privacy.text import scan_text, text_parts
from ..types import Domain, Latency, Request, Task
from . import classifier, lexicon

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_AGE = re.compile(r"\b\d{1,3}[- ](?:year|yr|month|week)s?[- ]old\b", re.I)
_MAX_PHRASE = 4
_MIN_DOMAIN_SCORE = 2.0
_NAME_WEIGHT = 0.5  # attachment file names count, but less than what the user wrote
_NAME_WEIGHT_TERSE = 1.0  # ... unless the prompt is a word or two ("Read this"): then the name is the context
# Blend with the naive Bayes classifier (classifier.py): a domain scores lexicon + _NB_WEIGHT * P(domain);
# `general` scores _GENERAL_BASE + _NB_WEIGHT * P(general), so it wins only when the evidence is weak.
# Chosen by cross-validation in scripts/train_router_nb.py (train on one labelled set, score the other).
_NB_WEIGHT = 1.5
_GENERAL_BASE = 2.0
# Health words tied to a person are PHI even when another domain won ("my knee" in a question about a receipt):
# a medical lexicon score this high, next to a person word, marks the request as health information.
_PHI_PERSON_SCORE = 2.0
_PHI_SCORE = 3.0

SENSITIVE_CATEGORIES = ("user", "phi", "pii", "credentials", "confidential", "media")


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
        if s not in _TABLE and "l" in s:
            alt = stem(t.replace("l", "i"))
            s = alt if alt in _TABLE else s
        out.append(s)
    return out


@dataclass
class _Entry:
    domains: list[tuple[str, float]] = field(default_factory=list)
    sensitive: tuple[tuple[str, ...], str] | None = None
    latency: str | None = None
    task: str | None = None
    display: str = ""


def _compile() -> tuple[dict[str, _Entry], frozenset[str]]:
    table: dict[str, _Entry] = {}

    def entry(phrase: str) -> _Entry:
        key = " ".join(tokens(phrase))
        if not key or len(key.split()) > _MAX_PHRASE:
            raise ValueError(f"lexicon phrase {phrase!r} is empty or longer than {_MAX_PHRASE} words")
        return table.setdefault(key, _Entry(display=phrase))

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


_TABLE, _PHRASE_PREFIXES = _compile()
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
# Word shapes that mark a domain even when the word itself is not listed: clinical suffixes, and
# code-like tokens (snake_case, camelCase, file.py, call()).
_MEDICAL_SUFFIX = ("itis", "ectomy", "ostomy", "otomy", "oscopy", "aemia", "emia", "algia", "opathy", "plasty",
                   "carcinoma", "sarcoma", "lymphoma", "hematoma", "melanoma")
# Each alternative anchors on a short fixed shape, so the scan stays cheap on long prompts.
_CODE = re.compile(
    r"\w\(\)|\w\.(?:py|js|ts|tsx|jsx|java|go|rs|cpp|hpp|rb|php|sh|ya?ml|json|toml|sql|html|css|kt|swift)\b"
    r"|[a-z]_[a-z0-9]|\b[a-z]+[A-Z][a-z]|`[^`\n]+`"
)


def _matches(toks: list[str]) -> list[_Entry]:
    """Every lexicon entry in `toks`, each once, in order of first appearance. Linear in len(toks)."""
    out: list[_Entry] = []
    seen: set[int] = set()
    n = len(toks)
    for i, tok in enumerate(toks):
        e = _TABLE.get(tok)
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            out.append(e)
        # Grow the phrase only while it is still the start of some lexicon phrase.
        key = tok
        j = i + 1
        while key in _PHRASE_PREFIXES and j < n:
            key = key + " " + toks[j]
            j += 1
            e = _TABLE.get(key)
            if e is not None and id(e) not in seen:
                seen.add(id(e))
                out.append(e)
    return out


@dataclass(frozen=True)
class Signals:
    """Everything detection found, with the evidence, so the router can explain itself."""

    domain: Domain
    domain_scores: Mapping[str, float]
    domain_triggers: tuple[str, ...]
    sensitive: bool
    sensitivity: frozenset[str]
    sensitivity_reasons: tuple[str, ...]
    latency: Latency
    task: Task
    attachment_kinds: frozenset[str] = frozenset()
    image_count: int = 0
    video_bytes: int = 0
    hard_sensitive: bool = False
    #: the reasons again, grouped by category (phi, pii, ...), for rule reason templates
    reasons_by_category: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: every piece of evidence, with its kind and where it was found (privacy/findings.py)
    findings: tuple[Finding, ...] = ()


def _names(items: list[str]) -> str:
    unique = list(dict.fromkeys(items))
    if len(unique) <= 1:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " and " + unique[-1]


def _lexicon_decides(scores: dict[str, float]) -> bool:
    """True when no posterior could change the lexicon's answer, so the classifier need not run.

    Each blended score moves by at most _NB_WEIGHT (a probability is at most 1), so a lexicon leader
    ahead of every rival, and of `general`'s base, by more than that wins whatever the classifier says."""
    if not scores:
        return False
    ranked = sorted(scores.values(), reverse=True)
    top = ranked[0]
    runner_up = max(ranked[1] if len(ranked) > 1 else 0.0, _GENERAL_BASE)
    return top > runner_up + _NB_WEIGHT


def _domain(scores: dict[str, float], posterior: Mapping[str, float] | None) -> str:
    """The lexicon's best domain, or `general` when its evidence is weak; with a classifier posterior,
    both are blended (see _NB_WEIGHT). Ties go to the more privacy-relevant domain."""
    if posterior is None:
        best = max(lexicon.DOMAIN_ORDER, key=lambda d: (scores.get(d, 0.0), -lexicon.DOMAIN_ORDER.index(d)))
        return best if scores.get(best, 0.0) >= _MIN_DOMAIN_SCORE else "general"
    order = lexicon.DOMAIN_ORDER
    blended = {d: scores.get(d, 0.0) + _NB_WEIGHT * posterior.get(d, 0.0) for d in order[:-1]}
    blended["general"] = _GENERAL_BASE + _NB_WEIGHT * posterior.get("general", 0.0)
    return max(order, key=lambda d: (blended[d], -order.index(d)))


def _latency(request: Request, cues: list[str]) -> Latency:
    if request.latency is not None:
        return request.latency
    ms = request.max_latency_ms
    if ms is not None:
        if ms <= 1000:
            return Latency.REALTIME
        if ms <= 3000:
            return Latency.LOW_LATENCY
        if ms >= 60000:
            return Latency.BATCH
        return Latency.NORMAL
    if any(a.url and a.url.startswith("rtsp://") for a in request.attachments):
        return Latency.REALTIME
    for cls in ("realtime", "low-latency", "batch"):
        if cls in cues:
            return Latency(cls)
    return Latency.NORMAL


def _task(request: Request, kinds: frozenset[str], images: int, cues: list[str], prompt: str) -> Task:
    if request.options.json_schema:
        return Task.STRUCTURED
    if "youtube" in kinds:
        return Task.YOUTUBE
    if "video" in kinds:
        return Task.VIDEO
    if "compare" in cues or images >= 2:
        return Task.COMPARE
    for task in lexicon.TASK_ORDER:
        if task in cues:
            return Task(task)
    return Task.QUESTION if prompt.rstrip().endswith("?") else Task.DESCRIBE


def _sensitivity(
    request: Request, toks: list[str], entries: list[_Entry], name_entries: list[tuple[str, _Entry]],
    domain: str, triggers: list[str], medical_score: float = 0.0,
) -> list[Finding]:
    """All evidence of sensitivity, hard first. See the module docstring for hard vs soft."""
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
    found += _other_parts(request)
    return found


def _other_parts(request: Request) -> list[Finding]:
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
        for e in _matches(toks):
            if e.sensitive is not None:
                for cat in e.sensitive[0]:
                    labels.setdefault(cat, []).append(e.sensitive[1])
        person = bool(set(toks) & _PERSON)
        for cat, whats in labels.items():
            hard = cat == "phi" and person
            found.append(Finding(cat, "vocabulary", _names(whats), where, hard=hard, verb="names"))
    return found


def detect_signals(request: Request) -> Signals:
    """Domain (+scores), sensitivity (+reasons), latency and task of `request`. Pure and linear."""
    toks = tokens(request.prompt)
    entries = _matches(toks)
    folded = folded_tokens(request.prompt)
    # Domains are scored on the words as typed (the tuned lexicon and classifier); sensitivity also reads
    # the folded words, so "p@tient", "pаtient" (Cyrillic a) or a soft hyphen inside a word still count.
    seen = {id(e) for e in entries}
    sensitive_extra = [e for e in _matches(folded) if e.sensitive is not None and id(e) not in seen]
    scores: dict[str, float] = {}
    triggers: dict[str, list[str]] = {}
    cues: list[str] = []
    for e in entries:
        for dom, weight in e.domains:
            scores[dom] = scores.get(dom, 0.0) + weight
            triggers.setdefault(dom, []).append(e.display)
        if e.latency:
            cues.append(e.latency)
        if e.task:
            cues.append(e.task)
    shape = [t for t in toks if len(t) > 6 and t.endswith(_MEDICAL_SUFFIX) and _TABLE.get(t) is None]
    if shape:
        scores["medical"] = scores.get("medical", 0.0) + 2.0 * min(len(shape), 2)
        triggers.setdefault("medical", []).extend(shape[:2])
    code = _CODE.findall(request.prompt)
    if code:
        scores["technical"] = scores.get("technical", 0.0) + 2.0 * min(len(code), 2)
        triggers.setdefault("technical", []).append("code-like text")
    kind_list = [a.kind for a in request.attachments]
    kinds = frozenset(kind_list)
    video_bytes = sum(a.size for a, k in zip(request.attachments, kind_list, strict=True) if k == "video")
    images = sum(1 for k in kind_list if k in ("image", "dicom"))
    name_entries: list[tuple[str, _Entry]] = []
    name_toks: list[str] = []
    name_weight = _NAME_WEIGHT_TERSE if len(toks) <= 2 else _NAME_WEIGHT
    for a in request.attachments:
        if a.kind == "dicom":
            scores["medical"] = scores.get("medical", 0.0) + 4.0
            triggers.setdefault("medical", []).append("a DICOM study")
        if a.name and a.kind != "youtube" and not a.name.startswith(("http://", "https://", "rtsp://")):
            ntoks = tokens(a.name.rsplit(".", 1)[0].replace("_", " ").replace("-", " "))
            name_toks.extend(ntoks)
            for e in _matches(ntoks):
                name_entries.append((a.name, e))
                for dom, weight in e.domains:
                    scores[dom] = scores.get(dom, 0.0) + weight * name_weight
                    triggers.setdefault(dom, []).append(e.display)
    # The classifier's weights load on first need (lru-cached): a prompt the word lists decide never pays for them.
    model = None if _lexicon_decides(scores) else classifier.load_model()
    posterior = model.posterior(toks + name_toks) if model is not None else None
    detected = _domain(scores, posterior)
    domain = request.domain or Domain(detected)
    dom_triggers = triggers.get(domain.value, [])
    found = _sensitivity(request, toks + folded, entries + sensitive_extra, name_entries, domain.value, dom_triggers,
                         scores.get("medical", 0.0))

    if request.sensitive is False:
        found = [f for f in found if f.hard]
        found = [Finding(f.category, f.kind, f.what + " (a 'not sensitive' hint cannot waive this)", f.where, True,
                         f.boxes, f.verb) for f in found]
    elif request.sensitive is True:
        found.insert(0, Finding("user", "hint", "sensitive", "request", verb="was marked"))
    found.sort(key=lambda f: not f.hard)
    reasons = tuple(dict.fromkeys(f.reason for f in found))
    grouped: dict[str, list[str]] = {}
    for f in found:
        if f.reason not in grouped.setdefault(f.category, []):
            grouped[f.category].append(f.reason)
    return Signals(
        domain=domain,
        domain_scores=scores,
        domain_triggers=tuple(dict.fromkeys(dom_triggers)),
        sensitive=bool(found),
        sensitivity=frozenset(f.category for f in found),
        sensitivity_reasons=reasons,
        latency=_latency(request, cues),
        task=_task(request, kinds, images, cues, request.prompt),
        attachment_kinds=kinds,
        image_count=images,
        video_bytes=video_bytes,
        hard_sensitive=any(f.hard for f in found),
        reasons_by_category={cat: tuple(items) for cat, items in grouped.items()},
        findings=tuple(found),
    )
