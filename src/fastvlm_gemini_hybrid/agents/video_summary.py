"""`video-summary`: chapters with timestamps and a summary for a video file or a YouTube URL.

Why three paths: a YouTube URL can only be watched by the cloud (Gemini fetches it itself), so
it is refused up front when the user marked it sensitive or local-only. A local file goes whole
to a backend with native video input when the route allows. Otherwise (sensitive, local-only,
or no such backend) keyframes are described one by one locally and the chapters are written from
that timeline in a final text-only request, so the clip never leaves the machine.
Chapters must come in time order and inside the clip; an answer that breaks that is sent back once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from ..errors import HybridError, MissingDependencyError, PolicyViolationError
from ..execution.fanout import fan_out
from ..types import Attachment, Mode
from ._video import clip_has_route, extract_keyframes, fmt_ts, parse_ts, probe_duration
from .base import Agent, AgentContext, AgentOptions, ItemResult, OutputProblem, resolve_inputs
from .structured import ask_structured

if TYPE_CHECKING:
    from .answering import Answerer

DEFAULT_FRAMES = 8


class Chapter(BaseModel):
    start_s: float = Field(ge=0, description="start time in seconds")
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)

    @field_validator("start_s", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        return parse_ts(value)


class VideoSummary(BaseModel):
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    chapters: list[Chapter] = Field(min_length=1)
    key_points: list[str]


class FrameNote(BaseModel):
    description: str = Field(min_length=1, description="what is happening in this frame, one or two sentences")


class VideoSummaryAgent(Agent):
    name = "video-summary"
    summary = "chapters with timestamps and a summary for a video file or a YouTube URL (YouTube via the cloud only)"
    accepts = frozenset({"video", "youtube"})
    output_model = VideoSummary
    max_inputs = 1
    max_tokens = 1500
    params = {"chapters": "3 to 8", "language": "English"}  # noqa: RUF012 - read-only class data
    prompt = (
        "Summarise this video in {language}. Split it into {chapters} chapters at the points where the topic "
        "or scene changes; give each its start time in seconds, a short title and a one- or two-sentence "
        "summary. Then give the video a title, an overall summary of three to five sentences, and its key points."
    )
    frame_prompt = "This is one frame of a video, at {at}. Describe what is happening in it in one or two sentences."
    timeline_prompt = (
        "\n\nYou cannot see the video; here is what its keyframes show, with their times:\n{timeline}\n"
        "Base the chapters on these times."
    )

    async def arun(self, processor: Answerer, refs: list[str], options: AgentOptions) -> list[ItemResult]:
        items = resolve_inputs(refs, self.accepts, self.name)
        self.check_count(items)
        ctx = AgentContext(items, options)
        self.prepare(ctx)
        item = items[0]
        if item.kind == "youtube":
            self._check_youtube(ctx)
            ctx.extra.update(source="youtube", duration=None)
            ctx.attachments = (item.load(),)
            return [await self.ask(processor, ctx, ctx.attachments)]
        clip = item.load()
        ctx.extra["duration"] = _duration(item.ref)
        ok, why = clip_has_route(processor, self.make_request(ctx, (clip,), self.build_prompt(ctx)))
        if ok:
            ctx.extra["source"] = "clip"
            ctx.attachments = (clip,)
            return [await self.ask(processor, ctx, ctx.attachments)]
        options.say(f"video-summary: describing keyframes locally ({why})")
        return [await self._from_keyframes(processor, ctx)]

    def _check_youtube(self, ctx: AgentContext) -> None:
        hints = self.request_hints(ctx.options)
        if hints["sensitive"] or hints["mode"] is Mode.LOCAL_ONLY:
            raise PolicyViolationError(
                "a YouTube video can only be summarised by the cloud backend, but this request must stay local "
                "(drop --sensitive / --mode local-only, or download the video and pass the file)"
            )

    async def _from_keyframes(self, processor: Answerer, ctx: AgentContext) -> ItemResult:
        frames = extract_keyframes(ctx.items[0].ref, ctx.options.max_frames or DEFAULT_FRAMES)

        async def describe(_: int, frame: Any) -> str:
            att = Attachment.from_bytes(frame.jpeg, name=frame.name)
            request = self.make_request(ctx, (att,), self.frame_prompt.format(at=fmt_ts(frame.t_s)))
            answer = await ask_structured(processor, request, FrameNote, label=f"{self.name} (frame)")
            return answer.value.description  # type: ignore[attr-defined]

        notes = await fan_out(frames, describe, concurrency=ctx.options.concurrency)
        failed = next((n for n in notes if isinstance(n, HybridError)), None)
        if failed is not None:  # a summary over a timeline with holes would invent what it cannot see
            return ItemResult(self.name, ctx.items[0].ref, error=failed)
        pairs = zip(frames, notes, strict=True)
        timeline = "\n".join(f"- {f.t_s:.1f} s ({fmt_ts(f.t_s)}): {n.strip()}" for f, n in pairs)
        ctx.extra.update(source="keyframes", frames=len(frames))
        if ctx.extra.get("duration") is None:
            ctx.extra["duration"] = frames[-1].t_s
        prompt = self.build_prompt(ctx) + self.timeline_prompt.format(timeline=timeline)
        return await self.ask(processor, ctx, (), prompt, label=ctx.items[0].ref)

    def check(self, value: Any, ctx: AgentContext) -> None:
        starts = [c.start_s for c in value.chapters]
        for i in range(1, len(starts)):
            if starts[i] < starts[i - 1]:
                raise OutputProblem(f"chapters must be in time order, but chapter {i} starts before chapter {i - 1}")
        duration = ctx.extra.get("duration")
        if duration is not None and starts[-1] > duration + 1.0:
            raise OutputProblem(f"chapter {len(starts) - 1} starts at {starts[-1]:g} s, after the end of the "
                                f"{duration:.0f} s video")

    def postprocess(self, value: Any, ctx: AgentContext) -> dict[str, Any]:
        data = value.model_dump(mode="json")
        duration = ctx.extra.get("duration")
        chapters = data["chapters"]
        for i, chapter in enumerate(chapters):
            following = chapters[i + 1]["start_s"] if i + 1 < len(chapters) else duration
            chapter["end_s"] = round(following, 2) if following is not None else None
            chapter["start"] = fmt_ts(chapter["start_s"])
        data["duration_s"] = round(duration, 2) if duration is not None else None
        data["source"] = ctx.extra.get("source")
        return data

    def render(self, output: dict[str, Any]) -> str:
        lines = [f"# {output['title']}", "", output["summary"], "", "## Chapters"]
        for chapter in output["chapters"]:
            lines.append(f"{chapter['start']}  {chapter['title']} — {chapter['summary']}")
        if output["key_points"]:
            lines += ["", "## Key points"] + [f"- {p}" for p in output["key_points"]]
        return "\n".join(lines)


def _duration(path: str) -> float | None:
    """The clip's length, for checking chapter times; None without the `video` extra."""
    try:
        return probe_duration(path)
    except MissingDependencyError:
        return None


AGENT = VideoSummaryAgent()
