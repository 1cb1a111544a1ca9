"""A small IoU tracker for motion blobs: stable ids across frames, no model, no dependency.

Why not a detector-based tracker: this runs on every frame of several streams on a CPU, and the
inputs are motion blobs, not detections. Greedy matching by IoU, with a centre-distance fallback
for objects that move more than their own size between frames, is enough to give each moving
thing one id; a track is confirmed after `min_hits` frames and ends after `max_missed_s` unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _centre_close(a: Box, b: Box, factor: float) -> float:
    """A score in (0, 1] when the centres are within `factor` box sizes, else 0."""
    acx, acy = a[0] + a[2] / 2, a[1] + a[3] / 2
    bcx, bcy = b[0] + b[2] / 2, b[1] + b[3] / 2
    reach = factor * max(a[2], a[3], b[2], b[3], 1)
    dist = ((acx - bcx) ** 2 + (acy - bcy) ** 2) ** 0.5
    return max(0.0, 1.0 - dist / reach) * 0.5 if dist < reach else 0.0


@dataclass
class Track:
    """One moving object. `bbox` is the latest box; times are seconds from the start of the source."""

    id: int
    bbox: Box
    first_s: float
    last_s: float
    hits: int = 1
    missed: int = 0
    confirmed: bool = False
    label: str | None = None
    history: list[tuple[float, Box]] = field(default_factory=list)

    @property
    def anchor(self) -> tuple[float, float]:
        """Bottom-centre of the box: where the object stands on the ground."""
        x, y, w, h = self.bbox
        return (x + w / 2.0, float(y + h))


class IoUTracker:
    """Match this frame's boxes to live tracks; returns the live (matched or briefly missed) tracks."""

    def __init__(
        self, *, min_iou: float = 0.1, min_hits: int = 2, max_missed_s: float = 1.0, centre_factor: float = 1.5
    ) -> None:
        self.min_iou = min_iou
        self.min_hits = min_hits
        self.max_missed_s = max_missed_s
        self.centre_factor = centre_factor
        self.tracks: list[Track] = []
        self.ended: list[Track] = []
        self._next_id = 1

    def update(self, boxes: list[Box], t_s: float) -> list[Track]:
        """Advance to time `t_s` with this frame's boxes; ended tracks move to `self.ended`."""
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self.tracks):
            for bi, box in enumerate(boxes):
                score = iou(track.bbox, box)
                if score < self.min_iou:
                    score = _centre_close(track.bbox, box, self.centre_factor)
                if score > 0:
                    pairs.append((score, ti, bi))
        pairs.sort(reverse=True)
        used_t: set[int] = set()
        used_b: set[int] = set()
        for _score, ti, bi in pairs:
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            track = self.tracks[ti]
            track.bbox, track.last_s, track.missed = boxes[bi], t_s, 0
            track.hits += 1
            track.history.append((t_s, boxes[bi]))
            if len(track.history) > 512:  # bounded: a track may live for hours
                del track.history[:256]
            if track.hits >= self.min_hits:
                track.confirmed = True
        for ti, track in enumerate(self.tracks):
            if ti not in used_t:
                track.missed += 1
        for bi, box in enumerate(boxes):
            if bi not in used_b:
                track = Track(id=self._next_id, bbox=box, first_s=t_s, last_s=t_s, history=[(t_s, box)])
                track.confirmed = self.min_hits <= 1
                self._next_id += 1
                self.tracks.append(track)
        alive: list[Track] = []
        for track in self.tracks:
            if track.missed and t_s - track.last_s > self.max_missed_s:
                self.ended.append(track)
            else:
                alive.append(track)
        self.tracks = alive
        return [t for t in alive if t.confirmed]

    def flush(self) -> list[Track]:
        """End every live track (end of stream); returns them."""
        done, self.tracks = self.tracks, []
        self.ended.extend(done)
        return done
