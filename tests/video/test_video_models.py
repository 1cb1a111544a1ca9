"""Model calls through the real processor with FunctionBackends: `video` answers, summaries, alert descriptions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

# The processor imports the router, which lands separately; until it does, these tests skip (not fail).
from fakes import make_processor
from fastvlm_gemini_hybrid.agents.surveillance import AgentConfig, AlertDescriber, SurveillanceAgent, parse_description
from fastvlm_gemini_hybrid.cli import main, video_cmd
from fastvlm_gemini_hybrid.config import Settings
from fastvlm_gemini_hybrid.errors import ModelNotDownloadedError
from fastvlm_gemini_hybrid.video.decode import VideoSource
from fastvlm_gemini_hybrid.video.zones import parse_zones

from . import synth

GOOD = json.dumps({"title": "Person at dock", "summary": "A person walks onto the dock.", "threat_level": 1,
                   "confidence": 0.9})
UNSURE = json.dumps({"title": "?", "summary": "Something dark moves.", "threat_level": 0, "confidence": 0.2})


@pytest.fixture
def use_processor(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Callable[[dict[str, Any]], None]:
    """Point the CLI's one processor seam at FunctionBackends."""

    def install(backends: dict[str, Any]) -> None:
        monkeypatch.setattr(video_cmd, "make_processor",
                            lambda _args: make_processor(settings, None, None, backends=backends))

    return install


def lines(out: str) -> list[dict]:
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_video_answers_over_time_then_cloud_clip_summary(
    clips: dict[str, Path], fake_video_backends: Callable[..., dict], use_processor: Callable,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backends = fake_video_backends(local=lambda r: f"seen {r.attachments[0].name}", cloud="whole clip: a walker")
    use_processor(backends)
    assert main(["video", str(clips["walker"]), "What happens?", "--every-s", "2", "--json"]) == 0
    out = lines(capsys.readouterr().out)
    frames, summary = out[:-1], out[-1]
    assert [f["t_s"] for f in frames] == sorted(f["t_s"] for f in frames) and frames[0]["t_s"] == 0.0
    assert all(f["backend"] == "fastvlm" and f["response"].startswith("seen frame-") for f in frames)
    assert summary["type"] == "summary" and summary["source"] == "clip" and summary["backend"] == "gemini"
    (clip_request,) = backends["gemini"].calls
    assert clip_request.attachments[0].kind == "video"
    assert clip_request.attachments[0].data == clips["walker"].read_bytes()


def test_sensitive_video_stays_local_and_merges_a_timeline(
    clips: dict[str, Path], fake_video_backends: Callable[..., dict], use_processor: Callable,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backends = fake_video_backends(local="an empty yard")
    use_processor(backends)
    assert main(["video", str(clips["static"]), "Describe", "--fps", "2", "--no-dedupe", "--sensitive",
                 "--json"]) == 0
    out = lines(capsys.readouterr().out)
    assert len(out) - 1 == len(backends["fastvlm"].calls) == 16
    summary = out[-1]
    assert summary["source"] == "timeline" and backends["gemini"].calls == []
    assert summary["timeline"] == [{"start_s": 0.0, "end_s": pytest.approx(7.9, abs=0.11),
                                    "response": "an empty yard"}]


def test_near_duplicate_skipping_cuts_model_calls_on_a_static_scene(
    clips: dict[str, Path], fake_video_backends: Callable[..., dict], use_processor: Callable,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backends = fake_video_backends()
    use_processor(backends)
    assert main(["video", str(clips["static"]), "Describe", "--fps", "5", "--no-summary", "--json"]) == 0
    assert len(lines(capsys.readouterr().out)) == len(backends["fastvlm"].calls) == 1
    assert main(["video", str(clips["walker"]), "Describe", "--fps", "5", "--no-summary", "--json"]) == 0
    assert 3 <= len(lines(capsys.readouterr().out)) < 60  # the walker changes the picture, then it is static


def _agent(settings: Settings, backends: dict, **kw: Any) -> tuple[SurveillanceAgent, AlertDescriber]:
    proc = make_processor(settings, None, None, backends=backends)
    describer = AlertDescriber(proc, warn=lambda _m: None, **kw)
    return SurveillanceAgent(parse_zones(yaml.safe_load(synth.ZONES_YAML)), AgentConfig(), describer), describer


def _events(agent: SurveillanceAgent, clip: Path) -> list:
    with VideoSource(clip) as src:
        return list(agent.run(src))


def test_describe_local_first_with_strict_json(clips: dict[str, Path], settings: Settings,
                                              fake_video_backends: Callable[..., dict]) -> None:
    backends = fake_video_backends(local=GOOD)
    agent, _ = _agent(settings, backends)
    events = _events(agent, clips["walker"])
    described = [e for e in events if e.type != "zone_exit"]
    assert described and all(e.description == "A person walks onto the dock." for e in described)
    assert backends["gemini"].calls == []
    req = backends["fastvlm"].calls[0]
    assert req.options.json_schema is not None and req.attachments[0].kind == "image"
    assert agent.records[1].describe["threat_level"] == 1  # type: ignore[index]


def test_unsure_local_answer_escalates_only_when_allowed(clips: dict[str, Path], settings: Settings,
                                                         fake_video_backends: Callable[..., dict]) -> None:
    backends = fake_video_backends(local=UNSURE, cloud=GOOD)
    agent, _ = _agent(settings, backends)
    events = _events(agent, clips["walker"])
    assert backends["gemini"].calls and events[1].description == "A person walks onto the dock."
    private = fake_video_backends(local=UNSURE, cloud=GOOD)
    agent, _ = _agent(settings, private, sensitive=True)
    events = _events(agent, clips["walker"])
    assert private["gemini"].calls == [] and events[1].description == "Something dark moves."


def test_without_a_model_the_agent_runs_and_says_so(clips: dict[str, Path], settings: Settings,
                                                    fake_video_backends: Callable[..., dict]) -> None:
    from fastvlm_gemini_hybrid.backends.testing import failing

    backends = fake_video_backends(local=failing(ModelNotDownloadedError("no weights", "fastvlm")))
    agent, describer = _agent(settings, backends, allow_cloud=False)
    events = _events(agent, clips["walker"])
    assert [e.type for e in events] == ["motion", "zone_enter", "loitering", "zone_exit"]
    assert all(e.description is None for e in events)
    assert not describer.available and "no weights" in describer.unavailable_reason
    assert len(backends["fastvlm"].calls) == 1  # it stopped asking after the first failure


@pytest.mark.parametrize("text", ["not json", '{"title": "x", "summary": "y", "threat_level": 3, "confidence": 1}',
                                  '{"title": "x", "summary": "y", "threat_level": 1}'])
def test_invalid_descriptions_are_rejected(text: str) -> None:
    assert parse_description(text) is None
    assert parse_description(f"Sure! {GOOD}")["confidence"] == 0.9  # type: ignore[index]
