"""Which decoded frames to analyse: a fixed rate, one every N seconds, or on scene change.

Why a separate policy: decoding must see every frame (motion needs continuity), but a model must
not; the sampler picks frames by their timestamps, so it behaves the same on a 30 fps file and a
jittery live stream, and a scene-change mode spends calls only where the picture changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BadInputError
from .dedupe import dhash, hamming


@dataclass
class Sampler:
    """Decide per frame whether to sample it. Give at most one of `fps` / `every_s`.

    With `scene_change`, a frame is also (or, with neither rate, only) taken when its dHash is
    more than `scene_bits` away from the last sampled frame, but never closer than `min_gap_s`.
    """

    fps: float | None = None
    every_s: float | None = None
    scene_change: bool = False
    scene_bits: int = 40
    min_gap_s: float = 0.5
    _next_t: float | None = None
    _last_hash: int | None = None
    _last_t: float = -1e9

    def __post_init__(self) -> None:
        if self.fps is not None and self.every_s is not None:
            raise BadInputError("give either --fps or --every-s, not both")
        if self.fps is not None and self.fps <= 0:
            raise BadInputError("--fps must be a positive number")
        if self.every_s is not None and self.every_s <= 0:
            raise BadInputError("--every-s must be a positive number of seconds")
        if self.fps is None and self.every_s is None and not self.scene_change:
            self.every_s = 1.0

    @property
    def interval_s(self) -> float | None:
        if self.fps is not None:
            return 1.0 / self.fps
        return self.every_s

    def take(self, t_s: float, gray: Any = None) -> bool:
        """True if the frame at `t_s` should be analysed."""
        interval = self.interval_s
        take = False
        if interval is not None:
            if self._next_t is None:
                self._next_t = t_s
            # Small tolerance: timestamps of a 30 fps source do not land exactly on 1/fps steps.
            if t_s + 1e-3 >= self._next_t:
                take = True
                while self._next_t <= t_s + 1e-3:
                    self._next_t += interval
        if self.scene_change and gray is not None and not take and t_s - self._last_t >= self.min_gap_s:
            h = dhash(gray)
            take = self._last_hash is None or hamming(h, self._last_hash) > self.scene_bits
        if take:
            self._last_t = t_s
            if self.scene_change and gray is not None:
                self._last_hash = dhash(gray)
        return take
