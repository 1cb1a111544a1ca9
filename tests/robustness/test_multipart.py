"""The in-memory multipart/form-data parser (server/multipart.py, and `inputs._fast_form` over it).

Properties:
- any bytes as body and boundary, and any mutation of a well-formed body (bytes inserted, deleted,
  replaced, cut off; delimiters duplicated), give a list of parts or a `BadInputError`, never another
  exception, and finish well within a deadline (no quadratic scan, no loop that fails to advance);
- a well-formed body round-trips: every field and file comes back with its name, filename and bytes;
- `boundary_of` on any Content-Type text gives a non-empty boundary or a `BadInputError`;
- over HTTP, `/v1/analyze` with any such body (and uploads whose bytes start like an image or a video
  but are garbage) answers 200 or a 4xx with an `{"error": {...}}` body, never a 5xx.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.server import multipart
from fastvlm_gemini_hybrid.server.inputs import MAX_FIELDS, MAX_FILES, _fast_form

from .conftest import assert_client_answer, examples, multipart_body, quote

# A hang or a quadratic scan shows as seconds on bodies this small; a normal parse takes microseconds.
PARSE_DEADLINE_MS = 1000

LATIN1 = st.text(st.characters(max_codepoint=0xFF), max_size=80)
# Header parameter text: anything but CR/LF (a header line cannot hold them) and surrogates (not encodable).
PARAM_TEXT = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), min_size=1,
                     max_size=20)
# Boundaries a client may send in a Content-Type header: RFC 2046's characters, and a few that are not.
HTTP_BOUNDARY = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=';"'),
                        min_size=1, max_size=70)
PART = st.tuples(PARAM_TEXT, st.binary(max_size=120), st.none() | PARAM_TEXT)  # name, data, filename (None: field)
# Bytes a mutation splices in: the grammar's own tokens are what a parser trips over.
SPLICES = st.one_of(
    st.sampled_from([b"\r\n", b"\r\n\r\n", b"--", b"\r", b"\n", b'"', b";", b"\\", b":", b"=", b" \t",
                     b"Content-Disposition: form-data; name=", b'filename="', b"\xff\xfe"]),
    st.binary(min_size=1, max_size=12),
)
MEDIA_PREFIXES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"BM", b"II*\x00", b"MM\x00*",
                  b"RIFF\x00\x00\x00\x00WEBP", b"\x00\x00\x00\x18ftypisom", b"\x1aE\xdf\xa3", b"\x00" * 128 + b"DICM"]


def encode(parts: list[tuple[str, bytes, str | None]], boundary: bytes) -> bytes:
    """A well-formed body: each part's headers, a blank line, its bytes; then the closing delimiter."""
    delim = b"--" + boundary
    out: list[bytes] = []
    for name, data, filename in parts:
        disposition = f"form-data; name={quote(name)}"
        if filename is not None:
            disposition += f"; filename={quote(filename)}"
        out += [delim, b"\r\nContent-Disposition: ", disposition.encode(), b"\r\n"]
        if filename is not None:
            out.append(b"Content-Type: application/octet-stream\r\n")
        out += [b"\r\n", data, b"\r\n"]
    out += [delim, b"--\r\n"]
    return b"".join(out)


@st.composite
def mutated_bodies(draw: st.DrawFn, boundaries: st.SearchStrategy[bytes]) -> tuple[bytes, bytes]:
    """(body, boundary): a well-formed body with a few splices, deletions, cuts or repeated delimiters."""
    boundary = draw(boundaries)
    body = encode(draw(st.lists(PART, max_size=5)), boundary)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "delimiter"]))
        at = draw(st.integers(0, len(body)))
        if op == "insert":
            body = body[:at] + draw(SPLICES) + body[at:]
        elif op == "delete":
            body = body[:at] + body[at + draw(st.integers(1, 16)):]
        elif op == "replace":
            chunk = draw(SPLICES)
            body = body[:at] + chunk + body[at + len(chunk):]
        elif op == "truncate":
            body = body[:at]
        else:
            body = body[:at] + draw(st.sampled_from([b"\r\n--", b"--", b"\r\n"])) + boundary + body[at:]
    return body, boundary


def check_parse(body: bytes, boundary: bytes) -> list[multipart.Part] | None:
    """The property itself: parts (each a named form-data part) or `BadInputError` (None)."""
    try:
        parts = multipart.parse(body, boundary, max_parts=MAX_FILES + MAX_FIELDS)
    except BadInputError:
        return None
    assert len(parts) <= MAX_FILES + MAX_FIELDS
    for part in parts:
        assert isinstance(part, multipart.Part) and part.name and isinstance(part.data, bytes)
    return parts


