"""The rule language: routing policy as YAML data, validated with pydantic, compiled once.

A rule is `when:` conditions (all must hold; a list means "any of") and `then:` actions, with a
`priority` (higher runs first) and a `reason` template that names what triggered it:

```yaml
rules:
  - name: creative-prefers-cloud
    priority: 40
    when: {domain: [creative], has_cloud: true}
    then:
      prefer: cloud
      reason: "creative writing ({triggers}) reads better from the larger cloud model"
```

Conditions: domain, sensitive, sensitivity (user, phi, pii, credentials, confidential, media), latency,
task, attachments (any attachment of these kinds), min_images, min_video_mb, prompt (a regex,
case-insensitive), mode, has_cloud, has_local. Actions: prefer (local|cloud), require (local|cloud),
forbid (local|cloud), escalate_below (0..1 or null for "never escalate"), mark_sensitive (true).
Placeholders in reasons: {domain} {task} {latency} {mode} {triggers} {sensitivity} {attachments}, and the
sensitivity reasons of one category: {phi} {pii} {credentials} {confidential} {media}.

Privacy does not depend on these rules: the router removes cloud backends from every sensitive
request itself, so no rule file, however written, can send sensitive data to the cloud.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigurationError
from ..types import Domain, Latency, Mode, Task

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
PLACEHOLDERS = frozenset({
    "domain", "task", "latency", "mode", "triggers", "sensitivity", "attachments",
    "phi", "pii", "credentials", "confidential", "media",
})
Kind = Literal["local", "cloud"]
Sensitivity = Literal["user", "phi", "pii", "credentials", "confidential", "media"]
AttachmentKind = Literal["image", "video", "dicom", "youtube", "url"]


class RuleContext(Protocol):
    """What a rule is matched against: the request's signals and the candidates left (router.py builds it)."""

    domain: str
    latency: str
    task: str
    mode: str
    sensitive: bool
    sensitivity: frozenset[str]
    attachment_kinds: frozenset[str]
    image_count: int
    video_bytes: int
    prompt: str
    has_cloud: bool
    has_local: bool
    #: the placeholders a rule's reason template may name
    values: dict[str, str]


class When(BaseModel):
    """Conditions; every one given must hold. Lists mean "any of these"."""

    model_config = ConfigDict(extra="forbid")

    domain: list[Domain] | None = None
    sensitive: bool | None = None
    sensitivity: list[Sensitivity] | None = None
    latency: list[Latency] | None = None
    task: list[Task] | None = None
    attachments: list[AttachmentKind] | None = None
    min_images: int | None = Field(None, ge=0)
    min_video_mb: float | None = Field(None, ge=0)
    prompt: str | None = None
    mode: list[Mode] | None = None
    has_cloud: bool | None = None
    has_local: bool | None = None

    @field_validator("prompt")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value


class Then(BaseModel):
    """Actions. `escalate_below` left out means "no opinion"; written as null means "never"."""

    model_config = ConfigDict(extra="forbid")

    prefer: Kind | None = None
    require: Kind | None = None
    forbid: Kind | None = None
    escalate_below: float | None = Field(None, ge=0.0, le=1.0)
    mark_sensitive: bool = False
    reason: str = ""

    @field_validator("reason")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            names = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
        except ValueError as exc:
            raise ValueError(f"bad reason template {value!r}: {exc}") from None
        unknown = names - PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {sorted(unknown)} in reason; use {', '.join(sorted(PLACEHOLDERS))}"
            )
        return value

    @property
    def sets_escalation(self) -> bool:
        return "escalate_below" in self.model_fields_set


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    priority: int = 50
    description: str = ""
    enabled: bool = True
    when: When = Field(default_factory=When)
    then: Then = Field(default_factory=Then)

    @model_validator(mode="after")
    def _has_action(self) -> Rule:
        t = self.then
        if self.enabled:
            if not (t.prefer or t.require or t.forbid or t.sets_escalation or t.mark_sensitive):
                raise ValueError(
                    f"rule {self.name!r} has no action (prefer, require, forbid, escalate_below, mark_sensitive)"
                )
            if not t.reason:
                raise ValueError(f"rule {self.name!r} needs a reason")
            if t.require and t.forbid and t.require == t.forbid:
                raise ValueError(f"rule {self.name!r} both requires and forbids {t.require}")
        return self


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    replace: bool = False
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} appears twice")
            seen.add(rule.name)
        return self


