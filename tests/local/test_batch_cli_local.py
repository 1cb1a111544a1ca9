"""`batch` through the real CLI on the tiny FastVLM: images go to the model several per forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.cli import main
from synth_media import picture_file

from .conftest import LOCAL_SIZE


def test_batch_cli_uses_the_backends_batch_path(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes: list[int] = []
    real = FastVLMBackend.generate_batch

    async def counting(self: FastVLMBackend, requests: list) -> list:  # type: ignore[type-arg]
        sizes.append(len(requests))
        return await real(self, requests)

    monkeypatch.setattr(FastVLMBackend, "generate_batch", counting)
    monkeypatch.setenv("FASTVLM_HYBRID_LOCAL_MODEL", str(tiny_model_dir))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        picture_file(folder, f"{i}.png", color=(40 * i, 90, 20), size=LOCAL_SIZE)
    out = tmp_path / "out.jsonl"
    code = main(["batch", str(folder), "Describe", "--mode", "local-only", "--batch-size", "4", "--max-tokens", "4",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(r["ok"] and r["backend"] == "fastvlm" for r in rows)
    assert sorted(sizes, reverse=True) == [4, 1]
