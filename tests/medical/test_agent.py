"""The agent end to end through the real processor with test-only FunctionBackends: reports, exports,
audit, and proof that no identifying data leaks and no request reaches the cloud backend."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pydicom
import pytest

from fastvlm_gemini_hybrid.agents.medical import MedicalAgent
from fastvlm_gemini_hybrid.audit import AuditLog
from fastvlm_gemini_hybrid.errors import PolicyViolationError
from fastvlm_gemini_hybrid.types import Domain, Mode
from synth_media import picture_file

from .conftest import LEAK_STRINGS, findings_json, write_ct_series

CONTRACT_KEYS = {"modality", "body_part", "findings", "impression", "severity", "backend", "deidentified",
                 "disclaimer", "audit_id"}
# What a local model might say after reading burned-in text: the agent must scrub it.
OCR_LEAK_ANSWER = findings_json(
    "Large left pneumothorax", "Label reads QUILLFEATHER ZEBULONIA MRN-99887766 born 1942-03-17",
    impression="Left pneumothorax in Marguerite Quillfeather; no free air.",
)


def all_text_under(*roots: Path) -> str:
    chunks = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


def assert_no_phi(text: str, where: str) -> None:
    lowered = text.lower()
    leaked = [s for s in LEAK_STRINGS if s.lower() in lowered]
    assert not leaked, f"{where} leaks {leaked}"


@pytest.mark.parametrize("mode", [None, "auto", "local-only", "fallback", "parallel"])
async def test_no_phi_anywhere_and_zero_cloud_calls(
    mode: str | None, ct_folder: Path, tmp_path: Path, make_processor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proc, local, cloud = make_processor(OCR_LEAK_ANSWER)
    reports = tmp_path / "reports"
    try:
        run = await MedicalAgent(proc, report_dir=reports, mode=mode).aread(ct_folder)
    finally:
        await proc.aclose()
    assert len(cloud.calls) == 0 and len(local.calls) == 1
    (report,) = run.reports
    assert CONTRACT_KEYS <= set(report)
    assert report["backend"] == "fastvlm" and report["deidentified"] is True
    assert report["severity"] == "critical" and report["notifications"][0]["finding"] == "pneumothorax"
    assert "not a diagnosis" in report["disclaimer"]
    written = {p.name for p in (reports / report["study"]).iterdir()}
    assert written == {"report.json", "report.md", "report.html", "report-sr.dcm", "notifications.jsonl"}
    assert_no_phi(json.dumps(report), "the report object")
    assert_no_phi(all_text_under(reports), "the report files")
    assert_no_phi(all_text_under(proc.settings.home), "the home dir (cache, audit)")
    assert_no_phi(caplog.text, "the logs")
    request = local.calls[0]
    assert_no_phi(request.prompt, "the prompt")
    assert request.sensitive is True and request.domain is Domain.MEDICAL
    assert request.attachments[0].mime == "image/png" and "quillfeather" not in (request.attachments[0].name or "")


async def test_exports_are_consistent_and_the_sr_is_valid(ct_folder: Path, tmp_path: Path, make_processor: Any) -> None:
    proc, _, _ = make_processor(findings_json("8 mm nodule", impression="Pulmonary nodule."))
    run = await MedicalAgent(proc, report_dir=tmp_path / "r").aread(ct_folder)
    await proc.aclose()
    report = run.reports[0]
    folder = tmp_path / "r" / report["study"]
    assert json.loads((folder / "report.json").read_text()) == report
    md = (folder / "report.md").read_text()
    assert report["disclaimer"] in md and "8 mm nodule" in md and "ACR category 3" in md
    assert "<h1>" in (folder / "report.html").read_text()
    sr = pydicom.dcmread(folder / "report-sr.dcm")
    assert sr.Modality == "SR" and sr.PatientIdentityRemoved == "YES"
    texts = [item.TextValue for item in sr.ContentSequence if "TextValue" in item]
    assert "8 mm nodule" in texts and "Pulmonary nodule." in texts and report["disclaimer"] in texts
    assert report["severity"] == "significant" and not report["notifications"]


async def test_audit_records_chain_and_carry_no_phi(ct_folder: Path, tmp_path: Path, make_processor: Any) -> None:
    proc, _, _ = make_processor()
    write_ct_series(ct_folder.parent / "second", 3, prefix="other")
    run = await MedicalAgent(proc).aread(ct_folder.parent)
    await proc.aclose()
    assert len(run.reports) == 2
    log = AuditLog(proc.settings.audit_path)
    assert log.verify().ok
    study_records = [r for r in log.records() if r.get("type") == "medical-study-read"]
    assert sorted(r["audit_id"] for r in study_records) == sorted(r["audit_id"] for r in run.reports)
    for record in study_records:
        assert record["action"] == "R" and record["outcome"] == "0" and record["cloud"] is False
        assert record["entity"]["what"] in {r["study"] for r in run.reports}
    assert_no_phi(proc.settings.audit_path.read_text(), "the audit trail")


async def test_cloud_only_is_refused_before_anything_runs(ct_folder: Path, make_processor: Any) -> None:
    proc, local, cloud = make_processor()
    with pytest.raises(PolicyViolationError, match="cloud-only is refused"):
        MedicalAgent(proc, mode=Mode.CLOUD_ONLY)
    await proc.aclose()
    assert local.calls == [] and cloud.calls == []


async def test_a_study_that_fails_to_decode_is_listed_and_others_still_report(
    ct_folder: Path, tmp_path: Path, make_processor: Any
) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    bad_dir = ct_folder.parent / "mpeg"
    write_ct_series(bad_dir, 1, prefix="mpeg")
    path = next(bad_dir.iterdir())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3junk"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    proc, _, _ = make_processor()
    run = await MedicalAgent(proc).aread(ct_folder.parent)
    await proc.aclose()
    assert len(run.reports) == 1 and len(run.failed) == 1
    assert "cannot decode pixel data" in run.failed[0].error
    outcomes = sorted(r["outcome"] for r in AuditLog(proc.settings.audit_path).records() if r.get("type") ==
                      "medical-study-read")
    assert outcomes == ["0", "8"]


async def test_bundled_ultrasound_cine_is_read_and_flagged_for_burned_in_text(make_processor: Any) -> None:
    from pydicom.data import get_testdata_file

    proc, local, cloud = make_processor(findings_json("gallbladder wall normal"))
    run = await MedicalAgent(proc).aread(get_testdata_file("examples_ybr_color.dcm", download=False))
    await proc.aclose()
    report = run.reports[0]
    assert report["modality"] == "US" and report["series"]["frames"] == 30
    assert report["burned_in_text"]["suspected"] is True and len(report["panels"]) == 4
    assert cloud.calls == [] and len(local.calls) == 1


async def test_png_with_modality_is_read_locally_without_metadata(tmp_path: Path, make_processor: Any) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient Quillfeather Zebulonia MRN-99887766")
    path = picture_file(tmp_path, "Quillfeather_chest.png", color=70, size=(96, 96), mode="L", pnginfo=info)
    proc, local, cloud = make_processor(findings_json("clear lungs"))
    run = await MedicalAgent(proc, report_dir=tmp_path / "r").aread(path, modality="DX")
    await proc.aclose()
    report = run.reports[0]
    assert report["modality"] == "DX" and report["severity"] == "normal" and "dicom_sr" not in report["files"]
    sent = local.calls[0].attachments[0].data or b""
    assert b"Quillfeather" not in sent and sent.startswith(b"\x89PNG")
    assert cloud.calls == []
    assert_no_phi(all_text_under(tmp_path / "r"), "the report files")


# --------------------------------------------------------------------------- the same agent through the registry


async def test_the_registry_runs_medical_like_any_agent(ct_folder: Path, tmp_path: Path, make_processor: Any) -> None:
    from fastvlm_gemini_hybrid.agents import Agent, AgentOptions, load_registry
    from fastvlm_gemini_hybrid.agents.medical import MedicalReport

    registry = load_registry(None)
    agent = registry.get("medical")
    assert isinstance(agent, MedicalAgent) and isinstance(agent, Agent)
    write_ct_series(ct_folder.parent / "second", 2, prefix="other", body_part="ABDOMEN")  # not a cache hit
    proc, local, cloud = make_processor(OCR_LEAK_ANSWER)
    streamed, notes = [], []
    options = AgentOptions(mode=Mode.PARALLEL, extra={"report": str(tmp_path / "r")}, on_item=streamed.append,
                           warn=notes.append)
    try:
        items = await registry.run("medical", [str(ct_folder.parent)], options, processor=proc)
    finally:
        await proc.aclose()
    assert len(items) == 2 and items == streamed  # one item per study, each streamed as it was done
    for item in items:
        report = MedicalReport.model_validate(item.output)
        assert item.ok and item.input == report.study and item.result is not None
        assert report.severity == "critical" and (tmp_path / "r" / report.study / "report.json").is_file()
        assert_no_phi(json.dumps(item.to_dict()), "the item as JSON")
    assert "2 studies to read, on this machine only" in notes
    assert cloud.calls == [] and len(local.calls) == 2
    assert all(r.sensitive is True and r.mode is Mode.PARALLEL for r in local.calls)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": Mode.CLOUD_ONLY}, "cloud-only is refused"),
        ({"sensitive": False}, "always sensitive"),
    ],
)
async def test_registry_refuses_before_reading(ct_folder: Path, make_processor: Any, options: dict[str, Any],
                                               message: str) -> None:
    from fastvlm_gemini_hybrid.agents import AgentOptions, load_registry

    proc, local, cloud = make_processor()
    try:
        with pytest.raises(PolicyViolationError, match=message):
            await load_registry(None).run("medical", [str(ct_folder)], AgentOptions(**options), processor=proc)
    finally:
        await proc.aclose()
    assert local.calls == [] and cloud.calls == []


def test_a_processor_built_for_the_agent_has_no_gemini_key(tmp_path: Path) -> None:
    from fastvlm_gemini_hybrid.agents.medical import AGENT
    from fastvlm_gemini_hybrid.config import load_settings

    settings = load_settings(home=tmp_path, gemini_api_key="fake-test-key")
    assert AGENT.settings_for(settings).gemini_api_key is None and settings.gemini_api_key is not None
