"""What the router knows about a request: domain, sensitivity, latency class and task.

Detection is one linear pass over the prompt's tokens against a compiled lexicon (`lexicon.py`, matched
in `matching.py`), plus the privacy detectors (`privacy/text.py`: validated numbers, secrets, contacts,
multilingual vocabulary) over every text part a backend receives (collected in `sensitivity.py`), and a
small naive Bayes classifier (`classifier.py`, trained offline) blended into the domain scores where the
lexicon alone is not decisive. Tokens are lower-cased and lightly stemmed (plurals, -ing/-ed,
possessives), on both sides, so "X-rays", "x-ray" and "xray's" all meet the same entry without a list
of every form.

Explicit hints on the request win over detection, with one exception that privacy demands: a user
saying `sensitive=False` waives only *soft* evidence (words that suggest sensitivity). Hard evidence
(a valid card number, a credential, a DICOM file, health terms tied to a person) keeps the request
sensitive, because a wrong "not sensitive" hint must never send that data to the cloud.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..privacy.findings import Finding
from ..types import Domain, Latency, Request, Task
from . import classifier, lexicon
from .matching import TABLE, Entry, folded_tokens, matches, stem, tokens
from .sensitivity import find_sensitivity

__all__ = ["SENSITIVE_CATEGORIES", "Signals", "detect_signals", "folded_tokens", "stem", "tokens"]

_MIN_DOMAIN_SCORE = 2.0
_NAME_WEIGHT = 0.5  # attachment file names count, but less than what the user wrote
_NAME_WEIGHT_TERSE = 1.0  # ... unless the prompt is a word or two ("Read this"): then the name is the context
# Blend with the naive Bayes classifier (classifier.py): a domain scores lexicon + _NB_WEIGHT * P(domain);
# `general` scores _GENERAL_BASE + _NB_WEIGHT * P(general), so it wins only when the evidence is weak.
# Chosen by cross-validation in scripts/train_router_nb.py (train on one labelled set, score the other).
_NB_WEIGHT = 1.5
_GENERAL_BASE = 2.0
SENSITIVE_CATEGORIES = ("user", "phi", "pii", "credentials", "confidential", "media")

# Word shapes that mark a domain even when the word itself is not listed: clinical suffixes, and
# code-like tokens (snake_case, camelCase, file.py, call()).
_MEDICAL_SUFFIX = ("itis", "ectomy", "ostomy", "otomy", "oscopy", "aemia", "emia", "algia", "opathy", "plasty",
                   "carcinoma", "sarcoma", "lymphoma", "hematoma", "melanoma")
# Each alternative anchors on a short fixed shape, so the scan stays cheap on long prompts.
_CODE = re.compile(
    r"\w\(\)|\w\.(?:py|js|ts|tsx|jsx|java|go|rs|cpp|hpp|rb|php|sh|ya?ml|json|toml|sql|html|css|kt|swift)\b"
    r"|[a-z]_[a-z0-9]|\b[a-z]+[A-Z][a-z]|`[^`\n]+`"
)


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


def detect_signals(request: Request) -> Signals:
    """Domain (+scores), sensitivity (+reasons), latency and task of `request`. Pure and linear."""
    toks = tokens(request.prompt)
    entries = matches(toks)
    folded = folded_tokens(request.prompt)
    # Domains are scored on the words as typed (the tuned lexicon and classifier); sensitivity also reads
    # the folded words, so "p@tient", "pаtient" (Cyrillic a) or a soft hyphen inside a word still count.
    seen = {id(e) for e in entries}
    sensitive_extra = [e for e in matches(folded) if e.sensitive is not None and id(e) not in seen]
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
    shape = [t for t in toks if len(t) > 6 and t.endswith(_MEDICAL_SUFFIX) and TABLE.get(t) is None]
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
    name_entries: list[tuple[str, Entry]] = []
    name_toks: list[str] = []
    name_weight = _NAME_WEIGHT_TERSE if len(toks) <= 2 else _NAME_WEIGHT
    for a in request.attachments:
        if a.kind == "dicom":
            scores["medical"] = scores.get("medical", 0.0) + 4.0
            triggers.setdefault("medical", []).append("a DICOM study")
        if a.name and a.kind != "youtube" and not a.name.startswith(("http://", "https://", "rtsp://")):
            ntoks = tokens(a.name.rsplit(".", 1)[0].replace("_", " ").replace("-", " "))
            name_toks.extend(ntoks)
            for e in matches(ntoks):
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
    found = find_sensitivity(request, toks + folded, entries + sensitive_extra, name_entries, domain.value,
                             dom_triggers, scores.get("medical", 0.0))

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
