"""The medical imaging agent: a DICOM file or folder (or a PNG/JPEG with a modality) in, one
de-identified draft report per study out, with an audit record for every study read.

It implements the `Agent` contract like every other agent (the registry runs it for `agents run
medical`, the `medical` command and `POST /v1/agents/medical`): input kinds `dicom` and `image`, one
file or folder; options `modality` and `report` (a folder, so local callers only); one item per study
whose `output` is the report (`MedicalReport`), its `input` the study's pseudonym, never a file name.

Privacy is enforced here as well as in the router, on purpose: every request is built sensitive
and medical, `cloud-only` and `--not-sensitive` are refused before any file is opened, and a result
that came from a cloud backend (which the router should never allow) is rejected rather than
reported. Prompts carry only modality, body part and panel layout; the image is a freshly encoded
PNG with no metadata; every string that leaves (report files, stdout, audit) is scrubbed of the
source's identifying values. A processor built for this agent alone has no Gemini key at all.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import BadInputError, HybridError, PolicyViolationError
from ..medical import deid, findings, ingest, render
from ..medical.ingest import IMAGE_MODALITIES
from ..medical.report import Report, write_exports
from ..types import Attachment, Domain, GenerationOptions, Mode, Request, Result
from .base import Agent, AgentOptions, ItemResult, RoutingHints
from .options import OptionSpec

if TYPE_CHECKING:
    from ..audit import AuditLog
    from ..config import Settings
    from ..processor import HybridVLMProcessor
    from .answering import Answerer

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


class StudyReader:
    """Reads the studies of a scan through a processor: one run's state (where reports go, the mode,
    the audit log, who asked). `MedicalAgent.arun` builds one per run."""

    def __init__(
        self, processor: Answerer, *, report_dir: str | Path | None = None, mode: Mode | str | None = None,
        audit: AuditLog | None = None, user: str | None = None, model: str | None = None, max_tokens: int | None = None,
    ) -> None:
        self.processor = processor
        self.mode = check_mode(mode)
        self.report_dir = Path(report_dir).expanduser() if report_dir else None
        self.audit = audit if audit is not None else getattr(processor, "audit", None)
        settings = getattr(processor, "settings", None)
        self.user = user or getattr(settings, "user", None) or "unspecified"
        self.model = model
        self.max_tokens = max_tokens or 512

    async def aread_scan(
        self, scan: ingest.Scan, on_report: Callable[[dict[str, Any], Result], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> MedicalRun:
        """Read each study of a finished scan in turn, `on_report` called as each report is done. One
        study failing does not stop the others; when none could be read, the first failure is raised."""
        run = MedicalRun(skipped=list(scan.skipped), files_seen=scan.files_seen)
        for study in scan.studies:
            if stop is not None and stop():
                break
            ref = study_ref(study)
            try:
                report, result = await self.read_study(study, ref)
            except PolicyViolationError:
                raise
            except HybridError as exc:
                run.failed.append(StudyFailure(ref, str(exc), exc))
                self._audit_failure(ref, study, exc)
                continue
            run.reports.append(report)
            if on_report is not None:
                on_report(report, result)
        if not run.reports and run.failed:
            raise run.failed[0].exc  # nothing to report: the first failure is the answer (one line)
        return run

    async def read_study(self, study: ingest.Study, ref: str) -> tuple[dict[str, Any], Result]:
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
            model=self.model,
            options=GenerationOptions(max_tokens=self.max_tokens, temperature=0.0,
                                      json_schema=findings.FINDINGS_SCHEMA),
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
        return report.to_dict(), result

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



# --------------------------------------------------------------------------- the agent


class MedicalReport(BaseModel):
    """One study's draft report: the `output` of each item (`medical.report.Report.to_dict()`)."""

    model_config = ConfigDict(extra="allow")  # series, panels, files, ...: documented in docs/medical.md
    report_id: str
    study: str  # pseudonymous study reference
    modality: str
    body_part: str
    findings: list[dict[str, Any]]
    impression: str
    severity: Literal["normal", "minor", "significant", "critical", "indeterminate"]
    severity_reason: str | None
    backend: str
    model: str | None
    notifications: list[dict[str, Any]]
    deidentified: Literal[True]
    disclaimer: str
    audit_id: str | None


