"""The document agent against the real Gemini client and a fake Gemini server on 127.0.0.1:
by default nothing reaches the server; only `--not-sensitive` (and a route that allows it) does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from cloud.fake_gemini import FakeGeminiServer  # tests/ is on sys.path (rootdir conftest)
from fastvlm_gemini_hybrid.agents.base import AgentOptions
from fastvlm_gemini_hybrid.agents.registry import load_builtin
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.cli import agents_cmd, main
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import Mode
from synth_media import picture_file

from .answers import RECEIPT
from .conftest import GREY


@pytest.fixture
def server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer() as fake:
        yield fake


@pytest.fixture
async def processor(server: FakeGeminiServer, tmp_path: Path,
                    processor_factory: Callable[..., HybridVLMProcessor]) -> AsyncIterator[HybridVLMProcessor]:
    """A fake local backend answering RECEIPT, and the real Gemini backend pointed at the fake server."""
    settings = load_settings(home=tmp_path / "home", gemini_api_key=FakeGeminiServer.api_key,
                             gemini_base_url=server.base_url, gemini_timeout_s=5.0, gemini_retries=0)
    proc = processor_factory(settings, json.dumps(RECEIPT), GeminiBackend(settings), cache=False)
    yield proc
    await proc.aclose()


@pytest.fixture
def receipt(tmp_path: Path) -> Path:
    return picture_file(tmp_path, "receipt.png", color=GREY, size=(120, 200))


@pytest.mark.parametrize("mode", [None, Mode.AUTO, Mode.PARALLEL, Mode.FALLBACK])
async def test_document_never_reaches_the_cloud_server_by_default(processor, server, receipt, mode) -> None:
    options = AgentOptions(mode=mode, progress=False)
    (item,) = await load_builtin("document").arun(processor, [str(receipt)], options)
    assert item.ok and item.result.backend == "fastvlm"
    assert server.requests == []


def test_document_cli_default_stays_local(processor, server, receipt, monkeypatch, capsys) -> None:
    monkeypatch.setattr(agents_cmd, "make_processor", lambda _settings: processor)
    assert main(["agents", "run", "document", str(receipt), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["backend"] == "fastvlm" and row["route"]["cloud_allowed"] is False
    assert server.requests == []


async def test_document_reaches_the_cloud_only_when_allowed(processor, server, receipt) -> None:
    options = AgentOptions(sensitive=False, mode=Mode.CLOUD_ONLY, progress=False)
    (item,) = await load_builtin("document").arun(processor, [str(receipt)], options)
    calls = server.model_calls
    assert calls, "the cloud was allowed but never asked"
    config = calls[0].json.get("generationConfig") or calls[0].json.get("generation_config")
    assert config is not None and "document_type" in json.dumps(config)  # the schema went natively
    # The fake fills schemas with placeholder values: whatever it said, the agent either validated
    # it or reported it as invalid; it never passed an unchecked answer off as valid.
    assert item.ok or "invalid DocumentData JSON" in str(item.error)

