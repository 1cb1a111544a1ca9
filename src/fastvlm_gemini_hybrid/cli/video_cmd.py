"""`video` (answers over time) and `surveil` (the surveillance agent, run through the registry).

Heavy modules (PyAV, OpenCV, numpy, the processor) are imported inside the handlers, so
`fastvlm-hybrid --help` stays fast and a missing `video` extra fails with one line naming it.
`surveil` prints each alert as it happens (`--json`: the alert object, one per line); it builds a
processor only with `--describe`, the one option that calls a model.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import BadInputError
from .common import add_json_flag, info, print_json, settings_from_args


def register(sub: Any) -> None:
    v = sub.add_parser("video", help="analyse a video file, stream URL (rtsp/http) or webcam index over time")
    v.add_argument("source", help="video file, rtsp/http/tcp URL, or a webcam index such as 0")
    v.add_argument("prompt", help="what to ask about the video")
    rate = v.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=float, help="frames per second to analyse")
    rate.add_argument("--every-s", type=float, metavar="S", help="analyse one frame every S seconds (default 1)")
    v.add_argument("--scene-change", action="store_true", help="also (or only) sample when the scene changes")
    v.add_argument("--no-dedupe", action="store_true", help="send near-duplicate frames to the model too")
    v.add_argument("--no-summary", action="store_true", help="skip the whole-clip summary / timeline")
    v.add_argument("--max-frames", type=int, metavar="N", help="stop after N model calls")
    v.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of video (live sources)")
    _routing_flags(v)
    add_json_flag(v)
    v.set_defaults(handler=_video)

    s = sub.add_parser("surveil", help="the surveillance agent: motion, tracks, zones, alerts, incident report")
    s.add_argument("source", help="video file, rtsp/http/tcp URL, or a webcam index such as 0")
    s.add_argument("--zones", required=True, metavar="ZONES.yaml", help="zones file (see docs/video.md)")
    s.add_argument("--report", metavar="DIR", help="write incident.json/.md/.html with thumbnails here")
    s.add_argument("--describe", action=argparse.BooleanOptionalAction, default=False,
                   help="describe each alert with the model (local first)")
    s.add_argument("--webhook", metavar="URL", help="also POST each alert as JSON to this URL")
    s.add_argument("--start-time", metavar="ISO", help="wall-clock time of the first frame (default: now)")
    s.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of video")
    _routing_flags(s)
    add_json_flag(s)
    s.set_defaults(handler=_surveil)


def _routing_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", help="local-only, cloud-only, auto (default), parallel, fallback")
    p.add_argument("--domain", help="routing hint, e.g. security")
    p.add_argument("--sensitive", action="store_true", default=None, help="never let frames leave the machine")
    p.add_argument("--reconnects", type=int, default=5, metavar="N", help="reconnect attempts for live sources")


def make_processor(args: argparse.Namespace) -> Any:
    """The processor the commands use (tests replace this one seam with FunctionBackends)."""
    from ..processor import HybridVLMProcessor

    return HybridVLMProcessor(settings_from_args(args))


def _hints(args: argparse.Namespace) -> dict[str, Any]:
    from ..types import Domain, Mode

    return {
        "mode": Mode.parse(args.mode) if args.mode else None,
        "domain": Domain.parse(args.domain) if args.domain else None,
        "sensitive": args.sensitive,
    }


def _open(args: argparse.Namespace) -> Any:
    from ..video.decode import VideoSource

    if getattr(args, "duration", None) is not None and args.duration <= 0:
        raise BadInputError("--duration must be a positive number of seconds")
    return VideoSource(args.source, reconnect_attempts=max(0, args.reconnects))


def _until(frames: Any, duration: float | None) -> Any:
    for frame in frames:
        if duration is not None and frame.t_s > duration:
            return
        yield frame


def _video(args: argparse.Namespace) -> int:
    from ..video.analyze import VideoAnalyzer
    from ..video.sampling import Sampler

    hints = _hints(args)
    sampler = Sampler(fps=args.fps, every_s=args.every_s, scene_change=args.scene_change)
    if args.max_frames is not None and args.max_frames <= 0:
        raise BadInputError("--max-frames must be positive")
    source = _open(args)
    processor = make_processor(args)
    try:
        analyzer = VideoAnalyzer(processor, args.prompt, sampler=sampler, dedupe=not args.no_dedupe,
                                 max_upload_bytes=processor.settings.max_upload_bytes, warn=info, **hints)
        with source:
            for line in analyzer.frames(_FrameCap(source, args.duration), args.max_frames):
                if args.json:
                    print_json(line)
                else:
                    sys.stdout.write(f"[{line['t_s']:8.2f}s] {line['response']}\n")
                    sys.stdout.flush()
        st = analyzer.stats
        info(f"{st.decoded} frames decoded, {st.sampled} sampled, {st.sent} sent to a model, "
             f"{st.skipped_duplicates} near-duplicates skipped, {st.dropped} dropped, {st.reconnects} reconnects")
        for err in source.stats.errors[-3:]:
            info(f"note: {err}")
        if not args.no_summary and st.sent:
            summary = analyzer.summary(args.source)
            if args.json:
                print_json(summary)
            else:
                sys.stdout.write(f"\nSummary ({summary['source']}):\n{summary['response']}\n")
    finally:
        processor.close()
    return 0


class _FrameCap:
    """A source wrapper that stops at `duration` seconds but keeps the source's stats visible."""

    def __init__(self, source: Any, duration: float | None) -> None:
        self.source, self.duration, self.stats = source, duration, source.stats

    def __iter__(self) -> Any:
        return _until(self.source, self.duration)


def _surveil(args: argparse.Namespace) -> int:
    import asyncio

    from ..agents.base import AgentOptions
    from ..agents.registry import load_registry

    registry = load_registry(user_recipes=False)
    agent = registry.get("surveillance")
    raw = {"zones": args.zones, "report": args.report, "describe": args.describe, "webhook": args.webhook,
           "start_time": args.start_time, "duration": args.duration, "reconnects": args.reconnects}

    def show(event: dict[str, Any]) -> None:
        if args.json:
            print_json(event["event"])
        else:
            sys.stdout.write(agent.render_event(event) + "\n")
            sys.stdout.flush()

    hints = _hints(args)
    options = AgentOptions(mode=hints["mode"], domain=hints["domain"], sensitive=hints["sensitive"],
                           extra=agent.parse_options({k: v for k, v in raw.items() if v is not None}),
                           warn=info, on_event=show)
    asyncio.run(registry.run("surveillance", [args.source], options, make_processor=lambda _a: make_processor(args)))
    return 0
