"""The `route` command through its real entry point, and once as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["route", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_route_json_for_a_sensitive_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "What does this MRI show for the patient?", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["sensitive"] is True and data["domain"] == "medical" and data["cloud_allowed"] is False
    assert "gemini" not in data["backends"]
    assert {"name": "phi-stays-local", "reason": "the prompt names a patient and an MRI"} in data["rules"]


def test_route_with_a_key_lists_gemini_second(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    code, out, _ = _run(capsys, "What breed is this dog?", "--json")
    data = json.loads(out)
    assert code == 0 and data["backends"] == ["fastvlm", "gemini"] and data["escalate_below"] == 0.45


def test_route_readable_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "Describe this sunset")
    assert code == 0
    assert out.startswith("route: fastvlm") and "sensitive: no" in out and "backend-unavailable" in out


def test_route_flags_become_hints(capsys: pytest.CaptureFixture[str], tmp_path: Path, png_bytes: bytes) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes)
    code, out, _ = _run(capsys, "Describe this sunset", "-a", str(image), "--domain", "creative",
                        "--sensitive", "--max-latency-ms", "800", "--mode", "fallback", "--json")
    data = json.loads(out)
    assert code == 0
    got = (data["domain"], data["sensitive"], data["latency"], data["mode"])
    assert got == ("creative", True, "realtime", "fallback")
    code, out, _ = _run(capsys, "Describe", "--latency", "batch", "--json")
    assert json.loads(out)["latency"] == "batch"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["Describe the patient's MRI", "--mode", "cloud-only"], "sensitive"),
     (["describe", "--mode", "sideways"], "unknown mode"),
     (["describe", "--latency", "warp"], "unknown latency"),
     (["describe", "-a", "no-such-file.png"], "no such file"),
     (["describe", "-a", "https://youtu.be/abc", "--mode", "local-only"], "youtube"),
     (["describe", "--mode", "cloud-only"], "GEMINI_API_KEY")],
)
def test_route_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error:") and needle in err


def test_route_uses_the_rules_file_from_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: team-rule, priority: 99, when: {domain: [general]}, "
                     "then: {escalate_below: 0.9, reason: team policy}}\n", encoding="utf-8")
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("FASTVLM_HYBRID_RULES_FILE", str(rules))
    code, out, _ = _run(capsys, "What breed is this dog?", "--json")
    data = json.loads(out)
    assert code == 0 and data["escalate_below"] == 0.9
    assert {"name": "team-rule", "reason": "team policy"} in data["rules"]
    rules.write_text("rules: [oops", encoding="utf-8")
    code, out, err = _run(capsys, "describe", "--json")
    assert code == 2 and "malformed rules file" in err and str(rules) in err


def test_route_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["route", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for flag in ("--mode", "--domain", "--sensitive", "--max-latency-ms", "--latency", "--json", "-a"):
        assert flag in out


def test_route_as_a_subprocess_never_imports_torch_or_genai(tmp_path: Path) -> None:
    env = {**os.environ, "FASTVLM_HYBRID_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "fastvlm_gemini_hybrid", "route", "Read the passport number", "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["sensitive"] is True and data["backends"] == ["fastvlm"]
    check = (
        "import sys; from fastvlm_gemini_hybrid.cli import main; main(['route', 'describe', '--json']); "
        "bad = [m for m in ('torch', 'transformers', 'google.genai') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
