"""What the privacy detectors report: a category, what was found (never the value), and where.

A finding is *hard* when it is concrete data (a checksum-valid card number, a credential, an MRZ, a
face under a strict policy): a user's "not sensitive" hint cannot waive it. It is *soft* when a word
only suggests sensitivity ("a diagnosis"). Reasons read as one phrase: "the picture shows a payment
card number", "the system instructions contain an e-mail address".
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[int, int, int, int]  # x, y, width, height in the picture's pixels

#: Categories the router knows (routing/signals.py SENSITIVE_CATEGORIES) plus `face`, which only a
#: policy makes sensitive (FASTVLM_HYBRID_PRIVACY_FACES).
CATEGORIES = ("user", "phi", "pii", "credentials", "confidential", "media", "face")

# How each source is named in a reason, and the verb that fits it.
_SOURCES: dict[str, tuple[str, str]] = {
    "prompt": ("the prompt", "contains"),
    "system": ("the system instructions", "contain"),
    "schema": ("the JSON schema", "contains"),
    "name": ("an attachment name", "contains"),
    "request": ("the request", "is about"),
    "attachment": ("an attachment", "is"),
}


@dataclass(frozen=True)
class Finding:
    """One piece of evidence. `what` is a noun phrase ("a payment card number"), never the value;
    `verb` overrides the source's usual verb ("names", "asks for")."""

    category: str
    kind: str
    what: str
    where: str = "prompt"
    hard: bool = True
    boxes: tuple[Box, ...] = field(default=(), compare=False)
    verb: str = ""

    @property
    def reason(self) -> str:
        subject, verb = describe_source(self.where)
        return f"{subject} {self.verb or verb} {self.what}"

    def at(self, where: str, boxes: tuple[Box, ...] = ()) -> Finding:
        """The same evidence found somewhere else (a picture's text, a video frame)."""
        verb = "" if where.startswith(("picture", "video")) else self.verb
        return Finding(self.category, self.kind, self.what, where, self.hard, boxes or self.boxes, verb)

    def to_dict(self) -> dict[str, object]:
        """Categories and kinds only: safe for results, HTTP responses and the audit trail."""
        out: dict[str, object] = {"category": self.category, "kind": self.kind, "where": self.where,
                                  "reason": self.reason, "hard": self.hard}
        if self.boxes:
            out["boxes"] = [list(b) for b in self.boxes]
        return out


def describe_source(where: str) -> tuple[str, str]:
    """(subject, verb): ('the prompt', 'contains'), ('picture 2', 'shows'), ('video 1 (frame at 3.0 s)', 'shows')."""
    known = _SOURCES.get(where)
    if known is not None:
        return known
    if where.startswith(("picture", "video")):
        return ("the picture" if where == "picture" else where), "shows"
    return where, "contains"


def dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (category, kind, where, what), boxes merged, hard before soft."""
    merged: dict[tuple[str, str, str, str], Finding] = {}
    for f in findings:
        key = (f.category, f.kind, f.where, f.what)
        old = merged.get(key)
        if old is None:
            merged[key] = f
        else:
            merged[key] = Finding(old.category, old.kind, old.what, old.where, old.hard or f.hard,
                                  old.boxes + tuple(b for b in f.boxes if b not in old.boxes), old.verb)
    return sorted(merged.values(), key=lambda f: not f.hard)


__all__ = ["CATEGORIES", "Box", "Finding", "dedupe", "describe_source"]
