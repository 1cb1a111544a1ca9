"""A small in-memory multipart/form-data parser for bodies already read (and size-capped).

Why not Starlette's parser everywhere: `python-multipart` drives a Python callback per header byte
run and per part, which profiled at ~15% of the server's CPU on a cached `/v1/analyze` with a small
image. A typical request (a prompt, a few fields, one image of a few hundred KB) is parsed here with
a handful of `bytes.find` calls instead. Large bodies still go through Starlette's streaming parser
(see `inputs.FAST_BODY_LIMIT`), which spools files to disk rather than holding them twice.

The grammar is RFC 7578 (multipart/form-data over RFC 2046): parts separated by `--boundary`,
each with CRLF-separated headers, a blank line, then the content up to `CRLF--boundary`; the last
delimiter is `--boundary--`. Every malformation raises `BadInputError` (a 400), never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInputError


@dataclass(frozen=True)
class Part:
    """One form part: a field (`filename is None`) or a file upload."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def is_file(self) -> bool:
        return self.filename is not None


def boundary_of(content_type: str) -> bytes:
    """The `boundary` parameter of a multipart Content-Type header (400 when absent or too long)."""
    _kind, params = _split_header(content_type)
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise BadInputError("malformed form data: missing or invalid multipart boundary")
    return boundary.encode("latin-1")


def parse(body: bytes, boundary: bytes, *, max_parts: int = 80) -> list[Part]:
    """Split `body` into parts. `max_parts` bounds the work a hostile body can cause."""
    delim = b"--" + boundary
    if body.startswith(delim):
        pos = len(delim)
    else:  # a preamble before the first delimiter is allowed and ignored
        start = body.find(b"\r\n" + delim)
        if start < 0:
            raise BadInputError("malformed form data: no multipart boundary in the body")
        pos = start + 2 + len(delim)
    parts: list[Part] = []
    sep = b"\r\n" + delim
    while True:
        if body.startswith(b"--", pos):
            return parts  # the closing delimiter; an epilogue after it is ignored
        # Transport padding (spaces/tabs) may follow a delimiter before its CRLF.
        while pos < len(body) and body[pos] in b" \t":
            pos += 1
        if not body.startswith(b"\r\n", pos):
            raise BadInputError("malformed form data: a boundary is not followed by a line break")
        pos += 2
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise BadInputError("malformed form data: a part's headers never end")
        headers = body[pos:head_end]
        content_start = head_end + 4
        content_end = body.find(sep, content_start)
        if content_end < 0:
            raise BadInputError("malformed form data: the body ends before the closing boundary")
        if len(parts) >= max_parts:
            raise BadInputError(f"malformed form data: more than {max_parts} parts")
        parts.append(_part(headers, body[content_start:content_end]))
        pos = content_end + len(sep)


def _part(raw_headers: bytes, data: bytes) -> Part:
    disposition: str | None = None
    content_type: str | None = None
    for line in raw_headers.split(b"\r\n"):
        if not line:
            continue
        key, colon, value = line.partition(b":")
        if not colon:
            raise BadInputError("malformed form data: a part header has no ':'")
        name = key.strip().lower()
        text = value.strip().decode("utf-8", "replace")
        if name == b"content-disposition":
            disposition = text
        elif name == b"content-type":
            content_type = text
    if disposition is None:
        raise BadInputError("malformed form data: a part has no Content-Disposition header")
    kind, params = _split_header(disposition)
    if kind.lower() != "form-data" or not params.get("name"):
        raise BadInputError("malformed form data: a part is not form-data with a name")
    return Part(name=params["name"], data=data, filename=params.get("filename"), content_type=content_type)


def _split_header(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="a"; filename="b.png"` -> ("form-data", {"name": "a", "filename": "b.png"}).

    Quoted strings may contain `;` and backslash escapes; unquoted values end at `;`.
    """
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            out: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(rest[i])
                i += 1
            i += 1  # the closing quote
            params[key] = "".join(out)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return kind.strip(), params
