"""Detection quality on labelled prompts: domain accuracy and, above all, zero sensitive leaks.

The labelled file mixes prompts written first and rounds written later as held-out checks (see the
comments in it). A failure here means a real prompt was misrouted: add vocabulary, not special cases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastvlm_gemini_hybrid.errors import PolicyViolationError
from fastvlm_gemini_hybrid.routing import BackendInfo, Router, detect_signals
from fastvlm_gemini_hybrid.types import Domain, Mode, Request

LABELLED = Path(__file__).with_name("labelled_prompts.yaml")


def _items() -> list[dict[str, Any]]:
    return yaml.safe_load(LABELLED.read_text(encoding="utf-8"))


def _request(item: dict[str, Any], req: Callable[..., Request], **hints: Any) -> Request:
    return req(item["prompt"], *item.get("attachments", []), **hints)


def test_the_labelled_set_is_big_and_covers_every_domain() -> None:
    items = _items()
    assert len(items) >= 150
    counts = Counter(i["domain"] for i in items)
    assert {d.value for d in Domain} <= set(counts), counts
    assert min(counts.values()) >= 10, counts
    assert sum(1 for i in items if i["sensitive"]) >= 50


def test_domain_accuracy_is_at_least_90_percent(req: Callable[..., Request]) -> None:
    items = _items()
    wrong = []
    for item in items:
        got = detect_signals(_request(item, req)).domain.value
        if got != item["domain"]:
            wrong.append(f"{item['domain']} -> {got}: {item['prompt']}")
    accuracy = 1 - len(wrong) / len(items)
    assert accuracy >= 0.90, f"accuracy {accuracy:.3f}; misrouted:\n" + "\n".join(wrong)


def test_no_sensitive_prompt_is_ever_detected_as_not_sensitive(req: Callable[..., Request]) -> None:
    leaks = [i["prompt"] for i in _items() if i["sensitive"] and not detect_signals(_request(i, req)).sensitive]
    assert leaks == []


@pytest.mark.parametrize("mode", [Mode.AUTO, Mode.PARALLEL, Mode.FALLBACK, Mode.LOCAL_ONLY])
def test_no_sensitive_prompt_reaches_a_cloud_backend_in_any_mode(
    req: Callable[..., Request], backends: Callable[..., list[BackendInfo]], mode: Mode
) -> None:
    router = Router(backends())
    for item in _items():
        if not item["sensitive"]:
            continue
        decision = router.decide(_request(item, req, mode=mode))
        assert decision.backends == ("fastvlm",), item["prompt"]
        assert decision.sensitive and not decision.cloud_allowed and decision.escalate_below is None


def test_cloud_only_refuses_every_sensitive_prompt(
    req: Callable[..., Request], backends: Callable[..., list[BackendInfo]]
) -> None:
    router = Router(backends())
    for item in _items():
        if item["sensitive"]:
            with pytest.raises(PolicyViolationError):
                router.decide(_request(item, req, mode=Mode.CLOUD_ONLY))
