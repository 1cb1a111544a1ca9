"""`ask --model` through the real CLI, the real google-genai SDK and the fake Gemini server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.cli import main

from .fake_gemini import FakeGeminiServer


def ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_named_cloud_model_answers_in_fallback_mode(capsys: pytest.CaptureFixture[str],
                                                      cloud_env: FakeGeminiServer, image_file: Path) -> None:
    """The report's case: the local model used to answer whatever the name said."""
    code, out, err = ask(capsys, "Describe the street.", "-a", str(image_file), "--mode", "fallback",
                         "--model", "gemini-2.5-flash", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert (obj["backend"], obj["model"], obj["fallbacks"]) == ("gemini", "gemini-2.5-flash", [])
    assert obj["route"]["backends"][0] == "gemini" and obj["route"]["pinned"]["backend"] == "gemini"
    assert "models/gemini-2.5-flash:generateContent" in cloud_env.model_calls[0].path


def test_a_sensitive_request_naming_the_cloud_exits_2(capsys: pytest.CaptureFixture[str],
                                                      cloud_env: FakeGeminiServer, image_file: Path) -> None:
    code, out, err = ask(capsys, "Patient John Doe, SSN 078-05-1120: describe", "-a", str(image_file),
                         "--model", "gemini-2.5-flash")
    assert code == 2 and out == ""
    assert "never leave this machine" in err and len(err.strip().splitlines()) == 1
    assert cloud_env.model_calls == []


def test_an_unknown_model_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer,
                                                 image_file: Path) -> None:
    code, _, err = ask(capsys, "Describe", "-a", str(image_file), "--model", "llava-13b")
    assert code == 2 and "no configured backend serves the model 'llava-13b'" in err
    assert cloud_env.model_calls == []
