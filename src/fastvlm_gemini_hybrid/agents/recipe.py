"""Declarative agents: one YAML file (prompt, hints, JSON schema) becomes an `Agent`.

Why recipes: most new agents differ only in what they ask and what shape the answer has, and a
user should be able to add one without writing Python. The output schema is a small, checked
subset of JSON Schema (object, array, string, integer, number, boolean, enum, nullable types,
min/max bounds, required) turned into a pydantic model, so a recipe's answers get exactly the same
validation and single retry as a built-in agent. Any mistake in the file is one line naming the
file and the place, raised as `RecipeError` (exit 2).

```yaml
name: tech-docs                 # lowercase letters, digits, dashes
summary: Documentation from screenshots
accepts: [image]                # image, video, youtube, dicom
inputs: {min: 1, max: 6}
prompt: "Write documentation for {audience} ..."
params: {audience: developers}  # placeholders and defaults; `--param audience=ops` overrides
hints: {mode: auto, sensitive: false, domain: technical, latency: normal, local_only: false}
max_tokens: 900
output: {type: object, properties: {...}, required: [...]}
postprocess: my_package.module:function    # optional: f(output: dict, context) -> dict
```
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import SchemaError

from ..errors import ConfigurationError
from ..types import Domain, Latency, Mode
from .base import Agent, AgentContext, RoutingHints

NAME = re.compile(r"^[a-z][a-z0-9-]{0,47}$")
KINDS = frozenset({"image", "video", "youtube", "dicom"})
_SCHEMA_KEYS = frozenset({
    "type", "properties", "required", "items", "enum", "description", "title", "minimum", "maximum",
    "minLength", "maxLength", "minItems", "maxItems", "default", "additionalProperties",
})
_MAX_SIZE = 2**31  # a length or item-count bound must be below this


class RecipeError(ConfigurationError):
    """A recipe file is malformed (exit 2, one line naming the file and the problem)."""

    code = "bad_recipe"


class _Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = Field(1, ge=0)
    max: int | None = Field(None, ge=1)


class _Hints(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: str | None = None
    sensitive: bool | None = None
    domain: str | None = None
    latency: str | None = None
    local_only: bool = False


class RecipeSpec(BaseModel):
    """The recipe file's own schema (unknown keys are errors: they are usually typos)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    summary: str = ""
    accepts: list[str] = Field(default_factory=lambda: ["image"])
    inputs: _Inputs = Field(default_factory=_Inputs)
    prompt: str = Field(min_length=1)
    system: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    hints: _Hints = Field(default_factory=_Hints)
    max_tokens: int = Field(768, ge=16, le=32768)
    output: dict[str, Any]
    postprocess: str | None = None


class RecipeAgent(Agent):
    """An `Agent` whose every attribute came from a recipe file."""

    def __init__(self, spec: RecipeSpec, output_model: type[BaseModel], hints: RoutingHints, source: str) -> None:
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]
        self.summary = spec.summary  # type: ignore[misc]
        self.accepts = frozenset(spec.accepts)
        self.output_model = output_model
        self.prompt = spec.prompt
        self.system = spec.system
        self.hints = hints
        self.max_tokens = spec.max_tokens
        self.min_inputs = spec.inputs.min
        self.max_inputs = spec.inputs.max
        self.params = dict(spec.params)  # type: ignore[misc]
        self.source = source

    def postprocess(self, value: BaseModel, ctx: AgentContext) -> dict[str, Any]:
        data = value.model_dump(mode="json")
        if not self.spec.postprocess:
            return data
        module_name, _, attr = self.spec.postprocess.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            where = f"recipe {self.source}: cannot load postprocess {self.spec.postprocess!r}"
            raise RecipeError(f"{where}: {exc}") from None
        out = fn(data, ctx)
        if not isinstance(out, dict):
            raise RecipeError(f"recipe {self.source}: postprocess {self.spec.postprocess!r} must return a dict")
        return out


# --------------------------------------------------------------------------- JSON schema -> pydantic


def model_from_schema(name: str, schema: Any, where: str = "output") -> type[BaseModel]:
    """A pydantic model for an object schema; `ValueError` naming `where` for anything unsupported."""
    annotation = _annotation(name, schema, where)
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        raise ValueError(f"{where}: the top level must be an object schema")
    return annotation


MAX_SCHEMA_DEPTH = 32  # an output schema is a report's shape; deeper is a mistake (and would exhaust the stack)


def _annotation(name: str, schema: Any, where: str) -> Any:
    if where.count(".") > MAX_SCHEMA_DEPTH:  # each level adds one ".key" or ".items" to `where`
        raise ValueError(f"{where[:60]}...: the schema is nested more than {MAX_SCHEMA_DEPTH} levels")
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(schema).__name__}")
    unknown = sorted(set(schema) - _SCHEMA_KEYS, key=str)  # YAML keys may be of any type
    if unknown:
        raise ValueError(f"{where}: unsupported schema keyword {unknown[0]!r}")
    kind = schema.get("type")
    nullable = False
    if isinstance(kind, list):
        nullable = "null" in kind
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1:
            raise ValueError(f"{where}: a type list may hold one type plus 'null'")
        kind = rest[0]
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: enum must be a non-empty list")
        annotation: Any = Literal[tuple(values)]  # type: ignore[valid-type]
    elif kind == "object" or (kind is None and "properties" in schema):
        annotation = _object(name, schema, where)
    elif kind == "array":
        if "items" not in schema:
            raise ValueError(f"{where}: an array needs 'items'")
        inner = _annotation(name + "Item", schema["items"], f"{where}.items")
        annotation = Annotated[list[inner], Field(min_length=_size(schema, "minItems", where),
                                                  max_length=_size(schema, "maxItems", where))]
    elif kind == "string":
        annotation = Annotated[str, Field(min_length=_size(schema, "minLength", where),
                                          max_length=_size(schema, "maxLength", where))]
    elif kind in ("integer", "number"):
        base = int if kind == "integer" else float
        annotation = Annotated[base, Field(ge=_bound(schema, "minimum", kind, where),
                                           le=_bound(schema, "maximum", kind, where))]
    elif kind == "boolean":
        annotation = bool
    else:
        raise ValueError(f"{where}: unsupported or missing type {kind!r}")
    return annotation | None if nullable else annotation


