"""`medical FILE_OR_DIR`: the medical imaging agent. One de-identified draft report per study.

The command drops any Gemini key from the settings it hands the processor, so even a router bug
could not authenticate a cloud call; `--mode cloud-only` is refused before any file is read.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from .common import add_json_flag, info, print_json, settings_from_args


def register(sub: Any) -> None:
    p = sub.add_parser(
        "medical",
        help="draft reports for DICOM studies (or PNG/JPEG with --modality), processed only on this machine",
        description=(
            "Read DICOM files or folders (or PNG/JPEG with --modality), pick the series to read, render it, ask "
            "the local model for findings and write a de-identified draft report per study. Nothing is sent "
            "to a cloud backend, whatever the mode."
        ),
    )
    p.add_argument("source", metavar="FILE_OR_DIR", help="a DICOM file, a PNG/JPEG, or a folder of them")
    p.add_argument("--report", metavar="DIR", help="write report.json/.md/.html and a DICOM SR per study here")
    p.add_argument("--modality", metavar="M", help="CT, MR, US, DX, CR, MG, ...: needed for PNG/JPEG; filters DICOM")
    p.add_argument("--mode", metavar="M", help="local-only, auto (default), fallback, parallel; cloud-only is refused")
    p.add_argument("--model", help="local model name or directory (overrides FASTVLM_HYBRID_LOCAL_MODEL)")
    add_json_flag(p)
    p.set_defaults(handler=run_medical)


def _modality(value: str | None) -> str | None:
    if value is None:
        return None
    from ..medical.ingest import IMAGE_MODALITIES

    code = value.strip().upper()
    if code not in IMAGE_MODALITIES:
        raise BadInputError(f"unknown modality {value!r}; choose one of: {', '.join(IMAGE_MODALITIES)}")
    return code


def run_medical(args: argparse.Namespace) -> int:
    from ..agents.medical import MedicalAgent, check_mode

    mode = check_mode(args.mode)  # cloud-only -> exit 2 before anything is read
    modality = _modality(args.modality)
    source = Path(args.source).expanduser()
    from ..medical.ingest import scan as scan_source

    scan = scan_source(source, modality)  # bad input fails here, before any model is built
    settings = settings_from_args(args, local_model=args.model)
    # Belt and braces: the processor this command builds cannot authenticate to Gemini at all.
    settings = settings.model_copy(update={"gemini_api_key": None})

    async def _main() -> Any:
        from ..processor import HybridVLMProcessor

        processor = HybridVLMProcessor(settings)
        try:
            agent = MedicalAgent(processor, report_dir=args.report, mode=mode)
            return await agent.aread_scan(scan)
        finally:
            await processor.aclose()

    info(f"{len(scan.studies)} stud{'y' if len(scan.studies) == 1 else 'ies'} to read, on this machine only")
    run = asyncio.run(_main())
    for skipped in run.skipped:
        where = skipped.path.relative_to(source) if source.is_dir() else skipped.path.name
        info(f"skipped {where}: {skipped.reason}")
    for failure in run.failed:
        info(f"study {failure.study} failed: {failure.error}")
    for report in run.reports:
        if args.json:
            print_json(report)
        else:
            print(_human(report))
    if args.report:
        info(f"reports written under {args.report}")
    return 0


def _human(report: dict[str, Any]) -> str:
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
