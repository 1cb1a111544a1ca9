"""`/v1/analyze` and `/v1/route` fields (server/inputs.py `options_from`, `request_from`; server/media.py
`parse_number`, `parse_bool`) with arbitrary values.

Property: whatever string a form field holds (multipart, parsed in memory, or url-encoded, parsed by
Starlette) and whatever JSON value a JSON body's field holds, the server answers 200 or a 4xx with an
`{"error": {...}}` body, never a 5xx. Directly: `parse_number`/`parse_bool` return a value (or None)
or raise `BadInputError`; `options_from`/`request_from` return options/a `Request` or raise
`BadInputError` — never TypeError, OverflowError, AttributeError and the like.

The tests at the end pin the crashes these properties found (out-of-range numbers, a non-string
`system`), all fixed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.server.inputs import options_from, request_from
from fastvlm_gemini_hybrid.server.media import parse_bool, parse_number
from fastvlm_gemini_hybrid.types import GenerationOptions, Request

from .conftest import EDGE_NUMBERS, JSON_VALUES, WRONG_TYPES, assert_client_answer, examples, multipart_body

ENDPOINTS = st.sampled_from(["/v1/analyze", "/v1/route"])
NUMBER_TEXT = st.one_of(
    st.from_regex(r"\A[ +-]?\d{1,6}(\.\d*)?([eE][+-]?\d{1,4})?\s*\Z"),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-0", "0x10", "1_000", "١٢", "１２",
                     "9" * 5000]),
)
# For each field: values the server accepts, values near them, and any text at all.
FIELD_VALUES: dict[str, st.SearchStrategy[str]] = {
    "max_tokens": NUMBER_TEXT,
    "temperature": NUMBER_TEXT,
    "max_latency_ms": NUMBER_TEXT,
    "system": st.text(max_size=40),
    "mode": st.sampled_from(["auto", "local-only", "LOCAL_ONLY", "cloud-only", "parallel", "fallback", "nope"]),
    "domain": st.sampled_from(["medical", "general", "legal", "nope", " Medical "]),
    "latency": st.sampled_from(["realtime", "low-latency", "normal", "batch", "nope"]),
    "model": st.sampled_from(["fastvlm-0.5b", "gemini-2.5-pro", "", "x" * 300]),
    "sensitive": st.sampled_from(["true", "false", "1", "0", "on", "off", "yes", "no", "maybe", " TRUE "]),
    "stream": st.sampled_from(["true", "false", "", "2"]),
    "all": st.sampled_from(["true", "false", "", "sí"]),
}
FORM_FIELDS = st.builds(
    lambda prompt, rest: {"prompt": prompt, **rest},
    st.one_of(st.text(min_size=1, max_size=80), st.sampled_from(["", " ", "\t\n"])),
    st.fixed_dictionaries({}, optional={k: v | st.text(max_size=30) for k, v in FIELD_VALUES.items()}),
)
# JSON bodies: a request the server accepts with one or two fields replaced by any JSON value (most
# examples), or every field drawn from anything at all.
VALID_JSON_FIELDS = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=40).filter(str.strip)},
    optional={"max_tokens": st.integers(1, 4096), "temperature": st.floats(0, 2),
              "max_latency_ms": st.integers(1, 10**6),
              "system": st.text(max_size=20), "mode": st.sampled_from(["auto", "local-only", "fallback"]),
              "domain": st.sampled_from(["general", "medical"]), "latency": st.sampled_from(["normal", "batch"]),
              "model": st.text(max_size=10), "sensitive": st.booleans(), "stream": st.booleans(), "all": st.booleans(),
              "attachments": st.just([])},
)
JUNK = st.one_of(WRONG_TYPES, JSON_VALUES, EDGE_NUMBERS, NUMBER_TEXT)
CORRUPTED_JSON_FIELDS = st.builds(
    lambda fields, edits: {**fields, **dict(edits)}, VALID_JSON_FIELDS,
    st.lists(st.tuples(st.sampled_from(["prompt", "attachments", *FIELD_VALUES]), JUNK), min_size=1, max_size=2),
)
WILD_JSON_FIELDS = st.builds(
    lambda prompt, rest: {"prompt": prompt, **rest},
    st.one_of(st.text(min_size=1, max_size=40), JSON_VALUES),
    st.fixed_dictionaries({}, optional={
        **{k: v | JSON_VALUES | WRONG_TYPES for k, v in FIELD_VALUES.items()},
        "attachments": st.lists(st.sampled_from(["data:image/png;base64,", "https://example.invalid/a.png", "nope"])
                                | st.text(max_size=20), max_size=2) | JSON_VALUES,
        "max_tokens": NUMBER_TEXT | st.integers() | EDGE_NUMBERS | JSON_VALUES,
        "max_latency_ms": NUMBER_TEXT | st.integers() | EDGE_NUMBERS | JSON_VALUES,
        "temperature": NUMBER_TEXT | st.floats() | EDGE_NUMBERS | JSON_VALUES,
    }),
)
JSON_FIELDS = st.one_of(CORRUPTED_JSON_FIELDS, CORRUPTED_JSON_FIELDS, VALID_JSON_FIELDS, WILD_JSON_FIELDS)


@settings(deadline=10_000, max_examples=examples(120))
@given(fields=FORM_FIELDS, endpoint=ENDPOINTS, multipart=st.booleans())
def test_form_fields_answer_200_or_4xx(http_client: Any, fields: dict[str, str], endpoint: str,
                                       multipart: bool) -> None:
    if multipart:  # the in-memory parser (inputs._fast_form)
        body, ctype = multipart_body(list(fields.items()))
        response = http_client.post(endpoint, content=body, headers={"content-type": ctype})
    else:  # url-encoded: Starlette's parser (inputs._streamed_form)
        response = http_client.post(endpoint, data=fields)
    event(f"HTTP {response.status_code}")
    assert_client_answer(response)


@settings(deadline=10_000, max_examples=examples(150))
@given(fields=JSON_FIELDS, endpoint=ENDPOINTS)
def test_json_fields_answer_200_or_4xx(http_client: Any, fields: dict[str, Any], endpoint: str) -> None:
    response = http_client.post(endpoint, content=json.dumps(fields).encode(),
                                headers={"content-type": "application/json"})
    event(f"HTTP {response.status_code}")
    assert_client_answer(response)


@settings(max_examples=examples(300))
@given(value=st.one_of(NUMBER_TEXT, st.text(max_size=20), JSON_VALUES, st.integers(), st.floats(), EDGE_NUMBERS),
       kind=st.sampled_from([int, float]))
def test_parse_number_returns_number_or_bad_input(value: Any, kind: type) -> None:
    try:
        number = parse_number(value, "field", kind)
    except BadInputError:
        return
    assert number is None or isinstance(number, kind)


@settings(max_examples=examples(300))
@given(value=st.one_of(FIELD_VALUES["sensitive"], st.text(max_size=20), JSON_VALUES))
def test_parse_bool_returns_bool_or_bad_input(value: Any) -> None:
    try:
        flag = parse_bool(value, "field")
    except BadInputError:
        return
    assert flag is None or isinstance(flag, bool)


@settings(max_examples=examples(300))
@given(fields=FORM_FIELDS | JSON_FIELDS)
def test_request_from_returns_request_or_bad_input(fields: dict[str, Any]) -> None:
    try:
        options = options_from(fields)
        request = request_from(fields, [])
    except BadInputError:
        return
    assert isinstance(options, GenerationOptions) and isinstance(request, Request)
    assert options.system is None or isinstance(options.system, str), options.system


# --------------------------------------------------------------------------- found by the properties above (fixed)


@pytest.mark.parametrize(("value", "kind"), [(float("inf"), int), (float("-inf"), int), (10**400, float)])
def test_parse_number_out_of_range(value: Any, kind: type) -> None:
    with pytest.raises(BadInputError):
        parse_number(value, "field", kind)


@pytest.mark.parametrize(("field", "number"), [("max_tokens", "1e400"), ("max_latency_ms", "-1e400"),
                                               ("temperature", "1" + "0" * 400)])
@pytest.mark.parametrize("endpoint", ["/v1/analyze", "/v1/route"])
def test_json_number_out_of_range(http_client: Any, field: str, number: str, endpoint: str) -> None:
    body = f'{{"prompt": "hi", "{field}": {number}}}'.encode()
    assert_client_answer(http_client.post(endpoint, content=body, headers={"content-type": "application/json"}))


@pytest.mark.parametrize("system", [["x"], 5, True, {"a": 1}])
@pytest.mark.parametrize("endpoint", ["/v1/analyze", "/v1/route"])
def test_json_system_not_a_string(http_client: Any, system: Any, endpoint: str) -> None:
    body = json.dumps({"prompt": "hi", "system": system}).encode()
    assert_client_answer(http_client.post(endpoint, content=body, headers={"content-type": "application/json"}))
