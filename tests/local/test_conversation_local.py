"""The tiny FastVLM (the real architecture, random weights) answers a conversation: the earlier turns and
their pictures go through the model's chat template, each picture in its own turn."""

from __future__ import annotations

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.models.items import GenItem
from fastvlm_gemini_hybrid.request_builder import build_request
from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions
from synth_media import picture


def pictures() -> list[Attachment]:
    return [Attachment.from_bytes(picture(c, (96, 64)), name=f"{i}.png")
            for i, c in enumerate(((200, 40, 40), (40, 40, 200)))]


async def test_earlier_turns_reach_the_model_and_count_as_input(tiny_backend: FastVLMBackend) -> None:
    options = GenerationOptions(max_tokens=4)
    alone = await tiny_backend.generate(build_request("And this one?", pictures()[1:], options=options))
    talk = build_request("And this one?", pictures(), options=options,
                         history=[("user", "What colour is this picture?", 1), ("assistant", "It is red.")])
    answer = await tiny_backend.generate(talk)
    assert answer.usage.output_tokens >= 1
    # the first picture's tokens and both earlier turns' words are part of the input
    assert answer.usage.input_tokens > alone.usage.input_tokens + 5


def test_each_picture_sits_in_its_own_turn_of_the_chat_template(tiny_backend: FastVLMBackend) -> None:
    runtime = tiny_backend.load()
    item = GenItem(prompt="And this one?", images=(), history=(("user", "What colour?", 1), ("assistant", "Red.", 0)))
    messages = runtime._messages(item)  # the template's input is what this test is about
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [c["type"] for c in messages[0]["content"]] == ["image", "text"]
    assert [c["type"] for c in messages[2]["content"]] == ["text"]
    text = runtime.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.index("What colour?") < text.index("Red.") < text.index("And this one?")
