"""Zones files (video/zones.py `parse_zones`, `load_zones`) and agent recipes (agents/recipe.py
`parse_recipe`, `load_recipe`) from arbitrary YAML text and arbitrary parsed structures.

Properties:
- `parse_zones(data)` gives a `ZoneConfig` or raises `BadInputError`, whatever `data` is; a valid
  zones file round-trips (names, polygons, flags and periods come back as written);
- `load_zones(path)` on any text does the same;
- `parse_recipe(data)` / `load_recipe(path)` give a `RecipeAgent` or raise `RecipeError`, whatever the
  recipe holds, output schemas of any shape included.

The tests at the end pin the crashes these properties once found (unknown keys of mixed types, numbers
where lists belong or past float range, deeply nested YAML, unhashable `required` items, schema bounds
pydantic refuses), each now a typed error.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fastvlm_gemini_hybrid.agents.recipe import RecipeAgent, RecipeError, load_recipe, parse_recipe
from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.video.zones import ZoneConfig, load_zones, parse_zones

from .conftest import EDGE_NUMBERS, JSON_VALUES, WRONG_TYPES, examples

# YAML gives keys and values of these types (besides str): the loaders must cope with all of them.
YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), EDGE_NUMBERS, st.text(max_size=12),
                         st.dates(), st.binary(max_size=8))
ANY_KEY = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False))
NUMBERS = st.one_of(st.integers(0, 4000), st.floats(0, 4000), EDGE_NUMBERS, st.booleans(), WRONG_TYPES)
POINT = st.one_of(st.tuples(st.integers(0, 1920), st.integers(0, 1080)).map(list), st.lists(NUMBERS, max_size=3),
                  JSON_VALUES)
POLYGON = st.one_of(
    st.just([[0, 0], [100, 0], [100, 100], [0, 100]]),
    st.lists(POINT, max_size=6),
    WRONG_TYPES,
    JSON_VALUES,
)
PERIOD = st.one_of(
    st.builds(lambda a, b, c, d: f"{a:02d}:{b:02d}-{c:02d}:{d:02d}", st.integers(0, 30), st.integers(0, 70),
              st.integers(0, 30), st.integers(0, 70)),
    st.sampled_from(["22:00-06:00", "22:00 - 06:00", "2200-0600", "22:00", "-", "::-::", "٢٢:٠٠-٠٦:٠٠", "24:00-00:60"]),
    YAML_SCALARS,
    JSON_VALUES,
)
ZONE = st.one_of(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=12) | YAML_SCALARS, "polygon": POLYGON},
        optional={"restricted": st.booleans() | YAML_SCALARS, "loiter_s": NUMBERS | YAML_SCALARS,
                  "colour": YAML_SCALARS},
    ),
    JSON_VALUES,
)
VALID_ZONE = st.fixed_dictionaries({
    "name": st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10).filter(str.strip),
    "polygon": st.lists(st.tuples(st.integers(0, 1920), st.integers(0, 1080)).map(list), min_size=3, max_size=6),
    "restricted": st.booleans(),
    "loiter_s": st.none() | st.floats(0.5, 600),
})
VALID_ZONES_DATA = st.fixed_dictionaries(
    {"zones": st.lists(VALID_ZONE, min_size=1, max_size=3, unique_by=lambda z: z["name"])},
    optional={"masks": st.just([[[0, 0], [50, 0], [50, 50]]]), "quiet_periods": st.just(["22:00-06:00"]),
              "night": st.just("21:30-05:45")},
)
ZONE_PATHS: list[tuple[Any, ...]] = [
    ("zones",), ("masks",), ("quiet_periods",), ("night",), ("cameras",), ("zones", 0), ("zones", 0, "name"),
    ("zones", 0, "polygon"), ("zones", 0, "polygon", 0), ("zones", 0, "polygon", 1, 0), ("zones", 0, "restricted"),
    ("zones", 0, "loiter_s"), ("zones", 0, "colour"), ("masks", 0), ("masks", 0, 0), ("quiet_periods", 0),
]


def zones_with_junk(data: dict[str, Any], edits: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    """`data` with the value at each path replaced, where the path exists."""
    data = copy.deepcopy(data)
    for path, junk in edits:
        node: Any = data
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = junk
        except (KeyError, IndexError, TypeError):
            continue
    return data


ZONES_DATA = st.one_of(
    VALID_ZONES_DATA,
    st.builds(zones_with_junk, VALID_ZONES_DATA, st.lists(st.tuples(st.sampled_from(ZONE_PATHS), POLYGON | PERIOD
                                                                    | NUMBERS | YAML_SCALARS), min_size=1, max_size=2)),
    st.fixed_dictionaries(
        {"zones": st.lists(ZONE, max_size=4) | JSON_VALUES},
        optional={"masks": st.lists(POLYGON, max_size=2) | JSON_VALUES, "quiet_periods": st.lists(PERIOD, max_size=3)
                  | JSON_VALUES, "night": PERIOD, "cameras": JSON_VALUES},
    ),
    st.dictionaries(ANY_KEY, JSON_VALUES, max_size=4),
    JSON_VALUES,
)


def check_zones(data: Any) -> ZoneConfig | None:
    try:
        config = parse_zones(data, "zones.yaml")
    except BadInputError as exc:
        assert str(exc).startswith("zones.yaml"), exc
        return None
    assert isinstance(config, ZoneConfig)
    for zone in config.zones:
        assert len(zone.polygon) >= 3 and all(len(p) == 2 for p in zone.polygon)
    return config


@settings(max_examples=examples(200))
@given(data=ZONES_DATA)
def test_parse_zones_gives_config_or_bad_input(data: Any) -> None:
    event("ZoneConfig" if check_zones(data) is not None else "BadInputError")


@settings(max_examples=examples(100))
@given(zones=st.lists(VALID_ZONE, max_size=4, unique_by=lambda z: z["name"]),
       quiet=st.lists(st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 23), st.integers(0, 59)),
                      max_size=2))
def test_valid_zones_round_trip(zones: list[dict[str, Any]], quiet: list[tuple[int, int, int, int]]) -> None:
    def area(pts: list[list[int]]) -> float:
        return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True))) / 2

    assume(all(area(z["polygon"]) >= 1 for z in zones))
    config = parse_zones({"zones": zones, "quiet_periods": [f"{a}:{b:02d}-{c}:{d:02d}" for a, b, c, d in quiet]})
    assert [z.name for z in config.zones] == [z["name"] for z in zones]
    assert [z.polygon for z in config.zones] == [tuple((float(x), float(y)) for x, y in z["polygon"]) for z in zones]
    assert [(z.restricted, z.loiter_s) for z in config.zones] == [(z["restricted"], z["loiter_s"]) for z in zones]
    assert config.quiet_periods == [(a * 60 + b, c * 60 + d) for a, b, c, d in quiet]


@pytest.fixture(scope="module")
def yaml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yaml")


YAML_TEXTS = st.one_of(
    st.text(max_size=200),
    ZONES_DATA.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.sampled_from(["zones: &z [*z]", "zones: [{name: a, polygon: &p [*p]}]", "--- \n---", "zones: !!binary aGk=",
                     "? [a]\n: 1\nzones: []",
                     "zones:\n- name: a\n  polygon: [[0,0],[10,0],[0,10]]\n  <<: {restricted: 1}",
                     "\ufeffzones: []", "zones: []\nzones: [{}]", "%YAML 1.1\n---\nzones: ~"]),
)


@settings(max_examples=examples(100))
@given(text=YAML_TEXTS)
def test_load_zones_any_text(yaml_dir: Path, text: str) -> None:
    path = yaml_dir / "zones.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_zones(path)
    except BadInputError:
        return
    assert isinstance(config, ZoneConfig)


# --------------------------------------------------------------------------- recipes

BOUND_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum")
SCHEMA_TYPES = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null", "date"])


def schemas(depth: int = 2) -> st.SearchStrategy[Any]:
    """JSON-schema-like mappings: the supported subset with every keyword's value sometimes junk."""
    leaf = st.fixed_dictionaries(
        {"type": SCHEMA_TYPES | st.lists(SCHEMA_TYPES, max_size=3) | JSON_VALUES},
        optional={"enum": st.lists(JSON_VALUES, max_size=3) | WRONG_TYPES, "description": JSON_VALUES,
                  **{k: st.integers(0, 50) | EDGE_NUMBERS | WRONG_TYPES for k in BOUND_KEYWORDS},
                  "default": JSON_VALUES, "format": JSON_VALUES},
    )
    if depth == 0:
        return leaf | JSON_VALUES
    inner = schemas(depth - 1)
    names = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z") | st.sampled_from(["_x", "model_dump", "class", "1a", "a-b", ""])
    obj = st.fixed_dictionaries(
        {"type": st.just("object") | JSON_VALUES, "properties": st.dictionaries(names, inner, max_size=3)
         | JSON_VALUES},
        optional={"required": st.lists(names | JSON_VALUES, max_size=3) | WRONG_TYPES,
                  "additionalProperties": JSON_VALUES},
    )
    arr = st.fixed_dictionaries({"type": st.just("array")}, optional={"items": inner, "minItems": st.integers(0, 3)})
    return st.one_of(obj, arr, leaf)


