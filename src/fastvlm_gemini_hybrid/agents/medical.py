"""The medical imaging agent: a folder or file of DICOM (or PNG/JPEG with a modality) in, one
de-identified draft report per study out, with an audit record for every study read.

Privacy is enforced here as well as in the router, on purpose: every request is built sensitive
and medical, `cloud-only` is refused before any file is opened, and a result that came from a cloud
backend (which the router should never allow) is rejected rather than reported. Prompts carry only
modality, body part and panel layout; the image is a freshly encoded PNG with no metadata; every
string that leaves (report files, stdout, audit) is scrubbed of the source's identifying values.

An answer the agent cannot read (empty, blocked or refused, not JSON, not the findings schema) still
gives a report, graded `indeterminate` with the reason and no findings, and an audit outcome of
minor failure: the study was opened but not read, which must never look like a normal read.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HybridError, PolicyViolationError
from ..medical import deid, findings, ingest, render
from ..medical.report import Report, write_exports
from ..types import Attachment, Domain, GenerationOptions, Mode, Request, Result

log = logging.getLogger(__name__)

AUDIT_TYPE = "medical-study-read"


@dataclass
class StudyFailure:
    study: str  # pseudonymous reference
    error: str
    exc: HybridError = field(repr=False)


@dataclass
class MedicalRun:
    """Everything one `medical` invocation produced."""

    reports: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[ingest.Skipped] = field(default_factory=list)
    failed: list[StudyFailure] = field(default_factory=list)
    files_seen: int = 0


def study_ref(study: ingest.Study) -> str:
    """A stable one-way pseudonym for a study: the same study gets the same reference across runs
    (so audits and reports can be matched), but it reveals neither the UID nor the file name."""
    if study.plain_image is not None:
        seed = hashlib.sha256(study.plain_image.read_bytes()).hexdigest()
    else:
        seed = study.uid
    return hashlib.sha256(f"fastvlm-hybrid/study:{seed}".encode()).hexdigest()[:16]


def check_mode(mode: Mode | str | None) -> Mode | None:
    """Medical studies are local by construction: refuse `cloud-only` outright (exit 2)."""
    if mode is None:
        return None
    parsed = Mode.parse(mode)
    if parsed is Mode.CLOUD_ONLY:
        raise PolicyViolationError(
            "medical studies never leave this machine: --mode cloud-only is refused (use local-only or auto)"
        )
    return parsed


class MedicalAgent:
    """Reads studies through a `HybridVLMProcessor` (or anything with the same `arun`)."""

    def __init__(
        self,
        processor: Any,
        *,
        report_dir: str | Path | None = None,
        mode: Mode | str | None = None,
        audit: Any = None,
        user: str | None = None,
    ) -> None:
        self.processor = processor
        self.mode = check_mode(mode)
        self.report_dir = Path(report_dir).expanduser() if report_dir else None
        self.audit = audit if audit is not None else getattr(processor, "audit", None)
        settings = getattr(processor, "settings", None)
        self.user = user or getattr(settings, "user", None) or "unspecified"

    async def aread(self, source: str | Path, modality: str | None = None) -> MedicalRun:
        """Scan `source`, then read each study in turn. One study failing does not stop the others;
        only a source with no usable study at all raises (BadInputError, exit 2)."""
        return await self.aread_scan(await asyncio.to_thread(ingest.scan, source, modality))

    async def aread_scan(self, scan: ingest.Scan) -> MedicalRun:
        """Read the studies of a finished scan (so callers can reject bad input before building a
        processor)."""
        run = MedicalRun(skipped=list(scan.skipped), files_seen=scan.files_seen)
        for study in scan.studies:
            ref = study_ref(study)
            try:
                run.reports.append(await self.read_study(study, ref))
            except PolicyViolationError:
                raise
            except HybridError as exc:
                run.failed.append(StudyFailure(ref, str(exc), exc))
                self._audit_failure(ref, study, exc)
        if not run.reports and run.failed:
            raise run.failed[0].exc  # nothing to report: the first failure is the answer (one line)
        return run

    async def read_study(self, study: ingest.Study, ref: str) -> dict[str, Any]:
        rendered = await asyncio.to_thread(render.render_study, study)
        ds = rendered.source
        identifiers = deid.collect_identifiers(ds) if ds is not None else set()
        modality = study.modality or (str(ds.get("Modality", "")) if ds is not None else "")
        body_part = study.selected.body_part if study.selected is not None else ""
        burned = deid.burned_in_text(ds, rendered.pixels, modality)
        request = Request(
            prompt=findings.build_prompt(modality, body_part, rendered.panels),
            attachments=(Attachment.from_bytes(rendered.png, name=f"study-{ref}.png"),),
            mode=self.mode,
            domain=Domain.MEDICAL,
            sensitive=True,
            options=GenerationOptions(max_tokens=512, temperature=0.0, json_schema=findings.FINDINGS_SCHEMA),
            user=self.user,
        )
        result: Result = await self.processor.arun(request)
        self._ensure_local(result)
        parsed = findings.parse_model_output(result.response, blocked=result.blocked,
                                             finish_reason=result.finish_reason)
        severity = findings.grade(parsed)
        report_id = uuid.uuid4().hex[:16]
        report = Report(
            report_id=report_id,
            study_ref=ref,
            modality=modality,
            body_part=body_part,
            findings=parsed.findings,
            impression=parsed.impression,
            severity=severity,
            severity_reason=parsed.reason,
            backend=result.backend,
            model=result.model,
            panels=rendered.panels,
            series=self._series_summary(study),
            burned_in_text={"suspected": burned.suspected, "reason": burned.reason},
            notifications=findings.notifications(parsed, report_id),
            valid_model_json=parsed.valid_json,
            notes=list(parsed.notes),
            identifiers=identifiers,
        )
        if burned.suspected:
            report.notes.append("the image may carry burned-in identifiers; it was not exported")
        report.audit_id = self._audit_success(report, study)
        if self.report_dir is not None:
            await asyncio.to_thread(self._export, report, ds)
        return report.to_dict()

    # ------------------------------------------------------------------ helpers
    def _ensure_local(self, result: Result) -> None:
        is_cloud = getattr(self.processor, "_is_cloud", None)
        cloud = result.route.cloud_allowed or (callable(is_cloud) and is_cloud(result.backend))
        if cloud:
            raise PolicyViolationError(f"a medical request was answered by cloud backend {result.backend!r}; refused")

    @staticmethod
    def _series_summary(study: ingest.Study) -> dict[str, Any]:
        if study.selected is None:
            return {"modality": study.modality, "images": 1, "frames": 1, "why": ["PNG/JPEG input"]}
        s = study.selected
        return {
            "modality": s.modality,
            "images": len(s.files),
            "frames": s.frames,
            "series_in_study": len(study.series),
            "why": s.reasons,
        }

    def _export(self, report: Report, ds: Any) -> None:
        assert self.report_dir is not None
        directory = self.report_dir / report.study_ref
        report.files = {"json": "report.json", "markdown": "report.md", "html": "report.html"}
        if ds is not None:
            report.files["dicom_sr"] = "report-sr.dcm"
        if report.notifications:
            report.files["notifications"] = "notifications.jsonl"
        data = report.to_dict()
        write_exports(data, directory, "report")
        if ds is not None:
            from ..medical import sr

            evidence = deid.deidentify(ds, keep_pixels=False)
            sr.write_sr(data, evidence, report.identifiers, directory / "report-sr.dcm")
        if report.notifications:
            lines = "".join(json.dumps(n, sort_keys=True) + "\n" for n in data["notifications"])
            (directory / "notifications.jsonl").write_text(lines, encoding="utf-8")

    def _append(self, record: dict[str, Any]) -> str | None:
        if self.audit is None:
            return None
        try:
            return str(self.audit.append(record))
        except OSError as exc:
            log.error("could not write the medical audit record: %s", exc.strerror or type(exc).__name__)
            return None

    def _audit_success(self, report: Report, study: ingest.Study) -> str | None:
        return self._append(
            {
                "type": AUDIT_TYPE,
                "action": "R",  # FHIR AuditEvent action: read
                # FHIR: success; 4 (minor failure) when the model's answer could not be read
                "outcome": "4" if report.severity == findings.INDETERMINATE else "0",
                "agent": {"who": self.user, "software": "fastvlm-gemini-hybrid medical agent"},
                "entity": {"what": report.study_ref, "type": "imaging-study", "modality": report.modality,
                           "files": study.file_count},
                "backend": report.backend,
                "model": report.model,
                "cloud": False,
                "report_id": report.report_id,
                "severity": report.severity,
                "severity_reason": report.severity_reason,
                "critical_notifications": len(report.notifications),
                "burned_in_text_suspected": report.burned_in_text["suspected"],
                "deidentified": True,
            }
        )

    def _audit_failure(self, ref: str, study: ingest.Study, exc: HybridError) -> None:
        self._append(
            {
                "type": AUDIT_TYPE,
                "action": "R",
                "outcome": "8",  # FHIR: serious failure
                "agent": {"who": self.user, "software": "fastvlm-gemini-hybrid medical agent"},
                "entity": {"what": ref, "type": "imaging-study", "modality": study.modality,
                           "files": study.file_count},
                "error": exc.code,
                "cloud": False,
            }
        )