class CompiledRule:
    """A rule with its sets built and its regex compiled, so matching is a few set lookups."""

    __slots__ = ("_checks", "description", "escalate", "forbid", "mark_sensitive", "name", "prefer", "priority",
                 "reason", "require", "sets_escalation", "source")

    def __init__(self, rule: Rule, source: str) -> None:
        w, t = rule.when, rule.then
        self.name, self.priority, self.description, self.source = rule.name, rule.priority, rule.description, source
        self.prefer, self.require, self.forbid = t.prefer, t.require, t.forbid
        self.escalate, self.sets_escalation, self.mark_sensitive = t.escalate_below, t.sets_escalation, t.mark_sensitive
        self.reason = t.reason
        # Each check takes the context (`RuleContext`); its values are bound as defaults, which mypy
        # cannot match against Callable[[RuleContext], bool], hence the ellipsis.
        checks: list[Callable[..., bool]] = []

        def any_of(attr: str, values: Sequence[object] | None) -> None:
            if values is not None:
                allowed = frozenset(str(v) for v in values)
                checks.append(lambda c, a=attr, s=allowed: getattr(c, a) in s)

        any_of("domain", w.domain)
        any_of("latency", w.latency)
        any_of("task", w.task)
        any_of("mode", w.mode)
        for attr in ("sensitive", "has_cloud", "has_local"):
            value = getattr(w, attr)
            if value is not None:
                checks.append(lambda c, a=attr, v=value: getattr(c, a) is v)
        if w.sensitivity is not None:
            wanted = frozenset(w.sensitivity)
            checks.append(lambda c, s=wanted: not s.isdisjoint(c.sensitivity))
        if w.attachments is not None:
            kinds = frozenset(w.attachments)
            checks.append(lambda c, s=kinds: not s.isdisjoint(c.attachment_kinds))
        if w.min_images is not None:
            checks.append(lambda c, n=w.min_images: c.image_count >= n)
        if w.min_video_mb is not None:
            checks.append(lambda c, n=int(w.min_video_mb * 1024 * 1024): c.video_bytes >= n)
        if w.prompt is not None:
            regex = re.compile(w.prompt, re.IGNORECASE)
            checks.append(lambda c, r=regex: r.search(c.prompt) is not None)
        self._checks = tuple(checks)

    def matches(self, ctx: RuleContext) -> bool:
        for check in self._checks:  # a plain loop: this runs ~20 times per decision
            if not check(ctx):
                return False
        return True

    def explain(self, ctx: RuleContext) -> str:
        return self.reason.format_map(ctx.values)

    def __repr__(self) -> str:
        return f"<Rule {self.name} priority={self.priority} from {self.source}>"


class RuleSet:
    """Enabled rules, highest priority first (file order breaks ties)."""

    def __init__(self, rules: list[CompiledRule], sources: tuple[str, ...] = ()) -> None:
        self.rules = tuple(sorted(rules, key=lambda r: -r.priority))
        self.sources = sources

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)

    def get(self, name: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.name == name), None)


def _first_error(exc: ValidationError, data: Any) -> str:
    err = exc.errors()[0]
    loc = list(err.get("loc", ()))
    where = ".".join(str(p) for p in loc)
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            name = data["rules"][loc[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        rest = ".".join(str(p) for p in loc[2:])
        if name:
            where = f"rule {name!r}" + (f" ({rest})" if rest else "")
        else:
            where = f"rules[{loc[1]}]" + (f".{rest}" if rest else "")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def parse_rules_file(path: Path) -> RulesFile:
    """Read and validate one rules file; any problem is one `ConfigurationError` line naming the file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"rules file not found: {path}") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read rules file {path}: {exc.strerror or exc}") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(f"malformed rules file {path}{where}: {problem}") from None
    if data is None:
        data = {}
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise ConfigurationError(f"malformed rules file {path}: expected a mapping with a 'rules' list")
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"malformed rules file {path}: {_first_error(exc, data)}") from None


@lru_cache(maxsize=1)
def _default_rules() -> RulesFile:
    return parse_rules_file(DEFAULT_RULES_PATH)


def default_rule_names() -> tuple[str, ...]:
    return tuple(r.name for r in _default_rules().rules)


def load_rules(path: Path | str | None = None, *, replace: bool = False) -> RuleSet:
    """The default rules, extended or overridden by name by the user file at `path`.

    With `replace=True` (or `replace: true` in the file) the user file's rules are the only ones.
    A user rule with the name of a default rule replaces it whole; `enabled: false` switches it off.
    """
    merged: dict[str, tuple[Rule, str]] = {}
    sources: list[str] = []
    user = parse_rules_file(Path(path).expanduser()) if path is not None else None
    if not (replace or (user is not None and user.replace)):
        sources.append("defaults")
        for rule in _default_rules().rules:
            merged[rule.name] = (rule, "defaults")
    if user is not None:
        sources.append(str(path))
        for rule in user.rules:
            merged[rule.name] = (rule, str(path))
    compiled = [CompiledRule(rule, source) for rule, source in merged.values() if rule.enabled]
    return RuleSet(compiled, tuple(sources))
