"""The router: privacy before everything, modes, capabilities, availability, escalation, purity."""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import (
    BadInputError,
    ConfigurationError,
    MissingCredentialsError,
    PolicyViolationError,
)
from fastvlm_gemini_hybrid.routing import (
    STATIC_CAPABILITIES,
    BackendInfo,
    Router,
    RuleSet,
    configured_backends,
    load_rules,
)
from fastvlm_gemini_hybrid.types import Latency, Mode, Request

SENSITIVE_KINDS: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "phi": ("What does this MRI show for the patient?", (), {}),
    "pii-card": ("charge card 4111 1111 1111 1111 for this", (), {}),
    "pii-id": ("Read the passport number", (), {}),
    "credentials": ("key is AKIAIOSFODNN7EXAMPLE", (), {}),
    "confidential": ("Internal use only: summarize this slide", (), {}),
    "media-dicom": ("Describe", ("dicom",), {}),
    "user-marked": ("Describe this sunset", ("image",), {"sensitive": True}),
}
ALL_MODES = list(Mode)


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("kind", sorted(SENSITIVE_KINDS))
def test_privacy_is_never_overridden_by_mode(
    kind: str, mode: Mode, req: Callable[..., Request], backends: Callable[..., list[BackendInfo]]
) -> None:
    prompt, kinds, hints = SENSITIVE_KINDS[kind]
    request = req(prompt, *kinds, mode=mode, **hints)
    router = Router(backends())
    if mode is Mode.CLOUD_ONLY:
        with pytest.raises(PolicyViolationError, match="sensitive"):
            router.decide(request)
        return
    decision = router.decide(request)
    assert decision.sensitive and decision.backends == ("fastvlm",)
    assert not decision.cloud_allowed and decision.escalate_below is None
    assert decision.sensitivity_reasons


PUSHY_RULES = """
replace: true
rules:
  - {name: always-cloud, priority: 1000, then: {require: cloud, prefer: cloud, reason: cloud for everything}}
"""


@pytest.mark.parametrize("mode", [Mode.AUTO, Mode.PARALLEL, Mode.FALLBACK])
@pytest.mark.parametrize("kind", sorted(SENSITIVE_KINDS))
def test_privacy_is_never_overridden_by_rules_that_prefer_the_cloud(
    kind: str, mode: Mode, tmp_path: Path, req: Callable[..., Request], backends: Callable[..., list[BackendInfo]]
) -> None:
    path = tmp_path / "pushy.yaml"
    path.write_text(PUSHY_RULES, encoding="utf-8")
    prompt, kinds, hints = SENSITIVE_KINDS[kind]
    router = Router(backends(), load_rules(path))
    with pytest.raises(PolicyViolationError) as info:
        router.decide(req(prompt, *kinds, mode=mode, **hints))
    assert "sensitive" in str(info.value)


def test_privacy_holds_with_every_default_rule_disabled(
    req: Callable[..., Request], backends: Callable[..., list[BackendInfo]]
) -> None:
    decision = Router(backends(), RuleSet([])).decide(req("What does this MRI show for the patient?"))
    assert decision.backends == ("fastvlm",)
    assert decision.rules[0].name == "sensitive-stays-local"
    assert "patient" in decision.rules[0].reason


# ----------------------------------------------------------------------------- modes


@pytest.mark.parametrize(
    ("mode", "expected", "escalates"),
    [
        (Mode.AUTO, ("fastvlm", "gemini"), True),
        (Mode.PARALLEL, ("fastvlm", "gemini"), False),
        (Mode.FALLBACK, ("fastvlm", "gemini"), False),
        (Mode.LOCAL_ONLY, ("fastvlm",), False),
        (Mode.CLOUD_ONLY, ("gemini",), False),
    ],
)
def test_modes_pick_backends(mode: Mode, expected: tuple[str, ...], escalates: bool, router: Router) -> None:
    decision = router.decide(Request(prompt="What breed is this dog?", mode=mode))
    assert decision.mode is mode and decision.backends == expected
    assert (decision.escalate_below is not None) is escalates


