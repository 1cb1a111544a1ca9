"""`ux-review`: screenshots in, a structured UI/UX review out.

Why the shape: a review is only actionable if every issue says how bad it is and where it is, so
each issue carries a severity and a box on a named screenshot. Boxes are asked for as fractions of
the image (models place those far more reliably than pixels) and converted to pixels here, from
the real image size; an answer pointing at a screenshot that does not exist is sent back once.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..types import Domain, Latency
from .base import Agent, AgentContext, OutputProblem, RoutingHints

Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class Box(BaseModel):
    """Where on a screenshot: fractions of its width and height, origin top-left."""

    screenshot: int = Field(0, ge=0, description="0-based index of the screenshot")
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(gt=0, le=1)
    h: float = Field(gt=0, le=1)


class UXIssue(BaseModel):
    title: str = Field(min_length=1)
    severity: Severity
    category: Literal["layout", "visual", "content", "interaction", "navigation", "consistency", "performance"]
    location: Box | None = None
    description: str = Field(min_length=1)
    suggestion: str = Field(min_length=1)


class AccessibilityConcern(BaseModel):
    issue: str = Field(min_length=1)
    severity: Severity
    guideline: str | None = Field(None, description="WCAG criterion, e.g. 1.4.3 Contrast")
    location: Box | None = None


class UXReview(BaseModel):
    summary: str = Field(min_length=1)
    score: int = Field(ge=0, le=10, description="overall quality, 0 (unusable) to 10 (excellent)")
    issues: list[UXIssue]
    accessibility: list[AccessibilityConcern]
    suggestions: list[str]


def image_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) of an image, or None when it cannot be read (the box stays fractional)."""
    if not data:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # noqa: BLE001 - Pillow raises many types; a missing size only drops the pixel box
        return None


class UXReviewAgent(Agent):
    name = "ux-review"
    summary = "UI/UX review of screenshots: issues with severity and location, accessibility, suggestions"
    accepts = frozenset({"image"})
    output_model = UXReview
    max_inputs = 8
    max_tokens = 1200
    hints = RoutingHints(domain=Domain.TECHNICAL, latency=Latency.NORMAL)
    params = {"focus": "overall usability"}  # noqa: RUF012 - read-only class data
    prompt = (
        "You are a senior UI/UX designer reviewing {n} screenshot(s) of a user interface, indexed from 0 "
        "in the order given. Focus: {focus}. List concrete problems with layout, visual hierarchy, content, "
        "interaction, navigation and consistency; rate each low, medium, high or critical; give each a box "
        "on its screenshot as fractions of the image width and height (x, y = top-left corner). List "
        "accessibility concerns separately (contrast, text size, touch targets, labels), citing the WCAG "
        "criterion when you can. Finish with the most valuable improvements."
    )

    def prompt_values(self, ctx: AgentContext) -> dict[str, str]:
        return {"n": str(len(ctx.items))}

    def check(self, value: Any, ctx: AgentContext) -> None:
        count = len(ctx.items)
        for where, box in _boxes(value):
            if box.screenshot >= count:
                raise OutputProblem(f"{where} points at screenshot {box.screenshot}, but only 0..{count - 1} exist")

    def postprocess(self, value: Any, ctx: AgentContext) -> dict[str, Any]:
        sizes = [image_size(a.data) for a in ctx.attachments]
        names = [i.name for i in ctx.items]
        data = value.model_dump(mode="json")
        for group in ("issues", "accessibility"):
            data[group].sort(key=lambda item: SEVERITY_ORDER[item["severity"]])
            for item in data[group]:
                box = item.get("location")
                if box:
                    box["file"] = names[box["screenshot"]]
                    size = sizes[box["screenshot"]]
                    if size:
                        box["pixels"] = _pixels(box, size)
        data["counts"] = {s: sum(1 for i in data["issues"] if i["severity"] == s) for s in SEVERITY_ORDER}
        return data

    def render(self, output: dict[str, Any]) -> str:
        lines = [f"UX score {output['score']}/10 — {output['summary']}", ""]
        for issue in output["issues"]:
            where = ""
            if issue.get("location"):
                box = issue["location"]
                px = box.get("pixels")
                where = f" [{box['file']}" + (f" @ {px[0]},{px[1]} {px[2]}×{px[3]}px" if px else "") + "]"
            lines.append(f"- [{issue['severity'].upper()}] {issue['title']}{where}")
            lines.append(f"    {issue['description']}")
            lines.append(f"    fix: {issue['suggestion']}")
        if output["accessibility"]:
            lines += ["", "Accessibility:"]
            for concern in output["accessibility"]:
                rule = f" (WCAG {concern['guideline']})" if concern.get("guideline") else ""
                lines.append(f"- [{concern['severity'].upper()}] {concern['issue']}{rule}")
        if output["suggestions"]:
            lines += ["", "Suggestions:"] + [f"- {s}" for s in output["suggestions"]]
        return "\n".join(lines)


def _boxes(value: UXReview) -> list[tuple[str, Box]]:
    out = [(f"issues.{i}.location", issue.location) for i, issue in enumerate(value.issues) if issue.location]
    out += [
        (f"accessibility.{i}.location", c.location) for i, c in enumerate(value.accessibility) if c.location
    ]
    return out  # type: ignore[return-value]


def _pixels(box: dict[str, Any], size: tuple[int, int]) -> list[int]:
    """[x, y, w, h] in pixels, clipped to the image."""
    width, height = size
    x = min(round(box["x"] * width), width - 1)
    y = min(round(box["y"] * height), height - 1)
    w = max(1, min(round(box["w"] * width), width - x))
    h = max(1, min(round(box["h"] * height), height - y))
    return [x, y, w, h]


AGENT = UXReviewAgent()
