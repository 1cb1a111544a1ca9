"""Video and surveillance jobs over HTTP, the video-length limit, and what happens to uploads.

The clips come from tests/video/synth.py (a walker crossing into a zone at a computed time), so the
expected events are derived, not typed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")

# tests/ is on sys.path (rootdir import mode), so tests/video is the package `video`
from synth_media import picture
from video import synth

from .conftest import API_COLOR, API_SIZE, assert_error


@pytest.fixture(scope="module")
def walker_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clips") / "walker.mp4"
    return synth.make_clip(path, 12.0, synth.walker()).read_bytes()


def run_job(client: Any, data: dict[str, str], clip: bytes, name: str = "walker.mp4") -> tuple[str, list[dict]]:
    resp = client.post("/v1/jobs", files=[("file", (name, clip, "video/mp4"))], data=data)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    return job_id, events


def test_video_job_streams_frame_answers_then_a_summary(client: Any, walker_clip: bytes, spool: Path) -> None:
    job_id, events = run_job(client, {"kind": "video", "prompt": "What happens?", "mode": "local-only",
                                      "every_s": "2"}, walker_clip)
    assert [e["state"] for e in events if e["type"] == "state"] == ["running", "succeeded"]
    work = [e for e in events if e["type"] != "state"]
    frames, summary = work[:-1], work[-1]
    # one sample every 2 s of a 12 s clip, each answered by the local fake, progress counting up
    assert 5 <= len(frames) <= 7
    assert [e["done"] for e in frames] == list(range(1, len(frames) + 1))
    assert all(e["response"] == "local answer" for e in frames)
    assert {e["type"] for e in frames} == {"frame"}
    times = [e["t_s"] for e in frames]
    assert times == sorted(times) and times[-1] - times[0] >= 8.0
    assert summary["type"] == "summary" and summary["source"] != "clip"  # local-only: no whole-clip cloud call
    assert client.processor.backend("gemini").calls == []
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "succeeded" and job["results"][-1]["type"] == "summary"
    assert list(spool.iterdir()) == []  # the spooled clip is gone
    assert not (client.processor.settings.home / "uploads").exists()


def test_surveillance_job_reports_the_zone_entry_at_the_right_time(client: Any, walker_clip: bytes) -> None:
    _job_id, events = run_job(client, {"kind": "surveillance", "zones": synth.ZONES_YAML}, walker_clip)
    assert [e["state"] for e in events if e["type"] == "state"] == ["running", "succeeded"]
    found = [e["event"] for e in events if e["type"] == "event"]
    enters = [e for e in found if e["type"] == "zone_enter"]
    assert len(enters) == 1 and enters[0]["zone"] == "loading-dock" and enters[0]["priority"] == "high"
    assert abs(enters[0]["start_s"] - synth.crossing_time(synth.ZONE_X)) <= 0.5
    assert {"loitering", "zone_exit"} <= {e["type"] for e in found}
    assert all(e["done"] > 0 for e in events if e["type"] == "event")


def test_bad_job_input_is_a_400_before_any_work(client: Any, walker_clip: bytes) -> None:
    clip = [("file", ("walker.mp4", walker_clip, "video/mp4"))]
    assert_error(client.post("/v1/jobs", files=clip, data={"kind": "surveillance"}), 400, "bad_input")
    err = assert_error(client.post("/v1/jobs", files=clip, data={"kind": "surveillance", "zones": "zones: [oops"}),
                       400, "bad_input")
    assert "zones" in err["message"]
    still = [("file", ("still.png", picture(API_COLOR, API_SIZE), "image/png"))]
    assert_error(client.post("/v1/jobs", files=still, data={"kind": "video", "prompt": "x"}), 400, "bad_input")
    two = [*clip, ("file", ("again.mp4", walker_clip, "video/mp4"))]
    assert_error(client.post("/v1/jobs", files=two, data={"kind": "video", "prompt": "x"}), 400, "bad_input")
    assert sum(client.app.state.jobs.counts().values()) == 0  # no job was created


def test_video_longer_than_the_limit_is_a_413(app_factory: Callable[..., Any], walker_clip: bytes) -> None:
    from fastapi.testclient import TestClient

    app, proc = app_factory(max_video_s=5.0)
    clip = [("file", ("walker.mp4", walker_clip, "video/mp4"))]
    with TestClient(app) as c:
        err = assert_error(c.post("/v1/jobs", files=clip, data={"kind": "video", "prompt": "x"}), 413,
                           "media_too_large")
        assert "12.0 s" in err["message"] and "5 s" in err["message"]
        assert_error(c.post("/v1/analyze", files=clip, data={"prompt": "x", "mode": "local-only"}), 413,
                     "media_too_large")
    assert proc.backend("fastvlm").calls == []


def test_keep_uploads_keeps_the_clip_under_home(app_factory: Callable[..., Any], walker_clip: bytes,
                                                spool: Path) -> None:
    from fastapi.testclient import TestClient

    app, proc = app_factory(keep_uploads=True)
    with TestClient(app) as c:
        run_job(c, {"kind": "surveillance", "zones": synth.ZONES_YAML}, walker_clip)
    kept = list((proc.settings.home / "uploads").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == walker_clip
    assert list(spool.iterdir()) == []
