"""Jobs across Ray Serve replicas: one replica runs a job, the other answers for it and cancels it.

Two replicas behind Ray's proxy on 127.0.0.1, with fake backends that take 1 s per image (so a
16-image batch job runs long enough to be looked at). Every response names its replica
(`X-Hybrid-Replica`), so the test checks that the replica which did NOT accept the job answered
`GET /v1/jobs/{id}` and its SSE events with what the running replica wrote, and that a DELETE served
by the other replica stopped the work. At the end the job store's actor is killed: the next job
request answers 503 at once instead of hanging, and later ones reach a new, empty store.

Slow (a local Ray cluster and Serve start: ~30-40 s on a 2-core box), so marked `slow`; skipped
without the `ray` extra. Every wait is bounded; teardown shuts Serve and Ray down.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import fakes
from fakes import make_processor
from fastvlm_gemini_hybrid.config import Settings, load_settings
from synth_media import picture

from .conftest import free_port

pytestmark = pytest.mark.slow

IMAGES = 16  # the most one request may upload
FORM = {"kind": "batch", "prompt": "Caption", "mode": "local-only", "concurrency": "1", "batch_size": "1"}
REPLICA = "x-hybrid-replica"


def slow_processor(settings: Settings) -> Any:
    """Runs inside each replica: one second per image, so a job is still running while the test looks."""
    return make_processor(settings, "local answer", "cloud answer", local_kw={"delay_s": 1.0})


@pytest.fixture
def serve_url(tmp_path: Path) -> Iterator[str]:
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    from ray import cloudpickle

    from fastvlm_gemini_hybrid.server.ray_serve import build_deployment

    # The fake factory lives here and in tests/fakes.py, which replicas cannot import: ship by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(fakes)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        port = free_port()
        settings = load_settings(home=tmp_path / "home", cache_enabled=False, audit_enabled=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_deployment(settings, 2, processor_factory=slow_processor, num_cpus=0.5),
                  name="jobs-test", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(fakes)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def submit(client: httpx.Client, tag: int) -> tuple[str, str]:
    """(job id, the replica that accepted it and runs it)."""
    files = [("file", (f"p{i}.png", picture((i, tag, 10), (16, 16)), "image/png")) for i in range(IMAGES)]
    resp = client.post("/v1/jobs", files=files, data=FORM)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"], resp.headers[REPLICA]


def first_events(client: httpx.Client, job_id: str, n: int, last_id: int | None = None) -> tuple[str, list[Any]]:
    """(replica, the first `n` (id, event) pairs of the job's SSE stream); the stream is then closed."""
    headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
    out: list[tuple[int, dict[str, Any]]] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as stream:
        assert stream.status_code == 200
        event_id = -1
        for line in stream.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                out.append((event_id, json.loads(line[6:])))
                if len(out) == n:
                    break
        return stream.headers[REPLICA], out


def stream_on(client: httpx.Client, job_id: str, replica: str) -> httpx.Response:
    """An open SSE stream of the job served by `replica` (streams that reach the other one are closed)."""
    for _ in range(30):
        resp = client.send(client.build_request("GET", f"/v1/jobs/{job_id}/events"), stream=True)
        if resp.headers[REPLICA] == replica:
            return resp
        resp.close()
    raise AssertionError(f"no stream reached replica {replica} in 30 tries")


def until(check: Any, what: str, within_s: float = 20.0) -> Any:
    deadline = time.monotonic() + within_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)
    return found


