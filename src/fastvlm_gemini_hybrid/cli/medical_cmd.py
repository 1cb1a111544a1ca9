"""`medical FILE_OR_DIR`: the medical imaging agent. One de-identified draft report per study.

The command runs the registry's `medical` agent like `agents run medical` does, printing the bare
reports (`--json`: one report object per line). The processor it builds has no Gemini key
(`MedicalAgent.settings_for`), so even a router bug could not authenticate a cloud call;
`--mode cloud-only` is refused before any file is read. `--model` names the local model here.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from .common import add_json_flag, info, print_json, settings_from_args

if TYPE_CHECKING:
    from ..agents.base import Agent, ItemResult
    from ..processor import HybridVLMProcessor


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


def run_medical(args: argparse.Namespace) -> int:
    from ..agents.base import AgentOptions
    from ..agents.registry import load_registry
    from ..types import Mode

    registry = load_registry(user_recipes=False)
    agent = registry.get("medical")
    options = AgentOptions(
        mode=Mode.parse(args.mode) if args.mode else None,
        extra=agent.parse_options({"modality": args.modality, "report": args.report}),
        warn=info,
    )
    agent.check_options(options)  # cloud-only and a bad modality: exit 2 before any setting is read
    settings = settings_from_args(args, local_model=args.model)

    def build(for_agent: Agent) -> HybridVLMProcessor:
        from ..processor import HybridVLMProcessor

        return HybridVLMProcessor(for_agent.settings_for(settings))

    def show(item: ItemResult) -> None:
        assert item.output is not None  # only reports are streamed
        if args.json:
            print_json(item.output)
        else:
            print(_human(item.output), flush=True)

    options.on_item = show
    items = asyncio.run(registry.run("medical", [args.source], options, make_processor=build))
    for failed in (i for i in items if not i.ok):
        info(f"study {failed.input} failed: {failed.error}")
    if args.report:
        info(f"reports written under {args.report}")
    return 0


def _human(report: dict[str, Any]) -> str:
    """The terminal view of one report (`MedicalAgent.render`; imported here lazily, so `--help` stays fast)."""
    from ..agents.medical import render_report

    return render_report(report)
