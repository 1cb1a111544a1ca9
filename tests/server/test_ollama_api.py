"""The Ollama API (`/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/ps`, `/api/version`) through the
official `ollama` Python client against the real server on 127.0.0.1 (uvicorn, real sockets), and the
keep-alive that unloads an idle local model (a fake whose unload is observable, the tiny real FastVLM, MLX)."""

from __future__ import annotations

import base64
import gc
import json
import time
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fastvlm_gemini_hybrid.backends.base import Health
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.errors import BackendError, BadInputError
from fastvlm_gemini_hybrid.types import Request
from synth_media import picture

ollama = pytest.importorskip("ollama")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from fastvlm_gemini_hybrid.server import create_app  # noqa: E402 - needs the server extra
from fastvlm_gemini_hybrid.server.keep_alive import FOREVER, KeepAlive, parse_keep_alive  # noqa: E402

SENSITIVE = "Patient John Doe, SSN 078-05-1120, HIV positive: summarise"


class LoadingBackend(FunctionBackend):
    """A local fake with a model that loads on use, shows in its health, and unloads observably."""

    def __init__(self, answer: Any = "local answer", **kw: Any) -> None:
        super().__init__("fastvlm", answer, kind="local", **kw)
        self.loaded = False
        self.unloads = 0
        self.busy = False

    def load(self) -> None:  # what the real in-process backends offer (called off the loop)
        self.loaded = True

    async def generate(self, request: Request) -> Any:
        self.loaded = True
        return await super().generate(request)

    async def health(self) -> Health:
        return Health(True, "fake", {"loaded": self.loaded})

    async def unload(self) -> bool:
        if not self.loaded or self.busy:
            return False
        self.loaded = False
        self.unloads += 1
        return True


class BreaksMidStream(FunctionBackend):
    async def stream(self, request: Request) -> AsyncIterator[str]:
        yield "first words "
        raise BackendError("the model fell over", backend=self.name)


@pytest.fixture
def serve(processor_factory: Callable[..., Any], server_settings: Callable[..., Any],
          live_server: Callable[..., Any]) -> Callable[..., tuple[Any, Any, LoadingBackend]]:
    """(ollama.Client on a live server, its processor, the local fake); keywords go to Settings."""

    def make(local: Any = None, cloud: Any = "cloud answer", headers: dict[str, str] | None = None,
             **settings: Any) -> tuple[Any, Any, Any]:
        local = local if local is not None else LoadingBackend()
        proc = processor_factory(server_settings(**settings), local=local, cloud=cloud)
        srv = live_server(create_app(processor=proc))
        client = ollama.Client(host=srv.url, timeout=30, headers=headers)
        client.url = srv.url  # type: ignore[attr-defined]
        return client, proc, local

    return make


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def error_of(call: Callable[[], Any]) -> Any:
    with pytest.raises(ollama.ResponseError) as caught:
        call()
    return caught.value


# --------------------------------------------------------------------------- chat and generate


def test_chat_answers_whole_and_streamed_with_an_image(serve: Callable[..., Any]) -> None:
    client, proc, local = serve()
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "What colour is it?", "images": [picture()]}]

    done = client.chat(model="hybrid", messages=messages)
    assert done.message.role == "assistant" and done.message.content == "local answer"
    assert done.done is True and done.done_reason == "stop" and done.model == "hybrid"
    assert done.total_duration > 0 and done.eval_duration == done.total_duration and done.load_duration == 0
    assert isinstance(done.prompt_eval_count, int) and isinstance(done.eval_count, int)
    seen = local.calls[-1]
    assert seen.prompt == "What colour is it?" and seen.options.system == "Answer briefly."
    assert [a.mime for a in seen.attachments] == ["image/png"]

    messages[-1]["content"] = "What shape is it?"  # not the cached question: streamed as the backend yields it
    parts = list(client.chat(model="hybrid", messages=messages, stream=True))
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True] and len(parts) >= 3
    assert "".join(p.message.content for p in parts).strip() == "local answer"
    assert parts[-1].message.content == "" and parts[-1].done_reason == "stop"
    assert proc.backend("gemini").calls == []


