"""`Router.decide(request) -> RouteDecision`: which backends may see a request, in what order, and why.

A pure function of the request, the configured backends and the rules: no I/O, no clock, no
randomness, so a decision can be explained, cached, audited and tested. Steps, in order:

1. signals   detect domain, sensitivity, latency and task (`signals.py`); hints win.
2. mode      local-only keeps local backends, cloud-only cloud ones; cloud-only + sensitive is an error.
3. privacy   a sensitive request loses every cloud backend. Hard-coded here, not a rule, so no rules
             file, mode or preference can undo it.
4. media     a backend that cannot take the request's media is dropped (YouTube -> Gemini only).
5. health    a backend marked unavailable (e.g. Gemini without an API key) is dropped, saying why.
6. rules     in priority order; forbid/require filter, the first prefer/escalate_below wins.
7. order     preferred kind first; `escalate_below` only in auto mode with local first and a cloud
             backend behind it that the local model's confidence can hand over to.

If nothing is left, the error says why: missing credentials, media no allowed backend can take, or
the policy that removed the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..backends.base import Capabilities
from ..errors import (
    BadInputError,
    ConfigurationError,
    EgressRefusedError,
    MissingCredentialsError,
    PolicyViolationError,
)
from ..types import Mode, Request, RouteDecision, RuleHit
from .rules import RuleSet, load_rules
from .signals import Signals, detect_signals

if TYPE_CHECKING:
    from ..privacy.inspector import Inspection

_CATEGORIES = ("phi", "pii", "credentials", "confidential", "media")


@dataclass(frozen=True)
class BackendInfo:
    """What the router knows about a backend: its name, static capabilities and whether it can run."""

    name: str
    capabilities: Capabilities
    available: bool = True
    unavailable_reason: str = ""

    @property
    def is_cloud(self) -> bool:
        return self.capabilities.is_cloud

    @property
    def kind(self) -> str:
        return self.capabilities.kind.value


class _Ctx:
    """Mutable view the rules are matched against; has_cloud/has_local follow the candidate list."""

    __slots__ = ("attachment_kinds", "domain", "has_cloud", "has_local", "image_count", "latency", "mode",
                 "prompt", "sensitive", "sensitivity", "task", "values", "video_bytes")

    def __init__(self, sig: Signals, request: Request, mode: Mode, cands: list[BackendInfo]) -> None:
        self.domain, self.latency, self.task = sig.domain.value, sig.latency.value, sig.task.value
        self.sensitive, self.sensitivity = sig.sensitive, sig.sensitivity
        self.attachment_kinds, self.image_count = sig.attachment_kinds, sig.image_count
        self.video_bytes = sig.video_bytes
        self.prompt, self.mode = request.prompt, mode.value
        self.update(cands)
        triggers = list(sig.domain_triggers[:3])
        trig = ", ".join(triggers) if triggers else ("the domain hint" if request.domain else "no specific terms")
        self.values = {
            "domain": self.domain, "task": self.task, "latency": self.latency, "mode": self.mode,
            "triggers": trig,
            "sensitivity": "; ".join(sig.sensitivity_reasons) or "not sensitive",
            "attachments": ", ".join(sorted(sig.attachment_kinds)) or "no attachments",
        }
        for cat in _CATEGORIES:
            self.values[cat] = "; ".join(sig.reasons_by_category.get(cat, ())) or f"no {cat} found"

    def update(self, cands: list[BackendInfo]) -> None:
        self.has_cloud = any(b.is_cloud for b in cands)
        self.has_local = any(not b.is_cloud for b in cands)


class Router:
    """Decides routes for one set of backends and rules. Cheap to call: build once, call often."""

    def __init__(
        self,
        backends: Sequence[BackendInfo],
        rules: RuleSet | None = None,
        default_mode: Mode = Mode.AUTO,
        confidence_threshold: float = 0.45,
    ) -> None:
        self.backends = tuple(backends)
        names = [b.name for b in self.backends]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigurationError(f"backend name(s) configured twice: {', '.join(dupes)}")
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ConfigurationError(f"confidence threshold must lie in [0, 1], got {confidence_threshold}")
        self.rules = rules if rules is not None else load_rules()
        self.default_mode = Mode.parse(default_mode)
        self.confidence_threshold = confidence_threshold

    def decide(self, request: Request) -> RouteDecision:
        """The route for `request`. Raises PolicyViolationError, BadInputError, ConfigurationError or
        MissingCredentialsError (all with one-line reasons) when no allowed backend is left."""
        if not self.backends:
            raise ConfigurationError("no backends are configured: install a local model or set GEMINI_API_KEY")
        pinned, pinned_model = self.pin(request.model, request.backend)
        sig = detect_signals(request)
        mode: Mode = request.mode or self.default_mode
        sensitive = sig.sensitive
        reasons = list(sig.sensitivity_reasons)
        if sensitive and mode is Mode.CLOUD_ONLY:
            raise PolicyViolationError(
                f"cloud-only mode was asked for, but the request is sensitive ({reasons[0]}); "
                "sensitive requests never leave this machine - use local-only or auto"
            )
        built_in: list[RuleHit] = []
        removed: list[str] = []  # why backends left, for the error if none remain
        cands = list(self.backends)
        if mode in (Mode.LOCAL_ONLY, Mode.CLOUD_ONLY):
            want_cloud = mode is Mode.CLOUD_ONLY
            other = [b.name for b in cands if b.is_cloud is not want_cloud]
            cands = [b for b in cands if b.is_cloud is want_cloud]
            if other:
                removed.append(f"{', '.join(other)} excluded by {mode.value} mode")
            where = "cloud" if want_cloud else "local"
            if not cands:
                raise ConfigurationError(f"{mode.value} mode, but no {where} backend is configured")
            built_in.append(RuleHit(f"mode-{mode.value}", f"{mode.value} mode: only {where} backends are used"))
        if sensitive:
            cloud = [b.name for b in cands if b.is_cloud]
            if cloud:
                cands = [b for b in cands if not b.is_cloud]
                removed.append(f"{', '.join(cloud)} excluded because the request is sensitive")

        cannot: list[str] = []
        kept: list[BackendInfo] = []
        for b in cands:
            why = b.capabilities.accepts(request)
            if why:
                cannot.append(f"{b.name} {why}")
                built_in.append(RuleHit("backend-cannot-take-input", f"{b.name} {why}"))
            else:
                kept.append(b)
        cands = kept
        missing: list[BackendInfo] = [b for b in cands if not b.available]
        for b in missing:
            built_in.append(RuleHit("backend-unavailable", f"{b.name} is skipped: {b.unavailable_reason}"))
        cands = [b for b in cands if b.available]

        ctx = _Ctx(sig, request, mode, cands)
        ctx.sensitive = sensitive
        fired: list[RuleHit] = []
        prefer: str | None = None
        escalate: float | None = None
        escalate_set = privacy_explained = cloud_blocked = False
        for rule in self.rules:
            if not rule.matches(ctx):
                continue
            if rule.mark_sensitive and not sensitive:
                sensitive = ctx.sensitive = True
                reasons.append(f"rule {rule.name} marks it sensitive")
                if mode is Mode.CLOUD_ONLY:
                    raise PolicyViolationError(
                        f"cloud-only mode was asked for, but rule {rule.name} marks the request sensitive"
                    )
                cands = [b for b in cands if not b.is_cloud]
                ctx.update(cands)
            before = len(cands)
            if rule.forbid:
                cands = [b for b in cands if b.kind != rule.forbid]
            if rule.require:
                cands = [b for b in cands if b.kind == rule.require]
            if len(cands) != before:
                removed.append(f"rule {rule.name} removed the other backends ({rule.explain(ctx)})")
                ctx.update(cands)
            if rule.forbid == "cloud" or rule.require == "local":
                privacy_explained = privacy_explained or sensitive
                cloud_blocked = True
            if rule.prefer and prefer is None:
                prefer = rule.prefer
            if rule.sets_escalation and not escalate_set:
                escalate, escalate_set = rule.escalate, True
            fired.append(RuleHit(rule.name, rule.explain(ctx)))

        if sensitive and not privacy_explained:
            fired.insert(0, RuleHit("sensitive-stays-local", f"{reasons[0]}; cloud backends are never used for it"))
        if pinned is not None and pinned not in {b.name for b in cands}:
            self._pin_removed(pinned, request, removed, cannot, missing, sensitive)
        if not cands:
            self._nothing_left(removed, cannot, missing)
        if pinned is not None:
            # The named backend answers; only fallback mode lets the others follow it (on its failure).
            first = next(b for b in cands if b.name == pinned)
            rest = [b for b in cands if b.name != pinned] if mode is Mode.FALLBACK else []
            what = f"{request.model!r}" if request.model else pinned
            follow = f", then {', '.join(b.name for b in rest)} if it fails" if rest else ""
            fired.insert(0, RuleHit("pinned", f"the request names {what}: {pinned} answers{follow}"))
            return RouteDecision(
                mode=mode, domain=sig.domain, sensitive=sensitive, latency=sig.latency, task=sig.task,
                backends=(first.name, *(b.name for b in rest)),
                cloud_allowed=not sensitive and mode is not Mode.LOCAL_ONLY and not cloud_blocked,
                rules=tuple(fired + built_in), escalate_below=None, sensitivity_reasons=tuple(reasons),
                pinned=pinned, pinned_model=pinned_model,
            )

        local = [b for b in cands if not b.is_cloud]
        cloud = [b for b in cands if b.is_cloud]
        ordered = cloud + local if prefer == "cloud" else local + cloud
        escalate_below: float | None = None
        if mode is Mode.AUTO and cloud and not ordered[0].is_cloud and ordered[0].capabilities.confidence:
            escalate_below = escalate if escalate_set else self.confidence_threshold
        return RouteDecision(
            mode=mode,
            domain=sig.domain,
            sensitive=sensitive,
            latency=sig.latency,
            task=sig.task,
            backends=tuple(b.name for b in ordered),
            cloud_allowed=not sensitive and mode is not Mode.LOCAL_ONLY and not cloud_blocked,
            rules=tuple(fired + built_in),
            escalate_below=escalate_below,
            sensitivity_reasons=tuple(reasons),
        )

    def pin(self, model: str | None, backend: str | None = None) -> tuple[str | None, str | None]:
        """(backend, model for it) that a request names, or (None, None).

        `backend` names a backend; `model` may be a backend name (`gemini`), a `backend/model` pair
        (`gemini/gemini-2.5-pro`), or a model a configured backend serves by its catalogue prefixes
        (`gemini-2.5-flash`, `apple/FastVLM-0.5B`). Anything else is a BadInputError.
        """
        names = [b.name for b in self.backends]
        if backend is not None:
            if backend not in names:
                raise BadInputError(f"unknown backend {backend!r}; configured: {', '.join(names)}")
            return backend, model
        if not model or not model.strip():
            return None, None
        model = model.strip()
        if model.lower() in names:
            return model.lower(), None
        head, slash, rest = model.partition("/")
        if slash and head.lower() in names:
            return head.lower(), rest or None
        for b in self.backends:
            if b.capabilities.serves(model):
                return b.name, model
        raise BadInputError(
            f"no configured backend serves the model {model!r}; name a backend ({', '.join(names)}), "
            "a backend/model pair such as gemini/gemini-2.5-flash, or one of their models"
        )

    def _pin_removed(self, pinned: str, request: Request, removed: list[str], cannot: list[str],
                     missing: list[BackendInfo], sensitive: bool) -> None:
        """Raise why the backend the request names cannot answer it (privacy first: exit 2 / HTTP 403)."""
        info = self._info(pinned)
        assert info is not None  # pin() only returns configured names
        what = f"{request.model!r}" if request.model else pinned
        if sensitive and info.is_cloud:
            raise PolicyViolationError(
                f"the request names {what}, which runs off this machine ({pinned}), but it is sensitive; "
                "sensitive requests never leave this machine - name a local model or none"
            )
        why = [r for r in (*removed, *cannot) if pinned in r] or removed or cannot
        if info in missing or not info.available:
            cls = MissingCredentialsError if info.is_cloud else ConfigurationError
            raise cls(f"the request names {what}, but {info.unavailable_reason or f'{pinned} is unavailable'}")
        if any(pinned in r for r in cannot):
            raise BadInputError(f"the request names {what}, but {'; '.join(why)}")
        raise PolicyViolationError(f"the request names {what}, but {'; '.join(why) or 'the routing policy removed it'}")

    def with_inspection(self, decision: RouteDecision, inspection: Inspection) -> RouteDecision:
        """`decision` once the egress gate has looked at the pictures (privacy/inspector.py).

        Pure: no I/O. A refusal removes the cloud backends exactly as sensitive text does (and makes an
        explicit `cloud-only` an error); a redaction is named in the rules; the findings ride along as
        `privacy`, categories only."""
        privacy = inspection.to_dict()
        if not inspection.refused:
            rules = decision.rules
            if inspection.redactions:
                why = "; ".join(inspection.redactions)
                rules = (*rules, RuleHit("privacy-gate-redacts", f"the cloud sees the pictures redacted ({why})"))
            return replace(decision, privacy=privacy, rules=rules)
        reason = inspection.reason
        cloud = [n for n in decision.backends if self._info(n) is not None and self._info(n).is_cloud]
        if decision.mode is Mode.CLOUD_ONLY or (cloud and len(cloud) == len(decision.backends)):
            raise EgressRefusedError(
                f"{decision.mode.value} mode was asked for, but the request is sensitive ({reason}); "
                "sensitive requests never leave this machine - use local-only or auto",
                cloud[0] if cloud else "", inspection.findings,
            )
        rules = decision.rules
        if cloud:
            rules = (RuleHit("privacy-gate", f"{reason}; cloud backends are never used for it"), *rules)
        return replace(
            decision,
            sensitive=True,
            cloud_allowed=False,
            backends=tuple(n for n in decision.backends if n not in cloud),
            escalate_below=None,
            rules=rules,
            sensitivity_reasons=tuple(dict.fromkeys((*decision.sensitivity_reasons, *inspection.refusals))),
            privacy=privacy,
        )

    def _info(self, name: str) -> BackendInfo | None:
        for b in self.backends:
            if b.name == name:
                return b
        return None

    @staticmethod
    def _nothing_left(removed: list[str], cannot: list[str], missing: list[BackendInfo]) -> None:
        """Raise the error that names what the user can change."""
        detail = "; ".join(removed + cannot + [b.unavailable_reason or f"{b.name} is unavailable" for b in missing])
        if missing:
            cls = MissingCredentialsError if any(b.is_cloud for b in missing) else ConfigurationError
            raise cls(f"no backend can take this request ({detail})")
        if cannot:
            raise BadInputError(f"no allowed backend can take this request's media ({detail})")
        raise PolicyViolationError(f"the routing policy leaves no backend for this request ({detail})")
