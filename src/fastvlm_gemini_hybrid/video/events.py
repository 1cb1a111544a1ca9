"""Surveillance events (the `surveil --json` contract), their priority, de-duplication and anomaly baseline.

Why it lives apart from the agent: alert fatigue is the most common complaint about NVRs, so the
rules that decide "is this worth telling someone, and how loudly" are small, pure and testable on
their own: priority from event type, zone and time of day; cooldowns per (type, track, zone) and
per (type, zone) so a re-identified person or a flickering border does not alert twice; a per-zone
budget per minute; and an activity baseline that flags a scene far busier than it usually is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from .zones import in_period

PRIORITIES = ("low", "medium", "high", "critical")
EVENT_TYPES = ("motion", "zone_enter", "zone_exit", "loitering", "anomaly")


@dataclass
class Event:
    """One event; `to_dict` is exactly the `surveil --json` line."""

    type: str
    start_s: float
    zone: str | None = None
    track_id: int | None = None
    end_s: float | None = None
    priority: str = "low"
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    description: str | None = None
    # not part of the JSON line; kept for reports
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "zone": self.zone,
            "track_id": self.track_id,
            "start_s": round(self.start_s, 3),
            "end_s": None if self.end_s is None else round(self.end_s, 3),
            "priority": self.priority,
            "bbox": [int(v) for v in self.bbox],
            "description": self.description,
        }


@dataclass
class PriorityPolicy:
    """Priority = base by type (raised in restricted zones) + one step at night or in a quiet period."""

    start: datetime | None = None  # wall-clock time of t=0; None: time of day is ignored
    night: tuple[int, int] = (22 * 60, 6 * 60)
    quiet_periods: list[tuple[int, int]] = field(default_factory=list)

    BASE: ClassVar[dict[str, int]] = {"motion": 0, "zone_enter": 1, "zone_exit": 0, "loitering": 1, "anomaly": 1}

    def minute_of_day(self, t_s: float) -> int | None:
        if self.start is None:
            return None
        when = self.start + timedelta(seconds=t_s)
        return when.hour * 60 + when.minute

    def in_quiet_period(self, t_s: float) -> bool:
        minute = self.minute_of_day(t_s)
        return minute is not None and any(in_period(minute, p) for p in self.quiet_periods)

    def is_night(self, t_s: float) -> bool:
        minute = self.minute_of_day(t_s)
        return minute is not None and in_period(minute, self.night)

    def priority(self, event_type: str, t_s: float, restricted: bool = False) -> str:
        level = self.BASE.get(event_type, 0)
        if restricted and event_type in ("zone_enter", "loitering", "zone_exit"):
            level += 1
        if self.is_night(t_s) or self.in_quiet_period(t_s):
            level += 1
        return PRIORITIES[min(level, len(PRIORITIES) - 1)]


@dataclass
class AlertLimiter:
    """De-duplication and rate limits. `allow(event)` is False for an event that should stay silent.

    - the same (type, track, zone) never alerts twice within `track_cooldown_s`;
    - the same (type, zone) from any track alerts at most once per `zone_cooldown_s` (a person
      re-identified under a new track id, or two people walking in together, is one alert);
    - at most `per_zone_per_min` alerts per zone (and per "no zone") in any 60 s;
    - an exit is silent if its entry was.
    """

    track_cooldown_s: float = 60.0
    zone_cooldown_s: float = 10.0
    motion_cooldown_s: float = 30.0
    per_zone_per_min: int = 6
    suppressed: int = 0
    _last: dict[tuple[Any, ...], float] = field(default_factory=dict)
    _recent: dict[str | None, deque[float]] = field(default_factory=dict)
    _silent_entries: set[tuple[int | None, str | None]] = field(default_factory=set)

    def allow(self, event: Event) -> bool:
        t = event.start_s if event.end_s is None else event.end_s
        if event.type == "zone_exit":
            if (event.track_id, event.zone) in self._silent_entries:
                self._silent_entries.discard((event.track_id, event.zone))
                self.suppressed += 1
                return False
            return self._budget(event.zone, t)
        keys: list[tuple[tuple[Any, ...], float]] = [((event.type, event.track_id, event.zone), self.track_cooldown_s)]
        if event.type == "motion":
            keys = [(("motion",), self.motion_cooldown_s)]
        else:
            keys.append(((event.type, "*", event.zone), self.zone_cooldown_s))
        ok = all(t - self._last.get(k, -1e18) >= cool for k, cool in keys) and self._budget(event.zone, t, peek=True)
        if ok:
            for k, _cool in keys:
                self._last[k] = t
            self._budget(event.zone, t)
        else:
            self.suppressed += 1
            if event.type == "zone_enter":
                self._silent_entries.add((event.track_id, event.zone))
        return ok

    def _budget(self, zone: str | None, t: float, peek: bool = False) -> bool:
        window = self._recent.setdefault(zone, deque())
        while window and t - window[0] >= 60.0:
            window.popleft()
        if len(window) >= self.per_zone_per_min:
            return False
        if not peek:
            window.append(t)
        return True


@dataclass
class ActivityBaseline:
    """Learns how busy the scene usually is (share of frames with motion per window).

    `update` returns a reason string when the window just closed was far above the baseline,
    after `warmup_windows` windows have been learned; anomalous windows do not teach the baseline.
    """

    window_s: float = 10.0
    factor: float = 4.0
    min_delta: float = 0.3
    warmup_windows: int = 6
    ema: float = 0.05
    baseline: float | None = None
    windows: int = 0
    _start: float | None = None
    _frames: int = 0
    _active: int = 0

    def update(self, t_s: float, active: bool) -> str | None:
        if self._start is None:
            self._start = t_s
        reason: str | None = None
        if t_s - self._start >= self.window_s and self._frames:
            level = self._active / self._frames
            reason = self._close(level)
            self._start, self._frames, self._active = t_s, 0, 0
        self._frames += 1
        self._active += int(active)
        return reason

    def _close(self, level: float) -> str | None:
        self.windows += 1
        if self.baseline is None:
            self.baseline = level
            return None
        limit = max(self.baseline * self.factor, self.baseline + self.min_delta)
        if self.windows > self.warmup_windows and level > limit:
            return f"activity {level:.0%} of frames against a usual {self.baseline:.0%}"
        self.baseline += (level - self.baseline) * (self.ema if self.windows > self.warmup_windows else 0.5)
        return None
