"""The structured-output loop: parse, validate, retry once with the error, then fail clearly."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from fastvlm_gemini_hybrid.agents.base import AgentOutputError, OutputProblem
from fastvlm_gemini_hybrid.agents.structured import (
    ask_structured,
    extract_json,
    inline_refs,
    json_instruction,
    parse_answer,
    schema_for,
    sketch,
)
from fastvlm_gemini_hybrid.errors import InvalidResponseError
from fastvlm_gemini_hybrid.types import Request

from .conftest import ScriptedAnswers, calls


class Item(BaseModel):
    name: str
    level: int = Field(ge=0, le=3)


class Answer(BaseModel):
    title: str = Field(min_length=1)
    kind: str
    items: list[Item]


GOOD = {"title": "t", "kind": "k", "items": [{"name": "a", "level": 2}]}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD) + "\n```",
        "Sure! Here it is:\n" + json.dumps(GOOD) + "\nHope that helps.",
        "```\n" + json.dumps(GOOD, indent=2) + "\n```",
    ],
)
def test_extract_json_accepts_fences_and_chatter(text: str) -> None:
    assert extract_json(text) == GOOD


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("no json here", "no JSON object"), ('{"title": "t", "items": [', "invalid JSON")],
)
def test_extract_json_reports_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        extract_json(text)


def test_parse_answer_names_the_failing_field() -> None:
    bad = {**GOOD, "items": [{"name": "a", "level": 9}]}
    with pytest.raises(ValueError, match=r"items\.0\.level"):
        parse_answer(json.dumps(bad), Answer)
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_answer("[1, 2]", Answer)


def test_schema_has_no_refs_and_sketch_is_compact() -> None:
    schema = schema_for(Answer)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert schema["properties"]["items"]["items"]["properties"]["level"]["maximum"] == 3
    shape = sketch(schema)
    assert shape == {"title": "text", "kind": "text", "items": [{"name": "text", "level": "integer 0..3"}]}
    assert "shaped like this" in json_instruction(schema)


def test_inline_refs_rejects_unknown_definitions() -> None:
    with pytest.raises(ValueError, match="unknown definition"):
        inline_refs({"properties": {"a": {"$ref": "#/$defs/Missing"}}})


async def test_valid_answer_takes_one_call_and_carries_the_schema(make_processor) -> None:
    processor = make_processor(local=ScriptedAnswers(GOOD))
    answer = await ask_structured(processor, Request("Describe", sensitive=True), Answer, label="t")
    assert answer.value == Answer.model_validate(GOOD)
    assert answer.attempts == 1 and answer.first_error is None
    (request,) = calls(processor, "fastvlm")
    assert request.options.json_schema == schema_for(Answer)
    assert "shaped like this" in request.prompt


async def test_invalid_then_valid_retries_once_with_the_error(make_processor) -> None:
    partly = {**GOOD, "items": [{"name": "a", "level": "high"}]}
    script = ScriptedAnswers(partly, GOOD)
    processor = make_processor(local=script)
    answer = await ask_structured(processor, Request("Describe", sensitive=True), Answer, label="t")
    assert answer.attempts == 2 and answer.value.items[0].level == 2
    assert "items.0.level" in (answer.first_error or "")
    assert len(script.prompts) == 2
    assert "previous answer was rejected" in script.prompts[1] and "items.0.level" in script.prompts[1]
    assert json.dumps(partly) in script.prompts[1]


async def test_invalid_twice_is_a_clear_typed_failure(make_processor) -> None:
    script = ScriptedAnswers("not json at all", '{"title": ""}')
    processor = make_processor(local=script)
    with pytest.raises(AgentOutputError) as info:
        await ask_structured(processor, Request("Describe", sensitive=True), Answer, label="my-agent")
    assert isinstance(info.value, InvalidResponseError) and info.value.exit_code == 1
    message = str(info.value)
    assert "my-agent" in message and "twice" in message and "title" in message and "\n" not in message
    assert len(script.prompts) == 2  # exactly one retry


async def test_check_hook_problems_trigger_the_retry(make_processor) -> None:
    second = {**GOOD, "title": "fixed"}
    processor = make_processor(local=ScriptedAnswers(GOOD, second))

    def check(value: BaseModel) -> None:
        if value.title != "fixed":  # type: ignore[attr-defined]
            raise OutputProblem("title must be 'fixed'")

    answer = await ask_structured(processor, Request("x", sensitive=True), Answer, label="t", check=check)
    assert answer.value.title == "fixed" and answer.first_error == "title must be 'fixed'"
