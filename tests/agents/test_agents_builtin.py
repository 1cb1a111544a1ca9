"""ux-review, product-demo and video-summary with fake backends: valid, invalid, partially valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.agents.base import AgentOptions, AgentOutputError
from fastvlm_gemini_hybrid.agents.registry import load_builtin
from fastvlm_gemini_hybrid.errors import BadInputError, PolicyViolationError

from .answers import REVIEW
from .conftest import ScriptedAnswers, calls


def quiet() -> AgentOptions:
    return AgentOptions(progress=False, warn=lambda _m: None)


async def test_ux_review_valid(make_processor, screenshots: list[Path]) -> None:
    processor = make_processor(local=ScriptedAnswers(REVIEW), cloud=ScriptedAnswers(REVIEW))
    (item,) = await load_builtin("ux-review").arun(processor, [str(p) for p in screenshots], quiet())
    assert item.ok and item.attempts == 1
    out = item.output
    assert [i["severity"] for i in out["issues"]] == ["critical", "medium"]  # sorted by severity
    box = out["issues"][1]["location"]
    assert box["file"] == "screen-1.png" and box["pixels"] == [200, 150, 100, 30]  # 400x300 image
    assert out["accessibility"][0]["location"]["pixels"] == [0, 0, 200, 20]  # 200x100 image
    assert out["counts"] == {"critical": 1, "high": 0, "medium": 1, "low": 0}
    request = (calls(processor, "fastvlm") + calls(processor, "gemini"))[0]
    assert len(request.attachments) == 2 and "2 screenshot(s)" in request.prompt


async def test_ux_review_box_on_missing_screenshot_is_retried(make_processor, screenshots: list[Path]) -> None:
    wrong = json.loads(json.dumps(REVIEW))
    wrong["issues"][0]["location"]["screenshot"] = 5
    script = ScriptedAnswers(wrong, REVIEW)
    processor = make_processor(local=script, cloud=script)
    (item,) = await load_builtin("ux-review").arun(processor, [str(p) for p in screenshots], quiet())
    assert item.ok and item.attempts == 2
    assert "screenshot 5" in (item.retried_because or "")
    assert "screenshot 5" in script.prompts[1]


async def test_ux_review_invalid_twice_fails(make_processor, screenshots: list[Path]) -> None:
    partial = {k: v for k, v in REVIEW.items() if k != "issues"}  # partially valid: a field missing
    script = ScriptedAnswers(partial, {**REVIEW, "score": 42})
    processor = make_processor(local=script, cloud=script)
    (item,) = await load_builtin("ux-review").arun(processor, [str(screenshots[0])], quiet())
    assert not item.ok and item.output is None
    assert isinstance(item.error, AgentOutputError) and "score" in str(item.error)
    assert len(script.prompts) == 2


async def test_ux_review_refuses_video(make_processor, clip: Path) -> None:
    processor = make_processor()
    with pytest.raises(BadInputError, match="ux-review cannot take"):
        await load_builtin("ux-review").arun(processor, [str(clip)], quiet())
    assert calls(processor, "fastvlm") == [] and calls(processor, "gemini") == []


DEMO = {
    "product": "Acme Notes", "tagline": "Notes that sync", "description": "A notes app. It syncs.",
    "audience": "teams",
    "steps": [
        {"title": "Open", "action": "Click New", "narration": "Start a note", "screenshot": 0, "at_s": None},
        {"title": "Share", "action": "Click Share", "narration": "Invite a colleague", "screenshot": 1,
         "at_s": "0:03"},
    ],
    "highlights": ["Sync", "Sharing"],
}


async def test_product_demo_from_screenshots(make_processor, screenshots: list[Path]) -> None:
    processor = make_processor(local=ScriptedAnswers(DEMO), cloud=ScriptedAnswers(DEMO))
    options = AgentOptions(progress=False, params={"audience": "sales engineers"})
    (item,) = await load_builtin("product-demo").arun(processor, [str(p) for p in screenshots], options)
    assert item.ok
    steps = item.output["steps"]
    assert [s["number"] for s in steps] == [1, 2]
    assert steps[1]["file"] == "screen-1.png" and steps[1]["at_s"] == 3.0 and steps[1]["at"] == "0:03"
    asked = (calls(processor, "fastvlm") + calls(processor, "gemini"))[0]
    assert "sales engineers" in asked.prompt


async def test_product_demo_bad_param_is_bad_input(make_processor, screenshots: list[Path]) -> None:
    processor = make_processor()
    with pytest.raises(BadInputError, match="no parameter 'colour'"):
        await load_builtin("product-demo").arun(processor, [str(screenshots[0])], AgentOptions(params={"colour": "x"}))


async def test_product_demo_recording_goes_whole_to_a_video_backend(make_processor, clip: Path) -> None:
    """Local first (as configured products route): the recording goes as keyframes. Naming Gemini puts a
    backend that takes video first, and the recording goes to it whole."""
    processor = make_processor(local=ScriptedAnswers(DEMO), cloud=ScriptedAnswers(DEMO), local_media={"image"})
    (local,) = await load_builtin("product-demo").arun(processor, [str(clip)], quiet())
    assert local.ok and local.output["source"] == "frames"
    sent = calls(processor, "fastvlm") + calls(processor, "gemini")
    assert sent and all(a.kind == "image" for r in sent for a in r.attachments)
    processor = make_processor(local=ScriptedAnswers(DEMO), cloud=ScriptedAnswers(DEMO), local_media={"image"})
    pinned = AgentOptions(progress=False, warn=lambda _m: None, model="gemini")
    (item,) = await load_builtin("product-demo").arun(processor, [str(clip)], pinned)
    assert item.ok and item.output["source"] == "clip"
    assert item.result is not None and item.result.backend == "gemini"
    (request,) = calls(processor, "gemini")
    assert [a.kind for a in request.attachments] == ["video"]
    assert calls(processor, "fastvlm") == []


async def test_product_demo_sensitive_recording_uses_local_keyframes(make_processor, clip: Path) -> None:
    processor = make_processor(local=ScriptedAnswers(DEMO), cloud=ScriptedAnswers(DEMO), local_media={"image"})
    options = AgentOptions(sensitive=True, progress=False, warn=lambda _m: None)
    (item,) = await load_builtin("product-demo").arun(processor, [str(clip)], options)
    assert item.ok and item.output["source"] == "frames"
    assert calls(processor, "gemini") == []
    (request,) = calls(processor, "fastvlm")
    kinds = [a.kind for a in request.attachments]
    assert kinds and set(kinds) == {"image"} and len(kinds) <= 4
    assert item.output["steps"][1]["file"].startswith("frame-")


async def test_product_demo_rejects_mixed_inputs(make_processor, clip: Path, screenshots: list[Path]) -> None:
    with pytest.raises(BadInputError, match="either screenshots or one screen recording"):
        await load_builtin("product-demo").arun(make_processor(), [str(clip), str(screenshots[0])], quiet())


SUMMARY = {
    "title": "Colours", "summary": "Three colours in turn.",
    "chapters": [{"start_s": 0, "title": "Red", "summary": "Red."}, {"start_s": "0:02", "title": "Green",
                                                                         "summary": "Green."},
                 {"start_s": 4.0, "title": "Blue", "summary": "Blue."}],
    "key_points": ["red", "green", "blue"],
}


async def test_video_summary_clip_via_cloud(make_processor, clip: Path) -> None:
    processor = make_processor(cloud=ScriptedAnswers(SUMMARY), local_media={"image"})
    (item,) = await load_builtin("video-summary").arun(processor, [str(clip)], quiet())
    assert item.ok and item.output["source"] == "clip"
    chapters = item.output["chapters"]
    assert [c["start_s"] for c in chapters] == [0.0, 2.0, 4.0]
    assert [c["end_s"] for c in chapters][:2] == [2.0, 4.0]
    assert chapters[2]["end_s"] == pytest.approx(item.output["duration_s"], abs=0.5)
    assert item.output["duration_s"] == pytest.approx(6.0, abs=0.5)


async def test_video_summary_out_of_order_chapters_retry_then_fail(make_processor, clip: Path) -> None:
    backwards = {**SUMMARY, "chapters": list(reversed(SUMMARY["chapters"]))}
    late = {**SUMMARY, "chapters": [{"start_s": 500, "title": "x", "summary": "y"}]}
    script = ScriptedAnswers(backwards, late)
    processor = make_processor(cloud=script, local_media={"image"})
    (item,) = await load_builtin("video-summary").arun(processor, [str(clip)], quiet())
    assert isinstance(item.error, AgentOutputError)
    assert "time order" in str(item.error) and "after the end" in str(item.error)


async def test_video_summary_sensitive_clip_stays_local_via_keyframes(make_processor, clip: Path) -> None:
    notes = ScriptedAnswers({"description": "a coloured screen"}, {"description": "a coloured screen"})

    def local(request):  # frame notes for images, the summary for the final text-only request
        return notes(request) if request.attachments else json.dumps(SUMMARY)

    processor = make_processor(local=local, cloud=ScriptedAnswers(SUMMARY), local_media={"image"})
    options = AgentOptions(sensitive=True, max_frames=3, progress=False, warn=lambda _m: None)
    (item,) = await load_builtin("video-summary").arun(processor, [str(clip)], options)
    assert item.ok and item.output["source"] == "keyframes"
    assert calls(processor, "gemini") == []
    local_calls = calls(processor, "fastvlm")
    assert len(local_calls) == 4  # three frames, one summary
    final = local_calls[-1]
    assert final.attachments == () and "keyframes show" in final.prompt and "a coloured screen" in final.prompt
    assert all(r.sensitive for r in local_calls)


async def test_video_summary_youtube_goes_to_cloud_only(make_processor) -> None:
    processor = make_processor(cloud=ScriptedAnswers(SUMMARY))
    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    (item,) = await load_builtin("video-summary").arun(processor, [url], quiet())
    assert item.ok and item.result is not None and item.result.backend == "gemini"
    assert item.output["source"] == "youtube" and item.output["duration_s"] is None
    assert calls(processor, "fastvlm") == []


async def test_video_summary_youtube_sensitive_is_refused(make_processor) -> None:
    processor = make_processor(cloud=ScriptedAnswers(SUMMARY))
    url = "https://youtu.be/dQw4w9WgXcQ"
    with pytest.raises(PolicyViolationError, match="only be summarised by the cloud"):
        await load_builtin("video-summary").arun(processor, [url], AgentOptions(sensitive=True))
    assert calls(processor, "gemini") == []


async def test_video_summary_takes_one_input(make_processor, clip: Path) -> None:
    with pytest.raises(BadInputError, match="at most 1"):
        await load_builtin("video-summary").arun(make_processor(), [str(clip), str(clip)], quiet())
