"""The OpenAI API completed (issue 15): `stop`, `response_format` checked and retried, 400 for what is not
supported, `GET /v1/models/{id}` and `POST /v1/responses`, all through the real `openai` SDK against uvicorn."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.types import BackendKind, Request
from synth_media import picture

openai = pytest.importorskip("openai")

RED = picture((200, 30, 30), (24, 16))
RED_URI = "data:image/png;base64," + base64.b64encode(RED).decode()
COUNT_SCHEMA = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}


def scripted(*answers: str) -> tuple[Callable[[Request], str], list[Request]]:
    """A responder giving `answers` in turn (the last one from then on), and the requests it was asked."""
    asked: list[Request] = []

    def respond(request: Request) -> str:
        asked.append(request)
        return answers[min(len(asked), len(answers)) - 1]

    return respond, asked


def client_for(live_server: Any, app_factory: Callable[..., Any], cloud: Any, **kw: Any) -> tuple[Any, Any, str]:
    """(openai client, processor, base URL) of a live server whose cloud backend ("gemini") answers `cloud`."""
    app, proc = app_factory(cloud=cloud, **kw)
    srv = live_server(app)
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=20), proc, srv.url


def user(text: str = "Describe it.") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": RED_URI}}]}]


# --------------------------------------------------------------------------- stop


def test_stop_cuts_whole_and_streamed_answers(live_server: Any, app_factory: Callable[..., Any]) -> None:
    client, proc, _ = client_for(live_server, app_factory, "alpha beta END gamma STOP delta")
    done = client.chat.completions.create(model="gemini", messages=user(), stop="END")
    assert done.choices[0].message.content == "alpha beta " and done.choices[0].finish_reason == "stop"
    assert proc.backend("gemini").calls[-1].options.stop == ("END",)  # passed on, for a backend that stops natively
    done = client.chat.completions.create(model="gemini", messages=user("Again."), stop=["STOP", "gamma"])
    assert done.choices[0].message.content == "alpha beta END "

    # The fake streams word by word ("beta ", "END ", ...): this stop sequence spans two pieces.
    chunks = list(client.chat.completions.create(model="gemini", messages=user("Stream."), stop=["beta END"],
                                                 stream=True))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == "alpha "
    assert not any("beta" in p or "END" in p for p in pieces)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gemini", messages=user(), stop=["a", "b", "c", "d", "e"])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gemini", messages=user(), stop=[""])


# --------------------------------------------------------------------------- response_format


def test_json_object_valid_fenced_and_retried(live_server: Any, app_factory: Callable[..., Any]) -> None:
    respond, asked = scripted("Sure! ```json\n{\"colour\": \"red\"}\n```", "not json at all", '{"colour": "red"}')
    client, _, _ = client_for(live_server, app_factory, respond)
    fmt = {"type": "json_object"}

    fenced = client.chat.completions.create(model="gemini", messages=user(), response_format=fmt)
    assert json.loads(fenced.choices[0].message.content or "") == {"colour": "red"}  # the JSON alone is sent
    assert "JSON object" in asked[0].prompt  # asked in words too, for a backend without constrained decoding
    assert asked[0].options.json_schema == {"type": "object"}

    retried = client.chat.completions.create(model="gemini", messages=user("Again."), response_format=fmt)
    assert json.loads(retried.choices[0].message.content or "") == {"colour": "red"}
    assert len(asked) == 3 and "rejected" in asked[2].prompt and "not json at all" in asked[2].prompt


def test_invalid_json_twice_is_a_502(live_server: Any, app_factory: Callable[..., Any]) -> None:
    respond, asked = scripted("[1, 2, 3]")  # JSON, but not an object
    client, _, url = client_for(live_server, app_factory, respond)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gemini", messages=user(), response_format={"type": "json_object"})
    assert caught.value.status_code == 502 and caught.value.code == "invalid_json_output"
    assert caught.value.type == "server_error" and "twice" in caught.value.message
    assert len(asked) == 2

    # Streamed: the text is already out, so no retry; an error event, then [DONE].
    raw = httpx.post(url + "/v1/chat/completions", timeout=20, json={
        "model": "gemini", "messages": user("Stream."), "stream": True, "response_format": {"type": "json_object"}})
    events = [line[6:] for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "invalid_json_output"
    with pytest.raises(openai.APIError, match="invalid JSON"):
        list(client.chat.completions.create(model="gemini", messages=user("Stream 2."), stream=True,
                                            response_format={"type": "json_object"}))


def test_json_schema_is_validated(live_server: Any, app_factory: Callable[..., Any]) -> None:
    respond, asked = scripted('{"count": "three"}', '{"count": 3}')
    client, _, _ = client_for(live_server, app_factory, respond)
    fmt = {"type": "json_schema", "json_schema": {"name": "count", "schema": COUNT_SCHEMA, "strict": True}}
    done = client.chat.completions.create(model="gemini", messages=user("How many?"), response_format=fmt)
    assert json.loads(done.choices[0].message.content or "") == {"count": 3}
    assert asked[0].options.json_schema == COUNT_SCHEMA and '"count"' in asked[0].prompt
    assert "count: 'three' is not of type 'integer'" in asked[1].prompt  # jsonschema's reason, fed back

    with pytest.raises(openai.BadRequestError, match="not a usable JSON schema"):
        client.chat.completions.create(model="gemini", messages=user(), response_format={
            "type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": 5}}})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gemini", messages=user(), response_format={"type": "xml"})


# --------------------------------------------------------------------------- refused, not ignored


@pytest.mark.parametrize(("extra", "word"), [
    ({"n": 2}, "n other than 1"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"logprobs": True}, "logprobs"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "audio"),
])
def test_unsupported_features_are_400(live_server: Any, app_factory: Callable[..., Any], extra: dict[str, Any],
                                      word: str) -> None:
    client, proc, _ = client_for(live_server, app_factory, "fine")
    with pytest.raises(openai.BadRequestError, match="not supported") as caught:
        client.chat.completions.create(model="gemini", messages=user(), extra_body=extra)
    assert word in caught.value.message and caught.value.code == "unsupported_parameter"
    assert proc.backend("gemini").calls == []


def test_n_1_and_unknown_fields_are_fine(live_server: Any, app_factory: Callable[..., Any]) -> None:
    client, _, _ = client_for(live_server, app_factory, "fine")
    done = client.chat.completions.create(model="gemini", messages=user(), n=1, logprobs=False,
                                          extra_body={"frobnicate": {"x": 1}, "tool_choice": "none"})
    assert done.choices[0].message.content == "fine"


# --------------------------------------------------------------------------- /v1/models/{id}


def test_model_by_id(live_server: Any, app_factory: Callable[..., Any]) -> None:
    client, _, _ = client_for(live_server, app_factory, "fine")
    listed = {m.id: m for m in client.models.list()}
    for name in ("hybrid", "fastvlm", "gemini"):
        one = client.models.retrieve(name)
        assert one.id == name and one.model_dump()["kind"] == listed[name].model_dump()["kind"]
    pinned = client.models.retrieve("gemini/gemini-2.5-flash")  # the SDK sends the slash as %2F
    assert pinned.id == "gemini/gemini-2.5-flash" and pinned.model_dump()["kind"] == "cloud"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-nope")
    assert missing.value.code == "model_not_found"


# --------------------------------------------------------------------------- /v1/responses


def test_responses_create_string_and_image_messages(live_server: Any, app_factory: Callable[..., Any]) -> None:
    client, proc, _ = client_for(live_server, app_factory, "a red rectangle")
    plain = client.responses.create(model="gemini", input="Say something.", instructions="Be brief.",
                                    max_output_tokens=64, temperature=0.5)
    assert plain.output_text == "a red rectangle" and plain.status == "completed"
    seen = proc.backend("gemini").calls[-1]
    assert seen.prompt == "Say something." and seen.options.system == "Be brief."
    assert seen.options.max_tokens == 64 and seen.options.temperature == 0.5 and seen.attachments == ()

    pictured = client.responses.create(model="gemini", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": RED_URI}]}])
    assert pictured.output_text == "a red rectangle" and pictured.usage is not None
    seen = proc.backend("gemini").calls[-1]
    assert seen.prompt == "What is this?" and [a.mime for a in seen.attachments] == ["image/png"]
    assert seen.attachments[0].data == RED


def test_responses_second_turn_from_the_input_list(live_server: Any, app_factory: Callable[..., Any]) -> None:
    talks = Capabilities(kind=BackendKind.CLOUD, media=frozenset({"image"}), max_images=8, streaming=True,
                         conversation=True)  # takes the turns as turns, so they can be checked one by one
    client, proc, _ = client_for(live_server, app_factory, lambda r: f"answer to: {r.prompt}",
                                 backend_kw={"cloud_kw": {"capabilities": talks}})
    first_input = [{"role": "user", "content": [{"type": "input_text", "text": "What colour?"},
                                                {"type": "input_image", "image_url": RED_URI}]}]
    first = client.responses.create(model="gemini", input=first_input)
    # The SDK's own output items go back as the assistant turn, as its docs show for a conversation.
    second = client.responses.create(model="gemini", input=[
        *first_input, *[item.model_dump(exclude_none=True) for item in first.output],
        {"role": "user", "content": "And its size?"}])
    assert second.output_text == "answer to: And its size?"
    seen = proc.backend("gemini").calls[-1]
    assert [(t.role, t.text, t.images) for t in seen.history] == [
        ("user", "What colour?", 1), ("assistant", "answer to: What colour?", 0)]
    assert len(seen.attachments) == 1


def test_responses_stream(live_server: Any, app_factory: Callable[..., Any]) -> None:
    client, _, _ = client_for(live_server, app_factory, "one two three")
    with client.responses.stream(model="gemini", input="Count.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "one two three " and len(deltas) == 3
    assert final.output_text == "one two three " and final.status == "completed"

    events = list(client.responses.create(model="gemini", input="Count again.", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.done" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_responses_json_and_refusals(live_server: Any, app_factory: Callable[..., Any]) -> None:
    from pydantic import BaseModel

    class Count(BaseModel):
        count: int

    respond, asked = scripted("three", '{"count": 3}', "no JSON here")
    client, _, _ = client_for(live_server, app_factory, respond)
    parsed = client.responses.parse(model="gemini", input="How many?", text_format=Count)
    assert parsed.output_parsed == Count(count=3) and len(asked) == 2 and "rejected" in asked[1].prompt

    # Streamed: out already, so checked at the end and not retried; reported Responses-style.
    events = list(client.responses.create(model="gemini", input="Stream it.", stream=True,
                                          text={"format": {"type": "json_object"}}))
    assert [e.type for e in events][-2:] == ["error", "response.failed"] and events[-2].code == "invalid_json_output"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "no JSON here "
    assert len(asked) == 3

    for extra in ({"previous_response_id": "resp_123"}, {"tools": [{"type": "web_search"}]}, {"background": True}):
        with pytest.raises(openai.BadRequestError, match="not supported"):
            client.responses.create(model="gemini", input="hi", extra_body=extra)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-nope", input="hi")
