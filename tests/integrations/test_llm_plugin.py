"""The `llm` plugin (llm_plugin.py) through the real `llm` package: its CLI, its Python API and its log database.

The processor is injected with `set_processor` (fake backends that record what they were asked); the last
two tests let the plugin build its own from the environment (one of them in a real `llm` process) and answer
through the real google-genai SDK against the fake Gemini server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_args

import llm  # a dev dependency: missing, these tests fail rather than skip
import pytest
from click.testing import CliRunner, Result
from llm.cli import cli

from cloud.fake_gemini import FakeGeminiServer
from fakes import make_processor
from fastvlm_gemini_hybrid import llm_plugin
from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import Settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import BackendKind, Domain, Mode, Request, Turn

LOCAL_ANSWER = "a red square on a plain background"
CLOUD_ANSWER = "the cloud sees a red square"


@pytest.fixture(autouse=True)
def llm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """llm's keys, aliases and logs.db in a temporary folder, never the user's; errors shown, not raised."""
    home = tmp_path / "llm-home"
    home.mkdir()
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.delenv("LLM_RAISE_ERRORS", raising=False)
    monkeypatch.delenv("LLM_MODEL", raising=False)
    yield home
    llm_plugin.close_processor()  # one the plugin built for a test must not serve the next
    llm_plugin.set_processor(None)


@pytest.fixture
def backends() -> dict[str, FunctionBackend]:
    return {
        "fastvlm": FunctionBackend("fastvlm", LOCAL_ANSWER, kind="local"),
        "gemini": FunctionBackend("gemini", CLOUD_ANSWER, kind="cloud"),
    }


@contextlib.contextmanager
def plugged(settings: Settings, **backends: Any) -> Iterator[HybridVLMProcessor]:
    """A processor over these backends (tests/fakes.py), handed to the plugin for the block, then closed."""
    proc = make_processor(settings, backends=backends, local=None, cloud=None, cache=False, audit=False)
    llm_plugin.set_processor(proc)
    try:
        yield proc
    finally:
        llm_plugin.set_processor(None)
        proc.close()


@pytest.fixture
def processor(settings: Settings, backends: dict[str, FunctionBackend]) -> Iterator[HybridVLMProcessor]:
    with plugged(settings, **backends) as proc:
        yield proc


def run_llm(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def prompt(*args: str) -> Result:
    return run_llm("prompt", *args)


# --------------------------------------------------------------------------- registration


def test_the_models_are_listed_with_their_options() -> None:
    listed = run_llm("models")
    assert listed.exit_code == 0, listed.output
    for model_id in ("hybrid", "hybrid-local", "hybrid-cloud"):
        assert f": {model_id}\n" in listed.output
    shown = run_llm("models", "--options")
    assert shown.exit_code == 0, shown.output
    shown_hybrid = shown.output[shown.output.index(": hybrid\n"):shown.output.index(": hybrid-local\n")]
    for option in ("max_tokens", "temperature", "top_p", "seed", "mode", "sensitive", "domain", "backend_model"):
        assert f"{option}:" in shown_hybrid
    assert "image/png" in shown_hybrid and "video/mp4" in shown_hybrid
    assert llm.get_model("hybrid").can_stream and llm.get_async_model("hybrid").can_stream


def test_the_option_choices_are_the_enums() -> None:
    assert get_args(llm_plugin.ModeName) == tuple(m.value for m in Mode)
    assert get_args(llm_plugin.DomainName) == tuple(d.value for d in Domain)


def test_the_fixed_mode_models_take_no_mode_option(processor: HybridVLMProcessor,
                                                   backends: dict[str, FunctionBackend], image_file: Path) -> None:
    out = prompt("-m", "hybrid-local", "-o", "mode", "cloud-only", "-a", str(image_file), "Describe it")
    assert out.exit_code != 0 and "mode" in out.output
    assert backends["gemini"].calls == [] and backends["fastvlm"].calls == []


def test_importing_the_package_does_not_import_llm() -> None:
    code = ("import sys, fastvlm_gemini_hybrid, fastvlm_gemini_hybrid.processor, fastvlm_gemini_hybrid.cli; "
            "print('llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- answering


def test_an_image_prompt_is_answered_in_process(processor: HybridVLMProcessor, backends: dict[str, FunctionBackend],
                                                image_file: Path) -> None:
    out = prompt("-m", "hybrid-local", "-a", str(image_file), "Describe it")
    assert out.exit_code == 0, out.output
    assert out.output.strip() == LOCAL_ANSWER
    (request,) = backends["fastvlm"].calls
    assert request.prompt == "Describe it"
    assert [a.mime for a in request.attachments] == ["image/png"]
    assert request.attachments[0].data == image_file.read_bytes()
    assert backends["gemini"].calls == []


def test_the_cloud_model_goes_to_the_cloud(processor: HybridVLMProcessor, backends: dict[str, FunctionBackend],
                                           image_file: Path) -> None:
    out = prompt("-m", "hybrid-cloud", "--no-stream", "-a", str(image_file), "Describe it")
    assert out.exit_code == 0, out.output
    assert out.output.strip() == CLOUD_ANSWER
    assert len(backends["gemini"].calls) == 1 and backends["fastvlm"].calls == []


class GatedStream(FunctionBackend):
    """Streams one piece, then waits until the test has received it: a plugin that drained the stream before
    passing anything on would make it wait out its timeout and say so."""

    def __init__(self) -> None:
        super().__init__("fastvlm", "unused", kind="local")
        self.received_first = threading.Event()

    async def stream(self, request: Request) -> AsyncIterator[str]:
        self.calls.append(request)
        yield "first "
        arrived = await asyncio.to_thread(self.received_first.wait, 10)
        yield "second " if arrived else "DRAINED-BEFORE-YIELDING "
        yield "third"


def test_pieces_reach_llm_as_they_are_generated(settings: Settings, image_file: Path) -> None:
    backend = GatedStream()
    with plugged(settings, fastvlm=backend):
        response = llm.get_model("hybrid").prompt("Describe it", attachments=[llm.Attachment(path=str(image_file))])
        chunks = []
        for chunk in response:
            chunks.append(chunk)
            backend.received_first.set()
    assert chunks == ["first ", "second ", "third"]
    assert response.response_json["backend"] == "fastvlm"


class EndlessStream(FunctionBackend):
    """One piece, then nothing for a long time; says when its stream was closed."""

    def __init__(self) -> None:
        super().__init__("fastvlm", "unused", kind="local")
        self.stopped = threading.Event()

    async def stream(self, request: Request) -> AsyncIterator[str]:
        self.calls.append(request)
        try:
            yield "first "
            await asyncio.sleep(60)
            yield "never"
        finally:
            self.stopped.set()


@pytest.fixture
def endless(settings: Settings) -> Iterator[EndlessStream]:
    backend = EndlessStream()
    with plugged(settings, fastvlm=backend):
        yield backend


def test_a_consumer_that_stops_early_stops_the_backend(endless: EndlessStream, image_file: Path) -> None:
    model = llm.get_model("hybrid-local")
    response = model.prompt("Describe it", attachments=[llm.Attachment(path=str(image_file))])
    pieces = model.execute(response.prompt, True, response, None)
    assert next(pieces) == "first "
    pieces.close()
    assert endless.stopped.wait(5)


def test_closing_while_a_piece_is_awaited_cancels_it(endless: EndlessStream, png_bytes: bytes) -> None:
    """What Ctrl-C leaves behind: a step still running on the processor's loop when the stream is closed."""
    from fastvlm_gemini_hybrid.request_builder import build_request

    bridge = llm_plugin._Bridge.open(build_request("Describe it", png_bytes, mode="local-only"), stream=True)
    assert bridge.next() == "first "
    outcome: list[BaseException] = []

    def wait_for_the_next_piece() -> None:
        try:
            bridge.next()
        except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_the_next_piece)
    waiter.start()
    assert not endless.stopped.wait(0.3)  # the second piece is being awaited
    bridge.close()
    waiter.join(5)
    assert endless.stopped.is_set() and not waiter.is_alive()
    assert [type(e).__name__ for e in outcome] == ["CancelledError"]