class MedicalAgent(Agent):
    """The `medical` agent. `MedicalAgent()` is the registry's; `MedicalAgent(processor, report_dir=...,
    mode=...)` is bound to a processor for the direct `aread(source)` API that library code and the
    medical tests use (it refuses `cloud-only` at once, as it always did)."""

    name = "medical"
    summary = "de-identified draft reports for DICOM or image studies; never leaves the machine"
    accepts = frozenset({"dicom", "image"})
    output_model = MedicalReport
    hints = RoutingHints(sensitive=True, domain=Domain.MEDICAL, local_only=True)
    min_inputs = 1
    max_inputs = 1  # one file or folder; a folder may hold many studies
    per_input = True  # one item per study
    option_specs = (
        OptionSpec("modality", "string", "CT, MR, US, DX, CR, MG, ...: needed for PNG/JPEG; filters DICOM",
                   choices=tuple(IMAGE_MODALITIES), metavar="M"),
        OptionSpec("report", "directory", "write report.json/.md/.html and a DICOM SR per study here",
                   remote=False, metavar="DIR"),
    )

    def __init__(
        self, processor: HybridVLMProcessor | None = None, *, report_dir: str | Path | None = None,
        mode: Mode | str | None = None, audit: AuditLog | None = None, user: str | None = None,
    ) -> None:
        check_mode(mode)
        self._bound = (
            StudyReader(processor, report_dir=report_dir, mode=mode, audit=audit, user=user)
            if processor is not None else None
        )

    # ------------------------------------------------------------------ the contract
    def request_hints(self, options: AgentOptions) -> dict[str, Any]:
        """Always sensitive and medical. Unlike the base class's `local_only`, the caller's mode is kept
        (auto, fallback and parallel route among local backends only, since every request is
        sensitive); `cloud-only` and `--not-sensitive` are refused."""
        if options.sensitive is False:
            raise PolicyViolationError("medical studies are always sensitive: --not-sensitive is refused")
        return {"mode": check_mode(options.mode), "sensitive": True, "domain": Domain.MEDICAL,
                "latency": options.latency, "model": options.model}

    def settings_for(self, settings: Settings) -> Settings:
        # Belt and braces: a processor built for this agent cannot authenticate to Gemini at all.
        return settings.model_copy(update={"gemini_api_key": None})

    async def arun(
        self, processor: Answerer, refs: list[str], options: AgentOptions,
    ) -> list[ItemResult]:
        """Scan the one source, then read each study: reports stream through `options.emit` as they are
        done; failed studies come back as error items; nothing readable at all raises the first error."""
        hints = self.request_hints(options)  # refused modes fail before any file is opened
        if len(refs) != 1:
            raise BadInputError(f"the medical agent takes one DICOM/image file or folder, got {len(refs)}")
        source = Path(refs[0]).expanduser()
        modality = options.extra.get("modality")
        scan = await asyncio.to_thread(ingest.scan, source, modality if isinstance(modality, str) else None)
        count = len(scan.studies)
        options.say(f"{count} stud{'y' if count == 1 else 'ies'} to read, on this machine only")
        for skipped in scan.skipped:
            where = skipped.path.relative_to(source) if source.is_dir() else skipped.path.name
            options.say(f"skipped {where}: {skipped.reason}")
        report_dir = options.extra.get("report")
        reader = StudyReader(processor, report_dir=report_dir if isinstance(report_dir, str) else None,
                             mode=hints["mode"], model=hints["model"], max_tokens=options.max_tokens)
        items: list[ItemResult] = []

        def done(report: dict[str, Any], result: Result) -> None:
            item = ItemResult(self.name, report["study"], output=report, result=result, attempts=1)
            items.append(item)
            options.emit(item)

        run = await reader.aread_scan(scan, done, options.stopped)
        # Failures are not streamed: when every study fails, the first failure is raised instead (one line).
        items += [ItemResult(self.name, f.study, error=f.exc) for f in run.failed]
        return items

    def render(self, output: dict[str, Any]) -> str:
        return render_report(output)

    # ------------------------------------------------------------------ the bound, direct API
    async def aread(self, source: str | Path, modality: str | None = None) -> MedicalRun:
        """Scan `source`, then read each study in turn. One study failing does not stop the others;
        only a source with no usable study at all raises (BadInputError, exit 2)."""
        return await self.aread_scan(await asyncio.to_thread(ingest.scan, source, modality))

    async def aread_scan(self, scan: ingest.Scan) -> MedicalRun:
        if self._bound is None:
            raise TypeError("aread needs a bound agent: MedicalAgent(processor, ...); or run it through the registry")
        return await self._bound.aread_scan(scan)


def render_report(report: dict[str, Any]) -> str:
    """The terminal view of one report. An indeterminate study prints its reason and no findings, so
    the line can never be mistaken for a normal read; notes (e.g. burned-in text) are printed too."""
    from ..medical.report import UNREAD, severity_of

    severity, reason = severity_of(report)
    part = f" {report['body_part'].lower()}" if report["body_part"] else ""
    lines = [f"Study {report['study']} ({report['modality']}{part}): severity {severity}"]
    if reason:
        lines[0] += f": {reason}"
        lines.append(f"  No findings recorded: {UNREAD}.")
    for f in [] if reason else report["findings"]:
        mark = "-" if f.get("present", True) else "- not seen:"
        tag = f" [ACR {f['category']}: {f['rule']}]" if f.get("category") else ""
        lines.append(f"  {mark} {f['text']}{tag}")
    if report["impression"] and not reason:
        lines.append(f"  Impression: {report['impression']}")
    for n in report["notifications"]:
        lines.append(f"  CRITICAL: {n['finding']} - communicate within {n['communicate_within']}")
    for note in report.get("notes") or []:
        lines.append(f"  Note: {note}")
    lines.append(f"  ({report['backend']}, audit {report['audit_id']}) {report['disclaimer']}")
    return "\n".join(lines)


AGENT = MedicalAgent()
