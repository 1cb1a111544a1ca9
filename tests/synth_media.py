"""Media the tests synthesise: short H.264 clips with known content (shared by several test areas)."""

from __future__ import annotations

from pathlib import Path


def make_clip(path: Path, colours: list[tuple[int, int, int]], seconds_each: float = 2.0, fps: int = 5) -> Path:
    """An H.264 clip of solid colours, each held `seconds_each`: scene changes at known times."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for colour in colours:
            frame_bgr = np.zeros((48, 64, 3), np.uint8)
            frame_bgr[:] = colour
            frame_bgr[8:20, 8:30] = (255 - colour[0], 255 - colour[1], 255 - colour[2])
            for _ in range(int(seconds_each * fps)):
                frame = av.VideoFrame.from_ndarray(frame_bgr, format="bgr24")
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
