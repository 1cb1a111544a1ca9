"""A request that names a backend or a model is answered by it (router level; the faces are tested in
tests/server/test_pinning_faces.py and tests/cloud/test_pinning_cli.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastvlm_gemini_hybrid.errors import BadInputError, MissingCredentialsError, PolicyViolationError
from fastvlm_gemini_hybrid.routing import BackendInfo, Router
from fastvlm_gemini_hybrid.types import Mode, Request

Build = Callable[..., Request]  # the routing conftest's `req` fixture
Infos = Callable[..., list[BackendInfo]]  # its `backends` fixture


@pytest.mark.parametrize(("model", "backend", "backend_model"), [
    ("gemini", "gemini", None),
    ("gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
    ("models/gemini-2.5-pro", "gemini", "models/gemini-2.5-pro"),
    ("gemini/gemini-2.5-pro", "gemini", "gemini-2.5-pro"),
    ("fastvlm", "fastvlm", None),
    ("apple/FastVLM-0.5B", "fastvlm", "apple/FastVLM-0.5B"),
    ("FASTVLM/fastvlm-1.5b", "fastvlm", "fastvlm-1.5b"),
])
def test_a_named_model_pins_its_backend(router: Router, req: Build, model: str, backend: str,
                                       backend_model: str | None) -> None:
    decision = router.decide(req("Describe the street.", "image", model=model))
    assert decision.backends == (backend,)
    assert (decision.pinned, decision.pinned_model) == (backend, backend_model)
    assert decision.rules[0].name == "pinned" and backend in decision.rules[0].reason
    assert decision.escalate_below is None  # the named one answers, no hand-over
    assert decision.to_dict()["pinned"] == {"backend": backend, "model": backend_model}


def test_in_fallback_mode_the_named_one_goes_first_and_others_follow(router: Router, req: Build) -> None:
    decision = router.decide(req("Describe the street.", "image", model="gemini-2.5-flash",
                                          mode=Mode.FALLBACK))
    assert decision.backends == ("gemini", "fastvlm")
    assert "then fastvlm if it fails" in decision.rules[0].reason


def test_without_a_name_nothing_changes(router: Router, req: Build) -> None:
    decision = router.decide(req("Describe the street.", "image", mode=Mode.FALLBACK))
    assert decision.backends == ("fastvlm", "gemini") and decision.pinned is None


def test_privacy_overrides_a_named_cloud_model(router: Router, req: Build) -> None:
    request = req("Patient John Doe, SSN 078-05-1120: describe the scan", "image", model="gemini-2.5-flash")
    with pytest.raises(PolicyViolationError, match="sensitive requests never leave this machine"):
        router.decide(request)
    # the same request naming the local model is answered locally
    assert router.decide(req("Patient John Doe, SSN 078-05-1120: describe the scan", "image",
                                      model="fastvlm")).backends == ("fastvlm",)


def test_a_named_model_that_cannot_answer_says_why(req: Build, backends: Infos) -> None:
    router = Router(backends(gemini_available=False))
    with pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY"):
        router.decide(req("Describe", "image", model="gemini-2.5-flash"))
    with pytest.raises(BadInputError, match="cannot take youtube"):
        Router(backends()).decide(req("Summarise", "youtube", model="fastvlm"))
    with pytest.raises(PolicyViolationError, match="local-only"):
        Router(backends()).decide(req("Describe", "image", model="gemini", mode=Mode.LOCAL_ONLY))


def test_an_unknown_model_is_a_bad_input(router: Router, req: Build) -> None:
    with pytest.raises(BadInputError, match="no configured backend serves the model 'llava-13b'"):
        router.decide(req("Describe", "image", model="llava-13b"))
    with pytest.raises(BadInputError, match="unknown backend"):
        router.decide(req("Describe", "image", backend="mlx"))
