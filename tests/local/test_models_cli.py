"""`models list|pull|make-tiny` and `bench` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.cli import main


def test_make_tiny_builds_a_model_that_loads_like_a_real_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "tiny"
    assert main(["models", "make-tiny", str(target), "--seed", "7", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"path": str(target), "seed": 7}
    assert "tiny random FastVLM" in out.err

    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(target)
    model = AutoModelForImageTextToText.from_pretrained(target)
    assert type(model).__name__ == "FastVlmForConditionalGeneration"
    assert model.config.vision_config.architecture == "fastvit_mci3"
    text = "Héllo, what is in this image? 42"
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert processor.tokenizer.decode(ids) == text  # a working byte-level BPE, not a stub
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}], add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>assistant\n") and "<image>" in prompt

    # refusing to overwrite is one clean line, exit 2
    assert main(["models", "make-tiny", str(target)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_models_list_json_shows_catalogue_and_configured_dir(
        tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("FASTVLM_HYBRID_LOCAL_MODEL", str(tiny_model_dir))
    assert main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["models"]}
    assert {"fastvlm-0.5b", "fastvlm-1.5b", "fastvlm-7b"} <= set(rows)
    assert rows["fastvlm-0.5b"]["repo_id"] == "KamilaMila/FastVLM-0.5B"
    assert rows["fastvlm-0.5b"]["downloaded"] is False
    mine = rows[str(tiny_model_dir)]
    assert mine["downloaded"] is True and mine["configured"] is True and mine["tiny"] is True
    assert mine["size_bytes"] > 100_000
    assert "research use only" in data["licence_note"]


def test_models_list_human_output_carries_the_licence(capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "fastvlm-7b" in out and "not downloaded" in out
    assert "research use only" in out


def test_pull_of_an_unknown_name_is_one_line_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "pull", "not-a-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fastvlm-0.5b" in err


def test_pull_offline_fails_cleanly_in_a_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf"),
           "FASTVLM_HYBRID_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid", "models", "pull", "fastvlm-0.5b"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "could not download KamilaMila/FastVLM-0.5B" in proc.stderr
    assert proc.stdout == ""


def test_models_list_json_in_a_subprocess_imports_no_torch(tmp_path: Path) -> None:
    env = {**os.environ, "FASTVLM_HYBRID_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hf")}
    code = ("import sys, runpy; sys.argv=['fastvlm-hybrid','models','list','--json'];"
            "from fastvlm_gemini_hybrid.cli import main; rc=main();"
            "sys.stderr.write('torch-loaded=%s' % ('torch' in sys.modules)); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["models"]) >= 3
    assert "torch-loaded=False" in proc.stderr


def test_bench_reports_load_ttft_and_decode_speed(tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--model", str(tiny_model_dir), "--runs", "2", "--tokens", "6", "--dtype", "float32",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    summary = data["summary"]
    assert data["load_s"] > 0 and data["dtype"] == "float32"
    assert summary["ttft_s"]["n"] == 2 and summary["ttft_s"]["min"] > 0
    assert summary["decode_tok_s"]["median"] > 0
    # the follow-up on the same image reuses the cached image: it must not be slower than a cold start
    assert summary["followup_ttft_s"]["median"] < summary["ttft_s"]["median"]


def test_bench_without_weights_says_how_to_pull(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    assert main(["bench", "--model", "fastvlm-1.5b"]) == 2
    assert "fastvlm-hybrid models pull fastvlm-1.5b" in capsys.readouterr().err
