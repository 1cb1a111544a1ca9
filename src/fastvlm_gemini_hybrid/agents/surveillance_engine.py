"""The surveillance frame engine: motion -> tracks -> zones -> prioritised, de-duplicated events.

Why it is shaped this way: every frame goes through cheap CPU stages (motion on a small grey
image, an IoU tracker, point-in-polygon), and only events reach anything expensive. An event's
description comes from the router, local model first with a strict JSON answer; the cloud is
asked only when the local answer is unsure and the route allows it, and when no model is usable
the engine keeps running and says once that descriptions are unavailable.

This is one run's state, fed frame by frame; the `surveillance` agent (`surveillance.py`, the
`Agent` the registry runs) opens the source, drives an engine and reports what it found.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..errors import BadInputError, HybridError, PolicyViolationError
from ..types import Attachment, Domain, GenerationOptions, Mode, Request
from ..video.decode import Frame
from ..video.events import ActivityBaseline, AlertLimiter, Event, PriorityPolicy
from ..video.motion import MotionConfig, MotionDetector
from ..video.report import IncidentRecord, thumbnail
from ..video.track import IoUTracker, Track
from ..video.zones import ZoneConfig, ZoneTracker

if TYPE_CHECKING:
    from .answering import BlockingAnswerer

DESCRIBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "threat_level": {"type": "integer", "minimum": 0, "maximum": 2},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["title", "summary", "threat_level", "confidence"],
}

DESCRIBE_PROMPT = (
    "You are a security camera assistant. The image shows a {type} alert{zone}. "
    "Describe what is happening in one short sentence. Answer with JSON only: "
    '{{"title": str, "summary": str, "threat_level": 0|1|2, "confidence": 0..1}}.'
)


def parse_description(text: str) -> dict[str, Any] | None:
    """The strict-JSON answer as a dict, or None if it is not valid against the schema."""
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    title, summary = data.get("title"), data.get("summary")
    level, conf = data.get("threat_level"), data.get("confidence")
    if not isinstance(title, str) or not isinstance(summary, str) or not summary.strip():
        return None
    if isinstance(level, bool) or not isinstance(level, int) or level not in (0, 1, 2):
        return None
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
        return None
    return {"title": title.strip(), "summary": summary.strip(), "threat_level": level, "confidence": float(conf)}


class AlertDescriber:
    """Describes an alert image through the processor: local first, the cloud only when unsure.

    `processor` answers from this (worker) thread: a `BlockingAnswerer` (answering.py) such as a
    `HybridVLMProcessor` or the server's `LoopBridge`. `allow_cloud` False (or a sensitive feed) keeps
    every image on the machine. `faces` is the face policy for what
    goes to the cloud: `redact` by default (people on a camera did not agree to be sent anywhere);
    `local` keeps frames with faces here; a stricter FASTVLM_HYBRID_PRIVACY_FACES wins.
    """

    def __init__(
        self, processor: BlockingAnswerer, *, allow_cloud: bool = True, sensitive: bool = False,
        threshold: float = 0.5, warn: Callable[[str], None] | None = None, faces: str = "redact",
    ) -> None:
        self.processor = processor
        self.faces = faces
        self.allow_cloud = allow_cloud and not sensitive
        self.sensitive = sensitive
        self.threshold = threshold
        self.available = True
        self.unavailable_reason = ""
        self.calls = 0
        self._warn = warn or (lambda msg: sys.stderr.write(msg + "\n"))

    def _ask(self, jpeg: bytes, event: Event, mode: Mode) -> tuple[dict[str, Any] | None, Any]:
        zone = f" in zone {event.zone}" if event.zone else ""
        request = Request(
            prompt=DESCRIBE_PROMPT.format(type=event.type.replace("_", " "), zone=zone),
            attachments=(Attachment.from_bytes(jpeg, name=f"alert-{event.type}.jpg"),),
            mode=mode,
            domain=Domain.SECURITY,
            sensitive=self.sensitive,
            options=GenerationOptions(max_tokens=160, json_schema=DESCRIBE_SCHEMA),
            privacy_faces=self.faces,
        )
        self.calls += 1
        result = self.processor.run(request)
        return parse_description(result.response), result

    def describe(self, jpeg: bytes, event: Event) -> dict[str, Any] | None:
        """A validated description dict (with `backend`), or None if no model could give one."""
        if not self.available:
            return None
        local: dict[str, Any] | None = None
        try:
            local, result = self._ask(jpeg, event, Mode.LOCAL_ONLY)
            if local is not None:
                conf = min(local["confidence"], result.confidence if result.confidence is not None else 1.0)
                local = {**local, "backend": result.backend}
                if conf >= self.threshold or not self.allow_cloud:
                    return local
        except (PolicyViolationError, BadInputError):
            raise
        except HybridError as exc:
            if not self.allow_cloud:
                self._unavailable(str(exc))
                return None
        if not self.allow_cloud:
            return local
        try:
            cloud, result = self._ask(jpeg, event, Mode.CLOUD_ONLY)
        except HybridError as exc:
            if local is None:
                self._unavailable(str(exc))
            return local
        if cloud is None:
            return local
        return {**cloud, "backend": result.backend}

    def _unavailable(self, why: str) -> None:
        self.available = False
        self.unavailable_reason = why
        self._warn(f"descriptions unavailable: {why}")


@dataclass
class AgentConfig:
    """Tuning of the engine; the zones file supplies zones, masks, quiet periods and night hours."""

    motion: MotionConfig = field(default_factory=MotionConfig)
    hold_frames: int = 3
    min_hits: int = 3
    max_missed_s: float = 1.0
    limiter: AlertLimiter = field(default_factory=AlertLimiter)
    baseline: ActivityBaseline = field(default_factory=ActivityBaseline)
    start: datetime | None = None  # wall-clock time of t=0, for time-of-day priority
    max_records: int = 1000
    motion_events: bool = True


class SurveillanceEngine:
    """Feed it frames (`run(frames)`), get `Event`s back as they happen; `records` keep report evidence."""

    def __init__(
        self, zones: ZoneConfig, config: AgentConfig | None = None, describer: AlertDescriber | None = None
    ) -> None:
        self.zones = zones
        self.config = config or AgentConfig()
        cfg = self.config
        self.motion = MotionDetector(cfg.motion, masks=zones.masks)
        self.tracker = IoUTracker(min_hits=cfg.min_hits, max_missed_s=cfg.max_missed_s)
        self.presence = ZoneTracker(zones.zones, hold_frames=cfg.hold_frames)
        self.policy = PriorityPolicy(start=cfg.start, night=zones.night, quiet_periods=zones.quiet_periods)
        self.limiter = cfg.limiter
        self.baseline = cfg.baseline
        self.describer = describer
        self.records: list[IncidentRecord] = []
        self.still: Any = None
        self.frames = 0
        self.last_t = 0.0
        self._loitered: set[tuple[int, str]] = set()
        self._announced: set[int] = set()
        self._entries: dict[tuple[int, str], float] = {}

    def run(self, frames: Iterable[Frame]) -> Iterator[Event]:
        for frame in frames:
            yield from self.step(frame)
        yield from self.finish()

    def step(self, frame: Frame) -> list[Event]:
        """Process one frame; returns the events (already filtered by the limiter) it raised."""
        self.frames += 1
        self.last_t = t = frame.t_s
        if self.still is None:
            self.still = frame.bgr()
        motion = self.motion.update(frame.gray())
        raw: list[Event] = []
        if motion.global_change or motion.warming_up:
            return []  # a flash or gain change: neither motion nor a reason to age tracks
        reason = self.baseline.update(t, motion.active)
        if reason:
            raw.append(Event("anomaly", t, priority=self.policy.priority("anomaly", t), reason=reason,
                             bbox=_union(motion.boxes)))
        tracks = self.tracker.update(motion.boxes, t)
        for track in tracks:
            raw.extend(self._track_events(track, t))
        for track in self.tracker.ended:
            raw.extend(self._end_track(track))
        self.tracker.ended.clear()
        return self._emit(raw, frame)

    def finish(self) -> list[Event]:
        """End of the source: close every open presence with an exit at its last sighting."""
        raw: list[Event] = []
        for track in self.tracker.flush():
            raw.extend(self._end_track(track))
        self.tracker.ended.clear()
        return self._emit(raw, None)

    def _track_events(self, track: Track, t: float) -> list[Event]:
        out: list[Event] = []
        if track.id not in self._announced:
            self._announced.add(track.id)
            if self.config.motion_events:
                out.append(Event("motion", track.first_s, track_id=track.id, bbox=track.bbox,
                                 priority=self.policy.priority("motion", track.first_s), reason="movement started"))
            if self.policy.in_quiet_period(t):
                out.append(Event("anomaly", track.first_s, track_id=track.id, bbox=track.bbox, priority="high",
                                 reason="activity during a quiet period"))
        for zone, inside, since in self.presence.update(track.id, track.anchor, t):
            kind = "zone_enter" if inside else "zone_exit"
            start = since if inside else self._entered_at(track.id, zone.name, since)
            out.append(Event(kind, start, zone=zone.name, track_id=track.id, bbox=track.bbox,
                             end_s=None if inside else since,
                             priority=self.policy.priority(kind, t, zone.restricted),
                             reason=f"track {track.id} {'entered' if inside else 'left'} {zone.name}"))
            if inside:
                self._entries[(track.id, zone.name)] = since
        for zone, since in self.presence.inside(track.id):
            key = (track.id, zone.name)
            if zone.loiter_s and key not in self._loitered and t - since >= zone.loiter_s:
                self._loitered.add(key)
                out.append(Event("loitering", since + zone.loiter_s, zone=zone.name, track_id=track.id, bbox=track.bbox,
                                 priority=self.policy.priority("loitering", t, zone.restricted),
                                 reason=f"in {zone.name} for {t - since:.1f}s (limit {zone.loiter_s:g}s)"))
        return out

    def _entered_at(self, track_id: int, zone: str, default: float) -> float:
        return self._entries.pop((track_id, zone), default)

    def _end_track(self, track: Track) -> list[Event]:
        out: list[Event] = []
        for zone, _since in self.presence.forget(track.id):
            start = self._entered_at(track.id, zone.name, track.first_s)
            out.append(Event("zone_exit", start, zone=zone.name, track_id=track.id, end_s=track.last_s,
                             bbox=track.bbox, priority=self.policy.priority("zone_exit", track.last_s, zone.restricted),
                             reason=f"track {track.id} lost inside {zone.name}"))
        self._announced.discard(track.id)
        return out

    def _emit(self, raw: list[Event], frame: Frame | None) -> list[Event]:
        out: list[Event] = []
        for event in raw:
            if not self.limiter.allow(event):
                continue
            record = IncidentRecord(event)
            if frame is not None and len(self.records) < self.config.max_records:
                record.thumbnail = thumbnail(frame.bgr(), event.bbox)
                if self.describer is not None and event.type != "zone_exit":
                    record.describe = self._describe(frame, event)
            if len(self.records) < self.config.max_records:
                self.records.append(record)
            out.append(event)
        return out

    def _describe(self, frame: Frame, event: Event) -> dict[str, Any] | None:
        cv2 = require("cv2", "video", "alert descriptions")
        ok, buf = cv2.imencode(".jpg", frame.bgr(), [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok or self.describer is None:
            return None
        info = self.describer.describe(bytes(buf), event)
        if info:
            event.description = info["summary"]
            event.details["analysis"] = info
        return info


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    if not boxes:
        return (0, 0, 0, 0)
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


__all__ = ["DESCRIBE_SCHEMA", "AgentConfig", "AlertDescriber", "SurveillanceEngine", "parse_description"]
