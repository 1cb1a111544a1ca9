"""Live sources: a loopback MPEG-TS stream over TCP that the test starts, drops and stops."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fastvlm_gemini_hybrid.agents.surveillance import SurveillanceAgent
from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.video.decode import VideoSource
from fastvlm_gemini_hybrid.video.zones import parse_zones

from . import synth
from .loopback import LoopbackStream


@pytest.fixture(scope="module")
def ts_payload() -> bytes:
    bg, rng, walk = synth.background(), np.random.default_rng(0), synth.walker(enter_t=0.5, speed=80.0)
    return synth.encode((synth.render(i / 10, walk, bg, rng) for i in range(60)), fmt="mpegts")


def test_live_stream_that_drops_reconnects_and_keeps_what_was_seen(ts_payload: bytes) -> None:
    server = LoopbackStream(ts_payload, 6.0, drop_after=0.5, max_connections=2, speed=2.0)
    try:
        agent = SurveillanceAgent(parse_zones(yaml.safe_load(synth.ZONES_YAML)))
        start = time.monotonic()
        with VideoSource(server.url, reconnect_attempts=2, backoff_s=0.1, open_timeout_s=3) as src:
            events = list(agent.run(src))
            stats = src.stats
        assert time.monotonic() - start < 20
    finally:
        server.close()
    assert server.connections == 2
    assert stats.reconnects == 1
    assert any("dropped" in e for e in stats.errors)
    assert stats.decoded >= 60  # about half a stream, then a whole one
    assert agent.frames + stats.dropped == stats.decoded
    assert any(e.type == "zone_enter" for e in events), [e.to_dict() for e in events]


def test_newest_frame_wins_when_the_consumer_is_slow(ts_payload: bytes) -> None:
    server = LoopbackStream(ts_payload, 6.0, max_connections=1, speed=4.0)
    try:
        with VideoSource(server.url, reconnect_attempts=0, queue_size=1, open_timeout_s=3) as src:
            seen = []
            for frame in src:
                seen.append(frame.t_s)
                time.sleep(0.1)  # a consumer four times slower than the stream
    finally:
        server.close()
    assert src.stats.dropped > 10
    assert len(seen) + src.stats.dropped == src.stats.decoded
    assert seen == sorted(seen)


def test_a_stream_that_never_connects_is_one_clear_error() -> None:
    with _Closed() as port:
        start = time.monotonic()
        with pytest.raises(BadInputError) as info:
            VideoSource(f"tcp://127.0.0.1:{port}", reconnect_attempts=2, backoff_s=0.05, open_timeout_s=1)
    assert "cannot open video" in str(info.value) and "gave up after 3 attempts" in str(info.value)
    assert time.monotonic() - start < 10


class _Closed:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *_exc: object) -> None:
        return None


def test_truncated_file_keeps_frames_before_the_cut(tmp_path: Path, ts_payload: bytes) -> None:
    cut = tmp_path / "cut.ts"
    cut.write_bytes(ts_payload[: len(ts_payload) // 2])
    with VideoSource(cut) as src:
        frames = list(src)
    assert 10 < len(frames) < 60
