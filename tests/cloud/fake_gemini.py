"""A fake Gemini REST server for tests and benchmarks (never used by product code).

The real google-genai SDK talks to it over HTTP on 127.0.0.1, so tests exercise the same request
encoding (URL-safe base64 inline data, camelCase or snake_case nested keys), the SSE streaming
parser, the resumable Files API upload and the SDK's error classes that users will hit.

It records every request and can inject faults: HTTP errors shaped like Google's (including the
QuotaFailure / RetryInfo details of a 429), latency, safety blocks and a mid-stream error.
Replies are *computed from the request* (what parts it saw), so a test can check what arrived.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def pick(obj: dict[str, Any] | None, camel: str) -> Any:
    """Read a key the SDK may send as camelCase or snake_case."""
    if not obj:
        return None
    if camel in obj:
        return obj[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj.get(snake)


def b64decode_any(text: str) -> bytes:
    """Decode standard or URL-safe base64 (the SDK sends URL-safe)."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that ignores clients hanging up (timeouts in tests do that)."""

    daemon_threads = True
    request_queue_size = 256  # 64+ simultaneous connects must not overflow the listen backlog

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class LoopbackServer:
    """Start/stop plumbing shared by the fake servers: a `QuietServer` on 127.0.0.1 in a daemon thread.

    Subclasses set `handler` (a BaseHTTPRequestHandler subclass that reads `self.fake`) and `url_path`."""

    handler: type[BaseHTTPRequestHandler]
    url_path = ""
    _server: QuietServer | None = None

    def start(self) -> Any:
        handler = type("Handler", (self.handler,), {"fake": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.url_path}"


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any = None

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass
class Fault:
    status: int
    body: dict[str, Any]
    times: int
    path_contains: str
    headers: dict[str, str] = field(default_factory=dict)


def google_error(
    status: int, message: str | None = None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An error body shaped like Google's APIs return."""
    names = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }
    error: dict[str, Any] = {
        "code": status,
        "message": message or f"fake gemini error {status}",
        "status": names.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def quota_error(per_day: bool, retry_after_s: float | None) -> dict[str, Any]:
    """A 429 body like the Gemini API's, with QuotaFailure and (optionally) RetryInfo details."""
    quota_id = (
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        if per_day
        else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    )
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                    "quotaValue": "250" if per_day else "10",
                }
            ],
        }
    ]
    if retry_after_s is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after_s:g}s"})
    message = "You exceeded your current quota, please check your plan and billing details."
    return google_error(429, message, details)