def test_several_chunks_stream_from_a_routed_request(processor: HybridVLMProcessor, image_file: Path) -> None:
    response = llm.get_model("hybrid").prompt("Describe it", attachments=[llm.Attachment(path=str(image_file))],
                                              mode="local-only")
    chunks = list(response)
    assert len(chunks) == len(LOCAL_ANSWER.split()) and "".join(chunks).strip() == LOCAL_ANSWER


async def test_the_async_model_streams_too(processor: HybridVLMProcessor, backends: dict[str, FunctionBackend],
                                           image_file: Path) -> None:
    model = llm.get_async_model("hybrid-local")
    response = model.prompt("Describe it", attachments=[llm.Attachment(content=image_file.read_bytes())])
    chunks = [chunk async for chunk in response]
    assert len(chunks) > 1 and "".join(chunks).strip() == LOCAL_ANSWER
    assert response.response_json["backend"] == "fastvlm"
    assert (await response.usage()).input is None  # the fake counts nothing: unknown, not a logged 0
    assert backends["fastvlm"].calls[0].attachments[0].data == image_file.read_bytes()


def test_a_second_turn_carries_the_first_as_a_turn(settings: Settings, image_file: Path) -> None:
    """A backend that takes turns gets them as `Request.history`, each turn with its own pictures."""
    caps = Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image"}), max_images=8, streaming=True,
                        conversation=True)
    backend = FunctionBackend("fastvlm", LOCAL_ANSWER, capabilities=caps)
    with plugged(settings, fastvlm=backend):
        conversation = llm.get_model("hybrid-local").conversation()
        first = conversation.prompt("What is in the picture?", attachments=[llm.Attachment(path=str(image_file))],
                                    system="Answer briefly.")
        assert first.text().strip() == LOCAL_ANSWER
        conversation.prompt("And what colour is it?").text()
    second = backend.calls[-1]
    assert second.prompt == "And what colour is it?"
    assert second.history == (Turn("user", "What is in the picture?", 1), Turn("assistant", first.text(), 0))
    assert [a.data for a in second.attachments] == [image_file.read_bytes()]  # the first turn's picture
    assert second.options.system == "Answer briefly."


