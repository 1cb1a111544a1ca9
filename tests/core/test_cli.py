"""The CLI through its real entry point: exit codes, one-line errors, --json, batch resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fakes import fake_backends
from fastvlm_gemini_hybrid.cli import ask_cmd, main
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor


@pytest.fixture
def fake_processor(monkeypatch: pytest.MonkeyPatch) -> list[HybridVLMProcessor]:
    """Route the CLI's processor to FunctionBackends (the only seam the tests replace)."""
    made: list[HybridVLMProcessor] = []
    real = ask_cmd.make_processor

    def make(args: Any) -> HybridVLMProcessor:
        proc = real(args)
        proc._backends = fake_backends(lambda r: f"local: {r.prompt}", "cloud", local_kw={"confidence": 0.9})
        made.append(proc)
        return proc

    monkeypatch.setattr(ask_cmd, "make_processor", make)
    return made


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_json_prints_the_contract_object(
    capsys: pytest.CaptureFixture[str], image_file: Path, fake_processor: list[Any]
) -> None:
    code, out, err = run(capsys, "ask", "What is this?", "-a", str(image_file), "--mode", "local-only", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["response"] == "local: What is this?"
    assert obj["backend"] == "fastvlm" and obj["mode"] == "local-only"
    assert set(obj["usage"]) == {"input_tokens", "output_tokens", "cost_usd"}
    assert obj["route"]["backends"] == ["fastvlm"]


def test_ask_text_answer_on_stdout_explanation_on_stderr(
    capsys: pytest.CaptureFixture[str], image_file: Path, fake_processor: list[Any]
) -> None:
    code, out, err = run(capsys, "ask", "Hello there", "-a", str(image_file), "--mode", "local-only")
    assert code == 0
    assert out == "local: Hello there\n"
    assert "fastvlm" in err and "route local-only" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["ask", "hi", "-a", "missing.png"], "no such file"),
        (["ask", "hi", "--mode", "turbo"], "unknown mode"),
        (["ask", "hi", "--domain", "astrology"], "unknown domain"),
        (["ask", "hi", "--max-tokens", "0"], "--max-tokens"),
        (["ask"], "required"),
        (["frobnicate"], "invalid choice"),
        (["batch", "no-such-dir", "describe"], "no such file or directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str, fake_processor: list[Any]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_directory_and_unsupported_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_processor: list[Any]
) -> None:
    code, _, err = run(capsys, "ask", "hi", "-a", str(tmp_path))
    assert code == 2 and "directory" in err
    bad = tmp_path / "x.png"
    bad.write_text("plain text")
    code, _, err = run(capsys, "ask", "hi", "-a", str(bad))
    assert code == 2 and "not a supported" in err


def test_malformed_config_file_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("= nonsense")
    code, _, err = run(capsys, "--config", str(cfg), "config", "show")
    assert code == 2 and "malformed config file" in err


def test_config_show_redacts_secrets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-very-secret")
    code, out, _ = run(capsys, "config", "show", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["gemini_api_key"] == "***" and "very-secret" not in out


def test_cache_and_audit_commands(
    capsys: pytest.CaptureFixture[str], image_file: Path, fake_processor: list[Any]
) -> None:
    assert run(capsys, "ask", "cache me", "-a", str(image_file), "--mode", "local-only")[0] == 0
    assert (
        json.loads(run(capsys, "ask", "cache me", "-a", str(image_file), "--mode", "local-only", "--json")[1])["cached"]
        is True
    )
    code, out, _ = run(capsys, "cache", "stats", "--json")
    assert code == 0 and json.loads(out)["entries"] == 1
    code, out, _ = run(capsys, "audit", "verify", "--json")
    verdict = json.loads(out)
    assert code == 0 and verdict["ok"] is True and verdict["records"] == 2 and verdict["problems"] == []
    audit_path = fake_processor[0].settings.audit_path
    lines = audit_path.read_text().splitlines()
    audit_path.write_text(lines[1] + "\n")
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 1 and "TAMPERED" in out
    code, out, _ = run(capsys, "cache", "clear", "--json")
    assert json.loads(out) == {"removed": 1}


def test_batch_is_resumable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_image: Any, fake_processor: list[Any]
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        (folder / f"img{i}.png").write_bytes(make_image((i * 40, 10, 10)))
    (folder / "broken.png").write_text("not an image")
    out_file = tmp_path / "out.jsonl"
    code, _, err = run(
        capsys, "batch", str(folder), "caption", "--out", str(out_file), "--mode", "local-only", "--concurrency", "2"
    )
    assert code == 1 and "5 answered, 1 failed" in err
    rows = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert sum(r["ok"] for r in rows) == 5
    assert next(r for r in rows if not r["ok"])["error"]["type"] == "unsupported_media"
    code, _, err = run(capsys, "batch", str(folder), "caption", "--out", str(out_file), "--mode", "local-only")
    assert "5 already answered" in err and "0 answered, 1 failed" in err
    assert len(fake_processor[1]._backends["fastvlm"].calls) == 0


def test_python_dash_m_help_is_fast_and_imports_no_torch() -> None:
    code = (
        "import sys, time; t=time.perf_counter();"
        "from fastvlm_gemini_hybrid.cli import main;"
        "import contextlib, io;\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print('torch' in sys.modules, 'google.genai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    proc = subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ask" in proc.stdout and "route" in proc.stdout