def test_default_mode_and_threshold_come_from_the_router(backends: Callable[..., list[BackendInfo]]) -> None:
    router = Router(backends(), default_mode=Mode.FALLBACK, confidence_threshold=0.7)
    assert router.decide(Request(prompt="describe")).mode is Mode.FALLBACK
    auto = Router(backends(), confidence_threshold=0.7).decide(Request(prompt="What breed is this dog?"))
    assert auto.escalate_below == 0.7


def test_creative_prefers_cloud_first_without_escalation(router: Router) -> None:
    decision = router.decide(Request(prompt="Write a limerick about this dog"))
    assert decision.backends == ("gemini", "fastvlm") and decision.escalate_below is None


@pytest.mark.parametrize(
    ("hints", "expected"),
    [({"latency": Latency.REALTIME}, None), ({"latency": Latency.LOW_LATENCY}, 0.3), ({"latency": Latency.BATCH}, 0.5)],
)
def test_latency_rules_set_escalation(hints: dict[str, Any], expected: float | None, router: Router) -> None:
    assert router.decide(Request(prompt="What breed is this dog?", **hints)).escalate_below == expected


def test_no_escalation_when_the_local_backend_reports_no_confidence() -> None:
    # An OpenAI-compatible server reports no token probabilities, so nothing to escalate on.
    infos = [BackendInfo("openai", STATIC_CAPABILITIES["openai"]), BackendInfo("gemini", STATIC_CAPABILITIES["gemini"])]
    decision = Router(infos).decide(Request(prompt="What breed is this dog?"))
    assert decision.backends == ("openai", "gemini") and decision.escalate_below is None


# ----------------------------------------------------------------------------- capabilities and availability


def test_youtube_goes_to_gemini_with_an_explanation(router: Router, req: Callable[..., Request]) -> None:
    decision = router.decide(req("Summarize", "youtube"))
    assert decision.backends == ("gemini",) and decision.task.value == "youtube"
    names = {h.name: h.reason for h in decision.rules}
    assert "youtube" in names["backend-cannot-take-input"] and "youtube-needs-gemini" in names


def test_local_only_youtube_is_bad_input_naming_youtube(router: Router, req: Callable[..., Request]) -> None:
    with pytest.raises(BadInputError, match="youtube"):
        router.decide(req("Summarize", "youtube", mode=Mode.LOCAL_ONLY))


def test_sensitive_youtube_is_bad_input_naming_privacy(router: Router, req: Callable[..., Request]) -> None:
    with pytest.raises(BadInputError, match="sensitive"):
        router.decide(req("Summarize", "youtube", sensitive=True))


def test_too_many_images_for_the_local_model(router: Router, req: Callable[..., Request]) -> None:
    decision = router.decide(req("Compare these", *["image"] * 5))
    assert decision.backends == ("gemini",)
    assert any("at most 4" in h.reason for h in decision.rules)


def test_unavailable_gemini_is_dropped_with_the_fix(backends: Callable[..., list[BackendInfo]]) -> None:
    decision = Router(backends(gemini_available=False)).decide(Request(prompt="What breed is this dog?"))
    assert decision.backends == ("fastvlm",) and decision.escalate_below is None
    assert any(h.name == "backend-unavailable" and "GEMINI_API_KEY" in h.reason for h in decision.rules)


def test_cloud_only_without_a_key_names_the_key(backends: Callable[..., list[BackendInfo]]) -> None:
    with pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY"):
        Router(backends(gemini_available=False)).decide(Request(prompt="describe", mode=Mode.CLOUD_ONLY))


def test_youtube_without_a_key_names_the_key(
    backends: Callable[..., list[BackendInfo]], req: Callable[..., Request]
) -> None:
    with pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY"):
        Router(backends(gemini_available=False)).decide(req("Summarize", "youtube"))