def schema_instance(schema: dict[str, Any], seen: str) -> Any:
    """A minimal value that satisfies a (simple) JSON schema; strings carry what the fake saw."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        return {k: schema_instance(v, seen) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [schema_instance(schema.get("items") or {"type": "string"}, seen)]
    if kind == "integer":
        return len(seen)
    if kind == "number":
        return float(len(seen))
    if kind == "boolean":
        return True
    if "enum" in schema:
        return schema["enum"][0]
    return seen


class FakeGeminiServer(LoopbackServer):
    """Serve `models/{m}:generateContent`, `:streamGenerateContent?alt=sse`, `:countTokens` and Files.

    `latency_s` delays every model call; `chunk_delay_s` spaces streamed chunks; `thoughts_tokens`
    is reported as thinking tokens; `processing_polls` is how many `files.get` calls see PROCESSING.
    """

    api_key = "test-key"

    def __init__(self, *, latency_s: float = 0.0, processing_polls: int = 1) -> None:
        self.latency_s = latency_s
        self.chunk_delay_s = 0.0
        self.thoughts_tokens = 0
        self.processing_polls = processing_polls
        self.file_state_after_processing = "ACTIVE"
        self.requests: list[Recorded] = []
        self.responses: list[dict[str, Any]] = []
        self.file_events: list[str] = []
        self.files: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._block: str | None = None
        self._block_where = "prompt"
        self._stream_error_after: int | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    # ------------------------------------------------------------------ fault injection
    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        message: str | None = None,
        body: dict[str, Any] | None = None,
        path_contains: str = "models/",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` and a Google-shaped body."""
        with self._lock:
            payload = body or google_error(status, message)
            self._faults.append(Fault(status, payload, times, path_contains, headers or {}))

    def quota_exceeded(self, *, per_day: bool, retry_after_s: float | None = None, times: int = 1) -> None:
        self.fail(429, body=quota_error(per_day, retry_after_s), times=times)

    def block_next(self, reason: str = "SAFETY", where: str = "prompt") -> None:
        """Block the next model call: `prompt` (promptFeedback) or `candidate` (finishReason)."""
        self._block, self._block_where = reason, where

    def stream_error_after(self, chunks: int) -> None:
        """The next stream sends `chunks` good chunks, then an error event."""
        self._stream_error_after = chunks

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.responses.clear()
            self.file_events.clear()
            self._faults.clear()

    # ------------------------------------------------------------------ views for assertions
    @property
    def model_calls(self) -> list[Recorded]:
        return [r for r in self.requests if "/models/" in r.path]

    @property
    def bytes_received(self) -> int:
        return sum(r.size for r in self.requests)

    def inline_images(self) -> list[bytes]:
        """Every inline picture the model calls carried, decoded."""
        out = []
        for call in self.model_calls:
            for content in (call.json or {}).get("contents") or []:
                for part in content.get("parts") or []:
                    inline = pick(part, "inlineData")
                    if inline:
                        out.append(b64decode_any(inline["data"]))
        return out

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in path and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------ model behaviour
    def describe(self, body: dict[str, Any]) -> str:
        """The reply text: a summary of every part the request carried."""
        seen: list[str] = []
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                inline = pick(part, "inlineData")
                file_data = pick(part, "fileData")
                if pick(part, "text") is not None:
                    seen.append(f"text:{len(part['text'])}")
                elif inline is not None:
                    data = b64decode_any(inline["data"])
                    seen.append(f"inline:{pick(inline, 'mimeType')}:{len(data)}")
                elif file_data is not None:
                    seen.append(f"file:{pick(file_data, 'fileUri')}")
                meta = pick(part, "videoMetadata")
                if meta:
                    seen.append(f"clip:{pick(meta, 'startOffset')}-{pick(meta, 'endOffset')}@{pick(meta, 'fps')}")
        if pick(body, "systemInstruction"):
            seen.append("system")
        return "seen " + " ".join(seen)

    def reply(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(text, usageMetadata) for a generate request."""
        text = self.describe(body)
        config = pick(body, "generationConfig") or {}
        schema = pick(config, "responseJsonSchema") or pick(config, "responseSchema")
        if pick(config, "responseMimeType") == "application/json" and schema:
            text = json.dumps(schema_instance(schema, text))
        prompt_tokens = sum(
            len(str(p.get("text", "")).split()) + (258 if len(p) and "text" not in p else 0)
            for c in body.get("contents") or []
            for p in c.get("parts") or []
        )
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": len(text.split()),
            "totalTokenCount": prompt_tokens + len(text.split()) + self.thoughts_tokens,
        }
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        return text, usage

    def response_body(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        if self._block is not None:
            reason, where = self._block, self._block_where
            self._block = None
            usage = {"promptTokenCount": 5, "totalTokenCount": 5}
            if where == "prompt":
                return {"promptFeedback": {"blockReason": reason}, "usageMetadata": usage, "modelVersion": model}
            return {
                "candidates": [{"finishReason": reason, "index": 0, "safetyRatings": []}],
                "usageMetadata": usage,
                "modelVersion": model,
            }
        text, usage = self.reply(body)
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": uuid.uuid4().hex[:12],
        }


class _Handler(BaseHTTPRequestHandler):
    """Routes the fake's endpoints. HTTP/1.1 with keep-alive, chunked SSE."""

    fake: FakeGeminiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms Nagle/delayed-ACK stalls between small writes

    def log_message(self, *_args: Any) -> None:  # keep test output clean
        return

    # ---------------------------------------------------------------- plumbing
    def _record(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        parsed: Any = None
        if body and "json" in (self.headers.get("Content-Type") or ""):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = Recorded(self.command, parts.path, parse_qs(parts.query), headers, body, parsed)
        with self.fake._lock:
            self.fake.requests.append(rec)
        return rec

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _authorised(self, rec: Recorded) -> bool:
        if rec.query.get("upload_id"):
            return True  # like Google's, the upload URL itself is the credential
        key = rec.headers.get("x-goog-api-key") or (rec.query.get("key") or [""])[0]
        if key != self.fake.api_key:
            self._send(
                400,
                google_error(
                    400,
                    "API key not valid. Please pass a valid API key.",
                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
                ),
            )
            return False
        return True

    # ---------------------------------------------------------------- verbs
    def do_POST(self) -> None:
        rec = self._record()
        if not self._authorised(rec):
            return
        fault = self.fake._take_fault(rec.path)
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
            return
        if rec.path.startswith("/upload/"):
            self._upload(rec)
        elif ":streamGenerateContent" in rec.path:
            self._stream(rec)
        elif ":generateContent" in rec.path:
            time.sleep(self.fake.latency_s)
            body = self.fake.response_body(rec.json or {}, self._model(rec.path))
            self.fake.responses.append(body)
            self._send(200, body)
        elif ":countTokens" in rec.path:
            _text, usage = self.fake.reply(rec.json or {})
            self._send(200, {"totalTokens": usage["promptTokenCount"]})
        else:
            self._send(404, google_error(404, f"no route for {rec.path}"))

    def do_GET(self) -> None:
        rec = self._record()
        if not self._authorised(rec):
            return
        fault = self.fake._take_fault(rec.path)
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
            return
        name = self._file_name(rec.path)
        info = self.fake.files.get(name) if name else None
        if info is None or info.get("deleted"):
            self._send(404, google_error(404, f"File {name} not found"))
            return
        if info["polls_left"] > 0:
            info["polls_left"] -= 1
            info["state"] = "PROCESSING"
        else:
            info["state"] = self.fake.file_state_after_processing
        self.fake.file_events.append(f"get {name} {info['state']}")
        self._send(200, self._file_json(name, info))

    def do_DELETE(self) -> None:
        rec = self._record()
        if not self._authorised(rec):
            return
        name = self._file_name(rec.path)
        info = self.fake.files.get(name) if name else None
        if info is None:
            self._send(404, google_error(404, f"File {name} not found"))
            return
        info["deleted"] = True
        self.fake.file_events.append(f"delete {name}")
        self._send(200, {})

    # ---------------------------------------------------------------- endpoints
    @staticmethod
    def _model(path: str) -> str:
        return path.rsplit("/models/", 1)[-1].split(":", 1)[0]

    @staticmethod
    def _file_name(path: str) -> str | None:
        marker = "/files/"
        return "files/" + path.split(marker, 1)[1] if marker in path else None

    def _file_json(self, name: str, info: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "mimeType": info["mime"],
            "sizeBytes": str(len(info["data"])),
            "uri": f"{self.fake.base_url}/v1beta/{name}",
            "state": info["state"],
        }

    def _upload(self, rec: Recorded) -> None:
        command = rec.headers.get("x-goog-upload-command", "")
        if command == "start":
            upload_id = uuid.uuid4().hex
            meta = pick(rec.json or {}, "file") or {}
            self.fake._uploads[upload_id] = {
                "mime": rec.headers.get("x-goog-upload-header-content-type") or pick(meta, "mimeType"),
                "size": int(rec.headers.get("x-goog-upload-header-content-length") or 0),
                "data": bytearray(),
            }
            self.fake.file_events.append("upload-start")
            url = f"{self.fake.base_url}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
            self._send(200, {}, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
            return
        upload_id = (rec.query.get("upload_id") or [""])[0]
        upload = self.fake._uploads.get(upload_id)
        if upload is None:
            self._send(404, google_error(404, "unknown upload"))
            return
        upload["data"] += rec.body
        if "finalize" not in command:
            self._send(200, {}, {"X-Goog-Upload-Status": "active"})
            return
        name = f"files/fake{next(self.fake._ids)}"
        info = {
            "mime": upload["mime"],
            "data": bytes(upload["data"]),
            "state": "PROCESSING",
            "polls_left": self.fake.processing_polls,
        }
        self.fake.files[name] = info
        self.fake.file_events.append(f"upload-finalize {name} {len(info['data'])}")
        self._send(200, {"file": self._file_json(name, info)}, {"X-Goog-Upload-Status": "final"})

    def _stream(self, rec: Recorded) -> None:
        time.sleep(self.fake.latency_s)
        body = self.fake.response_body(rec.json or {}, self._model(rec.path))
        self.fake.responses.append(body)
        fail_after, self.fake._stream_error_after = self.fake._stream_error_after, None
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        candidates = body.get("candidates") or []
        parts = (candidates[0].get("content") or {}).get("parts") if candidates else None
        words = parts[0]["text"].split(" ") if parts else []
        events: list[dict[str, Any]] = []
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            events.append({"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}]})
        final = {k: v for k, v in body.items() if k != "candidates"}
        if candidates:
            final["candidates"] = [{k: v for k, v in candidates[0].items() if k != "content"}]
            if events:
                events[-1]["candidates"][0]["finishReason"] = candidates[0].get("finishReason")
                events[-1].update({k: v for k, v in final.items() if k != "candidates"})
            else:
                events.append(final)
        else:
            events.append(final)
        for i, event in enumerate(events):
            if fail_after is not None and i >= fail_after:
                self._chunk(b"data: " + json.dumps(google_error(500, "stream broke")).encode() + b"\r\n\r\n")
                break
            if i and self.fake.chunk_delay_s:
                time.sleep(self.fake.chunk_delay_s)
            self._chunk(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
        self._chunk(b"")


FakeGeminiServer.handler = _Handler
