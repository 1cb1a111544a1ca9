"""A fake OpenAI-compatible chat server (vLLM/Ollama style) for tests only.

Serves `POST /v1/chat/completions`, plain and streamed (SSE), records each request and can
inject HTTP errors, latency, a content-filter stop and a mid-stream error. The reply describes
what the request carried, so tests check what arrived rather than a canned string.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from .fake_gemini import LoopbackServer


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


class FakeOpenAIServer(LoopbackServer):
    url_path = "/v1"

    def __init__(self, *, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.requests: list[Recorded] = []
        self._faults: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self._stream_error_after: int | None = None
        self._content_filter = False
        self._lock = threading.Lock()

    def fail(self, status: int, message: str = "fake failure", headers: dict[str, str] | None = None) -> None:
        with self._lock:
            body = {"error": {"message": message, "type": "fake", "code": status}}
            self._faults.append((status, body, headers or {}))

    def stream_error_after(self, chunks: int) -> None:
        self._stream_error_after = chunks

    def content_filter_next(self) -> None:
        self._content_filter = True

    def describe(self, body: dict[str, Any]) -> str:
        seen: list[str] = []
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                seen.append(f"{message['role']}:{len(content)}")
                continue
            for part in content or []:
                if part.get("type") == "text":
                    seen.append(f"text:{len(part['text'])}")
                elif part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    header, _, payload = url.partition(",")
                    seen.append(f"image:{header[5:].split(';')[0]}:{len(base64.b64decode(payload))}")
        if body.get("response_format"):
            seen.append("schema")
        return "seen " + " ".join(seen)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms Nagle/delayed-ACK stalls between small writes

    def log_message(self, *_args: Any) -> None:
        return

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw or b"{}")
        fake = self.fake
        with fake._lock:
            fake.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body))
            fault = fake._faults.pop(0) if fake._faults else None
        if fault is not None:
            self._send(*fault)
            return
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        time.sleep(fake.latency_s)
        text = fake.describe(body)
        finish = "content_filter" if fake._content_filter else "stop"
        fake._content_filter = False
        usage = {"prompt_tokens": len(raw) // 4, "completion_tokens": len(text.split())}
        if not body.get("stream"):
            message = {"role": "assistant", "content": None if finish == "content_filter" else text}
            self._send(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        fail_after, fake._stream_error_after = fake._stream_error_after, None
        for i, word in enumerate(text.split(" ")):
            if fail_after is not None and i >= fail_after:
                self._chunk(b'data: {"error": {"message": "stream broke", "code": 500}}\n\n')
                self._chunk(b"")
                return
            delta = {"content": word if i == 0 else " " + word}
            event = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        final = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        self._chunk(b"data: " + json.dumps(final).encode() + b"\n\n")
        self._chunk(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


FakeOpenAIServer.handler = _Handler
