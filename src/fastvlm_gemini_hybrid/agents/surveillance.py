"""The surveillance agent: a video file, stream URL or webcam in; alerts as they happen, then a summary.

It implements the `Agent` contract like every other agent (the registry runs it for `agents run
surveillance`, the `surveil` command and `POST /v1/agents/surveillance`): one input, a `video` file or
a live `stream` (rtsp/http/tcp URL, or a webcam index such as `0`); options as data: `zones`
(required), `describe`, `start_time`, `duration`, `reconnects`, and, for local callers only, `report`
(a folder to write) and `webhook` (a URL this machine posts to). Each alert is streamed through
`options.event` as `{"type": "event", "event": ..., "reason": ..., "done": frames}`, where `event` is
exactly the `surveil --json` line; the one item's `output` (`SurveillanceOutput`) holds the alerts,
the run's counts and the report's files.

Why a worker thread: decoding and the frame engine (`surveillance_engine.py`) are synchronous CPU
work, so they run off the event loop and an HTTP server keeps answering; alert descriptions still go
through the caller's processor on the caller's loop, where its async clients live. Without `describe`
no model is called and no processor is built at all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ..errors import BadInputError, ConfigurationError
from ..types import Domain, Mode, Request, Result
from .base import Agent, AgentOptions, ItemResult, RoutingHints
from .options import OptionSpec
from .surveillance_engine import DESCRIBE_SCHEMA, AgentConfig, AlertDescriber, SurveillanceEngine, parse_description

if TYPE_CHECKING:
    from ..video.decode import Frame, VideoSource
    from ..video.events import Event
    from ..video.zones import ZoneConfig
    from .answering import Answerer

#: alerts kept in the output; every alert is still streamed, counted and sent to the webhook
MAX_ALERTS = 1000


class Alert(BaseModel):
    """One alert: the `surveil --json` line plus why it was raised."""

    type: Literal["motion", "zone_enter", "zone_exit", "loitering", "anomaly"]
    zone: str | None
    track_id: int | None
    start_s: float
    end_s: float | None
    priority: str
    bbox: list[int]
    description: str | None
    reason: str


class SurveillanceStats(BaseModel):
    frames: int
    alerts: int
    suppressed: int  # duplicates the limiter held back
    dropped: int  # frames a live source dropped
    reconnects: int
    stream_errors: list[str]
    descriptions: Literal["on", "unavailable"]


class SurveillanceOutput(BaseModel):
    alerts: list[Alert]  # the first MAX_ALERTS
    stats: SurveillanceStats
    report: dict[str, str] | None = None  # file kind -> path, when the `report` option was set


class SurveillanceAgent(Agent):
    """The `surveillance` agent. `SurveillanceAgent()` is the registry's. Called with zones,
    `SurveillanceAgent(zones, config, describer)` is instead bound to one run's frame engine: the form
    server/jobs.py, tests/video and benchmarks/video_motion.py use (`run(frames)`, `frames`, `records`, ...)."""

    name = "surveillance"
    summary = "motion, zones, loitering and described alerts from a video file, stream or webcam"
    accepts = frozenset({"video", "stream"})
    output_model = SurveillanceOutput
    hints = RoutingHints(domain=Domain.SECURITY)
    min_inputs = 1
    max_inputs = 1
    option_specs = (
        OptionSpec("zones", "file", "the zones YAML: zones, masks, quiet periods, night hours (see docs/video.md)",
                   required=True, metavar="ZONES.yaml"),
        OptionSpec("describe", "boolean", "describe each alert with the model (local first)", default=False),
        OptionSpec("start_time", "string", "wall-clock time of the first frame, ISO 8601 (default: now)",
                   metavar="ISO"),
        OptionSpec("duration", "number", "stop after S seconds of video", metavar="S"),
        OptionSpec("reconnects", "integer", "reconnect attempts for live sources", default=5, metavar="N"),
        OptionSpec("report", "directory", "write incident.json/.md/.html with thumbnails here", remote=False,
                   metavar="DIR"),
        OptionSpec("webhook", "string", "also POST each alert as JSON to this URL", remote=False, metavar="URL"),
    )

    def __init__(
        self, zones: ZoneConfig | None = None, config: AgentConfig | None = None,
        describer: AlertDescriber | None = None,
    ) -> None:
        self.engine = SurveillanceEngine(zones, config, describer) if zones is not None else None

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the class lacks: the bound form reads the engine's state through.
        engine = self.__dict__.get("engine")
        if engine is None:
            raise AttributeError(name)
        return getattr(engine, name)

    def run(self, frames: Iterable[Frame]) -> Iterator[Event]:
        """The bound form's frame loop (the engine's `run`)."""
        if self.engine is None:
            raise TypeError("run needs a bound agent: SurveillanceAgent(zones, ...); or run it through the registry")
        return self.engine.run(frames)

    # ------------------------------------------------------------------ the contract
    def needs_processor(self, options: AgentOptions) -> bool:
        return bool(options.extra.get("describe"))

    async def arun(
        self, processor: Answerer | None, refs: list[str], options: AgentOptions,
    ) -> list[ItemResult]:
        """Watch the one source to its end (or `duration`, or `options.should_stop`); one item back."""
        from ..video.zones import load_zones

        if len(refs) != 1:
            raise BadInputError(f"the surveillance agent takes one video file, stream URL or webcam index, "
                                f"got {len(refs)}")
        hints = self.request_hints(options)
        extra = options.extra
        zones = load_zones(str(extra["zones"]))
        start = _parse_start(extra.get("start_time"))
        duration = extra.get("duration")
        if isinstance(duration, int | float) and duration <= 0:
            raise BadInputError("duration must be a positive number of seconds")
        describer = None
        if extra.get("describe"):
            if processor is None:
                raise ConfigurationError("the surveillance agent needs a processor to describe alerts")
            describer = AlertDescriber(
                _OnLoop(processor, asyncio.get_running_loop()), allow_cloud=hints["mode"] is not Mode.LOCAL_ONLY,
                sensitive=bool(hints["sensitive"]), threshold=processor.settings.confidence_threshold,
                warn=options.say,
            )
        stop = threading.Event()

        def stopped() -> bool:
            return stop.is_set() or options.stopped()

        watch = _Watch(refs[0], zones, AgentConfig(start=start), describer, options, stopped)
        try:
            output = await asyncio.to_thread(watch.run)
        except asyncio.CancelledError:
            stop.set()  # Ctrl-C or a cancelled job: the frame thread ends at its next frame
            raise
        return [ItemResult(self.name, refs[0], output=output)]

    def render_event(self, event: dict[str, Any]) -> str:
        e = event["event"]
        where = f" in {e['zone']}" if e.get("zone") else ""
        track = f" track {e['track_id']}" if e.get("track_id") is not None else ""
        desc = f": {e['description']}" if e.get("description") else f" ({event.get('reason', '')})"
        return f"[{e['start_s']:8.2f}s] {e['priority'].upper():8} {e['type']}{where}{track}{desc}"

    def render(self, output: dict[str, Any]) -> str:
        lines = [self.render_event({"event": a, "reason": a.get("reason", "")}) for a in output["alerts"]]
        st = output["stats"]
        lines.append(f"{st['frames']} frames, {st['alerts']} alerts, {st['suppressed']} suppressed as duplicates")
        return "\n".join(lines)


class _OnLoop:
    """The processor's synchronous face for the frame thread: each `run` is the processor's `arun` on
    the caller's event loop (the describer is synchronous; the backends' clients belong to that loop)."""

    def __init__(self, processor: Answerer, loop: asyncio.AbstractEventLoop) -> None:
        self.processor, self.loop = processor, loop

    def run(self, request: Request) -> Result:
        return asyncio.run_coroutine_threadsafe(self.processor.arun(request), self.loop).result()


class _Watch:
    """One run in the worker thread: open the source, drive the engine, stream alerts, then report."""

    def __init__(
        self, ref: str, zones: ZoneConfig, config: AgentConfig, describer: AlertDescriber | None,
        options: AgentOptions, stopped: Callable[[], bool],
    ) -> None:
        self.ref, self.zones, self.config, self.describer = ref, zones, config, describer
        self.options, self.stopped = options, stopped

    def run(self) -> dict[str, Any]:
        from ..video.decode import VideoSource
        from ..video.webhook import WebhookSink

        extra, say = self.options.extra, self.options.say
        reconnects = extra.get("reconnects")
        # Opened eagerly: a bad file or a stream that never connects fails before any output.
        source = VideoSource(self.ref, reconnect_attempts=max(0, reconnects if isinstance(reconnects, int) else 5),
                             open_options=self.options.source_options)
        if self.describer is None:
            say("descriptions unavailable: run with --describe to describe alerts with a model")
        engine = SurveillanceEngine(self.zones, self.config, self.describer)
        webhook = extra.get("webhook")
        sink = WebhookSink(webhook) if isinstance(webhook, str) else None
        alerts: list[dict[str, Any]] = []
        count = 0
        try:
            with source:
                for event in engine.run(self._frames(source)):
                    count += 1
                    alert = event.to_dict()
                    if len(alerts) < MAX_ALERTS:
                        alerts.append({**alert, "reason": event.reason})
                    self.options.event({"type": "event", "event": alert, "reason": event.reason, "done": engine.frames})
                    if sink is not None:
                        sink.send(alert)
        finally:
            if sink is not None:
                sink.close()
                say(f"webhook: {sink.stats.sent} sent, {sink.stats.failed} failed, {sink.stats.dropped} dropped")
        for err in source.stats.errors[-3:]:
            say(f"note: {err}")
        say(f"{engine.frames} frames, {count} alerts, {engine.limiter.suppressed} suppressed as duplicates, "
            f"{source.stats.dropped} frames dropped, {source.stats.reconnects} reconnects")
        stats = {"frames": engine.frames, "alerts": count, "suppressed": engine.limiter.suppressed,
                 "dropped": source.stats.dropped, "reconnects": source.stats.reconnects,
                 "stream_errors": source.stats.errors[-10:],
                 "descriptions": "on" if self.describer and self.describer.available else "unavailable"}
        return {"alerts": alerts, "stats": stats, "report": self._report(engine, source, stats)}

    def _frames(self, source: VideoSource) -> Iterator[Frame]:
        duration = self.options.extra.get("duration")
        for frame in source:
            if (isinstance(duration, int | float) and frame.t_s > duration) or self.stopped():
                return
            yield frame

    def _report(self, engine: SurveillanceEngine, source: VideoSource, stats: dict[str, Any]) -> dict[str, str] | None:
        from ..video.report import ReportData, write_report

        folder = self.options.extra.get("report")
        if not isinstance(folder, str):
            return None
        start = self.config.start or datetime.now()
        data = ReportData(source=self.ref, started_at=start.isoformat(timespec="seconds"), duration_s=engine.last_t,
                          records=engine.records, zones=self.zones.zones, still=engine.still, stats=stats)
        paths = write_report(folder, data)
        self.options.say(f"report written: {paths['html']}")
        return {kind: str(path) for kind, path in paths.items()}


def _parse_start(text: object) -> datetime:
    if not isinstance(text, str):
        return datetime.now()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"start time {text!r} is not an ISO date-time such as 2025-01-31T22:15:00") from None


AGENT = SurveillanceAgent()

__all__ = [
    "AGENT",
    "DESCRIBE_SCHEMA",
    "AgentConfig",
    "Alert",
    "AlertDescriber",
    "SurveillanceAgent",
    "SurveillanceEngine",
    "SurveillanceOutput",
    "parse_description",
]
