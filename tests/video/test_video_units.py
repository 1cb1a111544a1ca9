"""Unit tests of the pure pieces: zones, hysteresis, limiter, baseline, priority, hashing, sampling, tracking."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import yaml

from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.video.dedupe import NearDuplicateFilter, dhash, hamming
from fastvlm_gemini_hybrid.video.events import ActivityBaseline, AlertLimiter, Event, PriorityPolicy
from fastvlm_gemini_hybrid.video.motion import MotionDetector
from fastvlm_gemini_hybrid.video.sampling import Sampler
from fastvlm_gemini_hybrid.video.track import IoUTracker, iou
from fastvlm_gemini_hybrid.video.zones import Zone, ZoneTracker, parse_zones

from . import synth

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


def test_zones_file_contract_parses() -> None:
    cfg = parse_zones(yaml.safe_load(synth.ZONES_YAML))
    (zone,) = cfg.zones
    assert zone.name == "loading-dock" and zone.restricted and zone.loiter_s == 2.0
    assert zone.contains(250, 100) and not zone.contains(150, 100)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"zones": [{"name": "a", "polygon": [[0, 0], [1, 1]]}]}, "at least 3"),
        ({"zones": [{"name": "a", "polygon": [[0, 0], [5, 5], [10, 10]]}]}, "no area"),
        ({"zones": [{"name": "a", "polygon": [[0, 0], ["x", 5], [10, 10]]}]}, "not [x, y]"),
        ({"zones": [{"name": "a", "polygon": SQUARE, "colour": "red"}]}, "unknown key 'colour'"),
        ({"zones": [], "cameras": []}, "unknown key 'cameras'"),
        ({"zones": [{"name": "a", "polygon": SQUARE, "loiter_s": -1}]}, "loiter_s"),
        ({"zones": [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}]}, "duplicate"),
        ({"zones": [{"polygon": SQUARE}]}, "'name'"),
        ({"zones": [], "quiet_periods": ["25:00-06:00"]}, "not a period"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)
def test_bad_zone_files_give_one_clear_error(data: object, needle: str) -> None:
    with pytest.raises(BadInputError) as info:
        parse_zones(data, "zones.yaml")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_presence_needs_hold_frames_and_is_backdated() -> None:
    zone = Zone("z", ((100.0, 0.0), (200.0, 0.0), (200.0, 100.0), (100.0, 100.0)))
    zt = ZoneTracker([zone], hold_frames=3)
    assert zt.update(1, (150, 50), 1.0) == []  # inside once
    assert zt.update(1, (50, 50), 1.1) == []  # flicker back out: resets
    assert zt.update(1, (150, 50), 1.2) == []
    assert zt.update(1, (150, 50), 1.3) == []
    flips = zt.update(1, (150, 50), 1.4)
    assert [(z.name, inside, since) for z, inside, since in flips] == [("z", True, 1.2)]
    assert [z.name for z, _ in zt.forget(1)] == ["z"]


def test_limiter_deduplicates_per_track_and_zone_and_silences_paired_exit() -> None:
    lim = AlertLimiter(zone_cooldown_s=10, track_cooldown_s=60)
    assert lim.allow(Event("zone_enter", 1.0, zone="dock", track_id=1))
    assert not lim.allow(Event("zone_enter", 3.0, zone="dock", track_id=2))  # same zone, within 10 s
    assert not lim.allow(Event("zone_exit", 1.0, zone="dock", track_id=2, end_s=6.0))  # its entry was silent
    assert lim.allow(Event("zone_exit", 1.0, zone="dock", track_id=1, end_s=7.0))
    assert not lim.allow(Event("zone_enter", 30.0, zone="dock", track_id=1))  # same track, within 60 s
    assert lim.allow(Event("zone_enter", 30.0, zone="dock", track_id=3))
    assert lim.suppressed == 3


def test_limiter_budget_per_zone_per_minute() -> None:
    lim = AlertLimiter(zone_cooldown_s=0, per_zone_per_min=2)
    allowed = [lim.allow(Event("zone_enter", float(i), zone="z", track_id=i)) for i in range(5)]
    assert allowed == [True, True, False, False, False]
    assert lim.allow(Event("zone_enter", 61.0, zone="z", track_id=9))


def test_baseline_flags_activity_far_above_usual() -> None:
    base = ActivityBaseline(window_s=1.0, warmup_windows=3)
    reasons = []
    for i in range(100):  # 10 s at 10 fps with a little activity: 1 frame in 10
        reasons.append(base.update(i / 10, active=i % 10 == 0))
    assert not any(reasons)
    burst = [base.update(10 + i / 10, active=True) for i in range(25)]
    assert any(burst), "a window with motion in every frame is far above a 10% baseline"


def test_priority_rises_in_restricted_zones_and_at_night() -> None:
    day = PriorityPolicy(start=datetime(2025, 1, 1, 12, 0))
    night = PriorityPolicy(start=datetime(2025, 1, 1, 23, 0))
    assert day.priority("zone_enter", 0, restricted=False) == "medium"
    assert day.priority("zone_enter", 0, restricted=True) == "high"
    assert night.priority("zone_enter", 0, restricted=True) == "critical"
    assert day.priority("motion", 11 * 3600) == "medium"  # 12:00 + 11 h = 23:00
    assert PriorityPolicy().priority("motion", 0) == "low"


def test_dhash_separates_new_content_from_noise() -> None:
    bg = synth.background()[:, :, 0]
    rng = np.random.default_rng(3)
    noisy = np.clip(bg.astype(int) + rng.integers(-3, 4, bg.shape), 0, 255).astype(np.uint8)
    changed = bg.copy()
    changed[60:200, 100:200] = 20
    assert hamming(dhash(bg), dhash(noisy)) <= 12 < hamming(dhash(bg), dhash(changed))
    filt = NearDuplicateFilter()
    assert [filt.check(bg, 0), filt.check(noisy, 1), filt.check(changed, 2)] == [True, False, True]
    assert (filt.kept, filt.skipped) == (2, 1)


def test_dedupe_sees_a_small_intruder_but_not_an_exposure_change() -> None:
    bg = synth.background()[:, :, 0]
    person = bg.copy()
    person[150:210, 100:130] = 20  # 30x60 px in 320x240: too small to move the hash much
    brighter = np.clip(bg.astype(int) + 15, 0, 255).astype(np.uint8)
    filt = NearDuplicateFilter()
    assert filt.check(bg, 0)
    assert not filt.check(brighter, 1)
    assert filt.check(person, 2)


def test_sampler_by_rate_and_interval() -> None:
    times = [i / 30 for i in range(90)]  # 3 s at 30 fps
    by_rate, by_interval = Sampler(fps=2), Sampler(every_s=1.5)
    assert [t for t in times if by_rate.take(t)] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5], abs=0.02)
    assert sum(by_interval.take(t) for t in times) == 2
    with pytest.raises(BadInputError):
        Sampler(fps=1, every_s=1)
    with pytest.raises(BadInputError):
        Sampler(fps=0)


def test_tracker_keeps_ids_for_fast_movers_and_ends_lost_tracks() -> None:
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)
    tr = IoUTracker(min_hits=2, max_missed_s=0.5)
    ids = set()
    for i in range(10):  # moves 25 px per frame, more than its own width
        for track in tr.update([(i * 25, 50, 20, 40)], i / 10):
            ids.add(track.id)
    assert ids == {1}
    for i in range(10, 20):
        tr.update([], i / 10)
    assert [t.id for t in tr.ended] == [1] and tr.tracks == []


def test_motion_masks_hide_areas_that_always_move() -> None:
    bg = synth.background()[:, :, 0]
    moving = bg.copy()
    moving[100:160, 20:60] = 0
    plain, masked = MotionDetector(), MotionDetector(masks=[[[0, 80], [100, 80], [100, 200], [0, 200]]])
    for det in (plain, masked):
        for _ in range(4):
            det.update(bg)
    assert plain.update(moving).active
    assert not masked.update(moving).active