RECIPE_NAMES = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z") | st.sampled_from(["", "Caps", "a" * 60, "-x"])
IDENTIFIERS = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z")


def valid_schemas(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    """Object schemas in the subset recipes support, bounds and all."""
    leaf = st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean"])},
                              optional={"description": st.text(max_size=10)}),
        st.fixed_dictionaries({"type": st.just("string")}, optional={"minLength": st.integers(0, 5),
                                                                     "maxLength": st.integers(5, 50)}),
        st.fixed_dictionaries({"type": st.sampled_from(["integer", "number"])},
                              optional={"minimum": st.integers(-9, 0), "maximum": st.integers(0, 9)}),
        st.fixed_dictionaries({"enum": st.lists(st.text(max_size=5) | st.integers(), min_size=1, max_size=3)}),
    )
    inner: st.SearchStrategy[dict[str, Any]] = leaf if depth == 0 else leaf | valid_schemas(depth - 1) | st.builds(
        lambda items: {"type": "array", "items": items}, leaf)
    return st.dictionaries(IDENTIFIERS, inner, min_size=1, max_size=3).flatmap(
        lambda props: st.builds(lambda required: {"type": "object", "properties": props, "required": required},
                                st.lists(st.sampled_from(sorted(props)), unique=True)))


VALID_RECIPES = st.fixed_dictionaries(
    {"name": st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z"), "prompt": st.just("Describe {thing}."),
     "params": st.just({"thing": "the picture"}), "output": valid_schemas()},
    optional={"summary": st.text(max_size=20), "accepts": st.lists(st.sampled_from(["image", "video", "dicom"]),
                                                                   min_size=1, max_size=3, unique=True),
              "inputs": st.just({"min": 1, "max": 4}), "max_tokens": st.integers(16, 32768),
              "hints": st.just({"mode": "auto", "domain": "technical", "sensitive": False}),
              "system": st.text(max_size=20), "postprocess": st.just("json:dumps")},
)
# A property with one bound, of a sensible or senseless value (a string's maximum, a number's minLength...).
BOUNDED_PROPERTIES = st.builds(
    lambda kind, keyword, value: {"type": kind, keyword: value, **({"items": {"type": "string"}} if kind == "array"
                                                                     else {})},
    st.sampled_from(["string", "integer", "number", "array", ["integer", "null"]]), st.sampled_from(BOUND_KEYWORDS),
    st.integers(-3, 50) | EDGE_NUMBERS | WRONG_TYPES,
)
RECIPE_PATHS: list[tuple[str, ...]] = [
    ("name",), ("summary",), ("accepts",), ("inputs",), ("inputs", "min"), ("inputs", "max"), ("prompt",), ("system",),
    ("params",), ("params", "thing"), ("hints",), ("hints", "mode"), ("hints", "domain"), ("hints", "latency"),
    ("hints", "sensitive"), ("hints", "local_only"), ("max_tokens",), ("output",), ("output", "type"),
    ("output", "properties"), ("output", "required"), ("postprocess",), ("unknown",),
    # "*": the output's first property, so the schema keywords of a property meet junk too
    *[("output", "properties", "*", keyword) for keyword in (*BOUND_KEYWORDS, "type", "enum", "items", "required",
                                                             "properties", "description", "default")],
    ("output", "properties", "*", "items", "type"), ("output", "properties", "*", "properties", "*", "minimum"),
]