@settings(deadline=PARSE_DEADLINE_MS, max_examples=examples(150))
@given(body=st.binary(max_size=2000), boundary=st.binary(min_size=1, max_size=70))
def test_parse_arbitrary_bytes(body: bytes, boundary: bytes) -> None:
    check_parse(body, boundary)


@settings(deadline=PARSE_DEADLINE_MS, max_examples=examples(150))
@given(case=mutated_bodies(st.binary(min_size=1, max_size=40)))
def test_parse_mutated_bodies(case: tuple[bytes, bytes]) -> None:
    body, boundary = case
    parts = check_parse(body, boundary)
    event("rejected" if parts is None else f"{len(parts)} parts")


@settings(deadline=PARSE_DEADLINE_MS, max_examples=examples(150))
@given(parts=st.lists(PART, max_size=6), boundary=HTTP_BOUNDARY.map(str.encode))
def test_well_formed_body_round_trips(parts: list[tuple[str, bytes, str | None]], boundary: bytes) -> None:
    assume(all(b"\r\n--" + boundary not in data for _name, data, _filename in parts))
    got = multipart.parse(encode(parts, boundary), boundary)
    assert [(p.name, p.data, p.filename) for p in got] == parts
    assert [p.content_type for p in got] == [None if f is None else "application/octet-stream" for _, _, f in parts]


@settings(deadline=PARSE_DEADLINE_MS, max_examples=examples(150))
@given(ctype=st.one_of(
    st.text(st.characters(max_codepoint=0xFF), max_size=120),  # a header reaches Python as latin-1 text
    st.builds(lambda b, extra: f"multipart/form-data; {extra}boundary={b}", LATIN1.map(lambda t: t * 3),
              st.sampled_from(["", "charset=utf-8; ", "boundary=; ", 'x="a;b"; '])),
    st.builds(lambda b: f'multipart/form-data; boundary="{b}"', LATIN1),
))
def test_boundary_of_any_content_type(ctype: str) -> None:
    try:
        boundary = multipart.boundary_of(ctype)
    except BadInputError:
        return
    assert isinstance(boundary, bytes) and 0 < len(boundary) <= 200


@settings(deadline=PARSE_DEADLINE_MS, max_examples=examples(150))
@given(case=mutated_bodies(HTTP_BOUNDARY.map(str.encode)))
def test_fast_form_gives_items_or_bad_input(case: tuple[bytes, bytes]) -> None:
    body, boundary = case
    try:
        items = _fast_form(body, f"multipart/form-data; boundary={boundary.decode()}")
    except BadInputError:
        return
    for name, value in items:
        assert isinstance(name, str) and (isinstance(value, str) or isinstance(value[1], bytes))


@settings(deadline=10_000, max_examples=examples(100))
@given(case=mutated_bodies(HTTP_BOUNDARY.map(str.encode)), header_boundary=st.none() | HTTP_BOUNDARY,
       prompt=st.booleans())
def test_analyze_answers_any_multipart_body(http_client: Any, case: tuple[bytes, bytes], header_boundary: str | None,
                                            prompt: bool) -> None:
    body, boundary = case
    if prompt:  # most bodies then get past "the prompt is empty" to the other checks
        body = encode([("prompt", b"what is this?", None)], boundary)[: -len(boundary) - 6] + body
    ctype = f"multipart/form-data; boundary={header_boundary or boundary.decode()}"
    response = http_client.post("/v1/analyze", content=body, headers={"content-type": ctype})
    event(f"HTTP {response.status_code}")
    assert_client_answer(response)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")  # PIL warns about the corrupt headers it is fed here
@settings(deadline=10_000, max_examples=examples(100))
@given(prefix=st.sampled_from(MEDIA_PREFIXES), tail=st.binary(max_size=400), filename=PARAM_TEXT,
       endpoint=st.sampled_from(["/v1/analyze", "/v1/route"]))
def test_garbage_media_uploads_are_client_errors(http_client: Any, prefix: bytes, tail: bytes, filename: str,
                                                 endpoint: str) -> None:
    body, ctype = multipart_body([("prompt", "what is this?")], [("file", filename, prefix + tail)])
    response = http_client.post(endpoint, content=body, headers={"content-type": ctype})
    event(f"HTTP {response.status_code}")
    assert_client_answer(response)