def _size(schema: dict[str, Any], keyword: str, where: str) -> int | None:
    """A length or item-count bound: absent (None), or a non-negative integer below 2**31."""
    value = schema.get(keyword)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SIZE:
        raise ValueError(f"{where}: {keyword} must be a non-negative integer below 2**31, not {value!r}")
    return value


def _bound(schema: dict[str, Any], keyword: str, kind: str, where: str) -> int | float | None:
    """A minimum or maximum: absent (None), or a finite number (a whole number for an integer property)."""
    value = schema.get(keyword)
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int past float range
            number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"{where}: {keyword} must be a finite number, not {value!r}")
    if kind == "integer":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{where}: {keyword} of an integer must be a whole number, not {value!r}")
        return int(value)
    return number


def _object(name: str, schema: dict[str, Any], where: str) -> type[BaseModel]:
    props = schema.get("properties") or {}
    if not isinstance(props, dict) or not props:
        raise ValueError(f"{where}: an object needs at least one property")
    required = schema.get("required", list(props))
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError(f"{where}: 'required' must be a list of property names, not {required!r}")
    missing = [r for r in required if r not in props]
    if missing:
        raise ValueError(f"{where}: 'required' names {missing[0]!r}, which is not a property")
    fields: dict[str, Any] = {}
    for key, sub in props.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise ValueError(f"{where}: property name {key!r} must be a plain identifier")
        annotation = _annotation(name + key.title().replace("_", ""), sub, f"{where}.{key}")
        desc = sub.get("description") if isinstance(sub, dict) else None
        if key in required:
            fields[key] = (annotation, Field(..., description=desc))
        else:
            fields[key] = (annotation | None, Field(None, description=desc))
    try:
        return create_model(name, __config__=ConfigDict(extra="ignore"), **fields)
    except SchemaError as exc:  # a schema pydantic cannot build, whatever the checks above let through
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{where}: unsupported schema: {first}") from None


# --------------------------------------------------------------------------- loading


def parse_recipe(data: Any, source: str) -> RecipeAgent:
    """Build a `RecipeAgent` from parsed YAML; every problem is one `RecipeError` line."""
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {source}: expected a mapping at the top level")
    try:
        spec = RecipeSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "recipe"
        raise RecipeError(f"recipe {source}: {where}: {err.get('msg', 'invalid')}") from None
    if not NAME.match(spec.name):
        raise RecipeError(f"recipe {source}: name {spec.name!r} must be lowercase letters, digits and dashes")
    bad = sorted(set(spec.accepts) - KINDS)
    if bad or not spec.accepts:
        raise RecipeError(f"recipe {source}: accepts must list some of {', '.join(sorted(KINDS))} (got {bad or []})")
    if spec.inputs.max is not None and spec.inputs.max < spec.inputs.min:
        raise RecipeError(f"recipe {source}: inputs.max is smaller than inputs.min")
    if spec.postprocess is not None and not re.match(r"^[\w.]+:\w+$", spec.postprocess):
        raise RecipeError(f"recipe {source}: postprocess must look like 'package.module:function'")
    try:
        hints = RoutingHints(
            mode=Mode.parse(spec.hints.mode) if spec.hints.mode else None,
            sensitive=spec.hints.sensitive,
            domain=Domain.parse(spec.hints.domain) if spec.hints.domain else None,
            latency=Latency.parse(spec.hints.latency) if spec.hints.latency else None,
            local_only=spec.hints.local_only,
        )
        model_name = "".join(part.title() for part in spec.name.split("-")) + "Output"
        output_model = model_from_schema(model_name, spec.output)
    except ValueError as exc:  # BadInputError from parse() is a ValueError too
        raise RecipeError(f"recipe {source}: {exc}") from None
    _check_placeholders(spec, source)
    return RecipeAgent(spec, output_model, hints, source)


def _check_placeholders(spec: RecipeSpec, source: str) -> None:
    import string

    try:
        names = {f for _, f, _, _ in string.Formatter().parse(spec.prompt) if f is not None}
    except ValueError as exc:
        raise RecipeError(f"recipe {source}: prompt: {exc} (write literal braces as {{{{ and }}}})") from None
    missing = sorted(n for n in names if n not in spec.params)
    if missing:
        raise RecipeError(f"recipe {source}: prompt uses {{{missing[0]}}} but params gives it no default")


def load_recipe(path: Path) -> RecipeAgent:
    """Read and parse one recipe file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(f"recipe {path}: cannot read it: {exc.strerror or exc}") from None
    except RecursionError:  # the YAML composer recurses once per level of nesting
        raise RecipeError(f"recipe {path}: not valid YAML: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: not UTF-8, or an integer of over 4300 digits
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RecipeError(f"recipe {path}: not valid YAML: {first}") from None
    return parse_recipe(data, str(path))


__all__ = ["RecipeAgent", "RecipeError", "RecipeSpec", "load_recipe", "model_from_schema", "parse_recipe"]
