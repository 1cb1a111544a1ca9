"""`surveil` and `video` through the real CLI entry point (and one subprocess run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from fastvlm_gemini_hybrid.cli import main

NOON = ["--start-time", "2025-01-01T12:00:00"]


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_surveil_json_prints_contract_events_and_writes_a_report(
    clips: dict[str, Path], zones_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["surveil", str(clips["walker"]), "--zones", str(zones_file), "--json",
                 "--report", str(tmp_path / "rep"), *NOON])
    out, err = capsys.readouterr()
    assert code == 0
    events = lines(out)
    assert [e["type"] for e in events] == ["motion", "zone_enter", "loitering", "zone_exit"]
    assert {e["priority"] for e in events if e["zone"]} >= {"high"}
    assert all(e["description"] is None for e in events)
    assert "descriptions unavailable" in err
    doc = json.loads((tmp_path / "rep" / "incident.json").read_text())
    assert doc["counts"]["total"] == 4 and doc["stats"]["descriptions"] == "unavailable"


def test_surveil_human_output(clips: dict[str, Path], zones_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["surveil", str(clips["walker"]), "--zones", str(zones_file), *NOON]) == 0
    out = capsys.readouterr().out
    assert "HIGH" in out and "zone_enter in loading-dock" in out


@pytest.mark.parametrize(
    ("zones_text", "needle"),
    [
        ("zones:\n  - name: a\n    polygon: [[0, 0], [5, 5]]\n", "at least 3"),
        ("zones:\n  - name: a\n    polygon: [[0, 0], [9, 0], [9, 9]]\n    colour: red\n", "unknown key 'colour'"),
        ("zones: [\n", "malformed zones file"),
    ],
)
def test_bad_zones_file_exits_2_with_one_line(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], zones_text: str, needle: str
) -> None:
    bad = tmp_path / "z.yaml"
    bad.write_text(zones_text)
    assert main(["surveil", str(clips["static"]), "--zones", str(bad), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["garbage", "truncated-mp4", "missing"])
def test_unreadable_video_exits_2_with_one_line(
    clips: dict[str, Path], zones_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path = tmp_path / f"{kind}.mp4"
    if kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated-mp4":
        data = clips["walker"].read_bytes()
        path.write_bytes(data[: len(data) // 3])
    assert main(["surveil", str(path), "--zones", str(zones_file), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and str(path.name) in err
    assert "Traceback" not in err


def test_stream_that_never_connects_exits_2(zones_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["surveil", f"tcp://127.0.0.1:{port}", "--zones", str(zones_file), "--reconnects", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot open video" in err and len(err.strip().splitlines()) == 1


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
        else:
            _Hook.received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return None


def test_webhook_receives_every_alert_after_retrying(
    clips: dict[str, Path], zones_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _Hook.received, _Hook.fail_first = [], 1
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        assert main(["surveil", str(clips["walker"]), "--zones", str(zones_file), "--json",
                     "--webhook", url, *NOON]) == 0
    finally:
        server.shutdown()
    out, err = capsys.readouterr()
    assert _Hook.received == lines(out)
    assert "4 sent, 0 failed" in err


def test_subprocess_surveil_runs_without_importing_a_model(clips: dict[str, Path], zones_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fastvlm_gemini_hybrid", "surveil", str(clips["walker"]), "--zones", str(zones_file),
         "--json", *NOON],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert [e["type"] for e in lines(proc.stdout)] == ["motion", "zone_enter", "loitering", "zone_exit"]


def test_help_lists_video_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["surveil", "--help"])
    assert "--zones" in capsys.readouterr().out


def test_cli_help_imports_no_video_or_model_library() -> None:
    code = ("import sys; from fastvlm_gemini_hybrid.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('av', 'cv2', 'numpy', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
