"""`agents list/show/run` through the real entry point (and one subprocess run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastvlm_gemini_hybrid.cli import agents_cmd, main
from synth_media import picture_file

from .answers import CAPTION, RECEIPT, REVIEW
from .conftest import GREY, ScriptedAnswers, calls


@pytest.fixture
def use_processor(monkeypatch: pytest.MonkeyPatch, make_processor):
    """Route the CLI's processor to fake backends; returns the processor the run will use."""

    def install(**kw: Any):
        processor = make_processor(**kw)
        monkeypatch.setattr(agents_cmd, "make_processor", lambda _settings: processor)
        return processor

    return install


def test_list_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [a["name"] for a in data["agents"]]
    expected = {"ux-review", "product-demo", "caption", "document", "video-summary", "medical", "surveillance"}
    assert expected <= set(names)
    document = next(a for a in data["agents"] if a["name"] == "document")
    assert document["hints"]["sensitive"] is True
    assert main(["agents", "list"]) == 0
    text = capsys.readouterr().out
    assert "document" in text and "[sensitive]" in text


def test_show_prints_the_output_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "show", "caption", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output_schema"]["properties"]["alt_text"]["maxLength"] == 150


def test_run_ux_review_json(use_processor, screenshots: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    processor = use_processor(local=ScriptedAnswers(REVIEW), cloud=ScriptedAnswers(REVIEW))
    code = main(["agents", "run", "ux-review", *map(str, screenshots), "--json", "--param", "focus=checkout"])
    captured = capsys.readouterr()
    assert code == 0
    (line,) = captured.out.strip().splitlines()
    row = json.loads(line)
    assert row["ok"] and row["agent"] == "ux-review" and row["output"]["score"] == 6
    assert row["route"]["backends"] and row["attempts"] == 1
    assert "checkout" in (calls(processor, "fastvlm") + calls(processor, "gemini"))[0].prompt


def test_run_human_output(use_processor, screenshots: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    use_processor(local=ScriptedAnswers(REVIEW), cloud=ScriptedAnswers(REVIEW))
    assert main(["agents", "run", "ux-review", *map(str, screenshots)]) == 0
    out = capsys.readouterr().out
    assert "UX score 6/10" in out and "[CRITICAL] Broken layout" in out


def test_run_invalid_output_is_one_line_exit_1(use_processor, screenshots: list[Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    use_processor(local="garbage", cloud="garbage")
    code = main(["agents", "run", "ux-review", str(screenshots[0]), "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "invalid UXReview JSON twice" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["agents", "run", "nope", "x.png"], "unknown agent 'nope'"),
        (["agents", "run", "caption", "{clip}"], "caption cannot take"),
        (["agents", "run", "caption", "missing.png"], "no such file"),
        (["agents", "run", "ux-review", "{shot}", "--param", "novalue"], "KEY=VALUE"),
        (["agents", "run", "document", "{shot}", "--mode", "cloud-only"], "never leaves this machine"),
        (["agents", "run", "ux-review", "{shot}", "--sidecar", "txt"], "only applies to the caption"),
        (["agents", "run", "caption", "{shot}", "--concurrency", "0"], "at least 1"),
        (["agents", "show", "nope"], "unknown agent"),
        # medical and surveillance run through the registry like the rest: their refusals, their options
        (["agents", "run", "medical", "{shot}", "--mode", "cloud-only"], "cloud-only is refused"),
        (["agents", "run", "medical", "{shot}", "--not-sensitive"], "always sensitive"),
        (["agents", "run", "medical", "{shot}", "--", "--modality", "XYZ"], "unknown modality 'XYZ'"),
        (["agents", "run", "medical", "{shot}", "--param", "a=b"], "medical has no parameter 'a'"),
        (["agents", "run", "surveillance", "{clip}"], "needs the 'zones' option (--zones"),
        (["agents", "run", "surveillance", "{clip}", "--", "--zones", "{shot}", "--bogus"], "unrecognized arguments"),
        (["agents", "run", "caption", "{shot}", "--", "--zones", "z.yaml"], "unrecognized arguments: --zones"),
    ],
)
def test_bad_input_is_one_line_exit_2(use_processor, screenshots: list[Path], clip: Path, argv: list[str],
                                      message: str, capsys: pytest.CaptureFixture[str]) -> None:
    processor = use_processor()
    argv = [a.format(clip=clip, shot=screenshots[0]) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert calls(processor, "fastvlm") == [] and calls(processor, "gemini") == []


def test_bad_recipe_in_home_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(os.environ["FASTVLM_HYBRID_HOME"])
    (home / "agents").mkdir(parents=True, exist_ok=True)
    (home / "agents" / "bad.yaml").write_text(yaml.safe_dump(
        {"name": "bad", "prompt": "p", "output": {"type": "object", "properties": {"x": {"type": "date"}}}}))
    assert main(["agents", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml" in err and "unsupported or missing type 'date'" in err


def test_caption_batch_to_jsonl_file(use_processor, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        picture_file(folder, name, color=GREY, size=(16, 16))
    use_processor(local=ScriptedAnswers(CAPTION), cloud=ScriptedAnswers(CAPTION))
    out = tmp_path / "out" / "captions.jsonl"
    assert main(["agents", "run", "caption", str(folder), "--out", str(out), "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["input"]).name for r in rows) == ["a.png", "b.png"] and all(r["ok"] for r in rows)
    assert json.loads(captured.out) == {"agent": "caption", "done": 2, "failed": 0, "out": str(out)}


def test_document_batch_failure_is_exit_1_with_rows(use_processor, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("r1.png", "r2.png"):
        picture_file(tmp_path, name, color=GREY, size=(16, 16))

    def local(request):
        return json.dumps(RECEIPT) if request.attachments[0].name == "r1.png" else "[]"

    processor = use_processor(local=local, cloud=ScriptedAnswers(RECEIPT))
    code = main(["agents", "run", "document", str(tmp_path / "r1.png"), str(tmp_path / "r2.png"), "--json"])
    captured = capsys.readouterr()
    rows = {Path(r["input"]).name: r for r in map(json.loads, captured.out.strip().splitlines())}
    assert code == 1 and rows["r1.png"]["ok"] and not rows["r2.png"]["ok"]
    assert rows["r2.png"]["error"]["type"] == "agent_output_invalid"
    assert "error: " in captured.err and "r2.png" in captured.err
    assert calls(processor, "gemini") == []


def test_list_and_show_describe_medical_and_surveillance_like_any_agent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "list", "--json"]) == 0
    rows = {a["name"]: a for a in json.loads(capsys.readouterr().out)["agents"]}
    assert rows["medical"]["source"] == rows["caption"]["source"] == "built-in"
    assert rows["medical"]["inputs"] == {"kinds": ["dicom", "image"], "min": 1, "max": 1}
    assert rows["medical"]["options"]["properties"]["report"]["format"] == "path"  # a local caller may set it
    assert rows["surveillance"]["options"]["required"] == ["zones"]
    assert main(["agents", "show", "surveillance", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown["output_schema"]["properties"]) == {"alerts", "stats", "report"}
    assert main(["agents", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("medical "))
    assert "[local_only, sensitive]" in line


def test_run_medical_through_the_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_processor,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pydicom")
    from medical.conftest import findings_json, write_ct_series

    write_ct_series(tmp_path / "study", 2)
    processor = make_processor(local=findings_json("Free air", impression="Free air."), cloud=findings_json("x"))
    built: list[Any] = []

    def build(settings: Any) -> Any:
        built.append(settings)
        return processor

    monkeypatch.setattr(agents_cmd, "make_processor", build)
    # `agents run` flags before the inputs, the agent's own options after `--`
    code = main(["agents", "run", "medical", "--json", str(tmp_path / "study"), "--", "--report", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (row,) = [json.loads(line) for line in captured.out.splitlines()]
    assert row["agent"] == "medical" and row["ok"] and row["backend"] == "fastvlm"
    assert row["input"] == row["output"]["study"] and row["output"]["severity"] == "critical"
    assert (tmp_path / "r" / row["output"]["study"] / "report.json").is_file()
    assert "1 study to read, on this machine only" in captured.err and "medical: 1 done, 0 failed" in captured.err
    assert built[0].gemini_api_key is None  # the agent's processor can never authenticate to Gemini
    assert calls(processor, "gemini") == [] and calls(processor, "fastvlm")[0].sensitive is True


def test_run_surveillance_through_the_registry_builds_no_processor(
    monkeypatch: pytest.MonkeyPatch, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("cv2")
    zones = tmp_path / "zones.yaml"
    zones.write_text("zones:\n  - name: door\n    polygon: [[0, 0], [40, 0], [40, 40], [0, 40]]\n")

    def no_processor(_settings: Any) -> Any:
        raise AssertionError("surveillance without --describe calls no model, so builds no processor")

    monkeypatch.setattr(agents_cmd, "make_processor", no_processor)
    code = main(["agents", "run", "surveillance", "--json", str(clip), "--", "--zones", str(zones),
                 "--duration", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (row,) = [json.loads(line) for line in captured.out.splitlines()]
    assert row["agent"] == "surveillance" and row["ok"] and row["input"] == str(clip)
    stats = row["output"]["stats"]
    assert 10 <= stats["frames"] <= 20 and stats["descriptions"] == "unavailable"  # 5 fps, stopped after 3 s
    assert "descriptions unavailable" in captured.err and f"{stats['frames']} frames" in captured.err


def test_subprocess_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "FASTVLM_HYBRID_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid", "agents", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "video-summary" in [a["name"] for a in json.loads(done.stdout)["agents"]]
    bad = subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid", "agents", "run", "nope", "x"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "unknown agent 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