def test_no_backends_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no backends"):
        Router([]).decide(Request(prompt="describe"))


def test_duplicate_backend_names_are_rejected() -> None:
    info = BackendInfo("fastvlm", STATIC_CAPABILITIES["fastvlm"])
    with pytest.raises(ConfigurationError, match="twice"):
        Router([info, info])


def test_local_only_with_no_local_backend_configured() -> None:
    router = Router([BackendInfo("gemini", STATIC_CAPABILITIES["gemini"])])
    with pytest.raises(ConfigurationError, match="no local backend"):
        router.decide(Request(prompt="describe", mode=Mode.LOCAL_ONLY))


def test_medical_stays_local_even_when_declared_not_sensitive(router: Router) -> None:
    with pytest.raises(PolicyViolationError, match="medical-stays-local"):
        router.decide(Request(prompt="Is this rash eczema?", sensitive=False, mode=Mode.CLOUD_ONLY))


# ----------------------------------------------------------------------------- purity and output


def test_decide_is_pure(router: Router, monkeypatch: pytest.MonkeyPatch, req: Callable[..., Request]) -> None:
    request = req("What does this MRI show for the patient?", "image")
    first = router.decide(request)

    def forbidden(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("decide() must not use the clock, randomness or files")

    for name in ("time", "perf_counter", "monotonic"):
        monkeypatch.setattr(time, name, forbidden)
    monkeypatch.setattr(random, "random", forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    assert router.decide(request) == first


def test_route_dict_has_the_documented_keys(router: Router) -> None:
    out = router.decide(Request(prompt="What does this MRI show for the patient?")).to_dict()
    assert {"mode", "domain", "sensitive", "latency", "task", "backends", "cloud_allowed", "rules"} <= set(out)
    assert out["rules"][0] == {"name": "phi-stays-local", "reason": "the prompt names a patient and an MRI"}


# ----------------------------------------------------------------------------- configured_backends


def test_configured_backends_without_a_key(tmp_path: Path) -> None:
    infos = {b.name: b for b in configured_backends(load_settings(home=tmp_path))}
    assert list(infos) == ["fastvlm", "gemini"]
    assert infos["fastvlm"].available and not infos["gemini"].available
    assert infos["gemini"].unavailable_reason == "gemini needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)"


def test_configured_backends_with_key_and_openai_server(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, gemini_api_key="k", openai_base_url="http://127.0.0.1:8000/v1")
    infos = {b.name: b for b in configured_backends(settings)}
    assert list(infos) == ["fastvlm", "openai", "gemini"]
    assert all(b.available for b in infos.values())
    assert not infos["openai"].is_cloud and infos["gemini"].capabilities.json_schema


def test_local_backend_auto_picks_mlx_on_apple_silicon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platform
    import sys

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "mlx_vlm" else real_find_spec(name, *a)
    )
    assert configured_backends(load_settings(home=tmp_path))[0].name == "mlx"
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlx_vlm" else real_find_spec(name, *a)
    )
    assert configured_backends(load_settings(home=tmp_path))[0].name == "fastvlm"  # extra missing: PyTorch


def test_local_backend_openai_without_server_is_unavailable(tmp_path: Path) -> None:
    infos = configured_backends(load_settings(home=tmp_path, local_backend="openai"))
    assert infos[0].name == "openai" and not infos[0].available and "OPENAI_BASE_URL" in infos[0].unavailable_reason


def test_unknown_local_backend_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="local_backend"):
        configured_backends(load_settings(home=tmp_path, local_backend="tpu"))


def test_capability_overrides_apply(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, capabilities={"fastvlm": {"media": ["image"], "max_images": 2}})
    fast = configured_backends(settings)[0]
    assert fast.capabilities.media == frozenset({"image"}) and fast.capabilities.max_images == 2
    with pytest.raises(ConfigurationError, match="fastvlm"):
        configured_backends(load_settings(home=tmp_path, capabilities={"fastvlm": {"wings": True}}))
