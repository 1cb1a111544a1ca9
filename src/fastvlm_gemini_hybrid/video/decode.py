"""Decode frames from a file, a network stream (rtsp/http/tcp) or a webcam with PyAV.

Why the split between files and live sources: a file is analysed completely (every frame, its own
timestamps), while a live source must never fall behind. Live sources are read by a background
thread into a bounded queue where the newest frame wins: older frames are dropped and counted, the
connection is re-opened with exponential backoff when it drops, and the end of the stream is an
ordinary end of iteration. Frames keep the decoded `av.VideoFrame`; the grey Y plane is exposed
without colour conversion (the motion path needs nothing else), and BGR is built only on demand.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._optional import require
from ..errors import BadInputError

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "tcp://", "udp://", "srt://")


def _av() -> Any:
    return require("av", "video", "video decoding")


def _np() -> Any:
    return require("numpy", "video", "video decoding")


@dataclass
class Frame:
    """One decoded frame. `t_s` is seconds from the start of the source."""

    index: int
    t_s: float
    width: int
    height: int
    _frame: Any = field(repr=False)
    _bgr: Any = field(default=None, repr=False)

    def gray(self) -> Any:
        """The luma plane as a (height, width) uint8 view: free for yuv formats, converted otherwise."""
        np = _np()
        frame = self._frame
        if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray"):
            plane = frame.planes[0]
            arr = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
            return arr[:, : frame.width]
        return frame.to_ndarray(format="gray")

    def bgr(self) -> Any:
        """The frame as a (height, width, 3) BGR array, converted once and cached."""
        if self._bgr is None:
            self._bgr = self._frame.to_ndarray(format="bgr24")
        return self._bgr

    @classmethod
    def from_bgr(cls, index: int, t_s: float, image: Any) -> Frame:
        """Wrap an in-memory BGR image (tests, synthetic sources) as a Frame."""
        av = _av()
        vf = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        return cls(index=index, t_s=t_s, width=vf.width, height=vf.height, _frame=vf, _bgr=image)


@dataclass
class SourceStats:
    """Counters a caller can show or put into a report."""

    decoded: int = 0
    dropped: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)


def is_live(source: str) -> bool:
    """Network URLs and webcam indexes are live; anything else is a file."""
    return source.isdigit() or source.lower().startswith(LIVE_SCHEMES)


class _CameraContainer:
    """A webcam read through OpenCV, shaped like the part of a PyAV container this module uses.

    PyAV's PyPI wheels are built without capture devices (no v4l2/avfoundation/dshow), while OpenCV's
    headless wheels have them. Frames become real `av.VideoFrame`s with millisecond timestamps, so
    everything downstream (motion, sampling, encoding) sees what a PyAV stream would give.
    """

    def __init__(self, capture: Any, index: str) -> None:
        self._capture = capture
        self._index = index
        cv2 = require("cv2", "video", "webcam input")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        stream = SimpleNamespace(
            thread_type=None,
            codec_context=SimpleNamespace(
                width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            ),
            average_rate=Fraction(fps).limit_denominator(1000) if fps > 0 else None,
            guessed_rate=None,
            time_base=Fraction(1, 1000),
        )
        self.streams = SimpleNamespace(video=[stream])

    def decode(self, _stream: Any) -> Iterator[Any]:
        av = _av()
        start = time.monotonic()
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                raise OSError(f"webcam {self._index} stopped delivering frames")
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = int((time.monotonic() - start) * 1000)
            frame.time_base = Fraction(1, 1000)
            yield frame

    def close(self) -> None:
        self._capture.release()


def _open_camera(index: str) -> _CameraContainer:
    cv2 = require("cv2", "video", "webcam input")
    capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        capture.release()
        raise BadInputError(f"cannot open webcam {index}: no such camera, or it is in use")
    return _CameraContainer(capture, index)


def _open_container(source: str, timeout_s: float, extra: dict[str, str] | None = None) -> Any:
    """Open `source` with PyAV, turning every failure into one clear `BadInputError` line.

    Webcam indexes use PyAV when its FFmpeg has the platform's capture device, else OpenCV. `extra` are
    FFmpeg options that win over these (the server's stream policy: protocol_whitelist and the like)."""
    av = _av()
    options: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    target = source
    if source.isdigit():
        device = {"darwin": "avfoundation", "win32": "dshow"}.get(sys.platform, "v4l2")
        if device not in av.formats_available:
            return _open_camera(source)
        if sys.platform == "darwin":
            target, kwargs["format"] = source, "avfoundation"
        elif sys.platform.startswith("win"):
            target, kwargs["format"] = f"video={source}", "dshow"
        else:
            target, kwargs["format"] = f"/dev/video{source}", "v4l2"
    elif source.lower().startswith(LIVE_SCHEMES):
        micro = str(int(timeout_s * 1_000_000))
        options["rw_timeout"] = micro
        # Probe briefly: a live source must start showing frames at once, not after seconds of buffering.
        options["analyzeduration"] = "500000"
        options["probesize"] = "262144"
        if source.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"
            options["timeout"] = micro
        elif source.lower().startswith("tcp://"):
            options["timeout"] = micro
        options.update(extra or {})
    else:
        path = Path(source)
        if not path.exists():
            raise BadInputError(f"no such video file: {source}")
        if path.is_dir():
            raise BadInputError(f"{source} is a directory, not a video file")
    try:
        container = av.open(target, options=options, timeout=timeout_s, **kwargs)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise BadInputError(f"cannot open video {source}: {_why(exc)}") from None
    if not container.streams.video:
        container.close()
        raise BadInputError(f"{source} has no video stream")
    return container


def _why(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


class VideoSource:
    """Iterate `Frame`s from a file path, a stream URL or a webcam index (as a string, e.g. "0").

    For live sources: `queue_size` bounds the frames waiting (newest wins), `reconnect_attempts` and
    `backoff_s` bound the reconnection loop, and `open_timeout_s` bounds each connection attempt.
    `open_options` are FFmpeg options for a network source, on every (re)connection.
    Call `close()` (or use `with`) to stop the reader thread.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        live: bool | None = None,
        queue_size: int = 2,
        reconnect_attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        open_timeout_s: float = 10.0,
        threads: bool = True,
        open_options: dict[str, str] | None = None,
    ) -> None:
        self.source = str(source)
        self.open_options = dict(open_options or {})
        self.live = is_live(self.source) if live is None else live
        self.queue_size = max(1, queue_size)
        self.reconnect_attempts = reconnect_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.open_timeout_s = open_timeout_s
        self.threads = threads
        self.stats = SourceStats()
        self.fps: float | None = None
        self.width = 0
        self.height = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container: Any = None
        # Open eagerly so a bad file or a stream that never connects fails before any output.
        self._container = self._connect(first=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the container. Safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.open_timeout_s + 1.0)
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not mask the real error
                pass
            self._container = None

    def _connect(self, first: bool = False) -> Any:
        delay = self.backoff_s
        attempts = 1 + (self.reconnect_attempts if (first and self.live) else 0)
        last: BadInputError | None = None
        for attempt in range(attempts):
            if self._stop.is_set():
                break
            try:
                container = _open_container(self.source, self.open_timeout_s, self.open_options)
            except BadInputError as exc:
                last = exc
                if attempt + 1 < attempts:
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.max_backoff_s)
                continue
            stream = container.streams.video[0]
            if self.threads:
                stream.thread_type = "AUTO"
            self.width = stream.codec_context.width
            self.height = stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            return container
        if last is not None and self.live and first:
            raise BadInputError(f"{last} (gave up after {attempts} attempts)")
        if last is not None:
            raise last
        raise BadInputError(f"cannot open video {self.source}: stopped")

    # -- iteration ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        return self._iter_live() if self.live else self._iter_file()

    def _decode(self, container: Any) -> Iterator[Any]:
        stream = container.streams.video[0]
        yield from container.decode(stream)

    def _iter_file(self) -> Iterator[Frame]:
        av = _av()
        container = self._container
        stream = container.streams.video[0]
        base = stream.start_time or 0
        tb = float(stream.time_base) if stream.time_base else 0.0
        step = 1.0 / self.fps if self.fps else 0.0
        index = 0
        try:
            for vf in self._decode(container):
                if self._stop.is_set():
                    return
                t = (vf.pts - base) * tb if vf.pts is not None and tb else index * step
                self.stats.decoded += 1
                yield Frame(index=index, t_s=max(0.0, float(t)), width=vf.width, height=vf.height, _frame=vf)
                index += 1
        except av.error.FFmpegError as exc:
            if index == 0:
                raise BadInputError(f"cannot decode video {self.source}: {_why(exc)}") from None
            # A truncated file: keep what was decoded and say why it stopped.
            self.stats.errors.append(f"decoding stopped at frame {index}: {_why(exc)}")
        if index == 0:
            raise BadInputError(f"{self.source} holds no decodable video frames")

    def _iter_live(self) -> Iterator[Frame]:
        frames: queue.Queue[Frame | None] = queue.Queue(maxsize=self.queue_size)
        self._thread = threading.Thread(target=self._reader, args=(frames,), name="video-reader", daemon=True)
        self._thread.start()
        try:
            while True:
                item = frames.get()
                if item is None:
                    return
                yield item
        finally:
            self._stop.set()

    def _put_newest(self, frames: queue.Queue[Frame | None], item: Frame | None) -> None:
        while True:
            try:
                frames.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = frames.get_nowait()
                    if old is not None:
                        self.stats.dropped += 1
                except queue.Empty:
                    pass

    def _reader(self, frames: queue.Queue[Frame | None]) -> None:
        """Decode continuously; reconnect with backoff when the stream drops; None marks the end.

        Timestamps follow the stream's own clock within a connection (so a burst of buffered
        frames keeps its real spacing) and restart from the wall clock after a reconnect.
        """
        av = _av()
        start = time.monotonic()
        index = 0
        last_t = 0.0
        container = self._container
        conn_t = 0.0
        try:
            while not self._stop.is_set():
                base_pts: int | None = None
                stream = container.streams.video[0]
                tb = float(stream.time_base) if stream.time_base else 0.0
                try:
                    for vf in self._decode(container):
                        if self._stop.is_set():
                            return
                        if vf.pts is not None and tb:
                            if base_pts is None:
                                base_pts = vf.pts
                            t = conn_t + (vf.pts - base_pts) * tb
                        else:
                            t = time.monotonic() - start
                        last_t = t = max(t, last_t)
                        self.stats.decoded += 1
                        self._put_newest(frames, Frame(index, t, vf.width, vf.height, _frame=vf))
                        index += 1
                    reason = "end of stream"
                except (av.error.FFmpegError, OSError) as exc:
                    reason = _why(exc)
                if self._stop.is_set() or not self.is_network():
                    return
                self.stats.errors.append(f"stream dropped at {last_t:.1f}s: {reason}")
                container = self._reconnect(container)
                if container is None:
                    return
                conn_t = max(last_t, time.monotonic() - start)
        finally:
            self._put_newest(frames, None)

    def is_network(self) -> bool:
        return self.source.lower().startswith(LIVE_SCHEMES)

    def _reconnect(self, old: Any) -> Any:
        try:
            old.close()
        except Exception:  # noqa: BLE001 - the old connection is already broken
            pass
        delay = self.backoff_s
        for _ in range(self.reconnect_attempts):
            if self._stop.wait(delay):
                return None
            try:
                container = _open_container(self.source, self.open_timeout_s, self.open_options)
            except BadInputError as exc:
                self.stats.errors.append(str(exc))
                delay = min(delay * 2, self.max_backoff_s)
                continue
            stream = container.streams.video[0]
            if self.threads:
                stream.thread_type = "AUTO"
            self.stats.reconnects += 1
            self._container = container
            return container
        self.stats.errors.append(f"gave up reconnecting after {self.reconnect_attempts} attempts")
        return None
