"""models/roofline.py: the measured limits (bounded in time, positive, finite), the roofline arithmetic,
the weight bytes a decode step reads, FLOP counting on the tiny model's vision tower, and the lines
benchmarks/fastvlm_cpu.py prints from them."""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch  # tests/local/conftest.py skips this folder without torch and transformers
import transformers

from fastvlm_gemini_hybrid.models import roofline
from fastvlm_gemini_hybrid.models.architecture import TINY_IMAGE_SIZE, fastvlm_config

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "fastvlm_cpu.py"


def tiny_model(device: str = "cpu", *, tied: bool = True) -> Any:
    """The tiny FastVLM architecture (models/architecture.py), random weights, on `device`."""
    config = fastvlm_config(tiny=True, vocab_size=512, image_token_id=3)
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = tied  # the top level decides
    with torch.device(device):
        return transformers.FastVlmForConditionalGeneration(config).eval()


def positive(value: float) -> bool:
    return value > 0 and math.isfinite(value)


# ---------------------------------------------------------------------------- measured limits
def test_memory_bandwidth_is_positive_and_quick() -> None:
    start = time.perf_counter()
    assert positive(roofline.memory_bandwidth_gbs(size_bytes=8 * 2**20, repeats=2))
    assert time.perf_counter() - start < 20


def test_matmul_peak_is_positive_and_quick_fixed_or_adaptive() -> None:
    start = time.perf_counter()
    assert positive(roofline.matmul_peak_gflops("float32", n=128, repeats=2))
    # adaptive n, bf16 (emulated on many CPUs, where a large product takes seconds): the budget bounds it
    assert positive(roofline.matmul_peak_gflops(torch.bfloat16, target_s=0.005, budget_s=1.0))
    assert time.perf_counter() - start < 20


def test_best_seconds_stops_at_its_budget() -> None:
    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.05)

    best = roofline.best_seconds(slow, repeats=100, budget_s=0.1)
    assert 0.04 < best < 1 and len(calls) < 10  # one warm-up plus a few timed calls, not 100


def test_last_level_cache_is_a_plausible_size() -> None:
    assert 2**16 <= roofline.last_level_cache_bytes() <= 2**31


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        roofline.torch_dtype("int3")
    with pytest.raises(ValueError):
        roofline.memory_bandwidth_gbs(size_bytes=0)
    with pytest.raises(ValueError):
        roofline.matmul_peak_gflops("float32", n=0)


