"""Zones from the `ZONES.yaml` contract, and flicker-free "is this track in that zone" state.

Why bottom-centre and a hold: a box's bottom-centre is where a person stands, so a head leaning
over a fence does not count as entering; and a track must be inside (or outside) for `hold_frames`
consecutive frames before the state flips, so a box jittering on the border does not produce a
stream of enter/exit alerts. The flip is back-dated to the first of those frames, so reported
times stay within a frame or two of the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInputError

ZONE_KEYS = {"name", "polygon", "restricted", "loiter_s"}
TOP_KEYS = {"zones", "masks", "quiet_periods", "night"}


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[tuple[float, float], ...]
    restricted: bool = False
    loiter_s: float | None = None

    def contains(self, x: float, y: float) -> bool:
        """Point-in-polygon by ray casting; points on the edge count as inside."""
        inside = False
        pts = self.polygon
        j = len(pts) - 1
        for i in range(len(pts)):
            xi, yi = pts[i]
            xj, yj = pts[j]
            if (yi > y) != (yj > y):
                cross = (xj - xi) * (y - yi) / (yj - yi) + xi
                if x <= cross:
                    inside = not inside
            j = i
        return inside or _on_edge(pts, x, y)


def _on_edge(pts: tuple[tuple[float, float], ...], x: float, y: float) -> bool:
    for i in range(len(pts)):
        (x1, y1), (x2, y2) = pts[i], pts[(i + 1) % len(pts)]
        if min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            if abs((x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)) < 1e-9:
                return True
    return False


@dataclass
class ZoneConfig:
    """Everything a zones file holds: zones, motion masks, quiet periods ("22:00-06:00") and night hours."""

    zones: list[Zone] = field(default_factory=list)
    masks: list[tuple[tuple[float, float], ...]] = field(default_factory=list)
    quiet_periods: list[tuple[int, int]] = field(default_factory=list)  # minutes of day [start, end)
    night: tuple[int, int] = (22 * 60, 6 * 60)


def _finite(value: Any) -> float | None:
    """`value` as a finite float, or None: not a number (bools included), NaN, infinite or past float range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past float range, e.g. a YAML integer of 400 digits
        return None
    return number if math.isfinite(number) else None


def _unknown_keys(keys: set[Any]) -> str:
    """`'a'` or `1, 'b'`: YAML keys may be of any type, so they are sorted by their text."""
    return ", ".join(repr(k) for k in sorted(keys, key=str))


def _polygon(value: Any, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list) or len(value) < 3:
        raise BadInputError(f"{where}: polygon needs at least 3 [x, y] points")
    pts: list[tuple[float, float]] = []
    for p in value:
        ok = isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(v, int | float) for v in p)
        if not ok or isinstance(p[0], bool) or isinstance(p[1], bool):
            raise BadInputError(f"{where}: polygon point {p!r} is not [x, y] in pixels")
        x, y = _finite(p[0]), _finite(p[1])
        if x is None or y is None:
            raise BadInputError(f"{where}: polygon point {p!r} is not a pair of finite numbers")
        if x < 0 or y < 0:
            raise BadInputError(f"{where}: polygon point {p!r} is negative")
        pts.append((x, y))
    area = 0.0
    for i in range(len(pts)):
        (x1, y1), (x2, y2) = pts[i], pts[(i + 1) % len(pts)]
        area += x1 * y2 - x2 * y1
    if abs(area) < 1.0:
        raise BadInputError(f"{where}: polygon has no area")
    return tuple(pts)


def _period(text: Any, where: str) -> tuple[int, int]:
    try:
        start, end = str(text).split("-")
        out = []
        for part in (start, end):
            hh, mm = part.strip().split(":")
            if not (0 <= int(hh) < 24 and 0 <= int(mm) < 60):
                raise ValueError
            out.append(int(hh) * 60 + int(mm))
        return out[0], out[1]
    except ValueError:
        raise BadInputError(f"{where}: {text!r} is not a period like '22:00-06:00'") from None


