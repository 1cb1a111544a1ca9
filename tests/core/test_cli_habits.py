"""The CLI habits of simonw/llm and Ollama (issue 15): optional and piped prompts, -m/-s/-o, choices from the
enums, shell completion, `logs`, `models ps|show|rm`; every new command with --json and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid import _optional
from fastvlm_gemini_hybrid.answer_log import NOT_KEPT
from fastvlm_gemini_hybrid.cli import ask_cmd, main
from fastvlm_gemini_hybrid.cli.common import default_prompt, settings_from_args
from fastvlm_gemini_hybrid.types import Domain, Latency, Mode, Request
from synth_media import picture, picture_file

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """`ask`/`batch` answer through fake backends (tests/fakes.py); the requests they received, in order."""
    received: list[Request] = []

    def respond(request: Request) -> str:
        received.append(request)
        return f"answer to: {request.prompt}"

    def make(args: Any) -> Any:
        return make_processor(settings_from_args(args, cache_enabled=False), local=respond, cloud=respond,
                              local_kw={"confidence": 0.9})

    monkeypatch.setattr(ask_cmd, "make_processor", make)
    return received


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[str | bytes], None]]:
    """Put text or bytes on stdin as a real file (what `cmd < file` gives; a pipe reads the same way)."""
    opened: list[Any] = []

    def feed(data: str | bytes) -> None:
        path = tmp_path / f"stdin{len(opened)}"
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        opened.append(open(path, encoding="utf-8"))  # closed at teardown
        monkeypatch.setattr(sys, "stdin", opened[-1])

    yield feed
    for handle in opened:
        handle.close()


def one_line_error(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --------------------------------------------------------------------------- prompts


def test_the_prompt_is_optional_with_an_attachment(run: Run, seen: list[Request], tmp_path: Path) -> None:
    photo, other = picture_file(tmp_path, "a.png"), picture_file(tmp_path, "b.png", color=(0, 0, 200))
    assert run("ask", "-a", str(photo), "--mode", "local-only")[0] == 0
    assert run("ask", "-a", str(photo), "-a", str(other), "--mode", "local-only")[0] == 0
    assert [r.prompt for r in seen] == ["Describe this image.", "Describe these images."]
    assert default_prompt(["video"]) == "Describe this video." and default_prompt(["youtube", "video"]).endswith(
        "videos.") and default_prompt(["image", "video"]) == "Describe these attachments."
    code, out, err = run("ask", "--mode", "local-only")
    assert code == 2 and out == "" and "prompt is required" in err and one_line_error(err)


def test_the_prompt_from_stdin_then_the_argument(
    run: Run, seen: list[Request], stdin: Callable[[str | bytes], None], image_file: Path
) -> None:
    stdin("What colour is it?\n")
    assert run("ask", "-a", str(image_file), "--mode", "local-only")[0] == 0
    stdin("Text of q.txt\n")
    code, out, _ = run("ask", "Answer in French.", "-a", str(image_file), "--mode", "local-only")
    assert code == 0 and out == "answer to: Text of q.txt\n\nAnswer in French.\n"
    stdin("only stdin")
    assert run("ask", "-", "-a", str(image_file), "--mode", "local-only")[0] == 0
    assert [r.prompt for r in seen] == ["What colour is it?", "Text of q.txt\n\nAnswer in French.", "only stdin"]


def test_stdin_holding_the_picture_is_not_read_as_the_prompt(
    run: Run, seen: list[Request], stdin: Callable[[str | bytes], None]
) -> None:
    stdin(picture())
    assert run("ask", "What is it?", "-a", "-", "--mode", "local-only")[0] == 0
    assert seen[0].prompt == "What is it?" and seen[0].attachments[0].kind == "image"
    stdin(picture())
    code, _, err = run("ask", "-", "-a", "-", "--mode", "local-only")
    assert code == 2 and "stdin cannot hold both" in err and one_line_error(err)
    stdin("")
    code, _, err = run("ask", "-", "--mode", "local-only")
    assert code == 2 and "stdin is empty" in err and len(seen) == 1


def test_route_reads_its_prompt_the_same_way(run: Run, stdin: Callable[[str | bytes], None]) -> None:
    stdin("What does this MRI show for the patient?")
    code, out, _ = run("route", "--json")
    assert code == 0 and json.loads(out)["domain"] == "medical" and json.loads(out)["sensitive"] is True
    code, _, err = run("route")
    assert code == 2 and "prompt is required" in err


def test_route_without_a_prompt_describes_the_picture(run: Run, image_file: Path) -> None:
    code, out, _ = run("route", "-a", str(image_file), "--json")
    assert code == 0 and json.loads(out)["task"] == "describe"


# --------------------------------------------------------------------------- -m, -s, -o


def test_short_flags_and_options_reach_the_request(run: Run, seen: list[Request], image_file: Path) -> None:
    code, _, err = run("ask", "hi", "-a", str(image_file), "--mode", "fallback", "-m", "fastvlm", "-s", "Be brief.",
                       "-o", "temperature", "0.5", "-o", "top_p", "0.9", "-o", "seed", "7", "-o", "max-tokens", "33")
    assert code == 0, err
    request = seen[0]
    assert request.backend == "fastvlm" and request.options.system == "Be brief."  # -m pinned it
    assert (request.options.temperature, request.options.top_p, request.options.seed) == (0.5, 0.9, 7)
    assert request.options.max_tokens == 33 and "fastvlm" in err  # the pinned backend answered
    assert run("ask", "hi", "-a", str(image_file), "--mode", "local-only", "--model", "fastvlm", "--system", "S",
               "--max-tokens", "5", "--temperature", "0.25")[0] == 0
    assert (seen[1].backend, seen[1].options.system, seen[1].options.max_tokens, seen[1].options.temperature) == (
        "fastvlm", "S", 5, 0.25)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["-o", "colour", "red"], "unknown option 'colour' for -o; valid keys: max_tokens, temperature, top_p, seed"),
        (["-o", "seed", "1.5"], "-o seed needs a whole number"),
        (["-o", "temperature", "warm"], "-o temperature needs a number"),
        (["-o", "top_p", "0"], "-o top_p must lie in (0, 1]"),
        (["--max-tokens", "3", "-o", "max_tokens", "4"], "disagree"),
        (["-o", "max_tokens"], "expected 2 arguments"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    run: Run, seen: list[Request], image_file: Path, extra: list[str], needle: str
) -> None:
    code, out, err = run("ask", "hi", "-a", str(image_file), *extra)
    assert code == 2 and out == "" and needle in err and one_line_error(err) and seen == []


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize(
    ("argv", "enum"),
    [
        (["ask", "hi", "--mode", "turbo"], Mode),
        (["ask", "hi", "--domain", "astrology"], Domain),
        (["ask", "hi", "--latency", "glacial"], Latency),
        (["route", "hi", "--mode", "turbo"], Mode),
        (["route", "hi", "--latency", "glacial"], Latency),
        (["batch", ".", "caption", "--domain", "astrology"], Domain),
    ],
)
def test_a_typo_in_a_fixed_value_is_argparse_one_line_error(
    run: Run, seen: list[Request], argv: list[str], enum: Any
) -> None:
    code, out, err = run(*argv)
    assert code == 2 and out == "" and one_line_error(err) and "choose one of" in err
    assert all(member.value in err for member in enum) and seen == []


@pytest.mark.parametrize("command", ["ask", "route", "batch"])
def test_help_lists_the_enum_values(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for enum in (Mode, Domain, Latency):
        assert "{" + ",".join(m.value for m in enum) + "}" in out


def test_the_old_spellings_still_parse(run: Run) -> None:
    code, out, _ = run("route", "hi", "--mode", "LOCAL_ONLY", "--latency", "low_latency", "--json")
    assert code == 0 and json.loads(out)["mode"] == "local-only" and json.loads(out)["latency"] == "low-latency"


@pytest.mark.parametrize("argv", [["completion", "tcsh"], ["logs", "rotate"], ["models", "ps", "--server"]])
def test_other_fixed_sets_and_missing_values(run: Run, argv: list[str]) -> None:
    code, _, err = run(*argv)
    assert code == 2 and one_line_error(err)


# --------------------------------------------------------------------------- completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script(run: Run, shell: str) -> None:
    pytest.importorskip("argcomplete")
    code, out, _ = run("completion", shell)
    assert code == 0 and "fastvlm-hybrid" in out and "_ARGCOMPLETE" in out
    code, out, _ = run("completion", shell, "--json")
    assert code == 0 and json.loads(out)["shell"] == shell and "fastvlm-hybrid" in json.loads(out)["install"]


def test_completion_without_argcomplete_names_the_extra(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _optional.importlib.import_module

    def import_module(name: str, package: str | None = None) -> Any:
        if name == "argcomplete":
            raise ModuleNotFoundError("No module named 'argcomplete'", name="argcomplete")
        return real(name, package)

    monkeypatch.setattr(_optional, "importlib", type("Seam", (), {"import_module": staticmethod(import_module)}))
    code, out, err = run("completion", "bash")
    assert code == 2 and out == "" and one_line_error(err)
    assert "pip install 'fastvlm-gemini-hybrid[cli]'" in err


def test_tab_completes_flag_values_and_a_normal_start_skips_argcomplete(tmp_path: Path) -> None:
    pytest.importorskip("argcomplete")
    line, answer = "fastvlm-hybrid ask --mode ", tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)}
    subprocess.run([sys.executable, "-m", "fastvlm_gemini_hybrid"], env=env, capture_output=True, timeout=60)
    assert answer.read_text().split() == [m.value for m in Mode]
    probe = ("import sys, contextlib, io\nfrom fastvlm_gemini_hybrid.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    try: main(['--help'])\n    except SystemExit: pass\n"
             "print('argcomplete' in sys.modules)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("_ARGCOMPLETE")}
    out = subprocess.run([sys.executable, "-c", probe], env=clean, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


# --------------------------------------------------------------------------- logs


def test_answers_are_logged_and_listed_newest_last(run: Run, seen: list[Request], image_file: Path) -> None:
    for prompt in ("first question", "second question", "third question"):
        assert run("ask", prompt, "-a", str(image_file), "--mode", "local-only", "-s", "sys")[0] == 0
    code, out, _ = run("logs", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["prompt"] for r in rows] == ["first question", "second question", "third question"]
    assert rows[-1]["response"] == "answer to: third question" and rows[-1]["system"] == "sys"
    assert rows[-1]["backend"] == "fastvlm" and rows[-1]["request_id"] == seen[-1].request_id
    assert [r["prompt"] for r in json.loads(run("logs", "-n", "1", "--json")[1])] == ["third question"]
    assert [r["prompt"] for r in json.loads(run("logs", "list", "-q", "SECOND", "--json")[1])] == ["second question"]
    assert json.loads(run("logs", "--backend", "gemini", "--json")[1]) == []
    code, out, _ = run("logs", "-n", "2")
    assert code == 0 and out.index("second question") < out.index("third question") and "first" not in out
    assert "## " in out and "fastvlm" in out and "Response:" in out


def test_a_sensitive_answer_is_logged_without_its_text(run: Run, seen: list[Request], image_file: Path) -> None:
    assert run("ask", "my pin is 4321", "-a", str(image_file), "--sensitive", "--mode", "local-only")[0] == 0
    row = json.loads(run("logs", "--json")[1])[-1]
    assert row["prompt"] == row["response"] == NOT_KEPT and row["sensitive"] is True
    path = Path(json.loads(run("logs", "path", "--json")[1])["path"])
    assert b"4321" not in path.read_bytes()


def test_batch_and_stream_answers_are_logged(run: Run, seen: list[Request], tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        picture_file(folder, f"{i}.png", color=(i * 90, 10, 10))
    assert run("batch", str(folder), "caption", "--mode", "local-only", "--quiet", "-o", "seed", "3")[0] == 0
    assert run("ask", "streamed", "-a", str(folder / "0.png"), "--mode", "local-only", "--stream")[0] == 0
    rows = json.loads(run("logs", "--json")[1])
    assert [r["source"] for r in rows] == ["batch", "batch", "ask"] and rows[-1]["prompt"] == "streamed"
    assert {r.options.seed for r in seen[:2]} == {3}


def test_logs_off_on_status_path(
    run: Run, seen: list[Request], image_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask = ("ask", "hello", "-a", str(image_file), "--mode", "local-only")
    code, out, _ = run("logs", "off", "--json")
    assert code == 0 and json.loads(out)["enabled"] is False
    assert run(*ask)[0] == 0 and json.loads(run("logs", "--json")[1]) == []
    assert "logging is off" in run("logs")[1]
    assert json.loads(run("logs", "on", "--json")[1])["enabled"] is True
    assert run(*ask)[0] == 0
    status = json.loads(run("logs", "status", "--json")[1])
    assert status["enabled"] is True and status["answers"] == 1
    monkeypatch.setenv("FASTVLM_HYBRID_LOG_ANSWERS", "false")
    assert run(*ask)[0] == 0
    code, out, _ = run("logs", "status")
    assert code == 0 and "logging: off" in out and "1 answers" in out and "FASTVLM_HYBRID_LOG_ANSWERS" in out
    code, out, _ = run("logs", "path")
    assert code == 0 and out.strip().endswith("answers.sqlite3") and len(seen) == 3


# --------------------------------------------------------------------------- models show, rm, ps


def fake_model(home: Path, name: str = "fastvlm-0.5b") -> Path:
    folder = home / "models" / name
    folder.mkdir(parents=True)
    config = {"model_type": "fast_vlm", "architectures": ["FastVlmForConditionalGeneration"]}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"\0" * 2048)
    return folder


def test_models_show_gives_the_catalogue_facts(run: Run, _isolated_env: Path) -> None:
    code, out, _ = run("models", "show", "fastvlm-0.5b", "--json")
    facts = json.loads(out)
    assert code == 0 and facts["downloaded"] is False and "models pull fastvlm-0.5b" in facts["detail"]
    assert "FastViTHD" in facts["architecture"] and "Qwen2-0.5B" in facts["architecture"]
    assert "research use only" in facts["licence"] and "research use only" in facts["licence_note"]
    assert "image" in facts["capabilities"]["media"] and facts["params"] == "0.5B"
    folder = fake_model(_isolated_env)
    code, out, _ = run("models", "show", "fastvlm-0.5b")
    assert code == 0 and str(folder) in out and "research use only" in out and "architecture" in out
    assert json.loads(run("models", "show", "fastvlm-0.5b", "--json")[1])["model_type"] == "fast_vlm"
    code, _, err = run("models", "show", "no-such-model")
    assert code == 2 and "unknown model" in err and one_line_error(err)


def test_models_rm_asks_first(
    run: Run, _isolated_env: Path, stdin: Callable[[str | bytes], None]
) -> None:
    folder = fake_model(_isolated_env)
    stdin("n\n")
    code, out, err = run("models", "rm", "fastvlm-0.5b")
    assert code == 1 and folder.is_dir() and "[y/N]" in err and "kept" in out
    stdin("y\n")
    code, out, _ = run("models", "rm", "fastvlm-0.5b")
    assert code == 0 and not folder.exists() and "deleted" in out
    pulled = fake_model(_isolated_env, "org--some-vlm")
    code, out, _ = run("models", "rm", "org/some-vlm", "-y", "--json")
    assert code == 0 and json.loads(out)["deleted"] is True and not pulled.exists()


@pytest.mark.parametrize("name", ["../outside", "/etc", "onnx", "fastvlm-1.5b", ".hidden", "a/../../b"])
def test_models_rm_refuses_what_is_not_ours(run: Run, _isolated_env: Path, name: str) -> None:
    outside = _isolated_env / "outside"
    outside.mkdir()
    (_isolated_env / "models" / "onnx").mkdir(parents=True)
    code, out, err = run("models", "rm", name, "-y")
    assert code == 2 and out == "" and one_line_error(err) and outside.is_dir()
    assert (_isolated_env / "models" / "onnx").is_dir()


def test_models_ps_without_a_server_lists_downloads(
    run: Run, seen: list[Request], _isolated_env: Path, image_file: Path
) -> None:
    fake_model(_isolated_env)
    code, out, _ = run("models", "ps", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["server"] is None
    row = next(m for m in payload["models"] if m["name"] == "fastvlm-0.5b")
    assert row["size_bytes"] >= 2048 and row["last_used_from"] == "file access time"
    code, out, _ = run("models", "ps")
    assert code == 0 and "fastvlm-0.5b" in out and "no server given" in out


@pytest.fixture
def ps_server() -> Iterator[str]:
    """A stand-in for a running server's Ollama `/api/ps` (a real HTTP server on 127.0.0.1)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            known = self.path == "/api/ps"
            body = json.dumps({"models": [{"name": "fastvlm", "model": "fastvlm", "expires_at": None}]} if known
                              else {"error": "not found"}).encode()
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_models_ps_asks_a_running_server(run: Run, ps_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run("models", "ps", "--server", ps_server, "--json")
    assert code == 0 and json.loads(out)["models"][0]["name"] == "fastvlm"
    monkeypatch.setenv("FASTVLM_HYBRID_SERVER", ps_server)
    code, out, _ = run("models", "ps")
    assert code == 0 and out.startswith("NAME") and "fastvlm" in out
    code, _, err = run("models", "ps", "--server", ps_server + "/nowhere")
    assert code == 1 and "404" in err and one_line_error(err)
    code, _, err = run("models", "ps", "--server", "http://127.0.0.1:9")
    assert code == 1 and "cannot ask" in err and one_line_error(err)