def test_llm_continue_reads_the_history_back_from_its_log(processor: HybridVLMProcessor,
                                                          backends: dict[str, FunctionBackend],
                                                          image_file: Path) -> None:
    assert prompt("-m", "hybrid-local", "-a", str(image_file), "What is in the picture?").exit_code == 0
    out = prompt("-c", "And what colour is it?")
    assert out.exit_code == 0, out.output
    # This fake takes no turns: the processor writes them into one prompt, as for any such backend.
    second = backends["fastvlm"].calls[-1]
    assert second.prompt.startswith(f"Conversation so far:\nUser: What is in the picture?\nAssistant: {LOCAL_ANSWER}")
    assert second.prompt.endswith("\n\nUser: And what colour is it?")
    assert len(second.attachments) == 1


def test_options_reach_the_request(processor: HybridVLMProcessor, backends: dict[str, FunctionBackend],
                                   image_file: Path) -> None:
    out = prompt("-m", "hybrid", "-a", str(image_file), "-s", "Be terse.",
                 "-o", "mode", "fallback", "-o", "max_tokens", "50", "-o", "temperature", "0.5", "-o", "top_p", "0.9",
                 "-o", "seed", "7", "-o", "domain", "legal", "-o", "backend_model", "fastvlm", "Describe it")
    assert out.exit_code == 0, out.output
    (request,) = backends["fastvlm"].calls
    opts = request.options
    assert (opts.max_tokens, opts.temperature, opts.top_p, opts.seed, opts.system) == (50, 0.5, 0.9, 7, "Be terse.")
    assert request.domain is Domain.LEGAL and request.backend == "fastvlm"
    assert backends["gemini"].calls == []


@pytest.mark.parametrize(("mode", "answered", "untouched"), [("local-only", "fastvlm", "gemini"),
                                                             ("cloud-only", "gemini", "fastvlm")])
def test_the_mode_option_decides_who_answers(processor: HybridVLMProcessor, backends: dict[str, FunctionBackend],
                                             image_file: Path, mode: str, answered: str, untouched: str) -> None:
    out = prompt("-m", "hybrid", "-o", "mode", mode, "-a", str(image_file), "Describe it")
    assert out.exit_code == 0, out.output
    assert len(backends[answered].calls) == 1 and backends[untouched].calls == []


def test_a_bad_option_value_is_a_one_line_error(processor: HybridVLMProcessor, image_file: Path) -> None:
    out = prompt("-m", "hybrid-local", "-o", "temperature", "9", "-a", str(image_file), "Describe it")
    assert out.exit_code != 0
    assert out.output.strip().splitlines() == ["Error: temperature must lie in [0, 2], got 9"]