def with_junk(data: dict[str, Any], edits: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """`data` with the value at each path replaced (a missing mapping on the way is made up)."""
    data = copy.deepcopy(data)
    for path, junk in edits:
        node = data
        for key in path[:-1]:
            key = next(iter(node), "a") if key == "*" else key
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[next(iter(node), "a") if path[-1] == "*" else path[-1]] = junk
    return data


RECIPES = st.one_of(
    VALID_RECIPES,
    st.builds(with_junk, VALID_RECIPES, st.lists(st.tuples(st.sampled_from(RECIPE_PATHS), WRONG_TYPES | JSON_VALUES
                                                           | NUMBERS | EDGE_NUMBERS), min_size=1, max_size=2)),
    st.builds(lambda data, schema: {**data, "output": schema}, VALID_RECIPES, schemas()),
    st.builds(lambda data, prop: with_junk(data, [(("output", "properties", "*"), prop)]), VALID_RECIPES,
              schemas(1) | BOUNDED_PROPERTIES),
    st.builds(lambda data, required: with_junk(data, [(("output", "required"), required)]), VALID_RECIPES,
              st.lists(IDENTIFIERS | JSON_VALUES, min_size=1, max_size=3)),
    st.dictionaries(ANY_KEY, JSON_VALUES, max_size=4),
    JSON_VALUES,
)


def check_recipe(data: Any) -> RecipeAgent | None:
    try:
        agent = parse_recipe(data, "r.yaml")
    except RecipeError as exc:
        assert "r.yaml" in str(exc), exc
        return None
    assert isinstance(agent, RecipeAgent) and agent.output_model is not None
    return agent


@settings(max_examples=examples(200))
@given(data=RECIPES)
def test_parse_recipe_gives_agent_or_recipe_error(data: Any) -> None:
    event("RecipeAgent" if check_recipe(data) is not None else "RecipeError")


@settings(max_examples=examples(60))
@given(text=st.one_of(st.text(max_size=200), RECIPES.map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_load_recipe_any_text(yaml_dir: Path, text: str) -> None:
    path = yaml_dir / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        agent = load_recipe(path)
    except RecipeError:
        return
    assert isinstance(agent, RecipeAgent)


# --------------------------------------------------------------------------- crashes found before, now typed errors

POLY = [[0, 0], [10, 0], [0, 10]]


def zones_error(data: Any) -> str:
    """The one-line `BadInputError` that `data` must give."""
    with pytest.raises(BadInputError) as info:
        parse_zones(data, "zones.yaml")
    message = str(info.value)
    assert message.startswith("zones.yaml") and "\n" not in message, message
    return message


def recipe_error(data: Any) -> str:
    """The one-line `RecipeError` that `data` must give."""
    with pytest.raises(RecipeError) as info:
        parse_recipe(data, "r.yaml")
    message = str(info.value)
    assert "r.yaml" in message and "\n" not in message, message
    return message


@pytest.mark.parametrize("data", [{"zones": [], 1: 1, "b": 2},
                                  {"zones": [{"name": "a", "polygon": POLY, 1: 1, "b": 2}]}])
def test_zones_unknown_keys_of_mixed_types(data: dict[Any, Any]) -> None:
    assert "unknown keys 1, 'b'" in zones_error(data)


@pytest.mark.parametrize(("data", "key"), [({"zones": [], "masks": 5}, "'masks'"),
                                           ({"zones": [], "quiet_periods": 1.5}, "'quiet_periods'")])
def test_zones_lists_that_are_numbers(data: dict[str, Any], key: str) -> None:
    assert f"{key} must be a list" in zones_error(data)


@pytest.mark.parametrize(("data", "expected"), [
    ({"zones": [{"name": "a", "polygon": [[0, 0], [10**400, 0], [0, 10]]}]}, "finite"),
    ({"zones": [{"name": "a", "polygon": [[0, 0], [math.inf, 0], [0, 10]]}]}, "finite"),
    ({"zones": [{"name": "a", "polygon": POLY, "loiter_s": 10**400}]}, "'loiter_s'"),
    ({"zones": [{"name": "a", "polygon": POLY, "loiter_s": math.nan}]}, "'loiter_s'"),
])
def test_zones_numbers_past_float_range(data: dict[str, Any], expected: str) -> None:
    assert expected in zones_error(data)


@pytest.mark.parametrize(("loader", "error"), [(load_zones, BadInputError), (load_recipe, RecipeError)])
def test_deeply_nested_yaml(yaml_dir: Path, loader: Any, error: type[Exception]) -> None:
    path = yaml_dir / "deep.yaml"
    path.write_text("[" * 1000, encoding="utf-8")
    with pytest.raises(error, match="nested too deeply"):
        loader(path)


@pytest.mark.parametrize("required", [[["a"]], [{"a": 1}], [1], "a"])
def test_recipe_required_unhashable(required: Any) -> None:
    message = recipe_error({"name": "x", "prompt": "p", "output": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": required}})
    assert "'required' must be a list of property names" in message


@pytest.mark.parametrize(("kind", "keyword", "value"), [
    ("string", "minLength", -1), ("string", "maxLength", 10**30), ("string", "maxLength", "5"),
    ("string", "minLength", True), ("integer", "minimum", 1.5), ("integer", "maximum", math.nan),
    ("number", "maximum", "x"), ("number", "minimum", 10**400), ("array", "minItems", math.inf),
    ("array", "maxItems", 2**31),
])
def test_recipe_bad_schema_bounds(kind: str, keyword: str, value: Any) -> None:
    prop: dict[str, Any] = {"type": kind, keyword: value}
    if kind == "array":
        prop["items"] = {"type": "string"}
    message = recipe_error({"name": "x", "prompt": "p", "output": {"type": "object", "properties": {"a": prop}}})
    assert f"output.a: {keyword}" in message


def test_recipe_sound_schema_bounds() -> None:
    """Bounds at their limits still build: a whole-number float for an integer, big lengths, number bounds."""
    agent = check_recipe({"name": "x", "prompt": "p", "output": {"type": "object", "properties": {
        "s": {"type": "string", "minLength": 0, "maxLength": 2**31 - 1},
        "i": {"type": ["integer", "null"], "minimum": 1.0, "maximum": 10**30},
        "n": {"type": "number", "minimum": -1e308, "maximum": 2},
        "l": {"type": "array", "items": {"type": "string"}, "minItems": 0, "maxItems": 3}}}})
    assert agent is not None and agent.output_model is not None
    model = agent.output_model
    assert model.model_validate({"s": "", "i": 1, "n": 2, "l": []}).i == 1
    with pytest.raises(ValidationError):
        model.model_validate({"s": "", "i": 0, "n": 2, "l": []})


def test_recipe_schema_keys_of_mixed_types() -> None:
    message = recipe_error({"name": "x", "prompt": "p", "output": {"type": "object", "properties": {
        "a": {"type": "string", 1: 1, "b": 2}}}})
    assert "unsupported schema keyword 1" in message


def test_a_schema_nested_past_the_limit_is_a_recipe_error() -> None:
    """Deeper than the YAML parser allows, built in Python: refused by depth, not by RecursionError."""
    from fastvlm_gemini_hybrid.agents.recipe import MAX_SCHEMA_DEPTH, RecipeError, parse_recipe

    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    for _ in range(700):
        schema = {"type": "object", "properties": {"x": schema}}
    with pytest.raises(RecipeError, match=f"nested more than {MAX_SCHEMA_DEPTH} levels"):
        parse_recipe({"name": "deep", "prompt": "p", "output": schema}, "test")
