"""Near-duplicate frame skipping: a difference hash (dHash) plus a gain-compensated thumbnail diff.

Why two tests: a fixed camera shows the same picture for minutes, and sending each sampled frame
to a model costs time (local) or money (cloud) for the same answer. A dHash changes in many bits
when the scene changes as a whole and in few under noise, compression or exposure drift; but a
person who is small in the frame flips only a handful of bits. So a frame also counts as new when
a few cells of a 32x24 thumbnail changed strongly after removing the frame-wide brightness shift
(the median difference), which catches small intruders and still ignores gain and noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._optional import require

THUMB = (32, 24)


def dhash(gray: Any, size: int = 16) -> int:
    """A `size*size`-bit difference hash of a grey image: each bit says "brighter than its right neighbour"."""
    cv2 = require("cv2", "video", "frame hashing")
    small = cv2.resize(gray, (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    value = 0
    for bit in bits.tolist():
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def thumbnail(gray: Any) -> Any:
    """A 32x24 area-averaged grey thumbnail as int16 (room for signed differences)."""
    cv2 = require("cv2", "video", "frame hashing")
    return cv2.resize(gray, THUMB, interpolation=cv2.INTER_AREA).astype("int16")


def changed_cells(a: Any, b: Any, level: int = 24) -> int:
    """Thumbnail cells that differ by more than `level` grey levels once the global shift is removed."""
    np = require("numpy", "video", "frame hashing")
    diff = a - b
    return int((np.abs(diff - np.median(diff)) > level).sum())


@dataclass
class NearDuplicateFilter:
    """Say whether a frame is new enough to send; remembers the last frame that was let through.

    A frame is a near-duplicate when its dHash is within `max_distance` bits of the reference and
    fewer than `min_cells` thumbnail cells changed. `max_age_s` lets one frame through anyway after
    that long (None: never), so a long static scene can still be re-checked now and then.
    """

    max_distance: int = 12
    min_cells: int = 3
    size: int = 16
    max_age_s: float | None = None
    kept: int = 0
    skipped: int = 0
    _hash: int | None = None
    _thumb: Any = field(default=None, repr=False)
    _last_t: float = 0.0

    def check(self, gray: Any, t_s: float) -> bool:
        """True if the frame should be sent (and becomes the new reference); False to skip it."""
        h, thumb = dhash(gray, self.size), thumbnail(gray)
        stale = self.max_age_s is not None and t_s - self._last_t >= self.max_age_s
        new = (
            self._hash is None
            or stale
            or hamming(h, self._hash) > self.max_distance
            or changed_cells(thumb, self._thumb) >= self.min_cells
        )
        if new:
            self._hash, self._thumb, self._last_t = h, thumb, t_s
            self.kept += 1
            return True
        self.skipped += 1
        return False
