"""Server fixtures: apps over FunctionBackend processors, a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.server import create_app
from synth_media import picture

pytest.importorskip("fastapi")

#: The picture the API tests upload unless they say otherwise.
API_SIZE, API_COLOR = (32, 24), (10, 200, 30)


def files(data: bytes | None = None, name: str = "photo.png") -> dict[str, Any]:
    """A multipart `files=` argument of one upload (the API tests' picture unless `data` is given)."""
    return {"file": (name, data if data is not None else picture(API_COLOR, API_SIZE), "application/octet-stream")}


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """`resp` is the API's error envelope with this status and code; returns the error object."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["message"] and err["type"]
    return err


@pytest.fixture
def server_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return load_settings(home=tmp_path / "home", **overrides)

    return make


@pytest.fixture
def app_factory(server_settings: Callable[..., Settings]) -> Callable[..., tuple[Any, HybridVLMProcessor]]:
    """(app, processor) with fake backends; keyword arguments go to Settings, `local`/`cloud` to backends."""

    def make(local: Any = "local answer", cloud: Any = "cloud answer", backend_kw: dict[str, Any] | None = None,
             **settings: Any) -> tuple[Any, HybridVLMProcessor]:
        proc = make_processor(server_settings(**settings), local, cloud, **(backend_kw or {}))
        return create_app(processor=proc), proc

    return make


@pytest.fixture
def client(app_factory: Callable[..., Any]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    app, proc = app_factory()
    with TestClient(app) as c:
        c.processor = proc  # type: ignore[attr-defined]
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn in a thread on 127.0.0.1, stopped at teardown."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app_factory: Callable[..., Any]) -> Callable[..., LiveServer]:
    servers: list[LiveServer] = []

    def start(app: Any = None, **kw: Any) -> LiveServer:
        if app is None:
            app, _proc = app_factory(**kw)
        srv = LiveServer(app).__enter__()
        servers.append(srv)
        return srv

    yield start  # type: ignore[misc]
    for srv in servers:
        srv.__exit__()


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The standard temp folder, pointed at an empty directory so a test can see what a run or a job leaves."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(scope="module")
def walker_ts() -> bytes:
    """Six seconds (60 frames) of tests/video/synth.py's walker as MPEG-TS: it appears at 0.5 s and crosses into
    synth.ZONES_YAML's loading dock at about 2.6 s. What tests/video/loopback.py serves to the stream tests."""
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    import numpy as np

    from video import synth

    bg, rng, walk = synth.background(), np.random.default_rng(0), synth.walker(enter_t=0.5, speed=80.0)
    return synth.encode((synth.render(i / 10, walk, bg, rng) for i in range(60)), fmt="mpegts")


@pytest.fixture
def loopback_stream(walker_ts: bytes) -> Iterator[Callable[..., Any]]:
    """Start a `LoopbackStream` of `walker_ts` on 127.0.0.1 (`tcp://127.0.0.1:PORT`); stopped at teardown."""
    from video.loopback import LoopbackStream

    started: list[LoopbackStream] = []

    def start(speed: float = 2.0, max_connections: int = 1) -> LoopbackStream:
        started.append(LoopbackStream(walker_ts, 6.0, speed=speed, max_connections=max_connections))
        return started[-1]

    yield start
    for stream in started:
        stream.close()
