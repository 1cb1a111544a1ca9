"""The answer log's data layer (answer_log.py): what is kept, in what order, how privately, and when not."""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid.answer_log import (
    NOT_KEPT,
    AnswerLog,
    keeps_text,
    log_path,
    logging_state,
    route_summary,
    set_logging,
)
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.request_builder import build_request
from fastvlm_gemini_hybrid.types import Result
from synth_media import picture

SECRET = "the vault code is 7431-XQ"


def answer(settings: Settings, prompt: str, text: str = "an answer", **hints: object) -> Result:
    """A real Result from a processor over fake backends (local-only unless `hints` say otherwise)."""
    processor = make_processor(settings, local=text, cloud=text)
    try:
        return processor.run(build_request(prompt, [picture()], **{"mode": "local-only", **hints}))
    finally:
        processor.close()


@pytest.fixture
def log(settings: Settings) -> Iterator[AnswerLog]:
    opened = AnswerLog(log_path(settings.home))
    yield opened
    opened.close()


def test_answers_come_back_oldest_first_with_their_metadata(settings: Settings, log: AnswerLog) -> None:
    for i in range(3):
        log.record(answer(settings, f"question {i}", f"answer {i}"), prompt=f"question {i}", source="ask")
    rows = log.recent(10)
    assert [r["prompt"] for r in rows] == ["question 0", "question 1", "question 2"]
    first = rows[0]
    assert first["response"] == "answer 0" and first["backend"] == "fastvlm" and first["mode"] == "local-only"
    assert first["model"] and first["request_id"] and first["source"] == "ask" and first["sensitive"] is False
    assert first["route"].startswith("local-only: fastvlm") and "domain general" in first["route"]
    assert first["time"].endswith("+00:00") and first["latency_ms"] >= 0 and first["cached"] is False
    assert {"input_tokens", "output_tokens", "cost_usd", "system"} <= first.keys()
    assert [r["prompt"] for r in log.recent(2)] == ["question 1", "question 2"]  # the newest two, newest last
    assert len(log.recent(0)) == 3 and log.count() == 3


def test_filters_by_backend_and_search_text(settings: Settings, log: AnswerLog) -> None:
    log.record(answer(settings, "What is the 100% figure?", "A cat"), prompt="What is the 100% figure?")
    log.record(answer(settings, "Where is the dog?", "In the garden"), prompt="Where is the dog?")
    assert [r["prompt"] for r in log.recent(10, search="GARDEN")] == ["Where is the dog?"]
    assert [r["response"] for r in log.recent(10, search="100%")] == ["A cat"]  # % is literal, not a wildcard
    assert log.recent(10, search="1_0") == [] and log.recent(10, search="%") != []
    assert len(log.recent(10, backend="fastvlm")) == 2 and log.recent(10, backend="gemini") == []


def test_a_sensitive_request_keeps_no_text(settings: Settings, log: AnswerLog) -> None:
    result = answer(settings, SECRET, f"it says {SECRET}", sensitive=True)
    assert result.route.sensitive
    log.record(result, prompt=SECRET, system=f"system: {SECRET}", source="ask")
    row = log.recent(1)[0]
    assert row["prompt"] == row["response"] == row["system"] == NOT_KEPT and row["sensitive"] is True
    assert row["backend"] == "fastvlm" and "sensitive" in row["route"]
    log.close()
    raw = b"".join(p.read_bytes() for p in log.path.parent.glob(log.path.name + "*"))
    assert b"7431-XQ" not in raw and NOT_KEPT.encode() in raw


@pytest.mark.parametrize("verdict", ["refuse", "redact"])
def test_pictures_the_gate_kept_or_redacted_keep_no_text(settings: Settings, log: AnswerLog, verdict: str) -> None:
    result = answer(settings, "What does the card say?", "card number 4111")
    result.route = dataclasses.replace(result.route, privacy={"verdict": verdict, "findings": [], "redactions": []})
    assert not keeps_text(result.route)
    log.record(result, prompt="What does the card say?")
    assert log.recent(1)[0]["response"] == NOT_KEPT and "pictures " + verdict in log.recent(1)[0]["route"]
    allowed = dataclasses.replace(result.route, privacy={"verdict": "allow"})
    assert keeps_text(allowed)


def test_route_summary_holds_no_prompt_text(settings: Settings) -> None:
    result = answer(settings, SECRET)
    assert "7431" not in route_summary(result.route) and "local-only" in route_summary(result.route)


def test_the_file_and_its_folder_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with AnswerLog(log_path(home)) as opened:
        assert opened.count() == 0
    assert stat.S_IMODE(log_path(home).stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_on_off_the_setting_and_the_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(home=tmp_path / "home")
    assert logging_state(settings).enabled and AnswerLog.open(settings) is not None
    set_logging(settings.home, False)
    state = logging_state(settings)
    assert not state.enabled and "logs off" in state.reason and AnswerLog.open(settings) is None
    set_logging(settings.home, True)
    assert logging_state(settings).enabled
    monkeypatch.setenv("FASTVLM_HYBRID_LOG_ANSWERS", "false")
    off = logging_state(load_settings(home=tmp_path / "home"))
    assert not off.enabled and "FASTVLM_HYBRID_LOG_ANSWERS" in off.reason


def test_last_used_per_model(settings: Settings, log: AnswerLog) -> None:
    result = answer(settings, "hi")
    log.record(result, prompt="hi")
    assert set(log.last_used()) == {result.model}
