"""Issue 13: a study whose model answer cannot be read is `indeterminate`, with a reason, never `normal`.

Each failure kind goes through the real agent (and the real CLI) with a test-only FunctionBackend, and
every view is checked: the `--json` object, the terminal line, the Markdown and HTML reports, the
DICOM SR and the audit record. A valid normal answer must still say normal.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

import fakes
from fastvlm_gemini_hybrid.agents.medical import MedicalAgent
from fastvlm_gemini_hybrid.audit import AuditLog
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.cli import main
from fastvlm_gemini_hybrid.medical.report import Report, severity_of, to_html, to_markdown
from fastvlm_gemini_hybrid.types import Generation, Request

from .conftest import findings_json, medical_backends


def _text(answer: str) -> Callable[[Request], str]:
    """A responder returning `answer` as is (the fixtures treat "" as "use the default answer")."""
    return lambda _request: answer


def _blocked(_request: Request) -> Generation:
    # The block text even names a critical term: it must neither be read nor escalate anything.
    return Generation(text="The local model declined to answer: large pneumothorax content was blocked.",
                      model="fastvlm-model", finish_reason="SAFETY", blocked=True)


# (id, responder, the reason the report must give). Several answers say "normal" or name a critical term:
# neither may leak into an unread study's severity, findings or terminal line.
UNREADABLE: list[tuple[str, Callable[[Request], Any], str]] = [
    ("empty", _text(""), "the model's answer was empty"),
    ("whitespace", _text("  \n\t "), "the model's answer was empty"),
    ("blocked", _blocked, "the model declined to answer (blocked: SAFETY)"),
    ("refusal", _text("I'm sorry, but I can't help with interpreting medical images."),
     "the model declined to read the image"),
    ("refusal-in-json", _text('{"findings": [], "impression": "As an AI language model I cannot diagnose."}'),
     "the model declined to read the image"),
    ("non-json", _text("The lungs look normal to me, no pneumothorax."), "the model's answer was not valid JSON"),
    ("missing-impression", _text('{"findings": [{"finding": "Large left pneumothorax"}]}'),
     "the model's answer did not match the findings schema: 'impression' is missing"),
    ("missing-findings", _text('{"impression": "Normal study."}'),
     "the model's answer did not match the findings schema: 'findings' is missing"),
    ("wrong-types", _text('{"findings": "normal", "impression": ["normal"]}'),
     "the model's answer did not match the findings schema: 'findings' is not a list"),
    ("wrong-item-type", _text('{"findings": [{"finding": "pneumothorax", "present": "no"}], "impression": "Normal"}'),
     "the model's answer did not match the findings schema: findings[0].present is not true or false"),
    ("empty-skeleton", _text('{"findings": [], "impression": ""}'),
     "the model's answer held no findings and no impression"),
]
IDS = [case[0] for case in UNREADABLE]


@pytest.fixture
def cli_answer(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[Request], Any]], dict[str, FunctionBackend]]:
    """Make the command's own processor use a fake local backend answering with `responder`."""
    import fastvlm_gemini_hybrid.processor as processor_mod

    monkeypatch.setenv("GEMINI_API_KEY", "fake-test-key")

    def install(responder: Callable[[Request], Any]) -> dict[str, FunctionBackend]:
        backends = medical_backends(responder)

        def with_fakes(settings: Any = None, **kw: Any) -> Any:
            # fakes.make_processor builds the real class (bound at its import), not this replacement
            return fakes.make_processor(settings, local=None, cloud=None, backends=backends, **kw)

        monkeypatch.setattr(processor_mod, "HybridVLMProcessor", with_fakes)
        return backends

    return install


def sr_texts(path: Path) -> list[tuple[str, str]]:
    """(concept meaning, text) of each text item in an SR."""
    sr = pydicom.dcmread(path)
    return [(item.ConceptNameCodeSequence[0].CodeMeaning, item.TextValue)
            for item in sr.ContentSequence if "TextValue" in item]


@pytest.mark.parametrize(("responder", "reason"), [case[1:] for case in UNREADABLE], ids=IDS)
async def test_agent_reports_an_unread_study_as_indeterminate_everywhere(
    responder: Callable[[Request], Any], reason: str, ct_folder: Path, tmp_path: Path, make_processor: Any
) -> None:
    proc, local, cloud = make_processor(responder)
    out = tmp_path / "reports"
    try:
        run = await MedicalAgent(proc, report_dir=out).aread(ct_folder)
    finally:
        await proc.aclose()
    assert len(local.calls) == 1 and cloud.calls == []
    (report,) = run.reports
    # the JSON object: indeterminate, a reason, and no claim of any kind
    assert report["severity"] == "indeterminate"
    assert report["severity_reason"] == reason
    assert report["findings"] == [] and report["impression"] == "" and report["notifications"] == []
    assert report["valid_model_json"] is False
    folder = out / report["study"]
    assert json.loads((folder / "report.json").read_text()) == report
    assert "notifications.jsonl" not in {p.name for p in folder.iterdir()}
    # Markdown and HTML: the severity and the reason, and no word that reads as "normal"
    md = (folder / "report.md").read_text()
    assert f"Severity: **indeterminate**: {reason}; this study was not read" in md
    assert f"Indeterminate: {reason}" in md.split("## Impression")[1] and "None recorded" in md
    assert "normal" not in md.lower() and "pneumothorax" not in md.lower()
    page = (folder / "report.html").read_text()
    assert "Severity: indeterminate" in page and html.escape(reason) in page and "normal" not in page.lower()
    # the SR: no Finding items, the impression and the severity comment both say indeterminate with the reason
    texts = sr_texts(folder / "report-sr.dcm")
    assert not [t for name, t in texts if name == "Finding"]
    (impression,) = [t for name, t in texts if name == "Impression"]
    assert impression.startswith("Indeterminate: ") and reason in impression
    assert ("Comment", f"Severity: indeterminate ({reason})") in texts
    assert "normal" not in " ".join(t for _, t in texts).lower()
    # the audit: a minor failure that carries the reason
    (record,) = [r for r in AuditLog(proc.settings.audit_path).records() if r.get("type") == "medical-study-read"]
    assert record["outcome"] == "4" and record["severity"] == "indeterminate"
    assert record["severity_reason"] == reason


