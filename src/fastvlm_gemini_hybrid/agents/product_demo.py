"""`product-demo`: a sequence of screenshots or a screen recording in, a demo script and a short
product description out.

Why the flow: a recording goes whole to a backend that takes video when the route allows it
(timestamps then come from the model and are checked against the clip length); otherwise, or
when the recording is sensitive, keyframes at scene changes stand in for it, so every step can
still point at the picture it narrates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from ..errors import BadInputError
from ..types import Attachment, Domain
from ._video import clip_has_route, extract_keyframes, fmt_ts, parse_ts
from .base import Agent, AgentContext, AgentOptions, ItemResult, OutputProblem, RoutingHints, resolve_inputs

if TYPE_CHECKING:
    from .answering import Answerer

DEFAULT_FRAMES = 4  # what the local FastVLM backend takes in one request


class DemoStep(BaseModel):
    title: str = Field(min_length=1)
    action: str = Field(min_length=1, description="what the presenter does on screen")
    narration: str = Field(min_length=1, description="what the presenter says")
    screenshot: int | None = Field(None, ge=0, description="0-based index of the image showing this step")
    at_s: float | None = Field(None, ge=0, description="seconds into the recording, when given a video")

    @field_validator("at_s", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        return parse_ts(value)


class ProductDemo(BaseModel):
    product: str = Field(min_length=1, description="the product as it calls itself")
    tagline: str = Field(min_length=1)
    description: str = Field(min_length=1, description="two or three sentences")
    audience: str
    steps: list[DemoStep] = Field(min_length=1)
    highlights: list[str]


class ProductDemoAgent(Agent):
    name = "product-demo"
    summary = "step-by-step demo script and short product description from screenshots or a screen recording"
    accepts = frozenset({"image", "video"})
    output_model = ProductDemo
    max_inputs = 12
    max_tokens = 1400
    hints = RoutingHints(domain=Domain.TECHNICAL)
    params = {"audience": "new users", "length": "5 to 8 steps"}  # noqa: RUF012 - read-only class data
    prompt = (
        "You are preparing a product demo for {audience}. The {media} show(s) the product in use, in order"
        "{numbering}. Write a demo script of {length}: for each step, a short title, the on-screen action, "
        "the presenter's narration{pointer}. Then say what the product is called (as shown, or a fitting "
        "description if that is not visible), a one-line tagline, a two- or three-sentence description, the "
        "intended audience and its key highlights."
    )

    async def arun(self, processor: Answerer, refs: list[str], options: AgentOptions) -> list[ItemResult]:
        items = resolve_inputs(refs, self.accepts, self.name)
        self.check_count(items)
        videos = [i for i in items if i.kind == "video"]
        if videos and len(items) > 1:
            raise BadInputError("product-demo takes either screenshots or one screen recording, not both")
        ctx = AgentContext(items, options)
        self.prepare(ctx)
        if not videos:
            ctx.attachments = tuple(i.load() for i in items)
            ctx.extra.update(media="screenshots", names=[i.name for i in items], times=None)
            return [await self.ask(processor, ctx, ctx.attachments)]
        clip = items[0].load()
        ctx.extra.update(media="clip", names=None, times=None)
        probe = self.make_request(ctx, (clip,), self.build_prompt(ctx))
        ok, why = clip_has_route(processor, probe)
        if ok:
            ctx.attachments = (clip,)
            return [await self.ask(processor, ctx, ctx.attachments)]
        options.say(f"product-demo: using keyframes of {items[0].name} ({why})")
        frames = extract_keyframes(items[0].ref, options.max_frames or DEFAULT_FRAMES, scene_change=True)
        ctx.attachments = tuple(Attachment.from_bytes(f.jpeg, name=f.name) for f in frames)
        ctx.extra.update(media="frames", names=[f.name for f in frames], times=[f.t_s for f in frames])
        return [await self.ask(processor, ctx, ctx.attachments)]

    def prompt_values(self, ctx: AgentContext) -> dict[str, str]:
        media = ctx.extra.get("media", "screenshots")
        if media == "clip":
            return {"media": "screen recording", "numbering": "", "pointer": " and the time (seconds) it happens"}
        label = "screenshots" if media == "screenshots" else "frames of a screen recording"
        return {"media": label, "numbering": ", indexed from 0", "pointer": " and the image number it shows"}

    def check(self, value: Any, ctx: AgentContext) -> None:
        names = ctx.extra.get("names")
        for i, step in enumerate(value.steps):
            if names is not None and step.screenshot is not None and step.screenshot >= len(names):
                raise OutputProblem(
                    f"steps.{i}.screenshot is {step.screenshot}, but only images 0..{len(names) - 1} exist"
                )

    def postprocess(self, value: Any, ctx: AgentContext) -> dict[str, Any]:
        data = value.model_dump(mode="json")
        names, times = ctx.extra.get("names"), ctx.extra.get("times")
        for number, step in enumerate(data["steps"], start=1):
            step["number"] = number
            idx = step.get("screenshot")
            step["file"] = names[idx] if names is not None and idx is not None else None
            if times is not None and idx is not None:
                step["at_s"] = round(times[idx], 2)
            step["at"] = fmt_ts(step["at_s"]) if step.get("at_s") is not None else None
        data["source"] = ctx.extra.get("media")
        return data

    def render(self, output: dict[str, Any]) -> str:
        lines = [f"# {output['product']} — {output['tagline']}", "", output["description"], ""]
        lines.append(f"Audience: {output['audience']}")
        lines += ["", "## Demo script"]
        for step in output["steps"]:
            where = " · ".join(x for x in (step.get("at"), step.get("file")) if x)
            lines.append(f"{step['number']}. **{step['title']}**" + (f" ({where})" if where else ""))
            lines.append(f"   - Do: {step['action']}")
            lines.append(f"   - Say: {step['narration']}")
        if output["highlights"]:
            lines += ["", "## Highlights"] + [f"- {h}" for h in output["highlights"]]
        return "\n".join(lines)


AGENT = ProductDemoAgent()
