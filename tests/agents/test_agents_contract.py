"""The one Agent contract: every registered agent (built-in modules, medical, surveillance, recipes) is an
`Agent`, describes itself as JSON, declares its options as data, and runs through `AgentRegistry.run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fastvlm_gemini_hybrid.agents import Agent, AgentOptions, OptionSpec, UnknownAgentError, load_registry
from fastvlm_gemini_hybrid.agents.options import check_specs, parse_options
from fastvlm_gemini_hybrid.errors import BadInputError, ConfigurationError, PolicyViolationError
from fastvlm_gemini_hybrid.types import Mode

from .answers import REVIEW
from .conftest import ScriptedAnswers, calls

DESCRIBE_KEYS = {"name", "summary", "description", "accepts", "inputs", "per_input", "hints", "params", "options",
                 "source"}


def test_every_registered_agent_implements_the_contract() -> None:
    registry = load_registry(None)
    assert {"medical", "surveillance"} <= set(registry.names())
    for agent in registry:
        assert isinstance(agent, Agent), agent.name
        data = json.loads(json.dumps(agent.describe()))  # plain JSON, nothing else
        assert set(data) == DESCRIBE_KEYS and data["name"] == agent.name and data["description"]
        assert data["inputs"]["kinds"] == sorted(agent.accepts) and data["inputs"]["min"] == agent.min_inputs
        assert data["options"]["type"] == "object" and data["options"]["additionalProperties"] is False
        assert agent.output_schema()["type"] == "object"
        check_specs(agent.option_specs, agent.name)
        required = {s.name for s in agent.option_specs if s.required}
        if not required:
            assert agent.parse_options({}) == {s.name: s.default for s in agent.option_specs}
    medical, surveillance = registry.get("medical"), registry.get("surveillance")
    assert medical.per_input and not surveillance.per_input
    assert {s.name for s in surveillance.option_specs if not s.remote} == {"report", "webhook"}


def test_options_are_typed_defaulted_and_idempotent(tmp_path: Path) -> None:
    specs = (
        OptionSpec("count", "integer", "n", default=2, minimum=1),
        OptionSpec("flag", "boolean", "b", default=False),
        OptionSpec("kind", "string", "k", choices=("CT", "MR")),
        OptionSpec("ratio", "number", "r"),
        OptionSpec("cfg", "file", "c", required=True),
        OptionSpec("out", "directory", "o", remote=False),
    )
    parsed = parse_options(specs, {"count": "3", "flag": "yes", "kind": "ct", "ratio": "0.5", "cfg": "/x.yaml"},
                           agent="t")
    assert parsed == {"count": 3, "flag": True, "kind": "CT", "ratio": 0.5, "cfg": "/x.yaml", "out": None}
    assert parse_options(specs, parsed, agent="t") == parsed
    # a remote caller sends a file's content; the materializer decides where it lives
    written: list[tuple[str, Any]] = []

    def materialize(spec: OptionSpec, content: Any) -> str:
        written.append((spec.name, content))
        return str(tmp_path / spec.name)

    remote = parse_options(specs, {"cfg": {"zones": []}}, agent="t", remote=True, materialize=materialize)
    assert remote["cfg"] == str(tmp_path / "cfg") and written == [("cfg", {"zones": []})]


@pytest.mark.parametrize(
    ("raw", "remote", "message"),
    [
        ({"cfg": "c", "nope": 1}, False, "the t agent has no option 'nope' (options: count, flag, kind, out, cfg)"),
        ({}, False, "the t agent needs the 'cfg' option (--cfg on the command line)"),
        ({"cfg": "c", "count": "0"}, False, "count must be at least 1"),
        ({"cfg": "c", "count": 2.5}, False, "count must be a whole number"),
        ({"cfg": "c", "count": True}, False, "count must be a whole number"),
        ({"cfg": "c", "flag": "maybe"}, False, "flag must be true or false"),
        ({"cfg": "c", "kind": "PET"}, False, "unknown kind 'PET'; choose one of: CT, MR"),
        ({"cfg": "c", "kind": 3}, False, "kind must be a string"),
        ({"cfg": "c", "out": "/tmp/x"}, True, "can only be set on this machine's command line"),
        ({"cfg": "/etc/passwd"}, True, "cannot be sent from here"),  # no materializer: never a server path
    ],
)
def test_bad_options_are_one_bad_input_error(raw: dict[str, Any], remote: bool, message: str) -> None:
    specs = (
        OptionSpec("count", "integer", "n", default=2, minimum=1),
        OptionSpec("flag", "boolean", "b", default=False),
        OptionSpec("kind", "string", "k", choices=("CT", "MR")),
        OptionSpec("out", "directory", "o", remote=False),
        OptionSpec("cfg", "file", "c", required=True),
    )
    with pytest.raises(BadInputError) as info:
        parse_options(specs, raw, agent="t", remote=remote)
    assert message in str(info.value)


@pytest.mark.parametrize("names", [("mode",), ("zones", "zones"), ("not-an-identifier",)])
def test_option_names_may_not_clash(names: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError, match="invalid, reserved or repeated"):
        check_specs([OptionSpec(n, "string", "x") for n in names], "t")


async def test_registry_run_checks_options_first_then_builds_and_closes_a_processor(
    make_processor: Any, screenshots: list[Path],
) -> None:
    registry = load_registry(None)
    processor = make_processor(local=ScriptedAnswers(REVIEW), cloud=ScriptedAnswers(REVIEW))
    built: list[str] = []

    def build(agent: Agent) -> Any:
        built.append(agent.name)
        return processor

    for name, options, error in [
        ("document", AgentOptions(mode=Mode.CLOUD_ONLY), PolicyViolationError),
        ("ux-review", AgentOptions(params={"nope": "x"}), BadInputError),
        ("nope", AgentOptions(), UnknownAgentError),
    ]:
        with pytest.raises(error):
            await registry.run(name, [str(screenshots[0])], options, make_processor=build)
    assert built == []  # refused before any processor existed
    with pytest.raises(ConfigurationError, match="needs a processor"):
        await registry.run("ux-review", [str(screenshots[0])], AgentOptions())
    (item,) = await registry.run("ux-review", [str(s) for s in screenshots], AgentOptions(), make_processor=build)
    assert built == ["ux-review"] and item.ok and item.output is not None and item.output["score"] == 6
    assert calls(processor, "fastvlm") + calls(processor, "gemini")
    local = processor.backend("fastvlm")
    assert local.closed  # type: ignore[attr-defined]  # the registry closed the processor it built


def test_the_bound_surveillance_agent_is_one_runs_frame_engine() -> None:
    from fastvlm_gemini_hybrid.agents.surveillance import AGENT, SurveillanceAgent, SurveillanceEngine
    from fastvlm_gemini_hybrid.video.zones import parse_zones

    bound = SurveillanceAgent(parse_zones({"zones": [{"name": "a", "polygon": [[0, 0], [9, 0], [9, 9]]}]}, "z"))
    assert isinstance(bound, Agent) and isinstance(bound.engine, SurveillanceEngine)
    assert bound.frames == 0 and bound.records == [] and bound.zones.zones[0].name == "a"
    with pytest.raises(AttributeError):
        _ = AGENT.frames  # the registry's agent holds no run state
    with pytest.raises(TypeError, match="needs a bound agent"):
        AGENT.run([])


async def test_surveillance_through_the_registry_streams_alerts_without_a_processor(clip: Path,
                                                                                   tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    zones = tmp_path / "zones.yaml"
    zones.write_text("zones:\n  - name: all\n    polygon: [[0, 0], [400, 0], [400, 400], [0, 400]]\n")
    registry = load_registry(None)
    events: list[dict[str, Any]] = []
    notes: list[str] = []
    options = AgentOptions(extra={"zones": str(zones), "duration": 2}, on_event=events.append, warn=notes.append)
    (item,) = await registry.run("surveillance", [str(clip)], options)
    assert item.ok and item.output is not None
    assert item.output["stats"]["frames"] > 0 and item.output["stats"]["alerts"] == len(events)
    assert [e["event"] for e in events] == [{k: v for k, v in a.items() if k != "reason"}
                                            for a in item.output["alerts"]]
    assert any("descriptions unavailable" in n for n in notes)
    with pytest.raises(ConfigurationError, match="needs a processor"):
        await registry.run("surveillance", [str(clip)], AgentOptions(extra={"zones": str(zones), "describe": True}))


async def test_surveillance_describes_alerts_through_the_callers_processor(make_processor: Any,
                                                                           tmp_path: Path) -> None:
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from video import synth  # tests/video: a walker crossing into a zone at a computed time

    clip = synth.make_clip(tmp_path / "walker.mp4", 12.0, synth.walker())
    zones = tmp_path / "zones.yaml"
    zones.write_text(synth.ZONES_YAML)
    answer = {"title": "Person", "summary": "A person walks onto the dock.", "threat_level": 1, "confidence": 0.9}
    processor = make_processor(local=ScriptedAnswers(answer), cloud=ScriptedAnswers(answer))
    options = AgentOptions(sensitive=True, extra={"zones": str(zones), "describe": True}, warn=lambda _m: None)
    (item,) = await load_registry(None).run("surveillance", [str(clip)], options, make_processor=lambda _a: processor)
    assert item.output is not None and item.output["stats"]["descriptions"] == "on"
    described = [a for a in item.output["alerts"] if a["type"] != "zone_exit"]
    assert described and all(a["description"] == "A person walks onto the dock." for a in described)
    # every description came from the local backend, on this loop: a sensitive feed never reaches the cloud
    assert len(calls(processor, "fastvlm")) == len(described) and calls(processor, "gemini") == []
    assert all(r.sensitive for r in calls(processor, "fastvlm"))


def test_the_processor_and_the_servers_bridge_are_what_the_agents_ask_through(make_processor: Any) -> None:
    """agents/answering.py: a processor is an `Answerer` (every agent's `arun`) and a `BlockingAnswerer`
    (the surveillance describer); the server's `LoopBridge`, handed to that describer by jobs, is the latter."""
    from fastvlm_gemini_hybrid.agents.answering import Answerer, BlockingAnswerer

    processor = make_processor()
    assert isinstance(processor, Answerer) and isinstance(processor, BlockingAnswerer)
    assert not isinstance(object(), Answerer) and not isinstance(object(), BlockingAnswerer)
    pytest.importorskip("fastapi")
    from fastvlm_gemini_hybrid.server.jobs import LoopBridge

    assert issubclass(LoopBridge, BlockingAnswerer)
