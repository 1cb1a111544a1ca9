"""A second turn through the `openai` SDK against our server reaches the backend as turns, each with its
own pictures (not flattened into one prompt)."""

from __future__ import annotations

import base64
from typing import Any

from synth_media import picture


def test_a_second_turn_through_the_openai_sdk_reaches_the_backend_as_turns(app_factory: Any, live_server: Any) -> None:
    import openai

    from fastvlm_gemini_hybrid.backends.base import Capabilities
    from fastvlm_gemini_hybrid.types import BackendKind

    app, proc = app_factory(cloud="it is blue")
    gemini = proc.backend("gemini")
    gemini.capabilities = Capabilities(kind=BackendKind.CLOUD, media=frozenset({"image"}), max_images=8,
                                       conversation=True)
    srv = live_server(app)
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=10)
    red = "data:image/png;base64," + base64.b64encode(picture((255, 0, 0))).decode()
    blue = "data:image/png;base64," + base64.b64encode(picture((0, 0, 255))).decode()
    answer = client.chat.completions.create(model="gemini", messages=[
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "text", "text": "What colour?"},
                                     {"type": "image_url", "image_url": {"url": red}}]},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": [{"type": "text", "text": "And now?"},
                                     {"type": "image_url", "image_url": {"url": blue}}]},
    ])
    assert answer.choices[0].message.content == "it is blue"
    seen = gemini.calls[-1]  # type: ignore[attr-defined]
    assert seen.prompt == "And now?" and seen.options.system == "Answer in one word."
    assert [(t.role, t.text, t.images) for t in seen.history] == [("user", "What colour?", 1),
                                                                 ("assistant", "Red.", 0)]
    assert len(seen.attachments) == 2
