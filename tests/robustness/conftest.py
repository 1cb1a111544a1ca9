"""Hypothesis profiles and shared fixtures for the property tests in tests/robustness.

Profiles (pick one with `HYPOTHESIS_PROFILE=<name>`):

- `default`: a modest number of examples per test and a fixed seed per test (`derandomize=True`), so CI
  runs the same examples every time and the whole folder stays under about a minute on two cores.
- `soak`: many more examples and fresh randomness on every run, for hunting locally or nightly
  (`HYPOTHESIS_PROFILE=soak pytest tests/robustness`); a failure prints the blob that replays it.

Neither profile keeps an example database: the default profile replays from its seed anyway, and a
soak failure prints its reproduction blob. (Hypothesis also draws constants from the modules already
imported, so the same command gives the same examples; a different selection of tests may not.)
Tests that want more or fewer examples than the profile's say so with `examples(n)`, which scales too.

`http_client` is one app (fake backends, no network) per test module: Hypothesis runs every example of a
test inside one call, so a function-scoped fixture would not be reset between examples anyway (its
health check refuses them), and one app per module keeps the examples cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st

settings.register_profile(
    "default",
    max_examples=80,
    derandomize=True,
    database=None,
    deadline=None,  # tests that check for hangs set their own deadline
)
settings.register_profile(
    "soak",
    max_examples=3000,
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def examples(n: int) -> int:
    """`max_examples` for a test that needs more (or fewer) than the profile's default, scaled with the profile:
    a test's own `@settings(max_examples=...)` would otherwise override the soak profile."""
    return max(1, n * settings.default.max_examples // 80)


def isolated_env(mp: pytest.MonkeyPatch, home: os.PathLike[str] | str) -> None:
    """What tests/conftest.py's autouse `_isolated_env` does, for fixtures wider than one test."""
    for var in list(os.environ):
        if var.startswith("FASTVLM_HYBRID_") or var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
            mp.delenv(var, raising=False)
    mp.setenv("FASTVLM_HYBRID_HOME", str(home))
    mp.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def http_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A TestClient over the real app with fake local/cloud backends; server errors come back as 500s."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fakes import make_processor
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.server import create_app

    home = tmp_path_factory.mktemp("robustness-home")
    with pytest.MonkeyPatch.context() as mp:
        isolated_env(mp, home)
        # No audit log: each request would append (and flush) a line, which is not what these tests measure.
        proc = make_processor(load_settings(home=home, audit_enabled=False))
        app = create_app(processor=proc)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


# --------------------------------------------------------------------------- shared strategies and checks

#: Numbers at and past every limit a parser might meet: 64-bit edges, past float range, non-finite.
_EDGES: list[int | float] = [
    0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, -(10**30), 10**400, 1e308, -1e308, 5e-324, 1e-320,
    float("inf"), float("-inf"), float("nan"),
]


def _edge(index: int) -> int | float:
    return _EDGES[index]


EDGE_NUMBERS = st.integers(0, len(_EDGES) - 1).map(_edge)  # not sampled_from: keeps Hypothesis' reports short
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), EDGE_NUMBERS, st.text(max_size=24))
#: Any JSON value (NaN and infinities included: Python's json reads and writes them).
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
#: Truthy values of the wrong type, for slots that expect an object or a list: where `x or {}` style code breaks.
WRONG_TYPES = st.one_of(
    st.text(min_size=1, max_size=12), st.integers(min_value=1) | st.integers(max_value=-1), st.just(True),
    st.floats().map(lambda f: f or 0.5),
    st.lists(JSON_SCALARS, min_size=1, max_size=3), st.lists(JSON_VALUES, min_size=1, max_size=3),
)


def assert_client_answer(response: Any) -> None:
    """The HTTP property: a 2xx, or a 4xx carrying the OpenAI-shaped `{"error": {...}}` body; never a 5xx.

    A stream that already sent its 200 reports failures in-band; `internal_error` there is an untyped crash."""
    status = response.status_code
    assert 200 <= status < 300 or 400 <= status < 500, f"HTTP {status}: {response.text[:500]}"
    if status >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
        assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        assert '"internal_error"' not in response.text, response.text[:500]


def quote(value: str) -> str:
    """A Content-Disposition parameter value, quoted the way RFC 7578 senders do (backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def multipart_body(
    fields: Sequence[tuple[str, str]],
    files: Sequence[tuple[str, str, bytes]] = (),
    boundary: str = "robustness-boundary",
) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request with text `fields` and (name, filename, data) `files`."""
    delim = b"--" + boundary.encode("latin-1")
    out: list[bytes] = []
    for name, value in fields:
        out += [delim, b"\r\n", f"Content-Disposition: form-data; name={quote(name)}\r\n\r\n".encode(), value.encode(),
                b"\r\n"]
    for name, filename, data in files:
        out += [delim, b"\r\n",
                f"Content-Disposition: form-data; name={quote(name)}; filename={quote(filename)}\r\n".encode(),
                b"Content-Type: application/octet-stream\r\n\r\n", data, b"\r\n"]
    out += [delim, b"--\r\n"]
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
