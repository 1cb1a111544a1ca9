"""benchmarks/gpu_suite.py: the dry run walks every section with the tiny model and prints JSON with every
key; without CUDA the real run refuses in one line; a section past its budget is stopped, not waited for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("av")
pytest.importorskip("cv2")

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"
NO_CUDA = "no CUDA GPU: the GPU suite needs one; it ran nothing"
SECTIONS = ["device", "latency-0.5b", "batch-0.5b", "video-0.5b", "latency-1.5b", "latency-7b"]
MODEL_KEYS = {"ttft_s", "decode_tok_s", "decode_best_tok_s", "vision_s", "vision_gflop", "peak_gpu_mem_gib",
              "weight_bytes_per_token", "decode_roofline_tok_s", "decode_share_of_roofline", "params_m"}


def suite(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """The suite in a subprocess on the CPU (CUDA hidden, so the run is the same on any machine)."""
    return subprocess.run([sys.executable, str(SUITE), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **env})


def sections(report: dict[str, Any]) -> dict[str, str]:
    return {name: s["status"] for name, s in report["sections"].items()}


def test_dry_run_runs_every_section_and_prints_json_with_every_key() -> None:
    start = time.perf_counter()
    proc = suite("--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.perf_counter() - start < 60
    report = json.loads(proc.stdout)  # stdout holds the JSON and nothing else; progress went to stderr
    assert "[gpu-suite" in proc.stderr and "[gpu-suite" not in proc.stdout
    assert report["dry_run"] is True and report["complete"] is True
    assert sections(report) == dict.fromkeys(SECTIONS, "ok")
    assert report["environment"]["device"] == "cpu"
    assert report["roofline"]["bandwidth_gbs"] > 0 and report["roofline"]["matmul_peak_gflops"] > 0
    assert set(report["models"]) == {"0.5b", "1.5b", "7b"}
    for size, model in report["models"].items():
        assert MODEL_KEYS <= model.keys(), size
        assert model["status"] == "ok" and model["tiny"] is True and model["peak_gpu_mem_gib"] is None
        assert model["ttft_s"] > 0 and model["decode_tok_s"] > 0 and model["vision_gflop"] > 0
        assert 0 < model["decode_share_of_roofline"] and model["decode_roofline_tok_s"] > 0
    assert set(report["batch"]["sizes"]) == {"1", "8", "32"}
    for size, entry in report["batch"]["sizes"].items():
        assert entry["status"] == "ok" and entry["pictures"] >= int(size) and entry["pictures_per_s"] > 0
    video = report["video"]
    assert video["status"] == "ok" and video["frames_described"] > 0 and video["frames_per_s"] > 0
    assert video["frames_decoded"] >= video["frames_described"] and video["dedupe"] is False


def test_without_cuda_the_real_run_refuses_in_one_line() -> None:
    proc = suite(timeout=60)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [NO_CUDA]


def test_a_section_past_its_budget_is_stopped_and_recorded() -> None:
    start = time.perf_counter()
    proc = suite("--dry-run", "--sections", "latency-7b,device", "--budget", "latency-7b=2",
                 GPU_SUITE_TEST_HANG="latency-7b")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert time.perf_counter() - start < 60  # the hanging section sleeps for an hour
    report = json.loads(proc.stdout)
    assert report["complete"] is False
    assert report["sections"]["latency-7b"]["status"] == "skipped"
    assert "ran past its 2 s budget" in report["sections"]["latency-7b"]["reason"]
    assert report["models"]["7b"]["status"] == "skipped" and report["models"]["7b"]["ttft_s"] is None
    assert report["sections"]["device"]["status"] == "ok"  # a fresh worker took the rest
    assert report["roofline"]["bandwidth_gbs"] > 0
    assert report["sections"]["batch-0.5b"]["status"] == "not selected"
