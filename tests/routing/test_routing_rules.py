"""The rule language: defaults, one prompt per default rule, malformed files, user overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fastvlm_gemini_hybrid.errors import ConfigurationError, PolicyViolationError
from fastvlm_gemini_hybrid.routing import BackendInfo, Router, load_rules
from fastvlm_gemini_hybrid.routing.rules import DEFAULT_RULES_PATH, default_rule_names, parse_rules_file
from fastvlm_gemini_hybrid.types import Domain, GenerationOptions, Latency, Mode, Request

# One request written for each default rule: (prompt, attachment specs, request hints).
# A new default rule without an entry here fails `test_every_default_rule_fires_on_its_prompt`.
RULE_CASES: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "user-marked-sensitive": ("Describe this sunset", (), {"sensitive": True}),
    "phi-stays-local": ("What does this MRI show for the patient?", (), {}),
    "pii-stays-local": ("Read the passport number from this page", (), {}),
    "credentials-stay-local": ("Is AKIAIOSFODNN7EXAMPLE a valid key format?", (), {}),
    "confidential-stays-local": ("Summarize this confidential board memo", (), {}),
    "sensitive-media-stays-local": ("Describe this", ("dicom",), {}),
    "medical-stays-local": ("Is this rash on the arm eczema?", (), {"sensitive": False}),
    "youtube-needs-gemini": ("Summarize", ("youtube",), {}),
    "long-video-prefers-cloud": ("What happens?", ({"kind": "video", "size": 21 * 1024 * 1024},), {}),
    "whole-video-summary-prefers-cloud": ("Summarize the whole video", ("video",), {}),
    "structured-output-prefers-cloud": (
        "List the objects", ("image",), {"options": GenerationOptions(json_schema={"type": "object"})}
    ),
    "realtime-stays-local": ("Describe the scene", ("image",), {"max_latency_ms": 500}),
    "low-latency-local-first": ("Describe the scene", ("image",), {"max_latency_ms": 2000}),
    "batch-prefers-local": ("Describe the scene", ("image",), {"latency": Latency.BATCH}),
    "normal-latency-local-first": ("Describe the scene", ("image",), {}),
    "ocr-escalates-early": ("Transcribe the sign", ("image",), {}),
    "reasoning-escalates-early": ("Why is the road wet?", ("image",), {}),
    "financial-local-first": ("What trend does this stock chart show?", (), {}),
    "legal-local-first": ("Is this non-compete enforceable under California law?", (), {}),
    "security-local-first": ("Is anyone suspicious in this CCTV still?", (), {}),
    "technical-local-first": ("Find the bug in this JavaScript function", (), {}),
    "educational-local-first": ("Solve the math problem on this worksheet", (), {}),
    "creative-prefers-cloud": ("Write a short poem inspired by this painting", (), {}),
    "general-local-first": ("What breed is this dog?", (), {}),
}


@pytest.mark.parametrize("name", default_rule_names())
def test_every_default_rule_fires_on_its_prompt(
    name: str, req: Callable[..., Request], backends: Callable[..., list[BackendInfo]]
) -> None:
    if name not in RULE_CASES:
        pytest.fail(f"default rule {name!r} has no test prompt in RULE_CASES")
    prompt, kinds, hints = RULE_CASES[name]
    decision = Router(backends()).decide(req(prompt, *kinds, **hints))
    fired = {hit.name: hit.reason for hit in decision.rules}
    assert name in fired, f"{name} did not fire; fired: {sorted(fired)}"
    assert fired[name] and "{" not in fired[name]  # the reason template was filled in


def test_defaults_cover_domains_latencies_privacy_and_tasks() -> None:
    rules = parse_rules_file(DEFAULT_RULES_PATH).rules
    assert len(rules) >= 15
    domains = {d for r in rules for d in (r.when.domain or [])}
    latencies = {lat for r in rules for lat in (r.when.latency or [])}
    assert domains == set(Domain)
    assert latencies == set(Latency)
    privacy = [r for r in rules if r.when.sensitivity and r.then.forbid == "cloud"]
    assert len(privacy) >= 5
    assert any(r.then.sets_escalation for r in rules if r.when.task)


def test_default_rules_sorted_by_priority() -> None:
    priorities = [r.priority for r in load_rules()]
    assert priorities == sorted(priorities, reverse=True)


# ----------------------------------------------------------------------------- malformed files

MALFORMED = {
    "yaml syntax": "rules: [\n  - name: x\n",
    "not a mapping": "just a string",
    "unknown condition": "rules:\n  - name: a\n    when: {colour: [red]}\n    then: {prefer: local, reason: r}\n",
    "bad domain": "rules:\n  - name: a\n    when: {domain: [astrology]}\n    then: {prefer: local, reason: r}\n",
    "bad regex": "rules:\n  - name: a\n    when: {prompt: '(unclosed'}\n    then: {prefer: local, reason: r}\n",
    "unknown placeholder": "rules:\n  - name: a\n    then: {prefer: local, reason: 'because {weather}'}\n",
    "duplicate names": (
        "rules:\n  - {name: a, then: {prefer: local, reason: r}}\n  - {name: a, then: {prefer: cloud, reason: r}}\n"
    ),
    "no action": "rules:\n  - name: a\n    then: {reason: nothing to do}\n",
    "escalate out of range": "rules:\n  - name: a\n    then: {escalate_below: 1.5, reason: r}\n",
    "bad name": "rules:\n  - name: Has Spaces\n    then: {prefer: local, reason: r}\n",
    "bad kind": "rules:\n  - name: a\n    then: {prefer: moon, reason: r}\n",
    "missing reason": "rules:\n  - name: a\n    then: {prefer: local}\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_rules_file_is_one_clear_configuration_error(case: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(MALFORMED[case], encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_rules(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "Traceback" not in message


def test_missing_rules_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_rules(tmp_path / "nope.yaml")


def test_error_names_the_rule_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(MALFORMED["bad domain"], encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"rule 'a' \(when\.domain"):
        load_rules(path)


# ----------------------------------------------------------------------------- user files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my_rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_user_rule_overrides_a_default_by_name(tmp_path: Path, backends: Callable[..., list[BackendInfo]]) -> None:
    path = _write(tmp_path, "rules:\n  - name: creative-prefers-cloud\n    priority: 40\n"
                            "    when: {domain: [creative]}\n    then: {prefer: local, reason: keep poems local}\n")
    rules = load_rules(path)
    assert len(rules) == len(default_rule_names())
    decision = Router(backends(), rules).decide(Request(prompt="Write a poem about this painting"))
    assert decision.backends[0] == "fastvlm"
    assert ("creative-prefers-cloud", "keep poems local") in {(h.name, h.reason) for h in decision.rules}


def test_user_rule_can_disable_a_default(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules:\n  - {name: creative-prefers-cloud, enabled: false}\n")
    assert "creative-prefers-cloud" not in load_rules(path).names


def test_user_rules_extend_the_defaults(tmp_path: Path, backends: Callable[..., list[BackendInfo]]) -> None:
    path = _write(
        tmp_path,
        "rules:\n  - name: ocr-goes-cloud\n    priority: 95\n    when: {task: [ocr], has_cloud: true}\n"
        "    then: {require: cloud, reason: 'our OCR runs in the cloud ({task})'}\n",
    )
    rules = load_rules(path)
    assert "ocr-goes-cloud" in rules.names and "phi-stays-local" in rules.names
    decision = Router(backends(), rules).decide(Request(prompt="Transcribe the menu"))
    assert decision.backends == ("gemini",)
    assert ("ocr-goes-cloud", "our OCR runs in the cloud (ocr)") in {(h.name, h.reason) for h in decision.rules}


@pytest.mark.parametrize("how", ["argument", "file"])
def test_replace_uses_only_the_user_rules(tmp_path: Path, how: str) -> None:
    head = "replace: true\n" if how == "file" else ""
    path = _write(tmp_path, head + "rules:\n  - {name: only-one, then: {prefer: cloud, reason: r}}\n")
    rules = load_rules(path, replace=how == "argument")
    assert rules.names == ("only-one",)


def test_mark_sensitive_rule_keeps_a_codename_local(tmp_path: Path, backends: Callable[..., list[BackendInfo]]) -> None:
    path = _write(tmp_path, "rules:\n  - name: codename-falcon\n    priority: 200\n    when: {prompt: '\\bfalcon\\b'}\n"
                            "    then: {mark_sensitive: true, reason: project Falcon is secret}\n")
    router = Router(backends(), load_rules(path))
    decision = router.decide(Request(prompt="Describe the Falcon prototype photo"))
    assert decision.sensitive and decision.backends == ("fastvlm",)
    with pytest.raises(PolicyViolationError):
        router.decide(Request(prompt="Describe the Falcon prototype photo", mode=Mode.CLOUD_ONLY))
    assert not router.decide(Request(prompt="Describe the bird photo")).sensitive
