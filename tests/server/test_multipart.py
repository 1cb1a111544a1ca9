"""The in-memory multipart parser (small bodies) against the streaming one (large bodies), and the
validated-media memo: same answers, one clear 400 for every malformed body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.server import inputs, media, multipart
from synth_media import picture

from .conftest import API_COLOR, API_SIZE, assert_error, files


def encoded(data: dict[str, str], upload: dict[str, Any]) -> tuple[bytes, str]:
    """A multipart body exactly as httpx (what most clients use) encodes it."""
    req = httpx.Request("POST", "http://x/", data=data, files=upload)
    return req.read(), req.headers["content-type"]


def test_parser_reads_what_httpx_writes() -> None:
    image = picture(API_COLOR, API_SIZE)
    body, ctype = encoded({"prompt": "Qu'est-ce que c'est ? ünïcode; \"quoted\"", "mode": "local-only"},
                          {"file": ('we"ird; name.png', image, "image/png")})
    parts = multipart.parse(body, multipart.boundary_of(ctype))
    fields = {p.name: p.data.decode() for p in parts if not p.is_file}
    uploads = [p for p in parts if p.is_file]
    assert fields == {"prompt": "Qu'est-ce que c'est ? ünïcode; \"quoted\"", "mode": "local-only"}
    assert len(uploads) == 1 and uploads[0].data == image and uploads[0].content_type == "image/png"
    assert uploads[0].filename is not None and uploads[0].filename.endswith(".png")


@pytest.mark.parametrize(
    "body",
    [
        b"no boundary here at all",
        b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue without an end",
        b"--b\r\nContent-Disposition: form-data; name=\"a\"",  # headers never end
        b"--b\r\nX-Other: 1\r\n\r\nv\r\n--b--\r\n",  # no Content-Disposition
        b"--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--b--\r\n",  # not form-data
        b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--\r\n",  # no name
        b"--bXX\r\n",  # a boundary not followed by a line break
    ],
)
def test_malformed_bodies_raise_one_bad_input_error(body: bytes) -> None:
    with pytest.raises(BadInputError, match="malformed form data"):
        multipart.parse(body, b"b")


def test_part_count_is_bounded() -> None:
    body = b"".join(b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n' for _ in range(10)) + b"--b--\r\n"
    assert len(multipart.parse(body, b"b", max_parts=10)) == 10
    with pytest.raises(BadInputError, match="more than 9 parts"):
        multipart.parse(body, b"b", max_parts=9)


def test_missing_boundary_parameter() -> None:
    with pytest.raises(BadInputError, match="boundary"):
        multipart.boundary_of("multipart/form-data")
    assert multipart.boundary_of('multipart/form-data; boundary="a b;c"') == b"a b;c"


def test_small_and_large_bodies_give_the_same_answer(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path (in memory) and the streamed path (Starlette) are interchangeable."""
    data = {"prompt": "Describe", "mode": "local-only"}
    fast = client.post("/v1/analyze", files=files(), data=data)
    monkeypatch.setattr(inputs, "FAST_BODY_LIMIT", 0)  # every body now takes the streamed path
    streamed = client.post("/v1/analyze", files=files(), data=data)
    assert fast.status_code == streamed.status_code == 200
    a, b = fast.json(), streamed.json()
    assert (a["response"], a["backend"], a["route"]) == (b["response"], b["backend"], b["route"])
    assert b["cached"] is True  # same image, same prompt: the digest is the same either way
    calls = client.processor.backend("fastvlm").calls
    assert len(calls) == 1 and calls[0].prompt == "Describe"


def test_malformed_upload_is_a_400_not_a_traceback(client: Any) -> None:
    headers = {"content-type": "multipart/form-data; boundary=zz"}
    resp = client.post("/v1/analyze", content=b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--\r\n",
                       headers=headers)
    assert_error(resp, 400, "bad_input")
    bad_utf8 = b'--zz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe\r\n--zz--\r\n'
    assert_error(client.post("/v1/analyze", content=bad_utf8, headers=headers), 400, "bad_input")
    assert client.processor.backend("fastvlm").calls == []


def test_too_many_files_is_refused(client: Any) -> None:
    many = [("file", (f"{i}.png", picture(API_COLOR, API_SIZE), "image/png")) for i in range(inputs.MAX_FILES + 1)]
    assert_error(client.post("/v1/analyze", files=many, data={"prompt": "x"}), 400, "bad_input")


def test_an_image_is_decoded_once_then_remembered(
    app_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    checks: list[str] = []
    real = media.check_limits
    monkeypatch.setattr(media, "check_limits", lambda att, settings: (checks.append(att.sha256), real(att, settings)))
    app, _proc = app_factory(max_image_pixels=100 * 100)
    with TestClient(app) as c:
        for _ in range(3):
            assert c.post("/v1/analyze", files=files(), data={"prompt": "x"}).status_code == 200
        assert len(checks) == 1
        wide = picture(API_COLOR, (200, 200))  # a refused image is not remembered: refused every time
        for _ in range(2):
            assert_error(c.post("/v1/analyze", files=files(wide), data={"prompt": "x"}), 413, "media_too_large")
        assert len(checks) == 3


def test_checked_media_memo_is_bounded() -> None:
    memo = media.CheckedMedia(size=3)
    for digest in "abcd":
        memo.add(digest)
    assert len(memo) == 3 and "a" not in memo and "d" in memo
    assert "b" in memo  # touching "b" keeps it: "c" is the oldest now
    memo.add("e")
    assert "c" not in memo and "b" in memo
