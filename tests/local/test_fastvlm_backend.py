"""The FastVLM backend on a tiny random model: generation, streaming, batching, confidence, caches."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.models.decoding import low_quantile
from fastvlm_gemini_hybrid.types import Attachment, Generation, GenerationOptions, Request
from synth_media import blank, encode

from .conftest import tiny_settings

GREEDY = GenerationOptions(max_tokens=12)


def ask(prompt: str, *images: Attachment, options: GenerationOptions = GREEDY) -> Request:
    return Request(prompt=prompt, attachments=tuple(images), options=options)


async def test_generate_returns_text_usage_and_confidence(tiny_backend: FastVLMBackend, make_image) -> None:
    result = await tiny_backend.generate(ask("What is in this picture?", make_image()))
    assert isinstance(result, Generation)
    assert result.text.strip()
    assert result.usage.output_tokens == 12 or result.finish_reason == "stop"
    # the image alone is 16 tokens at the tiny size, plus the chat template and the question
    assert result.usage.input_tokens > 16 + 5
    assert result.usage.cost_usd == 0.0
    assert result.confidence is not None and 0.0 <= result.confidence <= 1.0
    assert result.model == tiny_backend.default_model


async def test_greedy_is_repeatable_and_seeded_sampling_too(tiny_backend: FastVLMBackend, make_image) -> None:
    img = make_image((10, 200, 10))
    first = await tiny_backend.generate(ask("Describe it", img))
    again = await tiny_backend.generate(ask("Describe it", img))
    assert first.text == again.text
    sampled = [
        (await tiny_backend.generate(ask("Describe it", img, options=GenerationOptions(
            max_tokens=16, temperature=1.0, top_p=0.95, seed=seed)))).text
        for seed in (1, 1, 2)
    ]
    assert sampled[0] == sampled[1]
    assert sampled[0] != sampled[2]


async def test_stream_pieces_join_to_the_full_answer(tiny_backend: FastVLMBackend, make_image) -> None:
    request = ask("What colour is it?", make_image((30, 30, 220)), options=GenerationOptions(max_tokens=20))
    pieces = [piece async for piece in tiny_backend.stream(request)]
    full = await tiny_backend.generate(request)
    assert len(pieces) > 1
    assert "".join(pieces) == full.text


async def test_batch_equals_one_by_one(tiny_backend: FastVLMBackend, make_image) -> None:
    requests = [
        ask("What is this?", make_image((200, 0, 0), (120, 60))),
        ask("Please describe the whole picture in great detail, every corner.", make_image((0, 90, 200), (50, 200))),
        ask("Hello, no image here"),
    ]
    singles = [await tiny_backend.generate(r) for r in requests]
    batch = await tiny_backend.generate_batch(requests)
    assert [b.text for b in batch] == [s.text for s in singles]  # type: ignore[union-attr]
    assert [b.usage.input_tokens for b in batch] == [s.usage.input_tokens for s in singles]  # type: ignore[union-attr]


async def test_batch_reports_a_bad_item_without_failing_the_rest(tiny_backend: FastVLMBackend, make_image) -> None:
    corrupt = Attachment.from_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png", name="broken.png")
    results = await tiny_backend.generate_batch([ask("a", make_image()), ask("b", corrupt)])
    assert isinstance(results[0], Generation)
    assert isinstance(results[1], BadInputError)


def test_confidence_is_a_low_quantile_not_the_mean() -> None:
    probs = [0.99] * 9 + [0.05]
    assert sum(probs) / len(probs) > 0.89
    assert low_quantile(probs) < 0.2  # the one unsure token shows
    assert low_quantile([0.7]) == pytest.approx(0.7)
    assert low_quantile([]) is None


async def test_confidence_lower_when_the_model_is_unsure(tiny_model_dir: Path, tmp_path: Path, make_image) -> None:
    """Same prompt, same model; only the sharpness of the output distribution changes.

    Scaling the final norm scales every logit: x50 makes the model sure of its top token, x0 makes every
    token equally likely (p = 1/vocab). Confidence must follow.
    """
    backend = FastVLMBackend(tiny_settings(tiny_model_dir, tmp_path))
    runtime = backend.load()
    norm = runtime.model.model.language_model.norm.weight
    original = norm.detach().clone()
    # Sampled, so the flat case emits real tokens instead of stopping at token 0 (an end token).
    request = ask("How sure are you?", make_image(), options=GenerationOptions(max_tokens=12, temperature=1.0, seed=3))
    try:
        with __import__("torch").no_grad():
            norm.mul_(50.0)
        peaked = await backend.generate(request)
        with __import__("torch").no_grad():
            norm.zero_()
        flat = await backend.generate(request)
    finally:
        with __import__("torch").no_grad():
            norm.copy_(original)
    vocab = runtime.model.config.text_config.vocab_size
    assert peaked.confidence is not None and flat.confidence is not None
    assert peaked.confidence > 0.5
    assert flat.confidence == pytest.approx(1.0 / vocab, rel=0.05)
    await backend.aclose()


async def test_follow_up_on_same_image_skips_the_vision_encoder(tiny_backend: FastVLMBackend, make_image) -> None:
    runtime = tiny_backend.runtime
    img = make_image((123, 45, 67), (80, 80))
    before = runtime.stats["vision_encodes"]
    first = await tiny_backend.generate(ask("First question?", img))
    assert runtime.stats["vision_encodes"] == before + 1
    await tiny_backend.generate(ask("A second, different question?", img))
    assert runtime.stats["vision_encodes"] == before + 1  # cache hit: the encoder did not run
    await tiny_backend.generate(ask("Third?", img, options=GenerationOptions(max_tokens=4, system="Be brief.")))
    assert runtime.stats["vision_encodes"] == before + 1  # other prefix, same image features
    await tiny_backend.generate(ask("First question?", make_image((1, 2, 3), (80, 80))))
    assert runtime.stats["vision_encodes"] == before + 2  # a new image is encoded
    # Answers from the caches equal answers computed from scratch.
    runtime.vision_cache.clear()
    runtime.prefix_cache.clear()
    fresh = await tiny_backend.generate(ask("First question?", img))
    assert fresh.text == first.text


def test_wide_image_is_padded_not_cropped(tiny_backend: FastVLMBackend) -> None:
    """Red bars at the far left and right of a wide image must reach the vision tower."""
    from PIL import ImageDraw

    from fastvlm_gemini_hybrid.models.runtime import ImageInput

    img = blank((0, 0, 255), (600, 150))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 40, 149], fill=(255, 0, 0))
    draw.rectangle([560, 0, 599, 149], fill=(255, 0, 0))
    runtime = tiny_backend.runtime
    pixels = runtime.pixel_values([ImageInput.from_bytes(encode(img))])[0]  # (3, H, W), mean 0 std 1
    side = pixels.shape[-1]
    middle = pixels[:, side // 2, :]
    assert middle[0, 2] > 0.9 and middle[2, 2] < 0.1  # left edge: red
    assert middle[0, -3] > 0.9 and middle[2, -3] < 0.1  # right edge: red
    assert middle[2, side // 2] > 0.9  # centre: blue
    assert float(pixels[:, 2, :].abs().max()) < 0.02  # top band: padding in the mean colour (black)
    # The checkpoint's own processor would centre-crop the bars away.
    plain = runtime.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]
    assert plain[0, side // 2, 2] < 0.1


async def test_concurrent_requests_share_one_model_and_keep_the_loop_free(
        tiny_model_dir: Path, tmp_path: Path, make_image) -> None:
    backend = FastVLMBackend(tiny_settings(tiny_model_dir, tmp_path))
    assert backend.runtime is None  # construction is cheap: nothing is loaded yet
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    start = time.perf_counter()
    results = await asyncio.gather(*(backend.generate(ask(f"q{i}", make_image((i * 40, 0, 0)))) for i in range(3)))
    elapsed = time.perf_counter() - start
    stop.set()
    await tick_task
    assert all(r.text for r in results)
    assert backend.runtime is not None and backend.runtime.stats["vision_encodes"] == 3
    assert ticks >= elapsed / 0.01 * 0.3  # the event loop kept running while the model worked
    health = await backend.health()
    assert health.ready and "loaded" in health.detail
    await backend.aclose()


async def test_int8_quantized_model_still_answers(tiny_model_dir: Path, tmp_path: Path, make_image) -> None:
    backend = FastVLMBackend(tiny_settings(tiny_model_dir, tmp_path, quantize="int8"))
    result = await backend.generate(ask("Quantised?", make_image()))
    assert result.text.strip()
    import torch

    kinds = {type(m).__name__ for m in backend.runtime.model.model.language_model.modules()}
    assert "WeightOnlyLinear" in kinds and "Linear" not in kinds, kinds
    assert backend.runtime.dtype == torch.float32  # the settings' compute dtype: weight-only keeps it
    await backend.aclose()


async def test_unreadable_image_is_a_bad_input(tiny_backend: FastVLMBackend) -> None:
    corrupt = Attachment.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, name="broken.png")
    with pytest.raises(BadInputError, match=r"broken\.png"):
        await tiny_backend.generate(ask("What is it?", corrupt))


async def test_prompt_beyond_the_context_is_a_bad_input(tiny_backend: FastVLMBackend) -> None:
    long_prompt = " ".join(f"word{i}" for i in range(1500))
    with pytest.raises(BadInputError, match="context"):
        await tiny_backend.generate(ask(long_prompt))


async def test_video_input_is_refused_with_a_clear_error(tiny_backend: FastVLMBackend) -> None:
    video = Attachment(mime="video/mp4", data=b"\x00\x00\x00\x18ftypmp42", name="clip.mp4", sha256="x")
    with pytest.raises(BadInputError, match="video"):
        await tiny_backend.generate(ask("What happens?", video))


def test_constructing_the_backend_imports_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from fastvlm_gemini_hybrid.config import load_settings\n"
        "from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend\n"
        f"b = FastVLMBackend(load_settings(home={str(tmp_path)!r}))\n"
        "assert b.runtime is None\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]



def test_low_quantile_of_a_long_answer_ignores_a_few_outliers() -> None:
    probs = [0.9] * 95 + [0.01] * 5  # 5% doubtful tokens sit below the 10th percentile
    assert low_quantile(probs) == pytest.approx(0.9)
    assert low_quantile([0.9] * 80 + [0.01] * 20) == pytest.approx(0.01)