def test_stream_is_the_default_and_ndjson(serve: Callable[..., Any]) -> None:
    client, _proc, _local = serve()
    resp = httpx.post(client.url + "/api/generate", json={"model": "fastvlm", "prompt": "Say hi"}, timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert len(lines) >= 2 and lines[-1]["done"] is True and not any(line["done"] for line in lines[:-1])
    assert "".join(line["response"] for line in lines).strip() == "local answer"
    assert set(lines[-1]) >= {"model", "created_at", "response", "done", "done_reason", "total_duration",
                              "load_duration", "prompt_eval_count", "eval_count", "eval_duration"}
    datetime.fromisoformat(lines[-1]["created_at"].replace("Z", "+00:00"))


def test_generate_maps_images_system_and_options(serve: Callable[..., Any]) -> None:
    client, proc, local = serve()
    out = client.generate(model="gemini", prompt="Describe it.", system="Be brief.", images=[picture()],
                          options={"num_predict": 7, "temperature": 0.5, "top_p": 0.9, "seed": 3})
    assert out.response == "cloud answer" and out.done and out.model == "gemini"
    seen = proc.backend("gemini").calls[-1]
    assert seen.prompt == "Describe it." and seen.options.system == "Be brief." and len(seen.attachments) == 1
    opts = seen.options
    assert (opts.max_tokens, opts.temperature, opts.top_p, opts.seed) == (7, 0.5, 0.9, 3)

    client.generate(model="fastvlm", prompt="No limit asked", options={"num_predict": -1})
    assert local.calls[-1].options.max_tokens == proc.settings.max_tokens_limit  # Ollama's -1: no limit of its own
    gemini = proc.backend("gemini")
    before = len(gemini.calls)
    with pytest.raises(ollama.ResponseError) as prose:  # the fake answers prose: asked again once, then a 502
        client.generate(model="gemini", prompt="As JSON", format="json", stream=False)
    assert prose.value.status_code == 502 and len(gemini.calls) == before + 2
    assert gemini.calls[-1].options.json_schema == {"type": "object"}
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    getattr(gemini, "inner", gemini)._fn = lambda _req: 'Here it is: {"colour": "red"}'  # behind the egress gate
    out = client.generate(model="gemini", prompt="As JSON", format=schema, stream=False)
    assert json.loads(out.response) == {"colour": "red"}  # the JSON alone, checked against the schema
    assert gemini.calls[-1].options.json_schema == schema


def test_a_second_turn_carries_the_first_with_its_image(serve: Callable[..., Any]) -> None:
    client, _proc, local = serve()
    client.chat(model="fastvlm", messages=[
        {"role": "user", "content": "What colour is the square?", "images": [picture()]},
        {"role": "assistant", "content": "It is red."},
        {"role": "user", "content": "And its shape?"},
    ])
    seen = local.calls[-1]
    # The earlier turns reach the backend as context (flattened into the prompt today, or as `history`).
    context = seen.prompt + "\n".join(t.text for t in getattr(seen, "history", ()))
    assert "And its shape?" in seen.prompt
    assert "What colour is the square?" in context and "It is red." in context
    assert [a.mime for a in seen.attachments] == ["image/png"]  # the first turn's picture


def test_model_names_pin_the_backend_and_unknown_ones_are_404(serve: Callable[..., Any]) -> None:
    client, proc, local = serve()
    ask = [{"role": "user", "content": "Describe a street."}]
    for model, answer in (("gemini", "cloud answer"), ("gemini-2.5-flash", "cloud answer"),
                          ("fastvlm:latest", "local answer"), ("hybrid:latest", "local answer")):
        question = [{"role": "user", "content": f"Describe a street for {model}."}]  # distinct: not from the cache
        assert client.chat(model=model, messages=question).message.content == answer, model
    assert proc.backend("gemini").calls[-1].model == "gemini-2.5-flash"
    missing = error_of(lambda: client.chat(model="llava:13b", messages=ask))
    assert missing.status_code == 404 and missing.error == "model 'llava:13b' not found"
    assert error_of(lambda: client.show("llava:13b")).status_code == 404
    assert error_of(lambda: client.generate(model="nope", prompt="hi")).status_code == 404
    assert len(local.calls) == 2


def test_a_sensitive_prompt_pinned_to_the_cloud_is_403(serve: Callable[..., Any]) -> None:
    client, proc, _local = serve()
    refused = error_of(lambda: client.chat(model="gemini", messages=[{"role": "user", "content": SENSITIVE}]))
    assert refused.status_code == 403 and isinstance(refused.error, str) and "never leave this machine" in refused.error
    streamed = error_of(lambda: list(client.generate(model="gemini", prompt=SENSITIVE, stream=True)))
    assert streamed.status_code == 403
    assert proc.backend("gemini").calls == []
    # the same prompt on hybrid is answered here
    here = client.chat(model="hybrid", messages=[{"role": "user", "content": SENSITIVE}])
    assert here.message.content == "local answer"


def test_bad_input_is_400_in_ollamas_shape_never_a_traceback(serve: Callable[..., Any]) -> None:
    client, proc, _local = serve()

    def post(path: str, body: Any) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(client.url + path, content=raw, timeout=10)

    cases = [
        ("/api/chat", b"{not json", 400),
        ("/api/chat", [1, 2], 400),
        ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]}, 400),  # no model
        ("/api/chat", {"model": "hybrid", "messages": [{"role": "tool", "content": "x"}]}, 400),
        ("/api/chat", {"model": "hybrid", "messages": [{"role": "user", "content": "hi"}],
                       "tools": [{"type": "function", "function": {"name": "f"}}]}, 400),
        ("/api/chat", {"model": "hybrid", "messages": [{"role": "user", "content": ["x"]}]}, 400),
        ("/api/chat", {"model": "hybrid", "messages": [{"role": "user", "content": "hi", "images": "abc"}]}, 400),
        ("/api/generate", {"model": "hybrid", "prompt": "hi", "format": "yaml"}, 400),
        ("/api/generate", {"model": "hybrid", "prompt": "hi", "keep_alive": "5 minutes"}, 400),
        ("/api/generate", {"model": "hybrid", "prompt": "hi", "options": {"num_predict": "many"}}, 400),
        ("/api/generate", {"model": "hybrid", "prompt": "hi", "options": {"temperature": 9}}, 400),
        ("/api/generate", {"model": "hybrid", "prompt": "hi", "suffix": "end"}, 400),
        ("/api/generate", {"model": "hybrid", "prompt": "hi", "images": ["AAAA"]}, 415),  # not a picture
        ("/api/pull", {"model": "llama3"}, 501),
    ]
    for path, body, status in cases:
        resp = post(path, body)
        assert resp.status_code == status, (path, body, resp.text)
        payload = resp.json()
        assert set(payload) == {"error"} and isinstance(payload["error"], str) and payload["error"], payload
    assert proc.backend("gemini").calls == [] and proc.backend("fastvlm").calls == []


