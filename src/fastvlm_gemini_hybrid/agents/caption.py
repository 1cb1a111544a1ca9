"""`caption`: a caption, short and long alt text and tags per image, in batch over folders.

Why per image: captions are independent, so a folder runs as one request per image with bounded
concurrency and a progress bar on stderr, and one bad image fails alone. Results stream out as
they finish (JSONL via the CLI, or a sidecar per image: `photo.txt` holding the caption, or
`photo.json` holding everything), so an interrupted run keeps its work; existing sidecars are
skipped unless `overwrite` is set. Alt text is held to 150 characters (screen readers cut longer
ones), and an over-long answer is sent back once like any other invalid answer.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..errors import BadInputError, HybridError
from ..execution.fanout import fan_out
from ..types import Domain, Latency
from .base import Agent, AgentContext, AgentOptions, InputItem, ItemResult, RoutingHints, resolve_inputs

if TYPE_CHECKING:
    from .answering import Answerer

SIDECAR_FORMATS = ("txt", "json")


class Captions(BaseModel):
    caption: str = Field(min_length=1, max_length=300, description="one sentence describing the image")
    alt_text: str = Field(min_length=1, max_length=150, description="short alt text, under 150 characters")
    alt_text_long: str = Field(min_length=1, description="a detailed description for screen readers")
    tags: list[str] = Field(default_factory=list, max_length=15)


def sidecar_path(image: Path, fmt: str, clashing_stems: set[str] | None = None) -> Path:
    """`photo.txt` beside `photo.png`; `photo.png.txt` when another input shares the stem."""
    if fmt not in SIDECAR_FORMATS:
        raise BadInputError(f"unknown sidecar format {fmt!r}; choose one of: {', '.join(SIDECAR_FORMATS)}")
    if clashing_stems and str(image.with_suffix("")) in clashing_stems:
        return image.with_name(f"{image.name}.{fmt}")
    return image.with_suffix(f".{fmt}")


def write_sidecar(item: ItemResult, fmt: str, path: Path) -> None:
    """Write one image's captions beside it (atomically: a crash never leaves half a file)."""
    assert item.output is not None
    if fmt == "txt":
        text = item.output["caption"].strip() + "\n"
    else:
        text = json.dumps({**item.output, "backend": item.result.backend if item.result else None,
                           "model": item.result.model if item.result else None}, ensure_ascii=False, indent=2) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class CaptionAgent(Agent):
    name = "caption"
    summary = "captions, short and long alt text and tags for images; batch over folders, JSONL or sidecars"
    accepts = frozenset({"image"})
    output_model = Captions
    per_input = True
    max_tokens = 400
    hints = RoutingHints(domain=Domain.CREATIVE)
    params = {"style": "plain and factual", "language": "English"}  # noqa: RUF012 - read-only class data
    prompt = (
        "Describe this image for people who cannot see it, in {language}, in a {style} style. Give: a "
        "one-sentence caption; short alt text under 150 characters that says what matters, without starting "
        "with 'image of'; a longer description (two to four sentences) covering people, objects, text, "
        "setting and colours; and up to 10 lowercase tags."
    )

    async def arun(self, processor: Answerer, refs: list[str], options: AgentOptions) -> list[ItemResult]:
        items = resolve_inputs(refs, self.accepts, self.name)
        self.check_count(items)
        if len(items) > 1 and options.latency is None:
            options = replace(options, latency=Latency.BATCH)  # lets the router pick throughput over speed
        base_ctx = AgentContext(items, options)
        self.prepare(base_ctx)
        prompt = self.build_prompt(base_ctx)
        fmt = options.sidecar
        stems = [str(Path(i.ref).with_suffix("")) for i in items]
        clashing = {s for s in stems if stems.count(s) > 1}
        todo: list[InputItem] = []
        for item in items:
            if fmt and not options.overwrite and sidecar_path(Path(item.ref), fmt, clashing).exists():
                continue
            todo.append(item)
        if len(todo) < len(items):
            options.say(f"caption: {len(items) - len(todo)} image(s) already have .{fmt} sidecars (--overwrite redoes)")
        return await self._batch(processor, todo, options, prompt, fmt, clashing)

    async def _batch(
        self, processor: Answerer, todo: list[InputItem], options: AgentOptions, prompt: str, fmt: str | None,
        clashing: set[str],
    ) -> list[ItemResult]:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="image", file=sys.stderr, dynamic_ncols=True,
                   disable=not options.progress or len(todo) < 2)
        counts = {"ok": 0, "failed": 0}

        async def one(_: int, item: InputItem) -> ItemResult:
            ctx = AgentContext([item], options)
            try:
                ctx.attachments = (item.load(),)
            except HybridError as exc:
                result = ItemResult(self.name, item.ref, error=exc)
            else:
                result = await self.ask(processor, ctx, ctx.attachments, prompt, label=item.ref)
            if result.ok and fmt:
                write_sidecar(result, fmt, sidecar_path(Path(item.ref), fmt, clashing))
            options.emit(result)
            counts["ok" if result.ok else "failed"] += 1
            bar.update(1)
            bar.set_postfix(counts, refresh=False)
            return result

        try:
            done = await fan_out(todo, one, concurrency=options.concurrency)
        finally:
            bar.close()
        return [r if isinstance(r, ItemResult) else ItemResult(self.name, todo[i].ref, error=r)
                for i, r in enumerate(done)]

    def render(self, output: dict[str, Any]) -> str:
        tags = ", ".join(output.get("tags") or [])
        return (
            f"caption: {output['caption']}\nalt: {output['alt_text']}\nlong: {output['alt_text_long']}"
            + (f"\ntags: {tags}" if tags else "")
        )


AGENT = CaptionAgent()
