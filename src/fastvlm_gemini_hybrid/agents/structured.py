"""Structured answers: a pydantic model in, validated data out, with exactly one corrective retry.

Why this lives apart from the agents: every agent (and every recipe) needs the same loop, and the
loop is where "never pass off invalid output as valid" is enforced. The model's JSON schema goes to
the backend in `GenerationOptions.json_schema` (Gemini and OpenAI-compatible servers enforce it
natively) and, as a compact sketch, into the prompt (FastVLM has no constrained decoding). The
answer is parsed (```json fences and chatter around the object are tolerated), validated, then
checked by the agent's own `check` hook; on any failure the request is asked once more with the
error and the rejected answer appended, and a second failure raises `AgentOutputError`.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..errors import InvalidResponseError
from ..types import Request, Result

if TYPE_CHECKING:
    from .answering import Answerer


class AgentOutputError(InvalidResponseError):
    """The model's answer did not match the agent's schema, even after one corrective retry."""

    code = "agent_output_invalid"


#: longest slice of a rejected answer quoted back to the model in the retry prompt
QUOTE_CHARS = 600
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every local `$ref` replaced by its definition and `$defs` dropped.

    Why: pydantic emits `$defs`/`$ref`, which some structured-output endpoints (and small models
    reading the schema in the prompt) handle poorly; agent schemas are trees, so inlining is finite.
    """
    defs = schema.get("$defs", {})

    def resolve(node: Any, depth: int = 0) -> Any:
        if depth > 32:
            raise ValueError("the schema nests too deeply (recursive $ref?)")
        if isinstance(node, dict):
            if "$ref" in node:
                name = str(node["$ref"]).rsplit("/", 1)[-1]
                if name not in defs:
                    raise ValueError(f"the schema refers to an unknown definition {name!r}")
                merged = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged, depth + 1)
            return {k: resolve(v, depth + 1) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v, depth + 1) for v in node]
        return node

    return resolve(schema)


@functools.lru_cache(maxsize=256)
def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent to backends: pydantic's, with references inlined.

    Cached per model (generating it costs about a millisecond, more than the rest of an agent
    request together); callers must treat the returned dict as read-only.
    """
    return inline_refs(model.model_json_schema())


@functools.lru_cache(maxsize=256)
def _instruction_for(model: type[BaseModel]) -> str:
    return json_instruction(schema_for(model))


def sketch(schema: dict[str, Any]) -> Any:
    """A compact example-shaped skeleton of `schema`, for the prompt of models without schema support.

    `{"severity": "low|medium|high", "issues": [{...}], "score": "integer 0..10"}` reads far better to a
    0.5B model than a full JSON schema, and costs a fraction of the tokens.
    """
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        inner = sketch(options[0]) if options else "null"
        return inner if len(options) == len(schema["anyOf"]) else _nullable(inner)
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: sketch(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sketch(schema.get("items") or {"type": "string"})]
    # "decimal", not "number": the router's PII detection reads "name" + "number" as a personal record.
    labels = {"string": "text", "integer": "integer", "number": "decimal", "boolean": "true|false"}
    text = labels.get(str(kind), "value")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        text += f" {'' if low is None else low}..{'' if high is None else high}"
    if schema.get("description") and kind == "string":
        text = str(schema["description"])
    return text


def _nullable(inner: Any) -> Any:
    return f"{inner} or null" if isinstance(inner, str) else inner


def json_instruction(schema: dict[str, Any]) -> str:
    """The sentence appended to every agent prompt."""
    shape = json.dumps(sketch(schema), ensure_ascii=False)
    return f"Answer with one JSON object only, no prose, shaped like this: {shape}"


def extract_json(text: str) -> Any:
    """Parse the JSON object in a model's answer: bare, in a ```json fence, or amid prose.

    Raises `ValueError` with a short reason when there is none.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("the answer is empty")
    if "{" not in stripped and "[" not in stripped:
        raise ValueError("no JSON object found")
    fence = _FENCE.search(stripped)
    candidates = [fence.group(1).strip()] if fence else []
    candidates.append(stripped)
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidates.append(stripped[start : end + 1])
    error = "no JSON object found"
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    raise ValueError(error)


def describe_validation(exc: ValidationError, limit: int = 4) -> str:
    """pydantic's errors as one short line: `issues.0.severity: Input should be 'low' or 'high'; ...`."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "answer"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_answer(text: str, model: type[BaseModel], check: Callable[[BaseModel], None] | None = None) -> BaseModel:
    """Validate `text` against `model` (and `check`); raise `ValueError` with one readable reason."""
    data = extract_json(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation(exc)) from None
    if check is not None:
        check(value)  # OutputProblem is a ValueError
    return value


@dataclass
class StructuredAnswer:
    """A validated answer and the processor result(s) it came from."""

    value: BaseModel
    result: Result
    attempts: int
    first_error: str | None = None


def with_schema(request: Request, model: type[BaseModel]) -> Request:
    """`request` asking for `model`'s JSON: the schema in the options and its sketch in the prompt."""
    options = replace(request.options, json_schema=schema_for(model))
    return replace(request, prompt=f"{request.prompt.rstrip()}\n\n{_instruction_for(model)}", options=options)


def retry_request(request: Request, answer: str, error: str) -> Request:
    """The corrective retry: the same request with the rejected answer and the reason appended."""
    quoted = answer.strip()
    if len(quoted) > QUOTE_CHARS:
        quoted = quoted[:QUOTE_CHARS] + " …"
    prompt = (
        f"{request.prompt}\n\nYour previous answer was rejected: {error}.\n"
        f"Previous answer: {quoted}\nAnswer again with corrected JSON only."
    )
    return replace(request, prompt=prompt, request_id=uuid.uuid4().hex)


async def ask_structured(
    processor: Answerer,
    request: Request,
    model: type[BaseModel],
    *,
    label: str,
    check: Callable[[BaseModel], None] | None = None,
) -> StructuredAnswer:
    """Ask `request` through `processor.arun` and return a validated `model`, retrying once.

    `label` names the agent in error messages. Backend failures (`HybridError`) propagate unchanged;
    only answers that arrive but do not validate are retried.
    """
    asked = with_schema(request, model)
    result: Result = await processor.arun(asked)
    error = _problem(result, model, check)
    if error is None:
        return StructuredAnswer(_value(result, model, check), result, 1)
    retry = retry_request(asked, result.response, error)
    second: Result = await processor.arun(retry)
    second_error = _problem(second, model, check)
    if second_error is None:
        return StructuredAnswer(_value(second, model, check), second, 2, first_error=error)
    raise AgentOutputError(
        f"{label}: {second.backend} answered with invalid {model.__name__} JSON twice "
        f"(first: {error}; after retry: {second_error})",
        second.backend,
    )


def _problem(result: Result, model: type[BaseModel], check: Callable[[BaseModel], None] | None) -> str | None:
    if result.blocked:
        return f"the answer was blocked by {result.backend}'s safety filter"
    try:
        parse_answer(result.response, model, check)
    except ValueError as exc:
        return str(exc)
    return None


def _value(result: Result, model: type[BaseModel], check: Callable[[BaseModel], None] | None) -> BaseModel:
    return parse_answer(result.response, model, check)


__all__ = [
    "StructuredAnswer",
    "ask_structured",
    "extract_json",
    "inline_refs",
    "json_instruction",
    "parse_answer",
    "schema_for",
    "sketch",
]