def test_a_failure_after_the_first_piece_is_an_error_line(serve: Callable[..., Any]) -> None:
    client, _proc, _local = serve(local=BreaksMidStream("fastvlm", "unused", kind="local"))
    with pytest.raises(ollama.ResponseError) as caught:
        list(client.generate(model="fastvlm", prompt="Tell me more", stream=True))
    assert "fell over" in caught.value.error


def test_api_keys_guard_the_ollama_routes_too(serve: Callable[..., Any]) -> None:
    client, _proc, _local = serve(api_keys="k1", headers={"Authorization": "Bearer k1"})
    assert [m.model for m in client.list().models] == ["hybrid", "fastvlm", "gemini"]
    anonymous = ollama.Client(host=client.url, timeout=10)
    for call in (anonymous.list, anonymous.ps, lambda: anonymous.generate(model="hybrid", prompt="hi")):
        assert error_of(call).status_code == 401
    assert httpx.get(client.url + "/api/version", timeout=10).status_code == 200  # probes find the server


# --------------------------------------------------------------------------- models


def test_tags_show_ps_and_version(serve: Callable[..., Any]) -> None:
    client, _proc, _local = serve()
    tags = client.list().models
    assert [m.model for m in tags] == ["hybrid", "fastvlm", "gemini"]  # what /v1/models lists
    assert all(m.digest and m.details is not None and m.modified_at is not None for m in tags)
    shown = client.show("fastvlm")
    assert "vision" in shown.capabilities and shown.modelinfo["hybrid.kind"] == "local"
    assert client.show("gemini-2.5-flash").modelinfo["hybrid.backend"] == "gemini"
    assert client.show("hybrid").modelinfo["hybrid.kind"] == "router"

    assert client.ps().models == []  # nothing loaded yet; gemini is never listed
    client.generate(model="fastvlm", prompt="hi")
    running = client.ps().models
    assert [m.model for m in running] == ["fastvlm"]
    left = running[0].expires_at - datetime.now(timezone.utc)
    assert timedelta(seconds=200) < left <= timedelta(seconds=301)  # the default keep_alive_s, 300 s

    version = httpx.get(client.url + "/api/version", timeout=10).json()
    assert version["version"].count(".") == 2 and version["x_hybrid"]["version"]


# --------------------------------------------------------------------------- keep_alive


