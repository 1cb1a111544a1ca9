"""Stop sequences (`GenerationOptions.stop`), enforced for every backend in one place: execution/call.py `Guarded`.

A whole answer is cut before the first stop sequence; a stream never sends any part of one (even one split
across pieces), ends when one arrives and closes the backend's stream, so no more tokens are generated.
Gemini and OpenAI-compatible servers get the sequences natively as well (against the fake servers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.fake_gemini import FakeGeminiServer, pick
from cloud.fake_openai import FakeOpenAIServer
from fastvlm_gemini_hybrid.backends.base import Backend, Capabilities
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.backends.openai_compat import OpenAICompatBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.execution.call import Guarded, StopWatch
from fastvlm_gemini_hybrid.metrics import Metrics
from fastvlm_gemini_hybrid.types import BackendKind, Generation, GenerationOptions, Request


class Pieces(Backend):
    """Answers with `pieces` (whole: joined); records how far its stream was read and whether it was closed."""

    name = "pieces"
    capabilities = Capabilities(kind=BackendKind.LOCAL, streaming=True)
    default_model = "pieces-model"

    def __init__(self, pieces: list[str], *, blocked: bool = False) -> None:
        self.pieces = pieces
        self.blocked = blocked
        self.sent = 0
        self.closed = False

    async def generate(self, request: Request) -> Generation:
        return Generation("".join(self.pieces), self.default_model, finish_reason="STOP", blocked=self.blocked)

    async def stream(self, request: Request) -> AsyncIterator[str]:
        try:
            for piece in self.pieces:
                self.sent += 1
                yield piece
        except GeneratorExit:
            self.closed = True
            raise


def guarded(backend: Backend) -> Guarded:
    return Guarded(backend.name, lambda: backend, timeout_s=5, metrics=Metrics())


def ask(*stop: str) -> Request:
    return Request("count", options=GenerationOptions(stop=stop))


async def streamed(backend: Backend, request: Request) -> tuple[list[str], Generation]:
    items = [item async for item in guarded(backend).stream_answer(request)]
    final = items.pop()
    assert isinstance(final, Generation) and all(isinstance(i, str) for i in items)
    return items, final  # type: ignore[return-value]


async def test_whole_answer_is_cut_before_the_first_stop_sequence() -> None:
    backend = Pieces(["one two ", "END three STOP four"])
    gen = await guarded(backend).generate(ask("STOP", "END"))
    assert gen.text == "one two " and gen.finish_reason == "stop"  # END comes first although listed second
    untouched = await guarded(backend).generate(ask("never"))
    assert untouched.text == "one two END three STOP four" and untouched.finish_reason == "STOP"
    assert (await guarded(backend).generate(ask())).text == "one two END three STOP four"


async def test_a_safety_block_explanation_is_not_cut() -> None:
    gen = await guarded(Pieces(["declined. END"], blocked=True)).generate(ask("END"))
    assert gen.text == "declined. END" and gen.blocked


async def test_stream_stops_at_the_sequence_and_closes_the_backend_stream() -> None:
    backend = Pieces(["alpha ", "beta ", "END ", "gamma ", "delta "])
    pieces, final = await streamed(backend, ask("END"))
    assert "".join(pieces) == "alpha beta " and final.text == "alpha beta "
    assert final.finish_reason == "stop"
    assert backend.sent == 3 and backend.closed  # "gamma" was never asked for


async def test_a_stop_sequence_split_across_pieces_is_never_sent_in_part() -> None:
    backend = Pieces(["the answer is 42<", "|en", "d|> and more", " text"])
    pieces, final = await streamed(backend, ask("<|end|>"))
    assert "".join(pieces) == "the answer is 42" == final.text
    assert not any(c in "".join(pieces) for c in "<|")  # no piece of the sequence went out, even briefly
    assert backend.closed and backend.sent == 3


async def test_held_back_text_that_was_not_a_stop_sequence_is_sent() -> None:
    backend = Pieces(["a <", "b> <", "!"])
    pieces, final = await streamed(backend, ask("<!-- stop -->"))
    assert "".join(pieces) == "a <b> <!" == final.text and final.finish_reason is None
    assert pieces[0] == "a "  # "<" waited: it could have begun the sequence
    assert backend.sent == 3 and not backend.closed  # read to its end: nothing to close early


async def test_without_stop_sequences_every_piece_goes_on_as_it_came() -> None:
    backend = Pieces(["x", "", "y"])
    pieces, final = await streamed(backend, ask())
    assert pieces == ["x", "", "y"] and final.text == "xy" and final.finish_reason is None


def test_stop_watch_holds_back_at_most_the_longest_sequence_less_one() -> None:
    watch = StopWatch(("abcd", "xy"))
    assert watch.feed("0123abc") == "0123" and watch.held == "abc"
    assert watch.feed("x") == "abc" and watch.held == "x"  # "abcx" is no prefix; "x" may begin "xy"
    assert watch.feed("y tail") == "" and watch.stopped
    assert watch.feed("more") == "" and watch.flush() == ""


@pytest.mark.parametrize("stop", [("",), ("a", "b", "c", "d", "e"), ("ok", 3), "END"])
def test_stop_must_be_up_to_four_non_empty_strings(stop: object) -> None:
    with pytest.raises(BadInputError):
        GenerationOptions(stop=stop)  # type: ignore[arg-type]


def test_stop_is_part_of_the_cache_key_and_a_list_is_kept_as_a_tuple() -> None:
    options = GenerationOptions(stop=["END", "STOP"])  # type: ignore[arg-type]
    assert options.stop == ("END", "STOP")
    assert options.key()["stop"] == ("END", "STOP") and GenerationOptions().key()["stop"] == ()


async def test_gemini_and_openai_compatible_servers_also_get_stop_and_json_natively(
    fake_gemini: FakeGeminiServer, tmp_path: Path,
) -> None:
    """Natively too, so they stop generating (fewer tokens paid for); json_object mode is JSON output, no schema."""
    pytest.importorskip("google.genai")
    asked = Request("Caption", options=GenerationOptions(stop=("END", "STOP"), json_schema={"type": "object"}))
    with FakeOpenAIServer() as fake_openai:
        settings = load_settings(home=tmp_path / "home", gemini_api_key=FakeGeminiServer.api_key,
                                 gemini_base_url=fake_gemini.base_url, gemini_timeout_s=5.0, gemini_retries=0,
                                 openai_base_url=fake_openai.base_url, openai_model="fake-vlm", openai_timeout_s=5.0)
        for backend in (GeminiBackend(settings), OpenAICompatBackend(settings)):
            try:
                await backend.generate(asked)
            finally:
                await backend.aclose()
        body = fake_openai.requests[-1].json
    config = pick(fake_gemini.model_calls[-1].json, "generationConfig")
    assert pick(config, "stopSequences") == ["END", "STOP"]
    assert pick(config, "responseMimeType") == "application/json" and pick(config, "responseJsonSchema") is None
    assert body["stop"] == ["END", "STOP"] and body["response_format"] == {"type": "json_object"}
