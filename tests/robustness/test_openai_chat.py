"""`POST /v1/chat/completions` and its parser (server/openai_api.py) on arbitrary JSON-ish bodies.

Property: whatever the body — any JSON value, messages of any shape, content parts of any type,
image_url objects and data: URIs with real or garbage media, `max_tokens`/`temperature`/`top_p`/`seed`
as huge numbers, NaN, infinities, strings, booleans or nested junk — the server answers 200 or a 4xx
with an OpenAI-shaped `{"error": {...}}` body, never a 5xx (an exception other than the package's
typed errors). Directly, `_options` returns `GenerationOptions` or raises `BadInputError`.

There is no Ollama-style API (`/api/chat`, `/api/generate`) in server/, so nothing of that kind is tested.

The tests at the end pin the crashes these properties found (`stream_options` or
`response_format.json_schema` that is not an object), both fixed.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.server.openai_api import _options
from fastvlm_gemini_hybrid.types import GenerationOptions
from synth_media import picture

from .conftest import EDGE_NUMBERS, JSON_VALUES, WRONG_TYPES, assert_client_answer, examples

CHAT = "/v1/chat/completions"
JSON_HEADERS = {"content-type": "application/json"}


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


PNG_URI = _data_uri("image/png", picture((10, 200, 30), (8, 8)))
# Sniffed magic numbers (types._MAGIC), so random bytes after them reach the image/video decoders' checks.
MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP",
          b"\x00\x00\x00\x18ftypisom", b"%PDF-"]
URLS = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        PNG_URI, "data:image/png;base64,", "data:;base64,AAAA", "data:image/png,not-base64", "data:", "data:,",
        "data:image/gif;base64,R0lGODlh", "data:image/png;base64,!!!!", "http://127.0.0.1/a.png",
        "https://example.invalid/x.jpg", "ftp://example.com/a.png", "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "file:///etc/passwd", "rtsp://camera/stream",
    ]),
    st.builds(lambda magic, tail, mime: _data_uri(mime, magic + tail), st.sampled_from(MAGICS),
              st.binary(max_size=96), st.sampled_from(["image/png", "", "text/plain", "video/mp4", "image/gif"])),
)
IMAGE_URL = st.one_of(
    URLS,
    st.fixed_dictionaries({"url": URLS}, optional={"detail": st.sampled_from(["low", "high", "auto"]) | JSON_VALUES}),
    WRONG_TYPES,
    JSON_VALUES,
)
PARTS = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=60) | JSON_VALUES}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": IMAGE_URL}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_text", "input_image", "image", "audio", "", "TEXT"]) | JSON_VALUES},
        optional={"text": JSON_VALUES, "image_url": IMAGE_URL},
    ),
    JSON_VALUES,
)
CONTENT = st.one_of(st.text(max_size=80), st.lists(PARTS, max_size=4), WRONG_TYPES, JSON_VALUES)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "", "USER"]) | JSON_VALUES
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": ROLES}, optional={"content": CONTENT, "name": JSON_VALUES}),
    JSON_VALUES,
)
# A conversation the parser accepts (mostly): system turns, alternating turns, a last user turn with text.
VALID_MESSAGES = st.builds(
    lambda system, turns, last: [*system, *turns, last],
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "developer"]), "content": st.text(max_size=30)}),
             max_size=2),
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": st.text(max_size=30)}),
             max_size=3),
    st.fixed_dictionaries({"role": st.just("user"), "content": st.text(min_size=1, max_size=60) | st.lists(
        st.sampled_from([{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": PNG_URI},
                         {"type": "image_url", "image_url": {"url": PNG_URI}}]), min_size=1, max_size=2)}),
)
MESSAGES = st.one_of(VALID_MESSAGES, st.lists(MESSAGE, max_size=5), WRONG_TYPES, JSON_VALUES)
NUMBERS = st.one_of(
    st.integers(-5, 5000), st.floats(-3, 3), EDGE_NUMBERS, st.booleans(), WRONG_TYPES, JSON_VALUES,
    st.from_regex(r"\A[ +-]?\d{1,5}(\.\d*)?([eE][+-]?\d{1,4})?\Z"),
    st.sampled_from(["nan", "inf", "-Infinity", "1e400"]),
)
RESPONSE_FORMAT = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["json_schema", "json_object", "text"]) | JSON_VALUES},
        optional={"json_schema": st.fixed_dictionaries({}, optional={"schema": JSON_VALUES, "name": JSON_VALUES})
                  | WRONG_TYPES | JSON_VALUES},
    ),
    WRONG_TYPES,
    JSON_VALUES,
)
OPTIONAL_FIELDS = {
    "model": st.sampled_from(["hybrid", "auto", "fastvlm", "gemini", "gemini/gemini-2.5-pro", "fastvlm/", "nope",
                              "/", ""]) | JSON_VALUES,
    "max_tokens": NUMBERS, "max_completion_tokens": NUMBERS, "temperature": NUMBERS, "top_p": NUMBERS,
    "seed": NUMBERS,
    "stream": st.booleans() | JSON_VALUES,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JSON_VALUES}) | WRONG_TYPES | JSON_VALUES,
    "response_format": RESPONSE_FORMAT,
    "mode": st.sampled_from(["auto", "local-only", "cloud_only", "parallel", "fallback", "bogus"]) | JSON_VALUES,
    "domain": st.sampled_from(["medical", "general", "bogus"]) | JSON_VALUES,
    "sensitive": st.sampled_from(["true", "no", "maybe", 1, 0]) | JSON_VALUES,
    "user": JSON_VALUES,
}
WILD_BODIES = st.fixed_dictionaries({"messages": MESSAGES}, optional=OPTIONAL_FIELDS)

# Random junk everywhere rarely gets past the first check, so most examples are a body the server accepts
# with one or two values (at any depth) replaced by junk: each check then meets every kind of wrong value.
VALID_BODIES = st.fixed_dictionaries(
    {"messages": VALID_MESSAGES, "stream": st.booleans()},
    optional={
        "model": st.sampled_from(["hybrid", "auto", "fastvlm", "gemini", "gemini/gemini-2.5-flash"]),
        "max_tokens": st.integers(1, 4096), "max_completion_tokens": st.integers(1, 4096),
        "temperature": st.floats(0, 2), "top_p": st.floats(0.01, 1), "seed": st.integers(-(2**63), 2**63),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "response_format": st.one_of(
            st.just({"type": "text"}),
            st.just({"type": "json_schema", "json_schema": {
                "name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
        ),
        "mode": st.sampled_from(["auto", "local-only", "cloud-only", "fallback"]),
        "domain": st.sampled_from(["medical", "general", "creative"]),
        "sensitive": st.booleans(), "user": st.text(max_size=10),
    },
)
PATHS: list[tuple[Any, ...]] = [
    *[(key,) for key in ("messages", *OPTIONAL_FIELDS)],
    ("messages", 0), ("messages", -1), ("messages", -1, "role"), ("messages", -1, "content"),
    ("messages", -1, "content", 0), ("messages", -1, "content", 0, "type"), ("messages", -1, "content", 0, "text"),
    ("messages", -1, "content", 0, "image_url"), ("messages", -1, "content", 0, "image_url", "url"),
    ("stream_options", "include_usage"), ("response_format", "type"), ("response_format", "json_schema"),
    ("response_format", "json_schema", "schema"),
]
JUNK = st.one_of(WRONG_TYPES, JSON_VALUES, EDGE_NUMBERS, URLS)


def with_junk(body: dict[str, Any], edits: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    """`body` with the value at each path replaced (containers on the way made up when missing)."""
    body = copy.deepcopy(body)
    for path, junk in edits:
        node: Any = body
        for key in path[:-1]:
            child = node[key] if isinstance(node, list) else node.get(key)
            if not isinstance(child, dict | list) or not child:
                child = {"type": "json_schema"} if key == "response_format" else (
                    [{"type": "image_url", "image_url": {"url": PNG_URI}}] if key == "content" else {})
                node[key] = child
            node = child
        node[path[-1]] = junk
    return body


EDIT = st.tuples(st.sampled_from(PATHS), JUNK)
CORRUPTED_BODIES = st.one_of(  # one fault is the sharpest probe; two find checks that depend on each other
    st.builds(lambda body, edit: with_junk(body, [edit]), VALID_BODIES, EDIT),
    st.builds(with_junk, VALID_BODIES, st.lists(EDIT, min_size=2, max_size=2)),
)
CHAT_BODIES = st.one_of(CORRUPTED_BODIES, CORRUPTED_BODIES, VALID_BODIES, WILD_BODIES)  # corrupted: half


def post_json(client: Any, path: str, payload: Any) -> Any:
    return client.post(path, content=json.dumps(payload).encode(), headers=JSON_HEADERS)


@settings(deadline=10_000, max_examples=examples(250))  # a hang, not a slow machine: the fake backends answer at once
@given(payload=CHAT_BODIES)
def test_chat_completions_answers_200_or_4xx(http_client: Any, payload: dict[str, Any]) -> None:
    response = post_json(http_client, CHAT, payload)
    event(f"HTTP {response.status_code}")
    if response.status_code == 502 and response.json()["error"]["code"] == "invalid_json_output":
        # The fakes answer prose to a JSON response_format: the designed 502 (the request was fine, the
        # answer was not JSON even after one retry), a typed error body, not a crash.
        assert response.json()["error"]["type"] == "server_error"
        return
    assert_client_answer(response)


@settings(deadline=10_000)
@given(payload=JSON_VALUES)
def test_chat_completions_any_json_value_is_answered(http_client: Any, payload: Any) -> None:
    response = post_json(http_client, CHAT, payload)
    assert_client_answer(response)
    if not isinstance(payload, dict):
        assert response.status_code == 400


@settings(deadline=10_000)
@given(body=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_chat_completions_raw_body_is_answered(http_client: Any, body: bytes) -> None:
    assert_client_answer(http_client.post(CHAT, content=body, headers=JSON_HEADERS))


@settings(max_examples=examples(300))
@given(payload=CHAT_BODIES, system=st.none() | st.text(max_size=20))
def test_options_parser_returns_options_or_bad_input(payload: dict[str, Any], system: str | None) -> None:
    try:
        options = _options(payload, system)
    except BadInputError:
        return
    assert isinstance(options, GenerationOptions)
    assert isinstance(options.max_tokens, int) and options.max_tokens > 0
    assert 0.0 <= options.temperature <= 2.0 and 0.0 < options.top_p <= 1.0


# --------------------------------------------------------------------------- found by the properties above (fixed)

USER_HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("options", ["yes", [1], 1, True])
def test_stream_options_not_an_object(http_client: Any, options: Any) -> None:
    assert_client_answer(post_json(http_client, CHAT, {"messages": USER_HI, "stream": True, "stream_options": options}))


@pytest.mark.parametrize("schema", ["x", [1], 1, True])
def test_json_schema_not_an_object(http_client: Any, schema: Any) -> None:
    payload = {"messages": USER_HI, "response_format": {"type": "json_schema", "json_schema": schema}}
    assert_client_answer(post_json(http_client, CHAT, payload))