# ---------------------------------------------------------------------------- arithmetic
def test_roofline_arithmetic() -> None:
    assert roofline.decode_roofline(1e9, 20.0) == pytest.approx(20.0)  # 20 GB/s over 1 GB a token
    assert roofline.decode_roofline(0.5e9, 3350.0) == pytest.approx(6700.0)
    assert roofline.share(5.0, 20.0) == pytest.approx(0.25)
    assert roofline.share(roofline.decode_roofline(2e9, 10.0), 5.0) == pytest.approx(1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            roofline.decode_roofline(bad, 10.0)
        with pytest.raises(ValueError):
            roofline.decode_roofline(1e9, bad)
        with pytest.raises(ValueError):
            roofline.share(1.0, bad)


def test_decode_weight_bytes_counts_the_decoder_and_head_once() -> None:
    tied = tiny_model("meta")
    decoder = tied.get_decoder()
    params = sum(p.numel() for p in decoder.parameters())  # embedding table included: the head shares it
    assert tied.get_output_embeddings().weight is tied.get_input_embeddings().weight
    assert roofline.decode_weight_bytes(tied, "bf16") == 2 * params
    assert roofline.decode_weight_bytes(tied, "fp32") == 4 * params
    # weight-only int8/int4 quantize every Linear, the head too (its own copy of the shared table), plus
    # scales; the embedding table is then read one row per step; norms and biases stay fp32
    linears = [m for m in [*decoder.modules(), tied.get_output_embeddings()] if isinstance(m, torch.nn.Linear)]
    linear = sum(m.weight.numel() for m in linears)
    rows = sum(m.weight.shape[0] for m in linears)
    rest = params - linear  # the head's weight is the embedding table: counted once, as a linear
    assert roofline.decode_weight_bytes(tied, "int8") == linear + 2 * rows + 4 * rest
    assert roofline.decode_weight_bytes(tied, "int4") == int(linear * (0.5 + 4 / 128) + 4 * rest)
    with pytest.raises(ValueError):
        roofline.decode_weight_bytes(tied, "int3")


def test_an_untied_head_is_read_but_the_embedding_table_is_not() -> None:
    untied = tiny_model("meta", tied=False)
    head, embed = untied.get_output_embeddings(), untied.get_input_embeddings()
    assert head.weight is not embed.weight
    params = sum(p.numel() for p in untied.get_decoder().parameters())
    assert roofline.decode_weight_bytes(untied, "bf16") == 2 * (params - embed.weight.numel() + head.weight.numel())


# ---------------------------------------------------------------------------- FLOPs
def test_count_flops_matches_hand_counts() -> None:
    linear = torch.nn.Linear(32, 16, bias=False)
    assert roofline.count_flops(linear, torch.zeros(4, 32)) == 2 * 4 * 32 * 16
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert roofline.count_flops(conv, torch.zeros(1, 3, 10, 10)) == 2 * 8 * 10 * 10 * 3 * 3 * 3


def test_flops_of_the_tiny_vision_tower_are_positive_and_the_same_on_any_device() -> None:
    size = (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    model = tiny_model("cpu")
    flops = roofline.vision_flops(model, size)
    assert flops > 0
    assert roofline.vision_flops(tiny_model("meta"), size) == flops  # counted on a meta copy: shapes decide
    assert roofline.vision_flops(tiny_model("meta"), size, batch=2) == 2 * flops
    # why a meta copy: on CPU torch's fused attention kernel is not an op the counter knows, so a real CPU
    # forward leaves the tower's attention out; on meta attention runs as plain, counted matmuls
    pixels = torch.zeros(1, 3, *size)
    assert 0 < roofline.count_flops(model.get_image_features, pixel_values=pixels) < flops


# ---------------------------------------------------------------------------- the CPU benchmark's lines
def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastvlm_cpu_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fastvlm_cpu_prints_roofline_lines(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _benchmark()
    names = ["plain-fp32", "ours-bf16", "ours-int8"]
    roof = bench.worker_roofline(tiny_model_dir, names)
    assert set(roof["weight_bytes_per_token"]) == {"fp32", "bf16", "int8"}
    assert set(roof["matmul_peak_gflops"]) == {"float32", "bfloat16"}
    assert roof["image_size"] == [TINY_IMAGE_SIZE, TINY_IMAGE_SIZE] and roof["vision_flops"] > 0
    assert positive(roof["bandwidth_gbs"])
    results = {n: {"samples": {"decode_tok_s": [10.0, 12.0], "vision_s": [0.02, 0.01]}} for n in names}
    bench.report_roofline(results, roof)
    out = capsys.readouterr().out
    assert "roofline" in out and "copy bandwidth" in out and "GFLOP per 256x256 picture" in out
    for name in names:
        assert sum(line.lstrip().startswith(name) for line in out.splitlines()) == 2  # decode row, vision row


def test_fastvlm_cpu_extra_reports_accuracy_and_batch(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _benchmark()
    acc = bench.extra.worker_accuracy(tiny_model_dir, ["plain-bf16", "ours-bf16", "ours-int8", "ours-int4"])
    assert acc["references"] == ["ours-bf16", "ours-fp32"]
    configs = acc["configs"]
    assert set(configs) == {"ours-bf16", "ours-fp32", "ours-int8", "ours-int4"}
    own = configs["ours-bf16"]["ours-bf16"]
    assert own["mean_rel_err"] == 0.0 and own["top1_agreement"] == 1.0
    assert own["positions"] == acc["prompts"] * acc["tokens"]
    assert configs["ours-int4"]["ours-bf16"]["mean_rel_err"] > configs["ours-int8"]["ours-bf16"]["mean_rel_err"] > 0
    lm_only = bench.extra.worker_accuracy(tiny_model_dir, ["ours-int8"])  # no full bf16: its language model alone
    assert lm_only["references"] == ["ours-bf16lm", "ours-fp32"]
    bf16_lm = lm_only["configs"]["ours-bf16lm"]["ours-fp32"]["mean_rel_err"]
    assert 0 < bf16_lm < lm_only["configs"]["ours-int8"]["ours-fp32"]["mean_rel_err"] + 0.05
    monkeypatch.setattr(bench.extra, "BATCH_SIZES", (1, 2))
    monkeypatch.setattr(bench.extra, "BATCH_TOKENS", 3)
    batch = bench.extra.worker_batch(tiny_model_dir, "ours-int8")
    assert set(batch["sizes"]) == {"1", "2"} and all(positive(r["pictures_per_s"]) for r in batch["sizes"].values())
    bench.extra.report_accuracy(acc)
    bench.extra.report_batch(batch)
    out = capsys.readouterr().out
    assert "numerical cost of each weight format" in out and "vs ours-bf16: max" in out
    assert "batch  2:" in out and "x batch 1" in out


def test_configuration_names_carry_the_language_model_and_vision_formats() -> None:
    extra = _benchmark().extra
    assert (extra.weights_of("ort-q8+v8"), extra.vision_of("ort-q8+v8")) == ("q8", "int8")
    assert (extra.weights_of("ort-q4"), extra.vision_of("ort-q4")) == ("q4", "fp32")
    assert (extra.weights_of("ours-int8"), extra.vision_of("ours-int8")) == ("int8", "fp32")


def test_fastvlm_cpu_names_take_a_vision_input_size(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bench = _benchmark()
    extra = bench.extra
    name = "ort-q8+v8@768"
    assert (extra.weights_of(name), extra.vision_of(name), extra.size_of(name)) == ("q8", "int8", 768)
    assert (extra.weights_of("ours-int4"), extra.vision_of("ours-int4"), extra.size_of("ours-int4")) == \
        ("int4", "fp32", None)
    for bad in ("plain-fp32@768", "ort-fp32@big", "ort-q3"):  # plain usage has no input-size option
        monkeypatch.setattr(sys, "argv", ["fastvlm_cpu.py", "--configs", f"ort-fp32,{bad}"])
        with pytest.raises(SystemExit) as exit_info:
            bench.main()
        assert exit_info.value.code == 2
        assert f"unknown configuration {bad!r}" in capsys.readouterr().err
