"""The surveillance agent end to end on synthetic clips with known ground truth."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from fastvlm_gemini_hybrid.agents.surveillance import AgentConfig, SurveillanceAgent
from fastvlm_gemini_hybrid.video.decode import VideoSource
from fastvlm_gemini_hybrid.video.events import Event
from fastvlm_gemini_hybrid.video.report import ReportData, write_report
from fastvlm_gemini_hybrid.video.zones import parse_zones

from . import synth


def run_agent(clip: Path, zones_yaml: str = synth.ZONES_YAML, **cfg: object) -> tuple[SurveillanceAgent, list[Event]]:
    agent = SurveillanceAgent(parse_zones(yaml.safe_load(zones_yaml)), AgentConfig(**cfg))  # type: ignore[arg-type]
    with VideoSource(clip) as src:
        events = list(agent.run(src))
    return agent, events


def of(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]


def test_restricted_entry_loitering_and_exit_match_the_truth(clips: dict[str, Path]) -> None:
    _agent, events = run_agent(clips["walker"])
    (enter,) = of(events, "zone_enter")
    truth_in = synth.crossing_time(synth.ZONE_X)
    assert enter.zone == "loading-dock" and enter.priority == "high"
    assert abs(enter.start_s - truth_in) <= 0.5, (enter.start_s, truth_in)
    (loiter,) = of(events, "loitering")
    assert loiter.track_id == enter.track_id
    assert abs(loiter.start_s - (truth_in + 2.0)) <= 0.5
    (exit_,) = of(events, "zone_exit")
    assert exit_.track_id == enter.track_id
    assert abs(exit_.end_s - synth.leaving_time(synth.ZONE_X)) <= 0.5  # type: ignore[operator]
    assert exit_.start_s == enter.start_s
    # the JSON line is exactly the contract
    line = json.loads(json.dumps(enter.to_dict()))
    assert set(line) == {"type", "zone", "track_id", "start_s", "end_s", "priority", "bbox", "description"}
    x, _y, w, h = line["bbox"]
    assert w > 20 and h > 50 and x + w / 2 >= synth.ZONE_X - 10


def test_no_event_on_a_static_scene(clips: dict[str, Path]) -> None:
    agent, events = run_agent(clips["static"])
    assert events == []
    assert agent.frames == 80


def test_no_alert_on_a_global_brightness_flash(clips: dict[str, Path]) -> None:
    agent, events = run_agent(clips["flash"])
    assert events == []
    assert agent.motion.global_changes >= 2  # the flashes were seen, and ignored on purpose


def test_flash_during_activity_does_not_split_or_invent_events(tmp_path: Path) -> None:
    clip = synth.make_clip(tmp_path / "walk-flash.mp4", 12.0, synth.walker(), flash_at=[3.0, 7.5])
    _agent, events = run_agent(clip)
    assert len(of(events, "zone_enter")) == 1 and len(of(events, "motion")) == 1
    assert of(events, "anomaly") == []


def test_two_people_entering_together_is_one_alert(tmp_path: Path) -> None:
    a, b = synth.walker(), synth.walker(enter_t=1.6, y=40)

    def both(t: float) -> list[tuple[int, int, int, int]]:
        return [*a(t), *b(t)]

    clip = synth.make_clip(tmp_path / "two.mp4", 12.0, both)
    agent, events = run_agent(clip)
    assert len(of(events, "zone_enter")) == 1
    assert agent.limiter.suppressed >= 1
    entered = of(events, "zone_enter")[0].track_id
    assert all(e.track_id == entered for e in of(events, "zone_exit"))


def test_quiet_period_activity_is_an_anomaly(clips: dict[str, Path]) -> None:
    zones = synth.ZONES_YAML + "quiet_periods: ['01:00-05:00']\n"
    _agent, events = run_agent(clips["walker"], zones, start=datetime(2025, 3, 1, 2, 30))
    (anomaly,) = of(events, "anomaly")
    assert anomaly.priority == "high" and anomaly.start_s == pytest.approx(1.0, abs=0.5)
    assert of(events, "zone_enter")[0].priority == "critical"  # restricted, in a quiet period
    _agent, day = run_agent(clips["walker"], zones, start=datetime(2025, 3, 1, 12, 0))
    assert of(day, "anomaly") == []


def test_incident_report_keeps_timeline_thumbnails_and_zone_map(clips: dict[str, Path], tmp_path: Path) -> None:
    agent, events = run_agent(clips["walker"])
    paths = write_report(tmp_path / "report", ReportData(
        source="walker.mp4", started_at="2025-01-01T12:00:00", duration_s=agent.last_t,
        records=agent.records, zones=agent.zones.zones, still=agent.still))
    doc = json.loads(paths["json"].read_text())
    assert doc["counts"]["total"] == len(events) == len(doc["events"])
    assert doc["counts"]["by_type"]["zone_enter"] == 1
    for row in doc["events"]:
        thumb = tmp_path / "report" / row["thumbnail"]
        assert thumb.read_bytes()[:3] == b"\xff\xd8\xff"
    assert (tmp_path / "report" / "zones.jpg").stat().st_size > 1000
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "zone_enter" in md and "thumbs/alert-0001.jpg" in md
    assert "<table>" in html and "zones.jpg" in html and "loading-dock" in doc["zones"][0]["name"]