@pytest.mark.parametrize(("responder", "reason"), [case[1:] for case in UNREADABLE], ids=IDS)
def test_cli_never_prints_normal_for_an_unread_study(
    responder: Callable[[Request], Any], reason: str, ct_folder: Path, tmp_path: Path,
    cli_answer: Callable[[Callable[[Request], Any]], dict[str, FunctionBackend]], capsys: pytest.CaptureFixture[str],
) -> None:
    backends = cli_answer(responder)
    assert main(["medical", str(ct_folder), "--report", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    err = err.replace(str(tmp_path), "<tmp>")  # the test's own folder name says "normal"
    assert out.splitlines()[0].endswith(f"): severity indeterminate: {reason}")
    assert "No findings recorded: this study was not read" in out and "normal" not in (out + err).lower()
    assert "pneumothorax" not in out.lower() and "CRITICAL" not in out

    assert main(["medical", str(ct_folder), "--json"]) == 0
    out, err = capsys.readouterr()
    (line,) = out.strip().splitlines()
    report = json.loads(line)
    assert report["severity"] == "indeterminate" and report["severity_reason"] == reason
    assert report["findings"] == [] and report["notifications"] == []
    assert "normal" not in err.replace(str(tmp_path), "<tmp>").lower()
    assert backends["gemini"].calls == [] and len(backends["fastvlm"].calls) == 2


NORMAL_ANSWER = findings_json("Lungs clear", impression="Normal study.")


async def test_a_valid_normal_answer_still_says_normal(ct_folder: Path, tmp_path: Path, make_processor: Any) -> None:
    proc, _, _ = make_processor(NORMAL_ANSWER)
    try:
        run = await MedicalAgent(proc, report_dir=tmp_path / "r").aread(ct_folder)
    finally:
        await proc.aclose()
    (report,) = run.reports
    assert report["severity"] == "normal" and report["severity_reason"] is None and report["valid_model_json"]
    assert [f["text"] for f in report["findings"]] == ["Lungs clear"] and report["impression"] == "Normal study."
    folder = tmp_path / "r" / report["study"]
    md = (folder / "report.md").read_text()
    assert "Severity: **normal**" in md and "indeterminate" not in md and "- Lungs clear" in md
    assert "Severity: normal" in (folder / "report.html").read_text()
    texts = sr_texts(folder / "report-sr.dcm")
    assert ("Comment", "Severity: normal") in texts and ("Impression", "Normal study.") in texts
    assert ("Finding", "Lungs clear") in texts
    (record,) = [r for r in AuditLog(proc.settings.audit_path).records() if r.get("type") == "medical-study-read"]
    assert record["outcome"] == "0" and record["severity"] == "normal" and record["severity_reason"] is None


def test_cli_still_prints_normal_for_a_valid_normal_answer(
    ct_folder: Path, cli_answer: Callable[[Callable[[Request], Any]], dict[str, FunctionBackend]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_answer(_text(NORMAL_ANSWER))
    assert main(["medical", str(ct_folder)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("): severity normal") and "indeterminate" not in out
    assert "- Lungs clear" in out and "Impression: Normal study." in out
    assert main(["medical", str(ct_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["severity"] == "normal" and report["severity_reason"] is None


def _report_dict(**overrides: Any) -> dict[str, Any]:
    report = Report(report_id="r1", study_ref="s1", modality="CT", body_part="CHEST", findings=[], impression="",
                    severity="indeterminate", backend="fastvlm", model="m", panels=["lung window"], series={},
                    burned_in_text={"suspected": False, "reason": ""})
    return {**report.to_dict(), **overrides}


@pytest.mark.parametrize("severity", [None, "", "Normal", "unknown"])
def test_a_missing_or_unknown_severity_reads_as_indeterminate_never_normal(severity: str | None) -> None:
    from fastvlm_gemini_hybrid.cli.medical_cmd import _human

    data = _report_dict(severity=severity)
    if severity is None:
        del data["severity"]
    assert severity_of(data)[0] == "indeterminate"
    for view in (to_markdown(data), to_html(data), _human(data)):
        assert "indeterminate" in view and "no valid severity" in view and "normal" not in view.lower()


def test_the_report_object_refuses_a_severity_outside_the_contract() -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        Report(report_id="r", study_ref="s", modality="CT", body_part="", findings=[], impression="", severity="ok",
               backend="b", model="m", panels=[], series={}, burned_in_text={})
    data = _report_dict()
    assert data["severity"] == "indeterminate" and data["severity_reason"] == "the model's answer could not be read"
    assert _report_dict(severity="normal")["severity"] == "normal"
    graded = Report(report_id="r", study_ref="s", modality="CT", body_part="", findings=[], impression="",
                    severity="minor", backend="b", model="m", panels=[], series={}, burned_in_text={},
                    severity_reason="stray")
    assert graded.to_dict()["severity_reason"] is None
