"""Motion detection on a downscaled grey frame with a selective running-average background.

Why this shape: a CPU must keep up with several HD streams, so all work happens on a small luma
image (no colour conversion at all). The background only learns where nothing moves, so an object
that stops (someone loitering) stays foreground instead of fading into the scene; it is absorbed
very slowly so parked objects eventually stop counting. A global-change guard treats "most of the
picture changed at once" (lightning, an IR switch, a gain change) as a new background, not motion.
Masks (polygons in source pixels) blank areas that always move: trees, a clock, a road.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._optional import require

Box = tuple[int, int, int, int]  # x, y, w, h in source pixels


def _cv2() -> Any:
    return require("cv2", "video", "motion detection")


def _np() -> Any:
    return require("numpy", "video", "motion detection")


@dataclass
class MotionConfig:
    """Knobs of the detector; defaults suit 10–30 fps security footage."""

    width: int = 320  # analysis width in pixels; height keeps the aspect ratio
    threshold: int = 25  # grey-level difference that counts as changed
    min_area: float = 0.002  # smallest blob, as a fraction of the frame area
    alpha: float = 0.05  # background learning rate where nothing moves
    absorb_alpha: float = 0.0005  # learning rate under moving/stopped objects (absorbs parked cars)
    global_change: float = 0.45  # fraction of changed pixels treated as a global change
    brightness_jump: float = 18.0  # mean grey jump treated as a global change (gain, IR switch)
    warmup_frames: int = 2
    blur: int = 5


@dataclass
class MotionResult:
    """What one frame showed: blobs in source pixels, the changed fraction and whether it was suppressed."""

    boxes: list[Box] = field(default_factory=list)
    changed: float = 0.0
    global_change: bool = False
    warming_up: bool = False

    @property
    def active(self) -> bool:
        return bool(self.boxes)


class MotionDetector:
    """Feed grey frames (any size) in order; get blobs back. One instance per source."""

    def __init__(self, config: MotionConfig | None = None, masks: Sequence[Sequence[Sequence[float]]] = ()) -> None:
        self.config = config or MotionConfig()
        self._masks = [list(map(tuple, m)) for m in masks]
        self._bg: Any = None
        self._mask: Any = None
        self._scale = 1.0
        self._size: tuple[int, int] = (0, 0)
        self._frames = 0
        self.global_changes = 0

    def _prepare(self, gray: Any) -> Any:
        cv2 = _cv2()
        h, w = gray.shape[:2]
        if self._bg is None or self._size != (w, h):
            self._size = (w, h)
            self._scale = min(1.0, self.config.width / float(w))
            self._small = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
            self._mask = self._build_mask()
            self._bg = None
        if self._scale == 1.0:
            small = gray
        else:
            # Drop every other row/column first (a free strided view), then area-average the rest:
            # four times cheaper than averaging the full frame, and still free of aliasing noise.
            step = max(1, int(1.0 / self._scale) // 2)
            src = gray[::step, ::step] if step > 1 else gray
            small = cv2.resize(src, self._small, interpolation=cv2.INTER_AREA)
        k = self.config.blur
        return cv2.GaussianBlur(small, (k, k), 0) if k > 1 else small

    def _build_mask(self) -> Any:
        if not self._masks:
            return None
        cv2, np = _cv2(), _np()
        w, h = self._small
        allowed = np.full((h, w), 255, np.uint8)
        for poly in self._masks:
            pts = np.array([[x * self._scale, y * self._scale] for x, y in poly], np.int32)
            cv2.fillPoly(allowed, [pts], 0)
        return allowed

    def small_gray(self, gray: Any) -> Any:
        """The downscaled, blurred grey image the detector works on (also used for hashing)."""
        return self._prepare(gray)

    def update(self, gray: Any, small: Any = None) -> MotionResult:
        """Compare `gray` with the background, learn, and return this frame's motion."""
        cv2, np = _cv2(), _np()
        cfg = self.config
        small = self._prepare(gray) if small is None else small
        self._frames += 1
        if self._bg is None:
            self._bg = small.astype(np.float32)
            return MotionResult(warming_up=True)
        bg_u8 = cv2.convertScaleAbs(self._bg)
        diff = cv2.absdiff(small, bg_u8)
        _, fg = cv2.threshold(diff, cfg.threshold, 255, cv2.THRESH_BINARY)
        if self._mask is not None:
            fg = cv2.bitwise_and(fg, self._mask)
        changed = cv2.countNonZero(fg) / float(fg.size)
        jump = abs(float(cv2.mean(small)[0]) - float(cv2.mean(bg_u8)[0]))
        if changed >= cfg.global_change or (jump >= cfg.brightness_jump and changed >= cfg.global_change / 2):
            # The whole scene changed at once: adopt it as the new background, report nothing.
            self._bg = small.astype(np.float32)
            self.global_changes += 1
            return MotionResult(changed=changed, global_change=True)
        fg = cv2.dilate(fg, None, iterations=2)
        cv2.accumulateWeighted(small, self._bg, cfg.alpha, mask=cv2.bitwise_not(fg))
        if cfg.absorb_alpha > 0:
            cv2.accumulateWeighted(small, self._bg, cfg.absorb_alpha, mask=fg)
        if self._frames <= cfg.warmup_frames:
            return MotionResult(changed=changed, warming_up=True)
        return MotionResult(boxes=self._blobs(fg), changed=changed)

    def _blobs(self, fg: Any) -> list[Box]:
        """Bounding boxes of foreground blobs (external contours: ten times cheaper than labelling)."""
        cv2 = _cv2()
        contours, _hierarchy = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_px = self.config.min_area * fg.size
        inv = 1.0 / self._scale
        boxes: list[Box] = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < min_px or cv2.contourArea(contour) < min_px / 2:
                continue
            boxes.append((round(x * inv), round(y * inv), round(w * inv), round(h * inv)))
        return _merge_overlapping(boxes)


def _merge_overlapping(boxes: list[Box], gap: int = 4) -> list[Box]:
    """Merge boxes that touch (within `gap` pixels): one object often splits into several blobs."""
    merged = list(boxes)
    changed = True
    while changed and len(merged) > 1:
        changed = False
        out: list[Box] = []
        while merged:
            x, y, w, h = merged.pop()
            i = 0
            while i < len(merged):
                a, b, c, d = merged[i]
                if a <= x + w + gap and x <= a + c + gap and b <= y + h + gap and y <= b + d + gap:
                    nx, ny = min(x, a), min(y, b)
                    w, h = max(x + w, a + c) - nx, max(y + h, b + d) - ny
                    x, y = nx, ny
                    merged.pop(i)
                    changed = True
                else:
                    i += 1
            out.append((x, y, w, h))
        merged = out
    return merged
