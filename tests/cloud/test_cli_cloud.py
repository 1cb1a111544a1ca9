"""`ask` through the real CLI entry point, the real google-genai SDK and the fake Gemini server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.cli import main
from synth_media import make_clip

from .fake_gemini import FakeGeminiServer


def ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cloud_only_json(capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer, image_file: Path) -> None:
    code, out, err = ask(capsys, "Describe the sunset", "-a", str(image_file), "--mode", "cloud-only", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["backend"] == "gemini" and obj["response"].startswith("seen ")
    assert "inline:image/png" in obj["response"]
    assert obj["usage"]["input_tokens"] > 0 and obj["usage"]["cost_usd"] > 0
    assert len(cloud_env.model_calls) == 1


def test_model_flag_picks_the_gemini_model(capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer,
                                           image_file: Path) -> None:
    code, out, _ = ask(capsys, "Describe the sunset", "-a", str(image_file), "--mode", "cloud-only",
                       "--model", "gemini-2.5-pro", "--json")
    assert code == 0
    assert json.loads(out)["model"] == "gemini-2.5-pro"
    assert "models/gemini-2.5-pro:generateContent" in cloud_env.model_calls[0].path


def test_youtube_url_goes_to_gemini_as_file_data(capsys: pytest.CaptureFixture[str],
                                                 cloud_env: FakeGeminiServer) -> None:
    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    code, out, err = ask(capsys, "Summarise this video", "-a", url, "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["backend"] == "gemini" and obj["route"]["backends"] == ["gemini"]
    assert f"file:{url}" in obj["response"]


def test_video_file_is_sent_inline(capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer,
                                   tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", [(0, 0, 200), (0, 200, 0)], seconds_each=1.0)
    code, out, err = ask(capsys, "What happens in this clip?", "-a", str(clip), "--mode", "cloud-only", "--json")
    assert code == 0, err
    assert "inline:video/mp4" in json.loads(out)["response"]


def test_a_video_the_gate_cannot_decode_stays_here(capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer,
                                                   tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 2000)
    code, out, err = ask(capsys, "What happens in this clip?", "-a", str(clip), "--mode", "cloud-only", "--json")
    assert code == 2 and out == ""
    assert "could not be inspected" in err and len(err.strip().splitlines()) == 1
    assert cloud_env.model_calls == []


def test_stream_prints_pieces_as_they_come(capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer,
                                           image_file: Path) -> None:
    code, out, err = ask(capsys, "Describe the sunset", "-a", str(image_file), "--mode", "cloud-only", "--stream")
    assert code == 0, err
    assert out.startswith("seen ") and "gemini" in err
    assert any("streamGenerateContent" in c.path for c in cloud_env.model_calls)


def test_missing_key_is_one_line_naming_the_variable(capsys: pytest.CaptureFixture[str], image_file: Path) -> None:
    code, out, err = ask(capsys, "Describe the sunset", "-a", str(image_file), "--mode", "cloud-only")
    assert code == 2 and out == ""
    assert "GEMINI_API_KEY" in err and len(err.strip().splitlines()) == 1


def test_sensitive_flag_keeps_everything_local(capsys: pytest.CaptureFixture[str], cloud_env: FakeGeminiServer,
                                               image_file: Path) -> None:
    code, _, err = ask(capsys, "Describe it", "-a", str(image_file), "--sensitive", "--mode", "cloud-only")
    assert code == 2 and "sensitive" in err
    code, _, _ = ask(capsys, "Describe it", "-a", str(image_file), "--sensitive")
    assert code == 2  # the local model is not downloaded here: refused locally, never sent out
    assert cloud_env.bytes_received == 0
