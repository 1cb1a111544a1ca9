"""`fastvlm-hybrid medical` through the real entry point (in-process with capsys, and as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fakes
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.cli import main

from .conftest import LEAK_STRINGS, findings_json


@pytest.fixture
def fake_backends(monkeypatch: pytest.MonkeyPatch) -> dict[str, FunctionBackend]:
    """Make the command's processor use test-only backends (the CLI builds its own processor)."""
    import fastvlm_gemini_hybrid.processor as processor_mod

    backends = fakes.fake_backends(findings_json("Free air under the diaphragm", impression="Free air."), "cloud")

    def with_fakes(settings: Any = None, **kw: Any) -> Any:
        # fakes.make_processor builds the real class (bound at its import), not this replacement
        return fakes.make_processor(settings, local=None, cloud=None, backends=backends, **kw)

    monkeypatch.setattr(processor_mod, "HybridVLMProcessor", with_fakes)
    monkeypatch.setenv("GEMINI_API_KEY", "fake-test-key")
    return backends


def test_medical_json_prints_one_report_per_study_and_nothing_else(
    ct_folder: Path, tmp_path: Path, fake_backends: dict[str, FunctionBackend], capsys: pytest.CaptureFixture[str]
) -> None:
    (ct_folder / "broken.dcm").write_bytes(b"garbage" * 50)
    code = main(["medical", str(ct_folder), "--json", "--report", str(tmp_path / "out"), "--mode", "auto"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["severity"] == "critical" and report["backend"] == "fastvlm" and report["deidentified"] is True
    assert report["audit_id"] and report["disclaimer"]
    assert "skipped broken.dcm: not a DICOM file" in err
    assert fake_backends["gemini"].calls == [] and len(fake_backends["fastvlm"].calls) == 1
    for needle in LEAK_STRINGS:
        assert needle.lower() not in out.lower()


def test_medical_human_output(ct_folder: Path, fake_backends: dict[str, FunctionBackend],
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["medical", str(ct_folder)]) == 0
    out = capsys.readouterr().out
    assert "severity critical" in out and "CRITICAL: free air" in out and "not a diagnosis" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "cloud-only"], "cloud-only is refused"),
        (["--modality", "XYZ"], "unknown modality"),
    ],
)
def test_bad_flags_exit_2(ct_folder: Path, fake_backends: dict[str, FunctionBackend], argv: list[str], message: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["medical", str(ct_folder), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert fake_backends["fastvlm"].calls == [] and fake_backends["gemini"].calls == []


def test_subprocess_bad_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "scan.dcm"
    fake.write_bytes(b"not a dicom file" * 40)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "GEMINI_API_KEY": "fake-test-key"}
    cases = [
        ([str(fake)], "scan.dcm: not a DICOM file"),
        ([str(empty)], "holds no files"),
        ([str(fake), "--mode", "cloud-only"], "cloud-only is refused"),
    ]
    for argv, message in cases:
        proc = subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid", "medical", *argv], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_agents_run_medical_gives_the_same_report_as_the_command(
    ct_folder: Path, tmp_path: Path, fake_backends: dict[str, FunctionBackend], capsys: pytest.CaptureFixture[str]
) -> None:
    # Both go through the registry; `agents run` wraps each report in the item shape every agent shares.
    assert main(["medical", str(ct_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["agents", "run", "medical", "--json", str(ct_folder), "--", "--modality", "ct"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["agent"] == "medical" and row["input"] == report["study"]
    same = {"study", "modality", "severity", "findings", "impression", "backend", "deidentified"}
    assert {k: row["output"][k] for k in same} == {k: report[k] for k in same}
    assert [n["finding"] for n in row["output"]["notifications"]] == [n["finding"] for n in report["notifications"]]
    assert fake_backends["gemini"].calls == [] and len(fake_backends["fastvlm"].calls) == 2


def test_a_broken_user_recipe_does_not_stop_the_medical_command(
    ct_folder: Path, fake_backends: dict[str, FunctionBackend], capsys: pytest.CaptureFixture[str]
) -> None:
    home = Path(os.environ["FASTVLM_HYBRID_HOME"])
    (home / "agents").mkdir(parents=True, exist_ok=True)
    (home / "agents" / "broken.yaml").write_text("name: [unclosed\n")
    assert main(["agents", "list"]) == 2  # the recipe is reported where recipes are used...
    assert "broken.yaml" in capsys.readouterr().err
    assert main(["medical", str(ct_folder), "--json"]) == 0  # ...but the built-in agent's command still runs
    assert json.loads(capsys.readouterr().out)["severity"] == "critical"
