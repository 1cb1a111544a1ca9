"""`ask --stream` in every mode through the real CLI, the real google-genai SDK and the fake Gemini server.

Here the local model is not downloaded, so the local backend fails at once (a failure that allows moving
on): what each mode then does with a stream is what this file checks.
"""

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


@pytest.mark.parametrize("mode", ["parallel", "fallback", "auto"])
def test_stream_in_each_mode_is_answered_by_the_backend_that_can(
    capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer, image_file: Path, mode: str
) -> None:
    code, out, err = ask(capsys, "Describe the sunset", "-a", str(image_file), "--mode", mode, "--stream")
    assert code == 0, err
    assert out.startswith("seen ")
    assert [c for c in cloud_env.model_calls if "streamGenerateContent" in c.path]
    assert not [c for c in cloud_env.model_calls if c.path.endswith(":generateContent")]  # streamed, not whole


def test_parallel_stream_json_says_who_won_and_what_failed(
    capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer, image_file: Path
) -> None:
    code, out, err = ask(capsys, "Describe the sunset", "-a", str(image_file), "--mode", "parallel", "--stream",
                         "--json")
    assert code == 0, err
    final = json.loads(out.strip().splitlines()[-1])
    assert final["backend"] == "gemini" and final["mode"] == "parallel"
    assert [f["backend"] for f in final["fallbacks"]] == ["fastvlm"]


def test_a_stream_broken_after_it_began_is_an_error_not_a_second_answer(
    capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer, image_file: Path
) -> None:
    cloud_env.stream_error_after(1)
    code, _out, err = ask(capsys, "Describe the sunset", "-a", str(image_file), "--mode", "cloud-only", "--stream")
    assert code == 1 and len(err.strip().splitlines()) >= 1
    assert "Traceback" not in err
