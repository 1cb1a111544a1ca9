"""Webcam input: PyAV's PyPI wheels have no capture devices, so an index goes through OpenCV.

No camera exists on CI machines, so `cv2.VideoCapture` is replaced by a synthetic camera; the real
OpenCV is used for the "no such camera" case.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.video import decode


class SyntheticCamera:
    """Stands in for cv2.VideoCapture(index): 640x480 frames with a bright square moving right."""

    def __init__(self, index: int, frames: int = 12) -> None:
        self.index, self.left, self.total, self.released = index, frames, frames, False

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        import cv2

        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0}.get(
            prop, 0.0
        )

    def read(self) -> tuple[bool, Any]:
        if self.left == 0:
            return False, None
        self.left -= 1
        image = np.zeros((480, 640, 3), np.uint8)
        x = (40 * (self.total - self.left)) % 560
        image[200:260, x : x + 60] = 255
        return True, image

    def release(self) -> None:
        self.released = True


def test_webcam_index_reads_frames_through_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    cameras: list[SyntheticCamera] = []
    monkeypatch.setattr(cv2, "VideoCapture", lambda i: cameras.append(SyntheticCamera(i)) or cameras[-1])
    monkeypatch.setattr(decode._av(), "formats_available", set())  # as on PyPI's PyAV wheels
    with decode.VideoSource("0") as source:
        assert source.live and (source.width, source.height, source.fps) == (640, 480, 30.0)
        frames = list(source)
    assert cameras[0].index == 0 and cameras[0].released
    assert len(frames) + source.stats.dropped == 12
    times = [f.t_s for f in frames]
    assert times == sorted(times) and frames[-1].bgr().shape == (480, 640, 3)


def test_surveil_on_a_webcam_reports_motion(
    monkeypatch: pytest.MonkeyPatch, zones_file: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import time

    import cv2

    from fastvlm_gemini_hybrid.cli import main

    class RealTimeCamera(SyntheticCamera):
        def read(self) -> tuple[bool, Any]:
            time.sleep(1 / 30)  # a camera delivers frames in real time
            return super().read()

    monkeypatch.setattr(cv2, "VideoCapture", lambda i: RealTimeCamera(i, frames=75))
    monkeypatch.setattr(decode._av(), "formats_available", set())
    assert main(["surveil", "0", "--zones", str(zones_file), "--json", "--no-describe"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert "motion" in {e["type"] for e in events}


def test_missing_webcam_is_one_clear_error() -> None:
    with pytest.raises(BadInputError, match="cannot open webcam 7"):
        decode.VideoSource("7", reconnect_attempts=0)