def test_keep_alive_zero_unloads_and_an_empty_prompt_loads(serve: Callable[..., Any]) -> None:
    client, _proc, local = serve()
    client.chat(model="fastvlm", messages=[{"role": "user", "content": "hi"}], keep_alive=0)
    assert wait_until(lambda: local.unloads == 1) and not local.loaded  # answered, then unloaded
    assert client.ps().models == []

    loaded = client.generate(model="fastvlm", prompt="", keep_alive="1h")  # Ollama's load request
    assert loaded.done and loaded.done_reason == "load" and loaded.response == "" and local.loaded
    left = client.ps().models[0].expires_at - datetime.now(timezone.utc)
    assert timedelta(minutes=59) < left <= timedelta(hours=1)
    client.chat(model="fastvlm", messages=[], keep_alive=-1)  # chat with no messages loads too; -1 = for good
    assert client.ps().models[0].expires_at.year > 2200

    unloaded = client.generate(model="fastvlm", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload" and not local.loaded and local.unloads == 2
    assert client.ps().models == [] and local.calls[-1].prompt == "hi"  # loading asked no question


def test_an_idle_model_is_unloaded_after_the_default_keep_alive(serve: Callable[..., Any]) -> None:
    client, _proc, local = serve(keep_alive_s=0.3)
    client.generate(model="fastvlm", prompt="hi")
    assert local.loaded
    assert wait_until(lambda: not local.loaded) and local.unloads == 1
    gemini = client.generate(model="gemini", prompt="hi", keep_alive=0)  # a cloud backend holds nothing here
    assert gemini.response == "cloud answer"


def test_parse_keep_alive_reads_ollamas_forms() -> None:
    cases = {None: None, "": None, 0: 0.0, "0": 0.0, 42: 42.0, 2.5: 2.5, "10": 10.0, "5m": 300.0,
             "1h30m": 5400.0, "300ms": 0.3, "1.5h": 5400.0, "-1": FOREVER, -1: FOREVER, "-5m": FOREVER}
    for given, seconds in cases.items():
        parsed = parse_keep_alive(given)
        assert parsed is None if seconds is None else parsed == pytest.approx(seconds), given
    for bad in ("5 minutes", "m", "5x", "1h-", True, [5], "nan"):
        with pytest.raises(BadInputError):
            parse_keep_alive(bad)


async def test_other_faces_requests_keep_the_model_alive(processor_factory: Callable[..., Any],
                                                         server_settings: Callable[..., Any]) -> None:
    """Requests the Ollama API never saw (the OpenAI API, /v1/analyze, jobs) push the deadline out too."""
    local = LoadingBackend()
    proc = processor_factory(server_settings(), local=local)
    now = [1000.0]
    keep = KeepAlive(proc, 10.0, clock=lambda: now[0])
    assert keep.local == ["fastvlm"] and keep.deadlines == {}

    await proc.arun(Request(prompt="hi", model="fastvlm"))
    keep.refresh()
    assert keep.deadlines == {"fastvlm": 1010.0}
    now[0] = 1005.0
    assert await keep.check() == [] and local.loaded  # not yet

    local.busy = True  # a request is running when the deadline comes: it declines, and is looked at again
    now[0] = 1011.0
    assert await keep.check() == [] and local.loaded and keep.deadlines == {}
    local.busy = False
    await proc.arun(Request(prompt="again", model="fastvlm"))  # that request finishing counts as a use
    assert await keep.check() == [] and keep.deadlines == {"fastvlm": 1021.0}
    now[0] = 1021.0
    assert await keep.check() == ["fastvlm"] and not local.loaded and local.unloads == 1

    await proc.arun(Request(prompt="briefly", model="fastvlm"))
    keep.touch("fastvlm", 2.0)  # an Ollama request's own keep_alive: its request is not counted twice
    assert keep.deadlines == {"fastvlm": 1023.0}
    keep.refresh()
    assert keep.deadlines == {"fastvlm": 1023.0}
    await proc.arun(Request(prompt="from the OpenAI API", model="fastvlm"))
    keep.refresh()
    assert keep.deadlines == {"fastvlm": 1031.0}  # another face's use: the default, never shorter

    local.busy = True  # keep_alive 0 while another request holds the model: unloaded right after that one
    keep.touch("fastvlm", 0)
    assert await keep.check() == [] and local.loaded and keep.deadlines == {}
    local.busy = False
    await proc.arun(Request(prompt="the busy one", model="fastvlm"))
    assert await keep.check() == ["fastvlm"] and not local.loaded and local.unloads == 2
    await proc.arun(Request(prompt="loads again", model="fastvlm"))
    keep.refresh()
    assert keep.deadlines == {"fastvlm": 1031.0}  # that unload done, uses get the default again

    keep.touch("gemini", 0)  # cloud backends are not counted down
    keep.touch("fastvlm", FOREVER)
    assert keep.deadlines == {"fastvlm": FOREVER} and keep.expires_at("fastvlm").year > 2200
    await proc.aclose()


# --------------------------------------------------------------------------- real local models


@pytest.mark.slow
def test_keep_alive_zero_frees_the_real_tiny_fastvlm(serve: Callable[..., Any], server_settings: Callable[..., Any],
                                                     tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
    from fastvlm_gemini_hybrid.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny", seed=0)
    backend = FastVLMBackend(server_settings(local_model=str(model_dir), device="cpu", dtype="float32"))
    client, _proc, _local = serve(local=backend)
    ask = [{"role": "user", "content": "Describe it.", "images": [picture()]}]

    first = client.chat(model="fastvlm", messages=ask, options={"num_predict": 4})
    assert first.done and isinstance(first.message.content, str) and backend.runtime is not None
    assert [m.model for m in client.ps().models] == ["fastvlm"]
    model = weakref.ref(backend.runtime.model)

    client.chat(model="fastvlm", messages=ask, options={"num_predict": 4}, keep_alive=0)
    def freed() -> bool:  # the weights are gone, not just unreferenced by the backend
        gc.collect()
        return backend.runtime is None and model() is None

    assert wait_until(freed)
    assert client.ps().models == []

    again = client.generate(model="fastvlm", prompt="And now?", images=[picture()], options={"num_predict": 4})
    assert again.done and backend.runtime is not None  # loaded again on demand
    assert client.generate(model="fastvlm", prompt="", keep_alive=0).done_reason == "unload"
    assert backend.runtime is None


async def test_fastvlm_unload_declines_while_generating(server_settings: Callable[..., Any]) -> None:
    from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend

    backend = FastVLMBackend(server_settings())
    assert await backend.unload() is False  # nothing loaded
    backend._runtime = runtime = type("Runtime", (), {})()  # stands in for a loaded model
    with backend._run_lock:
        assert await backend.unload() is False and backend.runtime is runtime  # busy: asked again later
    assert await backend.unload() is True and backend.runtime is None


@pytest.mark.slow
async def test_mlx_unload_frees_the_model_and_the_next_request_loads_it(tmp_path: Path,
                                                                        server_settings: Callable[..., Any]) -> None:
    pytest.importorskip("mlx.core")
    pytest.importorskip("mlx_vlm")
    from fastvlm_gemini_hybrid.backends.mlx import MLXBackend
    from fastvlm_gemini_hybrid.models.mlx_tiny import make_tiny_mlx
    from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions

    model_dir = make_tiny_mlx(tmp_path / "tiny-mlx", seed=0)
    backend = MLXBackend(server_settings(local_model=str(model_dir), local_backend="mlx", device="cpu"))
    ask = Request(prompt="Describe it.", attachments=(Attachment.from_bytes(picture()),),
                  options=GenerationOptions(max_tokens=4))
    try:
        assert await backend.unload() is False  # nothing loaded yet
        await backend.generate(ask)
        assert (await backend.health()).to_dict().get("loaded") is not False
        assert await backend.unload() is True and backend._model is None
        assert (await backend.health()).to_dict()["loaded"] is False
        assert (await backend.generate(ask)).text is not None and backend._model is not None
    finally:
        await backend.aclose()


def test_base64_images_reach_the_backend_byte_for_byte(serve: Callable[..., Any]) -> None:
    client, _proc, local = serve()
    png = picture(color=(10, 200, 30))
    body = {"model": "fastvlm", "prompt": "hi", "stream": False, "images": [base64.b64encode(png).decode()]}
    assert httpx.post(client.url + "/api/generate", json=body, timeout=10).status_code == 200
    assert local.calls[-1].attachments[0].data == png


def test_keep_alive_task_stops_with_the_server(server_settings: Callable[..., Any],
                                               processor_factory: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    app = create_app(processor=processor_factory(server_settings(), local=LoadingBackend()))
    keep_alive = app.app.state.keep_alive  # create_app's guard middleware wraps the FastAPI app
    with TestClient(app):
        task = keep_alive._task
        assert task is not None and not task.done()
    assert keep_alive._task is None and task.done()

