"""`video SOURCE PROMPT`: answers over time, then a whole-clip summary or a merged timeline.

Why: a model call per decoded frame is wasteful, so frames are sampled by time (or scene change)
and near-duplicates of the last frame sent are skipped; each answer is stamped with its time.
At the end, when the route allows the cloud and the source is a file, the whole clip goes to a
backend with native video input for one summary; otherwise (sensitive, local-only, a live stream,
or the cloud failing) the local per-keyframe answers are merged into a timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._optional import require
from ..errors import BadInputError, HybridError, PolicyViolationError
from ..media.video import clip_attachment
from ..types import Attachment, Domain, Mode, Request, Result, RouteDecision
from .decode import VideoSource
from .dedupe import NearDuplicateFilter
from .sampling import Sampler


@dataclass
class Segment:
    start_s: float
    end_s: float
    response: str

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "response": self.response}


@dataclass
class VideoStats:
    decoded: int = 0
    sampled: int = 0
    sent: int = 0
    skipped_duplicates: int = 0
    dropped: int = 0
    reconnects: int = 0
    segments: list[Segment] = field(default_factory=list)


def encode_jpeg(image: Any, max_side: int = 1024, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR image, downscaled so its longer side is at most `max_side`."""
    cv2 = require("cv2", "video", "video analysis")
    h, w = image.shape[:2]
    scale = max_side / float(max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BadInputError("could not encode a video frame as JPEG")
    return bytes(buf)


class RequestRunner(Protocol):
    """What the analyzer needs of a processor: `HybridVLMProcessor`, or the server's `LoopBridge` (jobs.py)."""

    def decide(self, request: Request) -> RouteDecision: ...

    def run(self, request: Request) -> Result: ...


class VideoAnalyzer:
    """Runs the sampling/dedupe/model loop over a `VideoSource` with a processor (`run(Request)`)."""

    def __init__(
        self, processor: RequestRunner, prompt: str, *, sampler: Sampler | None = None, dedupe: bool = True,
        mode: Mode | None = None, sensitive: bool | None = None, domain: Domain | None = None,
        max_upload_bytes: int = 50 * 1024 * 1024, warn: Callable[[str], None] | None = None,
    ) -> None:
        if not prompt.strip():
            raise BadInputError("the prompt is empty")
        self.processor = processor
        self.prompt = prompt
        self.sampler = sampler or Sampler()
        self.dedupe = NearDuplicateFilter() if dedupe else None
        self.mode, self.sensitive, self.domain = mode, sensitive, domain
        self.max_upload_bytes = max_upload_bytes
        self.stats = VideoStats()
        self._warn = warn or (lambda _m: None)

    def _request(self, attachments: tuple[Attachment, ...], prompt: str | None = None) -> Request:
        return Request(prompt=prompt or self.prompt, attachments=attachments, mode=self.mode,
                       sensitive=self.sensitive, domain=self.domain)

    def frames(self, source: VideoSource, max_frames: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield one answer per frame sent to a model, as `{"type": "frame", "t_s", ...}`."""
        segs = self.stats.segments
        for frame in source:
            self.stats.decoded += 1
            if segs:
                segs[-1].end_s = frame.t_s
            gray = frame.gray()
            if not self.sampler.take(frame.t_s, gray):
                continue
            self.stats.sampled += 1
            if self.dedupe is not None and not self.dedupe.check(gray, frame.t_s):
                self.stats.skipped_duplicates += 1
                continue
            jpeg = encode_jpeg(frame.bgr())
            name = f"frame-{frame.t_s:08.3f}s.jpg"
            result = self.processor.run(self._request((Attachment.from_bytes(jpeg, name=name),)))
            self.stats.sent += 1
            text = result.response.strip()
            if segs and segs[-1].response == text:
                segs[-1].end_s = frame.t_s
            else:
                segs.append(Segment(frame.t_s, frame.t_s, text))
            yield {"type": "frame", "t_s": round(frame.t_s, 3), "response": text, "backend": result.backend,
                   "model": result.model, "latency_ms": round(result.latency_ms, 1), "cached": result.cached}
            if max_frames is not None and self.stats.sent >= max_frames:
                break
        self.stats.dropped = source.stats.dropped
        self.stats.reconnects = source.stats.reconnects

    def summary(self, source: str) -> dict[str, Any]:
        """The whole-clip summary (cloud, native video) when allowed, else the merged local timeline."""
        att, why = clip_attachment(source, self.max_upload_bytes)
        if att is not None and self.sensitive is not True:
            request = self._request((att,), f"{self.prompt}\nAnswer for the whole clip, citing times (mm:ss).")
            try:
                decision = self.processor.decide(request)
            except PolicyViolationError:
                raise
            except HybridError as exc:
                decision, why = None, str(exc)
            if decision is not None and decision.cloud_allowed and decision.backends:
                try:
                    result = self.processor.run(request)
                    return {"type": "summary", "source": "clip", "response": result.response.strip(),
                            "backend": result.backend, "model": result.model, "timeline": self._timeline()}
                except PolicyViolationError:
                    raise
                except HybridError as exc:
                    why = f"whole-clip summary failed ({exc})"
            elif decision is not None:
                why = "the route keeps this request local" if not decision.cloud_allowed else "no backend takes video"
        elif att is not None:
            why = "the request is sensitive"
        self._warn(f"timeline from per-frame answers: {why}")
        timeline = self._timeline()
        text = "\n".join(f"{s['start_s']:.1f}–{s['end_s']:.1f}s: {s['response']}" for s in timeline)
        return {"type": "summary", "source": "timeline", "response": text, "backend": None, "model": None,
                "timeline": timeline}

    def _timeline(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.stats.segments]