def parse_zones(data: Any, source: str = "zones file") -> ZoneConfig:
    """Validate the parsed YAML of a zones file; every problem is one `BadInputError` line."""
    if not isinstance(data, dict) or "zones" not in data:
        raise BadInputError(f"{source}: expected a mapping with a 'zones' list")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise BadInputError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {_unknown_keys(unknown)} "
                            f"(allowed: {', '.join(sorted(TOP_KEYS))})")
    zones_raw = data["zones"] or []
    if not isinstance(zones_raw, list):
        raise BadInputError(f"{source}: 'zones' must be a list")
    zones: list[Zone] = []
    for i, raw in enumerate(zones_raw):
        where = f"{source}: zone {i + 1}"
        if not isinstance(raw, dict):
            raise BadInputError(f"{where}: expected a mapping")
        bad = set(raw) - ZONE_KEYS
        if bad:
            raise BadInputError(f"{where}: unknown key{'s' if len(bad) > 1 else ''} {_unknown_keys(bad)} "
                                f"(allowed: {', '.join(sorted(ZONE_KEYS))})")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadInputError(f"{where}: 'name' must be a non-empty string")
        where = f"{source}: zone {name!r}"
        if "polygon" not in raw:
            raise BadInputError(f"{where}: missing 'polygon'")
        restricted = raw.get("restricted", False)
        if not isinstance(restricted, bool):
            raise BadInputError(f"{where}: 'restricted' must be true or false")
        loiter = raw.get("loiter_s")
        if loiter is not None:
            loiter = _finite(loiter)
            if loiter is None or loiter <= 0:
                raise BadInputError(f"{where}: 'loiter_s' must be a positive, finite number of seconds")
        if any(z.name == name for z in zones):
            raise BadInputError(f"{where}: duplicate zone name")
        zones.append(Zone(name, _polygon(raw["polygon"], where), restricted, loiter))
    masks_raw = data.get("masks") or []
    if not isinstance(masks_raw, list):
        raise BadInputError(f"{source}: 'masks' must be a list of polygons")
    quiet_raw = data.get("quiet_periods") or []
    if not isinstance(quiet_raw, list):
        raise BadInputError(f"{source}: 'quiet_periods' must be a list of periods like '22:00-06:00'")
    masks = [_polygon(m, f"{source}: mask {i + 1}") for i, m in enumerate(masks_raw)]
    quiet = [_period(p, f"{source}: quiet_periods") for p in quiet_raw]
    night = _period(data["night"], f"{source}: night") if data.get("night") else (22 * 60, 6 * 60)
    return ZoneConfig(zones=zones, masks=masks, quiet_periods=quiet, night=night)


def load_zones(path: str | Path) -> ZoneConfig:
    """Read and validate a zones YAML file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"no such zones file: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except RecursionError:  # the YAML composer recurses once per level of nesting
        raise BadInputError(f"malformed zones file {p.name}: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: not UTF-8, or an integer of over 4300 digits
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"malformed zones file {p.name}: {first}") from None
    return parse_zones(data, p.name)


def in_period(minute: int, period: tuple[int, int]) -> bool:
    """Whether a minute of the day lies in [start, end), periods may wrap past midnight."""
    start, end = period
    return start <= minute < end if start <= end else (minute >= start or minute < end)


@dataclass
class _Presence:
    inside: bool = False
    since_s: float = 0.0  # when the current (confirmed) state began
    pending: int = 0  # consecutive frames disagreeing with `inside`
    pending_since: float = 0.0


class ZoneTracker:
    """Per (track, zone) presence with hysteresis; `update` returns the confirmed transitions."""

    def __init__(self, zones: list[Zone], hold_frames: int = 3) -> None:
        self.zones = zones
        self.hold_frames = max(1, hold_frames)
        self._state: dict[tuple[int, str], _Presence] = {}

    def update(self, track_id: int, anchor: tuple[float, float], t_s: float) -> list[tuple[Zone, bool, float]]:
        """Feed one observation; returns (zone, now_inside, since_s) for each state that flipped."""
        flips: list[tuple[Zone, bool, float]] = []
        for zone in self.zones:
            key = (track_id, zone.name)
            st = self._state.setdefault(key, _Presence())
            inside = zone.contains(*anchor)
            if inside == st.inside:
                st.pending = 0
                continue
            if st.pending == 0:
                st.pending_since = t_s
            st.pending += 1
            if st.pending >= self.hold_frames:
                st.inside, st.since_s, st.pending = inside, st.pending_since, 0
                flips.append((zone, inside, st.since_s))
        return flips

    def inside(self, track_id: int) -> list[tuple[Zone, float]]:
        """The zones a track is confirmed inside, with the time it entered each."""
        by_name = {z.name: z for z in self.zones}
        return [(by_name[name], st.since_s) for (tid, name), st in self._state.items() if tid == track_id and st.inside]

    def forget(self, track_id: int) -> list[tuple[Zone, float]]:
        """Drop a finished track; returns the zones it was still inside (they end now)."""
        was = self.inside(track_id)
        for key in [k for k in self._state if k[0] == track_id]:
            del self._state[key]
        return was
