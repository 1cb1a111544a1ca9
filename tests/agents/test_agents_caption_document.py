"""caption (batch, JSONL, sidecars) and document (sensitive by default, arithmetic checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.agents.base import AgentOptions, AgentOutputError
from fastvlm_gemini_hybrid.agents.caption import sidecar_path
from fastvlm_gemini_hybrid.agents.document import consistency_warnings
from fastvlm_gemini_hybrid.agents.registry import load_builtin
from fastvlm_gemini_hybrid.errors import PolicyViolationError
from fastvlm_gemini_hybrid.types import Latency
from synth_media import picture_file

from .answers import CAPTION, RECEIPT
from .conftest import GREY, ScriptedAnswers, calls


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        picture_file(root, name, color=GREY, size=(32, 32))
    (root / "notes.txt").write_text("not an image")
    return root


def by_image(answers: dict[str, object]):
    """A responder keyed by the image's file name (batches answer out of order)."""

    def answer(request):
        value = answers[request.attachments[0].name]
        return value if isinstance(value, str) else json.dumps(value)

    return answer


async def test_caption_batch_over_folder_streams_items(make_processor, folder: Path) -> None:
    too_long = {**CAPTION, "alt_text": "x" * 200}
    answers = {"a.png": CAPTION, "b.png": CAPTION, "c.png": too_long}
    processor = make_processor(local=by_image(answers), cloud=by_image(answers))
    seen = []
    options = AgentOptions(concurrency=2, progress=False, on_item=seen.append)
    items = await load_builtin("caption").arun(processor, [str(folder)], options)
    assert len(items) == 3 and len(seen) == 3  # notes.txt skipped, every item streamed
    by_name = {Path(i.input).name: i for i in items}
    assert by_name["a.png"].ok and by_name["a.png"].output["alt_text"] == "Grey square"
    bad = by_name["c.png"]
    assert not bad.ok and isinstance(bad.error, AgentOutputError) and "alt_text" in str(bad.error)
    every = calls(processor, "fastvlm") + calls(processor, "gemini")
    assert len(every) == 4  # one retry for c.png only
    assert all(r.latency is Latency.BATCH for r in every)


async def test_caption_sidecars_and_skip_existing(make_processor, folder: Path) -> None:
    answer = ScriptedAnswers(CAPTION)
    processor = make_processor(local=answer, cloud=answer)
    options = AgentOptions(sidecar="json", progress=False, warn=lambda _m: None)
    await load_builtin("caption").arun(processor, [str(folder)], options)
    sidecar = folder / "a.json"
    data = json.loads(sidecar.read_text())
    assert data["caption"] == "A grey square." and data["backend"] in ("fastvlm", "gemini")
    assert (folder / "sub" / "c.json").exists()
    assert not list(folder.rglob("*.tmp"))
    first_calls = len(answer.prompts)
    assert first_calls == 3
    again = await load_builtin("caption").arun(processor, [str(folder)], options)
    assert again == [] and len(answer.prompts) == first_calls  # all skipped
    await load_builtin("caption").arun(processor, [str(folder / "a.png")],
                                       AgentOptions(sidecar="txt", progress=False))
    assert (folder / "a.txt").read_text() == "A grey square.\n"


def test_sidecar_names_do_not_clash(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    assert sidecar_path(image, "txt") == tmp_path / "x.txt"
    assert sidecar_path(image, "txt", {str(tmp_path / "x")}) == tmp_path / "x.png.txt"


@pytest.fixture
def receipt(tmp_path: Path) -> Path:
    return picture_file(tmp_path, "receipt.png", color=GREY, size=(120, 200))


async def test_document_is_local_by_default_and_flags_arithmetic(make_processor, receipt: Path) -> None:
    processor = make_processor(local=ScriptedAnswers(RECEIPT), cloud=ScriptedAnswers(RECEIPT))
    (item,) = await load_builtin("document").arun(processor, [str(receipt)], AgentOptions(progress=False))
    assert item.ok and item.result is not None and item.result.backend == "fastvlm"
    assert calls(processor, "gemini") == []
    assert calls(processor, "fastvlm")[0].sensitive is True
    assert item.output["warnings"] == ["line items add up to 5.50, but the total reads 6.00"]


@pytest.mark.parametrize("mode", ["cloud-only", "parallel", "fallback", "auto"])
async def test_document_never_reaches_cloud_in_any_mode_unless_allowed(make_processor, receipt: Path,
                                                                      mode: str) -> None:
    from fastvlm_gemini_hybrid.types import Mode

    processor = make_processor(local=ScriptedAnswers(RECEIPT), cloud=ScriptedAnswers(RECEIPT))
    options = AgentOptions(mode=Mode.parse(mode), progress=False)
    if mode == "cloud-only":
        with pytest.raises(PolicyViolationError, match="never leaves this machine"):
            await load_builtin("document").arun(processor, [str(receipt)], options)
    else:
        (item,) = await load_builtin("document").arun(processor, [str(receipt)], options)
        assert item.ok
    assert calls(processor, "gemini") == []


async def test_document_not_sensitive_lifts_the_default_only(make_processor, receipt: Path) -> None:
    from fastvlm_gemini_hybrid.types import Mode

    processor = make_processor(local=ScriptedAnswers(RECEIPT), cloud=ScriptedAnswers(RECEIPT))
    options = AgentOptions(sensitive=False, mode=Mode.CLOUD_ONLY, progress=False)
    (item,) = await load_builtin("document").arun(processor, [str(receipt)], options)
    assert item.ok and item.result is not None and item.result.backend == "gemini"
    (request,) = calls(processor, "gemini")
    assert request.sensitive is None  # no hint: the router's own detection still applies


async def test_document_partially_valid_answer_is_retried(make_processor, receipt: Path) -> None:
    partial = {**RECEIPT, "document_type": "shopping list", "line_items": [{"amount": 2.5}]}
    script = ScriptedAnswers(partial, RECEIPT)
    processor = make_processor(local=script)
    (item,) = await load_builtin("document").arun(processor, [str(receipt)], AgentOptions(progress=False))
    assert item.ok and item.attempts == 2
    assert "document_type" in (item.retried_because or "")


def test_consistency_warnings_cover_lines_and_tax() -> None:
    ok = {"line_items": [{"description": "a", "quantity": 2, "unit_price": 1.0, "amount": 2.0}],
          "subtotal": 2.0, "tax": 0.4, "total": 2.4}
    assert consistency_warnings(ok) == []
    bad = {"line_items": [{"description": "a", "quantity": 2, "unit_price": 1.0, "amount": 3.0}],
           "subtotal": 3.0, "tax": 0.4, "total": 5.0}
    warnings = consistency_warnings(bad)
    assert any("2 × 1.00 = 2.00" in w for w in warnings) and any("+ tax" in w for w in warnings)
