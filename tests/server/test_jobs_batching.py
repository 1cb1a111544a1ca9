"""Jobs go through the processor's one fan-out, so a batch job batches on a backend that batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import Settings
from fastvlm_gemini_hybrid.server import create_app
from fastvlm_gemini_hybrid.types import BackendKind, Generation, Request
from synth_media import picture

pytest.importorskip("fastapi")


class Batching(FunctionBackend):
    """Counts the size of every forward pass it is given."""

    def __init__(self) -> None:
        super().__init__("fastvlm", "one at a time", capabilities=Capabilities(
            kind=BackendKind.LOCAL, media=frozenset({"image"}), max_images=8, batching=True))
        self.passes: list[int] = []

    async def generate_batch(self, requests: list[Request]) -> list[Generation | BaseException]:
        self.passes.append(len(requests))
        return [Generation(text=f"batched {len(requests)}", model="m") for _ in requests]




def run_job(server_settings: Callable[..., Settings], data: dict[str, str], images: int) -> tuple[Any, Batching]:
    from fastapi.testclient import TestClient

    local = Batching()
    proc = make_processor(server_settings(), local, cloud=None, cache=False)
    with TestClient(create_app(processor=proc)) as client:
        parts = [("file", (f"p{i}.png", picture((i * 20, 80, 80), (32, 24)), "image/png")) for i in range(images)]
        resp = client.post("/v1/jobs", files=parts, data={"kind": "batch", "prompt": "Caption", **data})
        if resp.status_code != 202:
            return resp, local
        job_id = resp.json()["id"]
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            for _ in stream.iter_lines():
                pass
        return client.get(f"/v1/jobs/{job_id}").json(), local


def test_a_batch_job_sends_images_to_a_batching_backend_in_forward_passes(
    server_settings: Callable[..., Settings],
) -> None:
    job, local = run_job(server_settings, {"mode": "local-only", "batch_size": "4"}, images=10)
    assert job["state"] == "succeeded" and job["progress"] == {"done": 10, "total": 10}
    assert sorted(local.passes, reverse=True) == [4, 4, 2]
    assert local.calls == []  # no image went one at a time
    assert {r["response"] for r in job["results"]} == {"batched 4", "batched 2"}
    assert sorted(r["index"] for r in job["results"]) == list(range(10))


def test_batch_size_one_answers_one_at_a_time(server_settings: Callable[..., Settings]) -> None:
    job, local = run_job(server_settings, {"mode": "local-only", "batch_size": "1"}, images=3)
    assert job["state"] == "succeeded" and local.passes == [] and len(local.calls) == 3


@pytest.mark.parametrize("size", ["0", "65", "many"])
def test_a_bad_batch_size_is_a_400(server_settings: Callable[..., Settings], size: str) -> None:
    resp, local = run_job(server_settings, {"mode": "local-only", "batch_size": size}, images=2)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_input"
    assert local.passes == [] and local.calls == []
