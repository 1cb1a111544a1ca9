"""A loopback live stream for tests: MPEG-TS made by PyAV, served over TCP on 127.0.0.1, paced in real time.

`LoopbackStream(payload, drop_after=0.5)` serves the first connection only half of the stream and
then hangs up (a camera dropping mid-run); later connections get the whole stream; after
`max_connections` it stops listening, so a client's reconnects fail and the stream ends. All
threads are daemons and stop on `close()`.
"""

from __future__ import annotations

import socket
import threading
import time


class LoopbackStream:
    def __init__(self, payload: bytes, duration_s: float, *, drop_after: float | None = None,
                 max_connections: int = 2, speed: float = 1.0) -> None:
        self.payload = payload
        self.duration_s = duration_s
        self.drop_after = drop_after
        self.max_connections = max_connections
        self.speed = speed
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        try:
            while not self._stop.is_set() and self.connections < self.max_connections:
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                self.connections += 1
                fraction = self.drop_after if (self.connections == 1 and self.drop_after) else 1.0
                try:
                    self._send(conn, fraction)
                finally:
                    conn.close()
        finally:
            self._sock.close()

    def _send(self, conn: socket.socket, fraction: float) -> None:
        total = len(self.payload)
        end = int(total * fraction) // 188 * 188
        chunk = 188 * 14
        start = time.monotonic()
        for offset in range(0, end, chunk):
            if self._stop.is_set():
                return
            due = start + (offset / total) * self.duration_s / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.sendall(self.payload[offset : min(offset + chunk, end)])
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
