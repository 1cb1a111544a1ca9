"""The job store's interface, run against both stores, and the job manager over a shared store.

`MemoryJobStore` runs in the test's loop; `RayJobStore` talks to the same class hosted as a named Ray
actor in a local Ray (`ray.init(num_cpus=1)`, once for the module: ~15 s on a 2-core box, so the Ray
cases are marked `slow` and skipped without the `ray` extra). Each test gets its own actor with the
limits it needs, killed at teardown.

The manager tests are fast: two apps (two "replicas") whose managers share one in-memory store
answer for each other's jobs over HTTP, in one event loop; a store that fails stands for a dead actor.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from fastvlm_gemini_hybrid.server.job_manager import MAX_ACTIVE, JobManager
from fastvlm_gemini_hybrid.server.job_store import (
    JobStore,
    JobStoreUnavailable,
    MemoryJobStore,
    Patch,
    RayJobStore,
    start_actor,
)
from synth_media import picture

from .conftest import assert_error

StoreFactory = Callable[..., JobStore]


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(params=["memory", pytest.param("ray", marks=pytest.mark.slow)])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """`make(**limits)`: a fresh store of the parametrised kind (max_jobs, max_events, lease_s)."""
    actors: list[Any] = []

    def make(**limits: Any) -> JobStore:
        if request.param == "memory":
            return MemoryJobStore(**limits)
        request.getfixturevalue("ray_runtime")
        name = f"job-store:test-{uuid.uuid4().hex[:8]}"
        actors.append(start_actor(name, **limits))
        return RayJobStore(name)

    yield make
    if actors:
        import ray

        for actor in actors:
            ray.kill(actor, no_restart=True)


def state_patch(state: str, **kw: Any) -> Patch:
    """A write that also ends the job (or not), with its state event, as the manager writes it."""
    finished = time.time() if state not in ("queued", "running") else None
    return Patch(events=[{"type": "state", "state": state}], state=state, finished=finished, **kw)


async def test_a_job_round_trips_through_the_store(make_store: StoreFactory) -> None:
    store = make_store()
    created = time.time()
    assert await store.create("j1", "batch", created, 4)
    body = await store.get("j1")
    assert body is not None and body["state"] == "queued" and body["created"] == created
    assert body["events"] == 0 and body["results"] == [] and body["urls"]["events"] == "/v1/jobs/j1/events"
    assert await store.write("j1", Patch(events=[{"type": "result", "n": 1}], results=[{"n": 1}], done=1, total=3)) \
        == "ok"
    assert await store.write("j1", Patch(events=[{"type": "result", "n": 2}], results=[{"n": 2}], done=2, total=3)) \
        == "ok"
    body = await store.get("j1")
    assert body is not None and body["progress"] == {"done": 2, "total": 3} and body["state"] == "running"
    assert body["results"] == [{"n": 1}, {"n": 2}] and body["events"] == 2
    assert "results" not in (await store.get("j1", results=False) or {})
    page = await store.events("j1", after=0)
    assert page is not None and page.first == 1 and page.events == [{"type": "result", "n": 2}]
    assert page.active and not page.more
    assert await store.write("j1", state_patch("failed", error={"code": "x"}, done=2, total=3)) == "ok"
    body = await store.get("j1", results=False)
    assert body is not None and body["state"] == "failed" and body["error"] == {"code": "x"} and body["finished"]
    ended = await store.events("j1", after=1)
    assert ended is not None and not ended.active and ended.events == [{"type": "state", "state": "failed"}]
    # an unknown job, whichever way it is asked for
    assert await store.get("nope") is None and await store.events("nope") is None
    assert await store.request_cancel("nope") is None and await store.cancel_requested("nope") is None
    assert await store.wait_for_change("nope", 0, 0.1) is None and await store.write("nope", Patch()) == "gone"


async def test_active_jobs_are_limited_and_the_oldest_finished_are_forgotten(make_store: StoreFactory) -> None:
    store = make_store(max_jobs=3)
    assert await store.create("a", "batch", 1.0, 2) and await store.create("b", "batch", 2.0, 2)
    assert not await store.create("c", "batch", 3.0, 2)  # two are active: refused, nothing created
    assert await store.get("c") is None
    assert (await store.counts())["queued"] == 2
    await store.write("a", state_patch("succeeded"))
    assert await store.create("c", "batch", 3.0, 2)
    await store.write("b", state_patch("cancelled"))
    await store.write("c", state_patch("succeeded"))
    assert await store.create("d", "batch", 4.0, 2)  # full (3): the oldest finished, a, makes room
    assert await store.get("a") is None and await store.get("b") is not None
    assert [j["id"] for j in await store.list_jobs()] == ["d", "c", "b"]
    assert await store.counts() == {"queued": 1, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 1}
    assert await store.forget_finished(1) == 2  # b and c; d is still queued
    assert [j["id"] for j in await store.list_jobs()] == ["d"]


async def test_events_are_bounded_and_read_in_pages(make_store: StoreFactory) -> None:
    store = make_store(max_events=5)
    await store.create("j", "batch", 1.0)
    await store.write("j", Patch(events=[{"i": i} for i in range(7)]))
    body = await store.get("j")
    assert body is not None and body["events"] == 5  # two dropped, as MAX_EVENTS drops them
    page = await store.events("j", after=1, limit=2)
    assert page is not None and page.first == 2 and page.events == [{"i": 2}, {"i": 3}] and page.more
    last = await store.events("j", after=3, limit=2)
    assert last is not None and last.events == [{"i": 4}] and not last.more


async def test_wait_for_change_wakes_on_a_write_and_times_out_otherwise(make_store: StoreFactory) -> None:
    store = make_store()
    await store.create("j", "batch", 1.0)
    page = await store.events("j")
    assert page is not None
    started = time.monotonic()
    assert await store.wait_for_change("j", page.version, 0.3) == page.version  # nothing happened
    assert 0.25 <= time.monotonic() - started < 3.0
    assert await store.write("j", Patch()) == "ok"  # a bare heartbeat is no change for readers
    assert await store.wait_for_change("j", page.version, 0.1) == page.version

    async def later() -> None:
        await asyncio.sleep(0.2)
        await store.write("j", Patch(events=[{"type": "result"}]))

    writer = asyncio.ensure_future(later())
    started = time.monotonic()
    woke = await store.wait_for_change("j", page.version, 10.0)
    assert woke is not None and woke > page.version and time.monotonic() - started < 5.0  # woken, not timed out
    await writer
    assert await store.wait_for_change("j", page.version, 10.0) == woke  # already different: no wait at all


async def test_cancel_is_a_flag_the_running_writer_reads(make_store: StoreFactory) -> None:
    store = make_store()
    await store.create("j", "batch", 1.0)
    assert await store.write("j", Patch()) == "ok" and await store.cancel_requested("j") is False
    body = await store.request_cancel("j")
    assert body is not None and body["state"] == "running" and "results" not in body  # asked, not yet stopped
    assert await store.cancel_requested("j") is True
    assert await store.write("j", Patch(events=[{"type": "result"}])) == "cancel"
    assert await store.write("j", state_patch("cancelled")) == "cancel"
    assert await store.write("j", Patch()) == "gone"  # finished: a late writer is told to stop
    body = await store.get("j")
    assert body is not None and body["state"] == "cancelled"


async def test_a_job_whose_writer_stops_is_failed_as_lost(make_store: StoreFactory) -> None:
    store = make_store(lease_s=0.3)
    await store.create("j", "batch", 1.0, 1)
    await store.write("j", Patch(done=1))
    await asyncio.sleep(0.6)  # no heartbeat: its replica died
    body = await store.get("j")
    assert body is not None and body["state"] == "failed" and body["error"]["code"] == "job_lost"
    page = await store.events("j")
    assert page is not None and not page.active and page.events[-1]["state"] == "failed"
    assert await store.write("j", Patch(done=2)) == "gone"  # a replica that was only slow stops its work
    assert await store.create("k", "batch", 2.0, 1)  # the lost job no longer holds the one active slot


@pytest.mark.slow
async def test_a_dead_store_actor_is_a_503_at_once_then_a_new_empty_store(ray_runtime: Any) -> None:
    """The call that finds the actor dead fails fast (a reader's blocking wait included); the next one
    starts a new actor, which has lost the jobs."""
    store = RayJobStore(f"job-store:test-{uuid.uuid4().hex[:8]}")
    calls: dict[str, Callable[[], Any]] = {
        "wait_for_change": lambda: store.wait_for_change("j", 0, 5.0), "write": lambda: store.write("j", Patch()),
        "get": lambda: store.get("j")}
    for name, call in calls.items():
        assert await store.create("j", "batch", 1.0)  # the first call starts an actor: a new one each round
        ray_runtime.kill(ray_runtime.get_actor(store.name, namespace=store.namespace), no_restart=True)
        _wait_until_unregistered(ray_runtime, store)  # `kill` returns before the actor is dead: it may answer once
        started = time.monotonic()
        with pytest.raises(JobStoreUnavailable) as exc:
            await call()
        assert time.monotonic() - started < 5.0, name
        assert exc.value.status == 503 and exc.value.code_ == "job_store_unavailable" and store.name in str(exc.value)
        assert await store.get("j") is None and await store.write("j", Patch()) == "gone"  # new store: j is lost
    ray_runtime.kill(ray_runtime.get_actor(store.name, namespace=store.namespace), no_restart=True)


def _wait_until_unregistered(ray_runtime: Any, store: RayJobStore) -> None:
    """Until Ray has the killed actor dead: its name is released only then."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ray_runtime.get_actor(store.name, namespace=store.namespace)
        except ValueError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the killed actor {store.name} is still registered after 30 s")


@pytest.mark.slow
async def test_a_restarted_store_actor_has_lost_its_jobs(ray_runtime: Any) -> None:
    """Ray restarts the actor when its process dies: empty, so old ids are unknown and writers stop."""
    name = f"job-store:test-{uuid.uuid4().hex[:8]}"
    actor = start_actor(name)
    store = RayJobStore(name)
    assert await store.create("j", "batch", 1.0)
    ray_runtime.kill(actor, no_restart=False)
    # `kill` returns before the process is gone: until then the old actor may still answer with the job.
    deadline = time.monotonic() + 60
    while True:
        try:
            if await store.get("j") is None:
                break  # the restarted, empty actor answers
        except JobStoreUnavailable:  # while it restarts
            pass
        assert time.monotonic() < deadline, "the store actor did not come back empty"
        await asyncio.sleep(0.2)
    assert await store.write("j", Patch()) == "gone"
    assert await store.create("k", "batch", 2.0)
    assert ray_runtime.get_actor(name, namespace=store.namespace)._actor_id == actor._actor_id  # restarted, not new
    ray_runtime.kill(actor, no_restart=True)


# --------------------------------------------------------------------------- the manager over a shared store


@pytest.fixture
async def two_servers(app_factory: Callable[..., Any]) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two apps whose managers share one store, as two Ray replicas share the actor."""
    store = MemoryJobStore()
    apps = [app_factory(backend_kw={"local_kw": {"delay_s": 0.5}})[0] for _ in range(2)]
    for app in apps:
        app.state.jobs = JobManager(app.state, store)
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") for app in apps]
    try:
        yield tuple(clients)
    finally:
        for app, client in zip(apps, clients, strict=True):
            await app.state.jobs.aclose()
            await client.aclose()


def batch(n: int, tag: int = 0) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"p{i}.png", picture((i, tag, 10), (16, 16)), "image/png")) for i in range(n)]


async def sse_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/jobs/{job_id}/events")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]


async def test_a_server_answers_for_and_cancels_a_job_another_server_runs(
    two_servers: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    runner, other = two_servers
    form = {"kind": "batch", "prompt": "Caption", "mode": "local-only", "concurrency": "1", "batch_size": "1"}
    resp = await runner.post("/v1/jobs", files=batch(16), data=form)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    deadline = time.monotonic() + 20
    while (body := (await other.get(f"/v1/jobs/{job_id}")).json())["progress"]["done"] < 2:
        assert body["state"] in ("queued", "running") and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    cancelled = await other.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["id"] == job_id
    assert job_id not in manager_of(other).owned  # it has no handle to stop: the store carries the cancel
    events = await sse_events(other, job_id)
    assert [e["state"] for e in events if e["type"] == "state"] == ["running", "cancelled"]
    done = (await other.get(f"/v1/jobs/{job_id}")).json()
    assert done["state"] == "cancelled" and 2 <= done["progress"]["done"] < 16
    assert len(done["results"]) == done["progress"]["done"] == len([e for e in events if e["type"] == "result"])
    assert (await runner.get(f"/v1/jobs/{job_id}")).json() == done
    assert runner_handle(runner, job_id).cancel.is_set()
    assert_error(await other.get("/v1/jobs/nope"), 404, "job_not_found")
    assert_error(await other.delete("/v1/jobs/nope"), 404, "job_not_found")


def manager_of(client: httpx.AsyncClient) -> JobManager:
    return client._transport.app.state.jobs  # type: ignore[attr-defined]


def runner_handle(client: httpx.AsyncClient, job_id: str) -> Any:
    return manager_of(client).owned[job_id]


async def test_the_running_jobs_limit_is_the_stores_not_each_servers(
    two_servers: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_servers
    form = {"kind": "batch", "prompt": "Caption", "mode": "local-only", "concurrency": "1", "batch_size": "1"}
    ids = []
    for i in range(MAX_ACTIVE):
        resp = await (a if i % 2 else b).post("/v1/jobs", files=batch(16, i), data=form)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    for client in (a, b):
        refused = await client.post("/v1/jobs", files=batch(1, 99), data=form)
        err = assert_error(refused, 503, "overloaded")
        assert refused.headers["retry-after"] == "5" and str(MAX_ACTIVE) in err["message"]
    await asyncio.sleep(0.2)  # in-memory ASGI calls never suspend: let the jobs' tasks start
    assert manager_of(a).counts()["running"] + manager_of(b).counts()["running"] == MAX_ACTIVE
    for job_id in ids:
        assert (await a.delete(f"/v1/jobs/{job_id}")).status_code == 200
    for job_id in ids:
        assert [e["state"] for e in await sse_events(b, job_id) if e["type"] == "state"][-1] == "cancelled"
    assert (await b.post("/v1/jobs", files=batch(1, 98), data=form)).status_code == 202  # room again


class BrokenStore(MemoryJobStore):
    """A store that stops answering once `broken` is set, as a client of a dead actor does."""

    broken = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in {"create", "write", "get", "events", "wait_for_change", "request_cancel"} and self.broken:
            async def fail(*_a: Any, **_kw: Any) -> Any:
                raise JobStoreUnavailable("Ray actor 'job-store:test': ActorDiedError")

            return fail
        return attr


async def test_a_store_that_is_gone_is_a_503_and_stops_the_work(app_factory: Callable[..., Any]) -> None:
    app, _proc = app_factory(backend_kw={"local_kw": {"delay_s": 0.5}})
    store = BrokenStore()
    app.state.jobs = manager = JobManager(app.state, store)
    form = {"kind": "batch", "prompt": "Caption", "mode": "local-only", "concurrency": "1", "batch_size": "1"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        resp = await client.post("/v1/jobs", files=batch(16), data=form)
        job_id = resp.json()["id"]
        while (await client.get(f"/v1/jobs/{job_id}")).json()["progress"]["done"] < 2:
            await asyncio.sleep(0.05)
        store.broken = True
        for call in (client.get(f"/v1/jobs/{job_id}"), client.delete(f"/v1/jobs/{job_id}"),
                     client.get(f"/v1/jobs/{job_id}/events"), client.post("/v1/jobs", files=batch(1), data=form)):
            err = assert_error(await call, 503, "job_store_unavailable")
            assert "job store is unavailable" in err["message"] and "ActorDiedError" in err["message"]
        await asyncio.wait_for(asyncio.gather(*manager.runs), timeout=10)  # the work stopped by itself
        job = manager.owned[job_id]
        assert job.cancel.is_set() and job.state == "cancelled" and job.done < 16
        # a stream that was open when the store went away ends with an error event, not a hang
        store.broken = False
        resp = await client.post("/v1/jobs", files=batch(16, 1), data=form)
        second = resp.json()["id"]
        stream = manager.stream(second)
        first = await asyncio.wait_for(stream.__anext__(), timeout=10)
        assert first.startswith(b"id: 0\n")
        store.broken = True
        rest = [chunk async for chunk in stream]
        assert rest and b'"code": "job_store_unavailable"' in rest[-1] and not rest[-1].startswith(b"id:")
        await manager.aclose()
