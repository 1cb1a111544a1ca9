"""Generalisation: detection measured on prompts it was never tuned on (heldout_prompts.yaml).

Word lists, weights and the classifier are fitted to labelled_prompts.yaml and tuning_prompts.yaml
only (scripts/train_router_nb.py never reads the held-out file). If a test here fails, fix detection
with new tuning data, never by editing held-out labels.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastvlm_gemini_hybrid.routing import BackendInfo, Router, classifier, detect_signals
from fastvlm_gemini_hybrid.types import Domain, Mode, Request

HERE = Path(__file__).parent
HELDOUT = HERE / "heldout_prompts.yaml"
TUNING = HERE / "tuning_prompts.yaml"


def _items(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _request(item: dict[str, Any], req: Callable[..., Request], **hints: Any) -> Request:
    return req(item["prompt"], *item.get("attachments", []), **hints)


@pytest.mark.parametrize("path", [HELDOUT, TUNING])
def test_the_sets_are_big_cover_every_domain_and_do_not_overlap(path: Path) -> None:
    items = _items(path)
    assert len(items) >= 250
    counts = Counter(i["domain"] for i in items)
    assert {d.value for d in Domain} <= set(counts), counts
    assert min(counts.values()) >= 20, counts
    assert sum(1 for i in items if i["sensitive"]) >= 60
    held = {i["prompt"] for i in _items(HELDOUT)}
    tuning = {i["prompt"] for i in _items(TUNING)}
    assert not held & tuning


@pytest.mark.parametrize(("path", "floor"), [(HELDOUT, 0.90), (TUNING, 0.95)])
def test_domain_accuracy(req: Callable[..., Request], path: Path, floor: float) -> None:
    items = _items(path)
    wrong = [f"{i['domain']} -> {got}: {i['prompt']}" for i in items
             if (got := detect_signals(_request(i, req)).domain.value) != i["domain"]]
    accuracy = 1 - len(wrong) / len(items)
    assert accuracy >= floor, f"accuracy {accuracy:.3f}; misrouted:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", [HELDOUT, TUNING])
def test_no_sensitive_prompt_is_detected_as_not_sensitive(req: Callable[..., Request], path: Path) -> None:
    leaks = [i["prompt"] for i in _items(path) if i["sensitive"] and not detect_signals(_request(i, req)).sensitive]
    assert leaks == []


@pytest.mark.parametrize("mode", [Mode.AUTO, Mode.PARALLEL, Mode.FALLBACK])
def test_no_held_out_sensitive_prompt_reaches_a_cloud_backend(
    req: Callable[..., Request], backends: Callable[..., list[BackendInfo]], mode: Mode
) -> None:
    router = Router(backends())
    for item in _items(HELDOUT):
        if item["sensitive"]:
            decision = router.decide(_request(item, req, mode=mode))
            assert decision.backends == ("fastvlm",) and not decision.cloud_allowed, item["prompt"]


def test_most_ordinary_prompts_stay_routable_to_the_cloud(req: Callable[..., Request]) -> None:
    """Over-flagging only costs a cloud answer, but it must stay the exception for everyday photos."""
    plain = [i for i in _items(HELDOUT) if not i["sensitive"] and i["domain"] == "general"]
    flagged = [i["prompt"] for i in plain if detect_signals(_request(i, req)).sensitive]
    assert len(flagged) <= len(plain) * 0.1, flagged


@pytest.mark.parametrize(
    "prompt", ["describe this sunset", "What breed is this dog?", "what's in this photo", "Count the cars",
               "Write a haiku about this lake", "Which shirt looks better?"],
)
def test_everyday_prompts_are_not_sensitive_and_may_use_the_cloud(
    router: Router, req: Callable[..., Request], prompt: str
) -> None:
    decision = router.decide(req(prompt, "image"))
    assert not decision.sensitive and decision.cloud_allowed and "gemini" in decision.backends


@pytest.mark.parametrize(
    ("prompt", "category"),
    [
        ("the door code is 4471, did the keypad accept it?", "credentials"),
        ("Fill the form, his name is Liam O'Connor", "pii"),
        ("Where does the man in this photo live?", "pii"),
        ("born 12/03/1985 - is that the date on this card?", "pii"),
        ("Is the cut on my forearm infected?", "phi"),
        ("Our numbers aren't public yet, summarise this slide", "confidential"),
        ("Read the address label on this box", "pii"),
    ],
)
def test_new_sensitivity_detectors(prompt: str, category: str) -> None:
    s = detect_signals(Request(prompt=prompt))
    assert s.sensitive and category in s.sensitivity, s.sensitivity_reasons


def test_the_classifier_is_loaded_and_changes_weak_lexicon_decisions() -> None:
    model = classifier.load_model()
    assert model is not None and set(model.domains) == {d.value for d in Domain}
    post = model.posterior(["why", "charg", "twice"])
    assert abs(sum(post.values()) - 1.0) < 1e-9
    assert max(post, key=post.__getitem__) == "financial"


def test_a_missing_model_file_switches_the_blend_off(tmp_path: Path) -> None:
    assert classifier.load_model(tmp_path / "absent.yaml") is None
    (tmp_path / "bad.yaml").write_text('{"domains": ["a"], "prior": [0, 1], "features": {}}', encoding="utf-8")
    assert classifier.load_model(tmp_path / "bad.yaml") is None


def test_the_route_path_does_not_import_numeric_libraries() -> None:
    import subprocess

    code = ("import sys; import fastvlm_gemini_hybrid.routing as r; from fastvlm_gemini_hybrid.types import Request; "
            "r.detect_signals(Request(prompt='what is in this x-ray')); "
            "print(sorted(m for m in ('numpy', 'torch', 'sklearn', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
