"""The one request builder: text hints parsed, typed hints kept, everything else a one-line BadInputError."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.request_builder import build_request
from fastvlm_gemini_hybrid.types import Domain, GenerationOptions, Latency, Mode


def test_text_and_typed_hints_give_the_same_request(image_file: Path) -> None:
    by_text = build_request("What is shown?", image_file, mode="fallback", domain="medical", latency="realtime",
                            model="gemini-2.5-flash", sensitive=None)
    by_type = build_request("What is shown?", [image_file], mode=Mode.FALLBACK, domain=Domain.MEDICAL,
                            latency=Latency.REALTIME, model="gemini-2.5-flash")
    assert (by_text.mode, by_text.domain, by_text.latency, by_text.model) == (
        by_type.mode, by_type.domain, by_type.latency, by_type.model)
    assert by_text.sensitive is None and len(by_text.attachments) == 1


@pytest.mark.parametrize(("hints", "words"), [
    ({"mode": "sideways"}, "mode"),
    ({"mode": 5}, "mode must be a string"),
    ({"domain": ["medical"]}, "domain must be a string"),
    ({"model": 3}, "model must be a string"),
    ({"colour": "red"}, "unknown request option"),
    ({"max_latency_ms": -1}, "max latency"),
    ({"options": GenerationOptions(max_tokens=4)}, None),
])
def test_bad_hints_are_one_line_bad_input(hints: dict[str, object], words: str | None) -> None:
    if words is None:
        assert build_request("hi", **hints).options.max_tokens == 4
        return
    with pytest.raises(BadInputError, match=words):
        build_request("hi", **hints)


def test_every_face_uses_it() -> None:
    """The CLI, the server's two APIs, the agents and the seed API import this builder, not their own."""
    import fastvlm_gemini_hybrid as pkg

    root = Path(pkg.__file__).parent
    faces = ["cli/ask_cmd.py", "cli/route_cmd.py", "server/inputs.py", "server/openai_api.py", "agents/base.py",
             "processor.py"]
    for face in faces:
        assert "request_builder import" in (root / face).read_text(encoding="utf-8"), face