def test_a_refusal_is_a_clean_error(processor: HybridVLMProcessor, backends: dict[str, FunctionBackend],
                                    image_file: Path) -> None:
    out = prompt("-m", "hybrid-cloud", "-o", "sensitive", "true", "-a", str(image_file), "Describe it")
    assert out.exit_code != 0
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in out.output
    assert "sensitive" in lines[0]
    assert backends["gemini"].calls == []
    assert isinstance(out.exception, SystemExit)  # click's exit, not our exception escaping
    # llm's CLI turns any exception into `Error: ...`; Python callers get llm's own error type from us.
    response = llm.get_model("hybrid-cloud").prompt("Describe it", attachments=[llm.Attachment(path=str(image_file))],
                                                    sensitive=True)
    with pytest.raises(llm.ModelError) as info:
        response.text()
    assert str(info.value) == lines[0].removeprefix("Error: ")
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --------------------------------------------------------------------------- logs


def test_llm_logs_records_the_exchange_and_why_it_went_where(processor: HybridVLMProcessor,
                                                             image_file: Path) -> None:
    assert prompt("-m", "hybrid-local", "-a", str(image_file), "Describe it").exit_code == 0
    out = run_llm("logs", "--json", "-n", "1")
    assert out.exit_code == 0, out.output
    (entry,) = json.loads(out.output)
    assert entry["model"] == "hybrid-local" and entry["prompt"] == "Describe it"
    assert entry["response"].strip() == LOCAL_ANSWER
    info: dict[str, Any] = entry["response_json"]
    if isinstance(info, str):
        info = json.loads(info)
    assert info["backend"] == "fastvlm" and info["mode"] == "local-only"
    assert info["route"]["backends"] == ["fastvlm"] and "latency_ms" in info
    assert entry["attachments"] and entry["attachments"][0]["type"] == "image/png"


# --------------------------------------------------------------------------- the real SDK


def test_hybrid_cloud_through_the_real_gemini_sdk(cloud_env: FakeGeminiServer, image_file: Path) -> None:
    """No processor injected: the plugin builds its own from the environment (as `fastvlm-hybrid` does)."""
    llm_plugin.set_processor(None)
    try:
        out = prompt("-m", "hybrid-cloud", "-a", str(image_file), "Describe the sunset")
        assert out.exit_code == 0, out.output
        assert out.output.startswith("seen ") and "inline:image/png" in out.output
        assert [c for c in cloud_env.model_calls if "streamGenerateContent" in c.path]
        logged = json.loads(run_llm("logs", "--json", "-n", "1").output)[0]
        info = logged["response_json"] if isinstance(logged["response_json"], dict) else json.loads(
            logged["response_json"])
        assert info["backend"] == "gemini" and info["route"]["cloud_allowed"] is True
        # The whole answer (`--no-stream`: `arun`) carries Gemini's token counts into llm's log.
        out = prompt("-m", "hybrid-cloud", "--no-stream", "-a", str(image_file), "Describe the sky")
        assert out.exit_code == 0 and "inline:image/png" in out.output, out.output
        logged = json.loads(run_llm("logs", "--json", "-n", "1").output)[0]
        assert logged["input_tokens"] > 0 and logged["output_tokens"] > 0
        assert [c for c in cloud_env.model_calls if c.path.endswith(":generateContent")]
        # `llm -c`: Gemini takes turns, so the earlier exchange arrives as its own contents, picture included.
        out = prompt("-c", "And the colour?")
        assert out.exit_code == 0, out.output
        contents = cloud_env.model_calls[-1].json["contents"]
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        assert "inline:image/png" in out.output
    finally:
        llm_plugin.close_processor()
    assert llm_plugin._processor is None


def test_the_llm_command_answers_and_exits(cloud_env: FakeGeminiServer, image_file: Path) -> None:
    """A real `llm` process: the entry point is installed, and the processor it built is closed at exit
    (its loop thread, clients and audit writer) without hanging or printing anything after the answer."""
    out = subprocess.run([sys.executable, "-m", "llm", "-m", "hybrid-cloud", "-a", str(image_file), "Describe it"],
                         capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.startswith("seen ") and "inline:image/png" in out.stdout
    assert len(cloud_env.model_calls) == 1
