"""Multi-turn requests: earlier turns reach backends that take them as turns, are written into one prompt
for backends that do not, and are read by the privacy checks like every other text part."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.backends.testing import FunctionBackend
from fastvlm_gemini_hybrid.config import Settings
from fastvlm_gemini_hybrid.errors import BadInputError, PolicyViolationError
from fastvlm_gemini_hybrid.request_builder import build_request
from fastvlm_gemini_hybrid.types import Attachment, BackendKind, Mode, Request, Turn
from synth_media import picture


def backend(name: str, kind: str = "local", conversation: bool = True) -> FunctionBackend:
    caps = Capabilities(kind=BackendKind.parse(kind), media=frozenset({"image"}), max_images=8, streaming=True,
                        conversation=conversation)
    return FunctionBackend(name, lambda r: f"{name}: {r.prompt}", kind=kind, capabilities=caps)


def two_turns(**kw: Any) -> Request:
    red = Attachment.from_bytes(picture((200, 30, 30)), name="red.png")
    blue = Attachment.from_bytes(picture((30, 30, 200)), name="blue.png")
    return build_request("And this one?", [red, blue],
                         history=[("user", "What colour is this?", 1), ("assistant", "Red.")], **kw)


async def test_a_backend_that_takes_turns_gets_them_with_their_pictures(settings: Settings) -> None:
    local = backend("fastvlm")
    proc = make_processor(settings, local, None, cache=False)
    result = await proc.arun(two_turns(mode=Mode.LOCAL_ONLY))
    seen = local.calls[0]
    assert seen.prompt == "And this one?" and result.response == "fastvlm: And this one?"
    assert [(t.role, t.text, t.images) for t in seen.history] == [("user", "What colour is this?", 1),
                                                                 ("assistant", "Red.", 0)]
    first, second, last = seen.turn_images()
    assert [a.name for a in first] == ["red.png"] and second == () and [a.name for a in last] == ["blue.png"]


async def test_a_backend_that_takes_one_message_gets_the_turns_written_into_it(settings: Settings) -> None:
    local = backend("fastvlm", conversation=False)
    proc = make_processor(settings, local, None, cache=False)
    await proc.arun(two_turns(mode=Mode.LOCAL_ONLY))
    seen = local.calls[0]
    assert seen.history == ()
    assert seen.prompt == "Conversation so far:\nUser: What colour is this?\nAssistant: Red.\n\nUser: And this one?"


async def test_a_sensitive_earlier_turn_keeps_the_whole_conversation_local(settings: Settings) -> None:
    cloud = backend("gemini", kind="cloud")
    local = backend("fastvlm")
    proc = make_processor(settings, local, cloud, cache=False)
    request = build_request("Summarise what I told you.", history=[
        ("user", "My card number is 4111 1111 1111 1111, expiry 04/29."), ("assistant", "Noted.")])
    decision = proc.decide(request)
    assert decision.sensitive and "gemini" not in decision.backends
    with pytest.raises(PolicyViolationError):
        await proc.arun(replace(request, mode=Mode.CLOUD_ONLY))
    assert cloud.calls == []


async def test_the_cache_tells_conversations_apart(settings: Settings) -> None:
    local = backend("fastvlm")
    proc = make_processor(settings, local, None)
    a = build_request("Which is bigger?", history=[("user", "Compare a cat and a dog."), ("assistant", "OK.")],
                      mode="local-only")
    b = build_request("Which is bigger?", history=[("user", "Compare a mouse and an ant."), ("assistant", "OK.")],
                      mode="local-only")
    first, second = await proc.arun(a), await proc.arun(b)
    assert not first.cached and not second.cached and len(local.calls) == 2
    assert (await proc.arun(a)).cached


def test_turns_are_checked() -> None:
    with pytest.raises(BadInputError, match="role"):
        Turn("system", "be brief")
    with pytest.raises(BadInputError, match="more pictures"):
        build_request("next?", history=[("user", "look", 2)])
    with pytest.raises(BadInputError, match="list of turns"):
        build_request("next?", history="User: hi")
    with pytest.raises(BadInputError, match="history\\[0\\]"):
        build_request("next?", history=[42])
