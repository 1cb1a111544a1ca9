"""Recipe files: loading from the user's config directory, schema checks, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from fastvlm_gemini_hybrid.agents.base import AgentOptions
from fastvlm_gemini_hybrid.agents.recipe import RecipeAgent, RecipeError, load_recipe, model_from_schema
from fastvlm_gemini_hybrid.agents.registry import AGENTS_DIR_ENV, load_registry
from fastvlm_gemini_hybrid.errors import BadInputError, PolicyViolationError
from fastvlm_gemini_hybrid.types import Mode

from .conftest import ScriptedAnswers, calls

RECIPE: dict[str, Any] = {
    "name": "plant-id",
    "summary": "name the plant",
    "accepts": ["image"],
    "prompt": "Name the plant in the photo for a {audience}.",
    "params": {"audience": "gardener"},
    "hints": {"domain": "educational", "latency": "low-latency"},
    "output": {
        "type": "object",
        "required": ["species", "confidence"],
        "properties": {
            "species": {"type": "string", "minLength": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "toxic": {"type": ["boolean", "null"]},
            "care": {"type": "array", "items": {"enum": ["sun", "shade", "water"]}, "maxItems": 3},
        },
    },
}


def write(directory: Path, data: Any, name: str = "recipe.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def test_recipes_load_from_home_and_env_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    write(home / "agents", RECIPE, "plant.yaml")
    write(tmp_path / "extra", {**RECIPE, "name": "bird-id"}, "bird.yml")
    monkeypatch.setenv(AGENTS_DIR_ENV, str(tmp_path / "extra"))
    registry = load_registry(home)
    names = registry.names()
    assert names[:5] == ["ux-review", "product-demo", "caption", "document", "video-summary"]
    assert {"plant-id", "bird-id", "tech-docs", "medical", "surveillance"} <= set(names)
    agent = registry.get("plant-id")
    assert isinstance(agent, RecipeAgent) and agent.source.endswith("plant.yaml")
    assert agent.hints.to_dict() == {"domain": "educational", "latency": "low-latency"}


def test_recipe_model_validates_like_the_schema(tmp_path: Path) -> None:
    agent = load_recipe(write(tmp_path, RECIPE))
    model = agent.output_model
    value = model.model_validate({"species": "Ficus", "confidence": 0.9, "care": ["sun"]})
    assert value.toxic is None
    for bad in ({"species": "", "confidence": 0.5}, {"species": "F", "confidence": 2},
                {"species": "F", "confidence": 0.5, "care": ["moon"]}, {"confidence": 0.5}):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


async def test_recipe_agent_runs_with_retry(make_processor, tmp_path: Path, screenshots: list[Path]) -> None:
    agent = load_recipe(write(tmp_path, RECIPE))
    script = ScriptedAnswers({"species": "Ficus", "confidence": 3}, {"species": "Ficus", "confidence": 0.8})
    processor = make_processor(local=script, cloud=script)
    options = AgentOptions(params={"audience": "child"}, progress=False)
    (item,) = await agent.arun(processor, [str(screenshots[0])], options)
    assert item.ok and item.output == {"species": "Ficus", "confidence": 0.8, "toxic": None, "care": None}
    assert item.attempts == 2 and "confidence" in (item.retried_because or "")
    assert "for a child." in script.prompts[0]
    request = (calls(processor, "fastvlm") + calls(processor, "gemini"))[0]
    assert '"maxItems": 3' in json.dumps(request.options.json_schema["properties"]["care"])


def uppercase_species(data: dict[str, Any], _ctx: Any) -> dict[str, Any]:
    """A recipe post-processing step used by the test below."""
    return {**data, "species": data["species"].upper()}


async def test_recipe_postprocess_hook(make_processor, tmp_path: Path, screenshots: list[Path]) -> None:
    recipe = {**RECIPE, "postprocess": f"{__name__}:uppercase_species"}
    agent = load_recipe(write(tmp_path, recipe))
    processor = make_processor(local=ScriptedAnswers({"species": "ficus", "confidence": 0.5}),
                               cloud=ScriptedAnswers({"species": "ficus", "confidence": 0.5}))
    (item,) = await agent.arun(processor, [str(screenshots[0])], AgentOptions(progress=False))
    assert item.output is not None and item.output["species"] == "FICUS"


def test_recipe_local_only_refuses_cloud_mode(tmp_path: Path) -> None:
    agent = load_recipe(write(tmp_path, {**RECIPE, "hints": {"local_only": True}}))
    assert agent.request_hints(AgentOptions()) == {
        "mode": Mode.LOCAL_ONLY, "sensitive": True, "domain": None, "latency": None, "model": None,
    }
    with pytest.raises(PolicyViolationError, match="runs locally only"):
        agent.request_hints(AgentOptions(mode=Mode.PARALLEL))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"output": {"type": "object", "properties": {"a": {"type": "strng"}}}}, "output.a: unsupported"),
        ({"output": {"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}},
         "unsupported schema keyword 'format'"),
        ({"output": {"type": "array", "items": {"type": "string"}}}, "top level must be an object"),
        ({"output": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}},
         "'required' names 'b'"),
        ({"output": {"type": "object", "properties": {"a": {"enum": []}}}}, "enum must be a non-empty list"),
        ({"name": "Bad Name"}, "name 'Bad Name'"),
        ({"accepts": ["pdf"]}, "accepts must list"),
        ({"prompt": "about {thing}"}, "uses {thing}"),
        ({"hints": {"mode": "warp"}}, "unknown mode 'warp'"),
        ({"promt": "typo"}, "promt"),
        ({"postprocess": "not a path"}, "package.module:function"),
    ],
)
def test_bad_recipe_is_one_clear_error(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = write(tmp_path, {**RECIPE, **change})
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text
    assert info.value.exit_code == 2


def test_malformed_yaml_and_name_clashes(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path, "name: [unclosed", "broken.yaml"))
    home = tmp_path / "home"
    write(home / "agents", {**RECIPE, "name": "document", "hints": {"sensitive": False}}, "doc.yaml")
    with pytest.raises(RecipeError, match="belongs to a built-in agent"):
        load_registry(home)
    home2 = tmp_path / "home2"
    write(home2 / "agents", RECIPE, "one.yaml")
    write(home2 / "agents", RECIPE, "two.yaml")
    with pytest.raises(RecipeError, match="already used by"):
        load_registry(home2)


def test_unknown_agent_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"unknown agent 'nope'.*caption"):
        load_registry(tmp_path).get("nope")


def test_model_from_schema_nested_objects() -> None:
    model = model_from_schema("Thing", {
        "type": "object",
        "properties": {"parts": {"type": "array", "items": {"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1}}}}},
    })
    assert model.model_validate({"parts": [{"n": 2}]}).model_dump() == {"parts": [{"n": 2}]}
    with pytest.raises(ValidationError):
        model.model_validate({"parts": [{"n": 0}]})
    assert json.dumps(model.model_json_schema())  # serialisable for GenerationOptions


def test_agent_templates_do_not_trip_the_routers_privacy_detection() -> None:
    """An agent's own wording must not make every request "sensitive" (that would make
    `--not-sensitive` meaningless); sensitivity must come from the user's content or flags."""
    from fastvlm_gemini_hybrid.agents.base import AgentContext
    from fastvlm_gemini_hybrid.agents.structured import json_instruction
    from fastvlm_gemini_hybrid.routing import detect_signals
    from fastvlm_gemini_hybrid.types import Request

    for agent in load_registry(None):
        if not hasattr(agent, "output_model"):
            continue
        for media in ("screenshots", "clip", "frames"):
            ctx = AgentContext([], AgentOptions(), extra={"media": media})
            prompt = agent.build_prompt(ctx) + "\n\n" + json_instruction(agent.output_schema())
            signals = detect_signals(Request(prompt))
            assert not signals.sensitive, (agent.name, media, signals.sensitivity_reasons)


def test_a_not_sensitive_hint_never_waives_the_routers_detection(tmp_path: Path) -> None:
    agent = load_recipe(write(tmp_path, {**RECIPE, "hints": {"sensitive": False}}))
    assert agent.request_hints(AgentOptions())["sensitive"] is None
    assert agent.request_hints(AgentOptions(sensitive=False))["sensitive"] is None
    assert agent.request_hints(AgentOptions(sensitive=True))["sensitive"] is True