def test_the_replica_that_did_not_run_a_job_answers_for_it_and_cancels_it(serve_url: str) -> None:
    ray = pytest.importorskip("ray")
    with httpx.Client(base_url=serve_url, timeout=30) as client:
        job_id, runner = submit(client, 0)

        # GET, many times: both replicas answer, each with what the running replica wrote
        answers: dict[str, dict[str, Any]] = {}

        def both_answered() -> bool:
            resp = client.get(f"/v1/jobs/{job_id}")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["id"] == job_id and body["state"] in ("queued", "running")
            if body["progress"]["done"] >= 1:
                answers[resp.headers[REPLICA]] = body
            return len(answers) == 2

        until(both_answered, "both replicas to answer GET with progress")
        other = next(r for r in answers if r != runner)
        seen = answers[other]
        assert seen["progress"]["total"] == IMAGES and len(seen["results"]) == seen["progress"]["done"]
        assert seen["results"][0]["ok"] and seen["results"][0]["response"] == "local answer"

        # the SSE stream from either replica: the same events under the same ids, and Last-Event-ID replay
        streams: dict[str, list[Any]] = {}

        def both_streamed() -> bool:
            replica, events = first_events(client, job_id, 2)
            streams[replica] = events
            return len(streams) == 2

        until(both_streamed, "both replicas to serve the job's events")
        assert streams[runner] == streams[other]
        assert [i for i, _ in streams[other]] == [0, 1]
        assert streams[other][0][1] == {"type": "state", "state": "running"}
        assert streams[other][1][1]["type"] == "result" and streams[other][1][1]["progress"]["total"] == IMAGES
        replayed = until(lambda: (r := first_events(client, job_id, 1, last_id=0))[0] == other and r,
                         "the other replica to replay from Last-Event-ID")
        assert replayed[1] == [streams[runner][1]]

        # DELETE served by the replica that is not running the job. Ray's proxy sends a request to the
        # replica with fewer requests in flight, so hold a stream open on the runner; retried with a new
        # job in the rare case the DELETE still reaches the runner.
        cancelled_by_other = None
        for attempt in range(4):
            if attempt:
                job_id, runner = submit(client, attempt)
                url = f"/v1/jobs/{job_id}"
                until(lambda url=url: client.get(url).json()["progress"]["done"] >= 1, "the job to start")
            held = stream_on(client, job_id, runner)
            try:
                resp = client.delete(f"/v1/jobs/{job_id}")
                assert resp.status_code == 200 and resp.json()["id"] == job_id
                states = [json.loads(line[6:]).get("state") for line in held.iter_lines() if line.startswith("data: ")]
            finally:
                held.close()
            assert states[-1] == "cancelled"  # the held stream (the runner's) ends with the cancel
            if resp.headers[REPLICA] != runner:
                cancelled_by_other = job_id
                break
        assert cancelled_by_other is not None, "every DELETE reached the replica running the job"
        ended: dict[str, dict[str, Any]] = {}

        def both_see_the_end() -> bool:
            resp = client.get(f"/v1/jobs/{cancelled_by_other}")
            ended[resp.headers[REPLICA]] = resp.json()
            return len(ended) == 2

        until(both_see_the_end, "both replicas to answer for the cancelled job")
        for body in ended.values():
            assert body["state"] == "cancelled" and body["finished"] is not None
            assert 1 <= body["progress"]["done"] < IMAGES  # stopped while running, not run to the end

        # an agent run as a job goes through the same store (admitted by a blocking call: agents_api submits
        # synchronously); the replica that did not run it reports its end
        files = [("file", (f"a{i}.png", picture((i, 77, 10), (16, 16)), "image/png")) for i in range(2)]
        resp = client.post("/v1/agents/caption", files=files, data={"job": "true", "mode": "local-only"})
        assert resp.status_code == 202, resp.text
        agent_job, agent_runner = resp.json()["id"], resp.headers[REPLICA]

        def agent_done_elsewhere() -> dict[str, Any] | None:
            got = client.get(f"/v1/jobs/{agent_job}")
            body = got.json()
            ok = got.headers[REPLICA] != agent_runner and body["state"] == "succeeded"
            return body if ok else None

        agent_body = until(agent_done_elsewhere, "the other replica to report the agent job's end")
        assert agent_body["kind"] == "agent:caption" and len(agent_body["results"]) == 2
        # (the fake's plain-text answer is no caption JSON: each item is a failed item, the job still succeeded)
        assert sorted(r["input"] for r in agent_body["results"]) == ["a0.png", "a1.png"]

        # the store's actor dies: the next job request is a clear 503 at once, never a hang; a later one
        # starts a new, empty store, where the job is a 404 that says why, and new jobs work again
        store = ray.get_actor("job-store:jobs-test", namespace="fastvlm-hybrid")
        ray.kill(store, no_restart=True)
        started = time.monotonic()
        resp = client.get(f"/v1/jobs/{cancelled_by_other}/events")
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "job_store_unavailable" and time.monotonic() - started < 10
        lost = until(lambda: (r := client.get(f"/v1/jobs/{cancelled_by_other}")).status_code == 404 and r,
                     "a new job store")
        assert lost.json()["error"]["code"] == "job_not_found" and "restarts" in lost.json()["error"]["message"]

        # each replica's first job request after the death is that 503; then it reaches the new store too
        def accepted(resp: httpx.Response, status: int) -> httpx.Response | None:
            if resp.status_code == 503:
                assert resp.json()["error"]["code"] == "job_store_unavailable", resp.text
                return None
            assert resp.status_code == status, resp.text
            return resp

        files = [("file", ("n.png", picture((9, 9, 9), (16, 16)), "image/png"))]
        new = until(lambda: accepted(client.post("/v1/jobs", files=files, data=FORM), 202), "a new job")
        until(lambda: accepted(client.delete(f"/v1/jobs/{new.json()['id']}"), 200), "the new job's cancel")
