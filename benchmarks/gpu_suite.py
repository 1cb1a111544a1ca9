"""The GPU figures in one command: FastVLM 0.5B / 1.5B / 7B at bf16 on one CUDA GPU, JSON on stdout.

    python benchmarks/gpu_suite.py > gpu-suite.json    # needs a CUDA GPU; stays under 8 minutes
    python benchmarks/gpu_suite.py --dry-run           # any machine: the tiny model at tiny sizes

Models have the real architectures with random weights (nothing is downloaded): the 0.5B is what
benchmarks/fastvlm_cpu.py builds (models/architecture.py); the 1.5B and 7B swap in the Qwen2-1.5B and
Qwen2-7B decoders (the 7B's is transformers' FastVlmConfig default) under the same fastvit_mci3 tower at
1024 px. They are built on the GPU in bf16 and run by FastVLMRuntime, the code behind `fastvlm`.
Sections, in order, with their time budgets in seconds (`--budget NAME=S` changes one):

    device        copy bandwidth, bf16 matmul peak (models/roofline.py), the device       30
    latency-SIZE  TTFT, follow-up TTFT, decode tokens/s (models/bench.py), vision encode,  60 / 60 / 120
                  peak GPU memory, decode vs. the bandwidth roofline (0.5b, 1.5b, 7b)
    batch-0.5b    pictures/s at batch 1, 8, 32 through processor.arun_many (`batch`)      90
    video-0.5b    frames described per second, synthetic 720p clip, VideoAnalyzer (`video`) 60

A worker process runs the sections; the parent kills it when a section overruns its budget (+10 s),
records that section as skipped with the reason, and goes on in a fresh worker; sections the 450 s total
no longer covers are skipped, so the suite never hangs. Progress goes to stderr, the JSON (every key
always there, null where a section did not run) to stdout. Exit status: 0 when every section ran, 1 when
one was skipped or failed, 2 without CUDA (unless --dry-run).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastvlm_gemini_hybrid.backends.fastvlm import FastVLMBackend
from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import HybridError
from fastvlm_gemini_hybrid.models import architecture as arch
from fastvlm_gemini_hybrid.models import roofline
from fastvlm_gemini_hybrid.models.bench import measure_runtime, synthetic_image
from fastvlm_gemini_hybrid.models.catalogue import CATALOGUE
from fastvlm_gemini_hybrid.models.runtime import FastVLMRuntime, ImageInput
from fastvlm_gemini_hybrid.models.tiny import train_tokenizer
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions, Mode, Request
from fastvlm_gemini_hybrid.video.analyze import VideoAnalyzer
from fastvlm_gemini_hybrid.video.decode import VideoSource
from fastvlm_gemini_hybrid.video.sampling import Sampler

NO_CUDA = "no CUDA GPU: the GPU suite needs one; it ran nothing"
SECTIONS: dict[str, float] = {"device": 30, "latency-0.5b": 60, "batch-0.5b": 90, "video-0.5b": 60,
                              "latency-1.5b": 60, "latency-7b": 120}
TOTAL_BUDGET_S, GRACE_S, STARTUP_S = 450.0, 10.0, 120.0
HANG_ENV = "GPU_SUITE_TEST_HANG"  # tests only: the section named here sleeps, to prove the parent stops it
SIZES, BATCH_SIZES = ("0.5b", "1.5b", "7b"), (1, 8, 32)
#: The 1.5B and 7B decoders over architecture.text_config's Qwen2-0.5B; vocabularies as the converted
#: checkpoints pad them. Their parameter counts match the catalogue's bf16 sizes (1.24 / 3.35 / 15.5 GB).
TEXT_OVERRIDES: dict[str, dict[str, Any]] = {
    "0.5b": {"vocab_size": 152000},
    "1.5b": {"vocab_size": 152000, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
             "num_attention_heads": 12, "num_key_value_heads": 2},
    "7b": {"vocab_size": 152128, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
           "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False},
}
MODEL_KEYS = ("status", "reason", "tiny", "dtype", "params_m", "weights_gb", "catalogue_gb", "build_s", "runs",
              "tokens", "ttft_s", "ttft_best_s", "followup_ttft_s", "decode_tok_s", "decode_best_tok_s", "vision_s",
              "vision_gflop", "vision_gflop_per_s", "vision_share_of_matmul_peak", "weight_bytes_per_token",
              "decode_roofline_tok_s", "decode_share_of_roofline", "peak_gpu_mem_gib")
BATCH_KEYS = ("status", "reason", "pictures", "wall_s", "pictures_per_s", "mean_output_tokens", "peak_gpu_mem_gib")
VIDEO_KEYS = ("status", "reason", "model", "clip", "sample_fps", "dedupe", "max_tokens", "frames_decoded",
              "frames_described", "wall_s", "frames_per_s", "mean_output_tokens", "peak_gpu_mem_gib")
ENV_KEYS = ("device", "device_name", "dtype", "gpu_memory_gib", "torch", "transformers", "cuda", "cpu_count")
ROOF_KEYS = ("bandwidth_gbs", "matmul_peak_gflops", "matmul_dtype")
_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[gpu-suite +{time.monotonic() - _T0:5.1f}s] {message}", file=sys.stderr, flush=True)


def plan(dry_run: bool) -> dict[str, Any]:
    """Sizes per mode: the GPU run, or the dry run's tiny ones (same code path, seconds on a CPU)."""
    if dry_run:
        return {"runs": 1, "tokens": 4, "batch_tokens": 2, "batch_rounds": 1, "batch_warmup": False,
                "picture": (320, 180), "clip": (320, 180, 5, 2.0), "sample_fps": 2.0, "video_tokens": 2,
                "bandwidth_bytes": 32 * 2**20, "matmul_n": 256}
    return {"runs": 3, "tokens": 32, "batch_tokens": 16, "batch_rounds": 2, "batch_warmup": True,
            "picture": (1280, 720), "clip": (1280, 720, 10, 8.0), "sample_fps": 2.0, "video_tokens": 24,
            "bandwidth_bytes": None, "matmul_n": None}


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _mean(values: list[int]) -> float | None:
    return _r(sum(values) / len(values), 1) if values else None


# ---------------------------------------------------------------------------- the worker's sections
class Worker:
    """Builds random-weight models (one held at a time) and runs the sections."""

    def __init__(self, device: str, dry_run: bool, home: Path) -> None:
        import torch

        self.torch, self.device, self.dry_run, self.home = torch, device, dry_run, home
        self.cuda, self.plan, self._tokenizer = device.startswith("cuda"), plan(dry_run), None
        self.dtype = torch.bfloat16 if self.cuda else torch.float32  # CPUs without native bf16 emulate it
        self.dtype_name = str(self.dtype).replace("torch.", "")
        self.held: tuple[str, Any, dict[str, Any]] | None = None

    @property
    def tokenizer(self) -> Any:
        """models/tiny.py's tokenizer, trained on first use (as fastvlm_cpu.py's full-size build uses it)."""
        if self._tokenizer is None:
            self._tokenizer = train_tokenizer()
        return self._tokenizer

    def peak_gib(self, reset: bool = False) -> float | None:
        """torch.cuda.max_memory_allocated in GiB (None off CUDA); `reset` restarts the count."""
        if not self.cuda:
            return None
        self.torch.cuda.synchronize()
        if reset:
            self.torch.cuda.reset_peak_memory_stats()
        return _r(self.torch.cuda.max_memory_allocated() / 2**30)

    def config(self, size: str) -> Any:
        """fastvlm_cpu.py's full-size config (the 0.5B), with the decoder of `size`; tiny in a dry run."""
        from transformers import FastVlmConfig

        tok = self.tokenizer
        image_id, im_end, eot = (tok.convert_tokens_to_ids(t) for t in ("<image>", "<|im_end|>", "<|endoftext|>"))
        if self.dry_run:
            return arch.fastvlm_config(tiny=True, vocab_size=len(tok), image_token_id=image_id,
                                       eos_token_id=[im_end, eot], pad_token_id=eot)
        text = {**arch.text_config(tiny=False, vocab_size=0, eos_token_id=[im_end, eot]), **TEXT_OVERRIDES[size],
                "pad_token_id": eot}
        return FastVlmConfig(vision_config=arch.vision_config(tiny=False), text_config=text,
                             image_token_index=image_id, projector_hidden_act="gelu",
                             image_seq_length=(arch.FULL_IMAGE_SIZE // arch.PATCH_SIZE) ** 2)

    def runtime(self, size: str) -> tuple[Any, dict[str, Any]]:
        """The model of `size` built on the device (weights never touch the disk) in a FastVLMRuntime,
        held until another size is asked for; the peak-memory count restarts with each build."""
        if self.held is not None and self.held[0] == size:
            return self.held[1], self.held[2]
        from transformers import FastVlmForConditionalGeneration, GenerationConfig

        self.held = None
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()
        self.peak_gib(reset=True)
        log(f"building random FastVLM-{size.upper()}{' (tiny)' if self.dry_run else ''} on {self.device} ...")
        start, config, directory = time.perf_counter(), self.config(size), self.home / f"fastvlm-{size}"
        config.save_pretrained(directory)  # config and processor only, for FastVLMRuntime.load
        image_size = arch.TINY_IMAGE_SIZE if self.dry_run else arch.FULL_IMAGE_SIZE
        arch.build_processor(self.tokenizer, image_size=image_size).save_pretrained(directory)
        self.torch.manual_seed(0)
        with self.torch.device(self.device):
            model = FastVlmForConditionalGeneration._from_config(config, dtype=self.dtype)
        arch.init_vision_tower(model, image_size)  # features of order one, as a trained tower gives
        model.generation_config = GenerationConfig(eos_token_id=config.text_config.eos_token_id,
                                                   pad_token_id=config.text_config.pad_token_id, do_sample=False)

        class InMemory(FastVLMRuntime):
            def _load_model(self, transformers: Any, config: Any, quantize: str | None) -> Any:
                return model

        runtime = InMemory(directory, device=self.device, dtype=self.dtype_name)
        runtime.load()
        params = sum(p.numel() for p in model.parameters())
        info = {"tiny": self.dry_run, "dtype": self.dtype_name, "params_m": _r(params / 1e6, 1),
                "weights_gb": _r(params * model.dtype.itemsize / 1e9, 3),
                "catalogue_gb": CATALOGUE[f"fastvlm-{size}"].approx_gb, "build_s": _r(time.perf_counter() - start, 2)}
        self.held = (size, runtime, info)
        return runtime, info

    def processor(self, runtime: Any) -> HybridVLMProcessor:
        """The real processor, local-only, its one backend the held runtime (no result cache, no audit)."""

        class Loaded(FastVLMBackend):
            async def aclose(self) -> None:  # the runtime outlives this processor
                self._runtime = None

        settings = load_settings(home=self.home / "home", local_model=str(runtime.path), device=self.device,
                                 cache_enabled=False, audit_enabled=False, log_answers=False)
        backend = Loaded(settings)
        backend._runtime = runtime
        return HybridVLMProcessor(settings, backends={"fastvlm": backend}, cache=False, audit=False)

    @staticmethod
    def request(data: bytes, name: str, tokens: int) -> Request:
        return Request(prompt="Describe this image in detail.", attachments=(Attachment.from_bytes(data, name=name),),
                       mode=Mode.LOCAL_ONLY, sensitive=True, options=GenerationOptions(max_tokens=tokens))

    def device_section(self, deadline: float) -> dict[str, Any]:
        from importlib.metadata import version

        torch, p = self.torch, self.plan
        env = {"device": self.device, "dtype": self.dtype_name, "torch": torch.__version__, "device_name": "cpu",
               "transformers": version("transformers"), "cuda": torch.version.cuda, "cpu_count": os.cpu_count()}
        if self.cuda:
            props = torch.cuda.get_device_properties(self.device)
            env.update(device_name=props.name, gpu_memory_gib=_r(props.total_memory / 2**30, 1))
        budget = max(1.0, (deadline - time.monotonic()) / 3)
        bandwidth = roofline.memory_bandwidth_gbs(self.device, size_bytes=p["bandwidth_bytes"], budget_s=budget)
        peak = roofline.matmul_peak_gflops(self.dtype, self.device, n=p["matmul_n"], budget_s=budget)
        log(f"copy bandwidth {bandwidth:.0f} GB/s, matmul peak {peak:.0f} GFLOP/s ({self.dtype_name})")
        return {"environment": env, "roofline": {"bandwidth_gbs": _r(bandwidth, 2), "matmul_peak_gflops": _r(peak, 1),
                                                 "matmul_dtype": self.dtype_name}}

    def latency_section(self, size: str, deadline: float) -> dict[str, Any]:
        runtime, info = self.runtime(size)
        p = self.plan
        log(f"{size}: TTFT and decode, {p['runs']} runs of {p['tokens']} tokens ...")
        got = measure_runtime(runtime, runs=p["runs"], max_tokens=p["tokens"])["summary"]
        pixels = runtime.pixel_values([ImageInput.from_bytes(synthetic_image(7, p["picture"]))])
        pixels = pixels.contiguous(memory_format=self.torch.channels_last)
        with self.torch.inference_mode():  # synchronised: the runtime's own vision_s is not, on a GPU
            vision_s = roofline.best_seconds(lambda: runtime.model.get_image_features(pixel_values=pixels),
                                             device=self.device, budget_s=max(1.0, (deadline - time.monotonic()) / 4))
        flops = roofline.vision_flops(runtime.model, tuple(pixels.shape[-2:]))
        fmt = "bf16" if self.cuda else "fp32"

        def stat(key: str, which: str) -> float | None:
            return _r(got.get(key, {}).get(which))

        return {**info, "status": "ok", "runs": p["runs"], "tokens": p["tokens"], "ttft_s": stat("ttft_s", "median"),
                "ttft_best_s": stat("ttft_s", "min"), "followup_ttft_s": stat("followup_ttft_s", "median"),
                "decode_tok_s": stat("decode_tok_s", "median"), "decode_best_tok_s": stat("decode_tok_s", "max"),
                "vision_s": _r(vision_s, 5), "vision_gflop": _r(flops / 1e9, 3),
                "weight_bytes_per_token": roofline.decode_weight_bytes(runtime.model, fmt),
                "peak_gpu_mem_gib": self.peak_gib()}

    def batch_section(self, deadline: float) -> dict[str, Any]:
        processor, p, out = self.processor(self.runtime("0.5b")[0]), self.plan, {}
        per_picture: float | None = None
        for size in BATCH_SIZES:
            rounds = p["batch_rounds"] + (1 if p["batch_warmup"] else 0)
            if per_picture is not None and time.monotonic() + 1.5 * per_picture * size * rounds > deadline:
                out[str(size)] = {"status": "skipped", "reason": "the section's time budget would run out"}
                continue
            log(f"batch of {size}: {p['batch_rounds']} round(s) of {p['batch_tokens']} tokens per picture ...")
            requests = [self.request(synthetic_image(5000 + 100 * size + i, p["picture"]), f"p{i}.png",
                                     p["batch_tokens"]) for i in range(size * rounds)]
            if p["batch_warmup"]:
                processor.loop_thread.run(processor.arun_many(requests[:size], concurrency=1, batch_size=size))
                requests = requests[size:]
            self.peak_gib(reset=True)
            start = time.perf_counter()
            results = processor.loop_thread.run(processor.arun_many(requests, concurrency=1, batch_size=size))
            wall = time.perf_counter() - start
            errors = [r for r in results if isinstance(r, HybridError)]
            if len(errors) == len(results):
                raise RuntimeError(f"every batch item failed: {errors[0]}")
            per_picture = wall / len(requests)
            out[str(size)] = {"status": "partial" if errors else "ok", "pictures": len(requests),
                              "reason": f"{len(errors)} items failed: {errors[0]}" if errors else None,
                              "wall_s": _r(wall, 3), "pictures_per_s": _r(len(requests) / wall, 3),
                              "mean_output_tokens": _mean([r.usage.output_tokens for r in results
                                                           if not isinstance(r, HybridError)]),
                              "peak_gpu_mem_gib": self.peak_gib()}
        processor.close()
        short = [size for size, entry in out.items() if entry["status"] != "ok"]
        return {"status": "partial" if short else "ok", "reason": f"batch sizes {short} fell short" if short else None,
                "model": "0.5b", "max_tokens": p["batch_tokens"], "sizes": out}

    def video_section(self, deadline: float) -> dict[str, Any]:
        p = self.plan
        width, height, fps, seconds = p["clip"]
        log(f"writing a {width}x{height} {fps} fps clip of {seconds:g} s ...")
        clip = write_clip(self.home / "clip.mp4", width, height, fps, seconds)
        processor = self.processor(self.runtime("0.5b")[0])
        processor.run(self.request(synthetic_image(11, p["picture"]), "warm.png", p["video_tokens"]))  # warm-up
        tokens: list[int] = []

        def run(request: Request) -> Any:  # each answer capped (a random-weight model seldom stops by itself)
            result = processor.run(replace(request, options=replace(request.options, max_tokens=p["video_tokens"])))
            tokens.append(result.usage.output_tokens)
            return result

        analyzer = VideoAnalyzer(SimpleNamespace(decide=processor.decide, run=run), "What happens in this frame?",
                                 sampler=Sampler(fps=p["sample_fps"]), dedupe=False, mode=Mode.LOCAL_ONLY,
                                 sensitive=True)
        self.peak_gib(reset=True)
        status, reason, described = "ok", None, 0
        log(f"video: sampling {p['sample_fps']:g} fps, {p['video_tokens']} tokens per frame ...")
        start = time.perf_counter()
        with VideoSource(clip) as source:
            for _line in analyzer.frames(source):
                described += 1
                if time.monotonic() > deadline - 5:
                    status, reason = "partial", "stopped early: the section's time budget ran out"
                    break
        wall = time.perf_counter() - start
        processor.close()
        return {"status": status, "reason": reason, "model": "0.5b", "dedupe": False, "sample_fps": p["sample_fps"],
                "clip": {"width": width, "height": height, "fps": fps, "seconds": seconds},
                "max_tokens": p["video_tokens"], "frames_decoded": analyzer.stats.decoded,
                "frames_described": described, "wall_s": _r(wall, 3), "frames_per_s": _r(described / wall, 3),
                "mean_output_tokens": _mean(tokens), "peak_gpu_mem_gib": self.peak_gib()}

    def run(self, name: str, deadline: float) -> dict[str, Any]:
        kind, _, size = name.partition("-")
        if kind == "latency":
            return self.latency_section(size, deadline)
        return {"device": self.device_section, "batch": self.batch_section, "video": self.video_section}[kind](deadline)


def write_clip(path: Path, width: int, height: int, fps: int, seconds: float) -> Path:
    """An H.264 clip (no source helper writes one): a textured scene, sensor noise, two moving boxes."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    cell = rng.integers(40, 220, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    scene = np.repeat(np.repeat(cell, 16, axis=0), 16, axis=1)[:height, :width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps * 2)}
        for i in range(round(fps * seconds)):
            img = scene + rng.integers(0, 8, scene.shape, dtype=np.uint8)
            x, w = (i * width // 40) % (width - width // 8), width // 10
            img[height // 3: 2 * height // 3, x: x + w] = (25, 25, 35)
            img[height // 8: height // 4, width - x - w: width - x] = (220, 210, 200)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode())
    return path


def child_main(args: argparse.Namespace) -> int:
    """The worker: `{"event": "start"|"done", ...}` lines on the real stdout; stray prints go to stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    budgets = section_budgets(args)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        worker = Worker(args.device, args.dry_run, Path(tmp))
        for name in args.child.split(","):
            left = args.deadline - time.time()
            if left < 10:
                result = {"status": "skipped", "reason": f"the suite's {args.budget_s:g} s total budget was spent"}
                proto.write(json.dumps({"event": "done", "section": name, "result": result}) + "\n")
                continue
            budget = min(budgets[name], left)
            proto.write(json.dumps({"event": "start", "section": name, "budget_s": budget}) + "\n")
            start = time.monotonic()
            try:
                if os.environ.get(HANG_ENV) == name:
                    time.sleep(3600)
                result = worker.run(name, start + budget)
            except Exception as exc:  # noqa: BLE001 - a failed section is recorded; the others still run
                log(f"{name} failed: {type(exc).__name__}: {exc}")
                result, worker.held = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}, None
            result["wall_s_section"] = round(time.monotonic() - start, 2)
            proto.write(json.dumps({"event": "done", "section": name, "result": result}) + "\n")
    return 0


# ---------------------------------------------------------------------------- the parent: budgets, JSON
def section_budgets(args: argparse.Namespace) -> dict[str, float]:
    """SECTIONS with the `--budget NAME=SECONDS` overrides."""
    budgets = dict(SECTIONS)
    for item in args.budget or []:
        name, _, seconds = item.partition("=")
        if name not in SECTIONS or not seconds.replace(".", "", 1).isdigit():
            raise SystemExit(f"--budget wants NAME=SECONDS with NAME one of {list(SECTIONS)}, got {item!r}")
        budgets[name] = float(seconds)
    return budgets


def blank_report(args: argparse.Namespace, names: list[str], budgets: dict[str, float]) -> dict[str, Any]:
    """Every key the JSON has, null until a section fills it."""
    return {"suite": "fastvlm-gpu-suite", "dry_run": args.dry_run, "complete": False, "budget_s": args.budget_s,
            "wall_s": None, "environment": dict.fromkeys(ENV_KEYS), "roofline": dict.fromkeys(ROOF_KEYS),
            "models": {size: dict.fromkeys(MODEL_KEYS) for size in SIZES},
            "batch": {"status": None, "reason": None, "model": "0.5b", "max_tokens": None,
                      "sizes": {str(b): dict.fromkeys(BATCH_KEYS) for b in BATCH_SIZES}},
            "video": dict.fromkeys(VIDEO_KEYS),
            "sections": {n: {"status": "not run" if n in names else "not selected", "budget_s": b, "wall_s": None,
                             "reason": None} for n, b in budgets.items()}}


def record(report: dict[str, Any], name: str, result: dict[str, Any]) -> None:
    """Put a section's result (or why it did not run) where it belongs in the report."""
    report["sections"][name].update(status=result.get("status", "ok"), reason=result.get("reason"),
                                    wall_s=result.pop("wall_s_section", None))
    if name == "device":
        report["environment"].update(result.get("environment", {}))
        report["roofline"].update(result.get("roofline", {}))
    elif name.startswith("batch-"):
        for size, entry in result.pop("sizes", {}).items():
            report["batch"]["sizes"][size].update(entry)
        report["batch"].update(result)
    else:
        kind, _, size = name.partition("-")
        (report["models"][size] if kind == "latency" else report["video"]).update(result)


def add_shares(report: dict[str, Any]) -> None:
    """Each model's decode against the bandwidth roofline and vision encode against the matmul peak."""
    bandwidth, peak = report["roofline"]["bandwidth_gbs"], report["roofline"]["matmul_peak_gflops"]
    for m in report["models"].values():
        if m["vision_s"] and m["vision_gflop"]:
            m["vision_gflop_per_s"] = _r(m["vision_gflop"] / m["vision_s"], 1)
            if peak:
                m["vision_share_of_matmul_peak"] = _r(roofline.share(m["vision_gflop_per_s"], peak), 3)
        if bandwidth and m["weight_bytes_per_token"] and m["decode_best_tok_s"]:
            limit = roofline.decode_roofline(m["weight_bytes_per_token"], bandwidth)
            m["decode_roofline_tok_s"] = _r(limit, 1)
            m["decode_share_of_roofline"] = _r(roofline.share(m["decode_best_tok_s"], limit), 3)


def run_workers(args: argparse.Namespace, names: list[str], report: dict[str, Any]) -> None:
    """Run `names` in worker processes: a section past its budget (+ grace) is killed and recorded as
    skipped, a worker that dies fails its section, and a fresh worker takes the rest."""
    pending, deadline = list(names), time.time() + args.budget_s
    while pending:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", ",".join(pending), "--device", args.device,
               "--deadline", str(deadline), "--budget-s", str(args.budget_s), *(["--dry-run"] if args.dry_run else []),
               *(f"--budget={item}" for item in args.budget or [])]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=lambda out=proc.stdout, q=lines: [*map(q.put, out), q.put(None)], daemon=True).start()
        current, budget, limit = None, 0.0, time.monotonic() + STARTUP_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, limit - time.monotonic()))
            except queue.Empty:
                proc.kill()  # the worker runs in its own session: nothing else is stopped
                proc.wait()
                if current is None:
                    for name in pending:
                        record(report, name, {"status": "skipped", "reason": "the worker did not start in time"})
                    return
                log(f"{current} ran past its {budget:g} s budget: stopped it")
                record(report, current, {"status": "skipped", "reason": f"ran past its {budget:g} s budget; stopped",
                                         "wall_s_section": round(budget + min(GRACE_S, budget / 2), 1)})
                pending.remove(current)
                break
            if line is None:
                code = proc.wait()  # died in a section: that one fails, a fresh worker takes the rest
                for name in [current] if current else list(pending):
                    record(report, name, {"status": "failed", "reason": f"the worker exited with status {code}"})
                    pending.remove(name)
                break
            event = json.loads(line)
            if event["event"] == "start":
                current, budget = event["section"], float(event["budget_s"])
                limit = time.monotonic() + budget + min(GRACE_S, budget / 2)
            else:
                record(report, event["section"], event["result"])
                pending.remove(event["section"])
                current, limit = None, time.monotonic() + STARTUP_S


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the tiny model at tiny sizes, on any machine")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {list(SECTIONS)}")
    parser.add_argument("--device", default="auto", help="auto (cuda; with --dry-run cuda if present, else cpu)")
    parser.add_argument("--budget-s", type=float, default=TOTAL_BUDGET_S, help="total time budget in seconds")
    parser.add_argument("--budget", action="append", metavar="NAME=S", help="one section's budget in seconds")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    names = [n for n in args.sections.split(",") if n]
    if any(n not in SECTIONS for n in names):
        parser.error(f"--sections takes names from {list(SECTIONS)}")
    if not args.dry_run or args.device.startswith("cuda"):
        import torch  # CUDA first: without it nothing runs

        if not torch.cuda.is_available():
            print(NO_CUDA, file=sys.stderr)
            return 2
        args.device = "cuda" if args.device == "auto" else args.device
    report = blank_report(args, names, section_budgets(args))
    log(f"{'dry run' if args.dry_run else 'GPU run'}: {', '.join(names)} (total budget {args.budget_s:g} s)")
    run_workers(args, names, report)
    add_shares(report)
    report["wall_s"] = round(time.monotonic() - _T0, 1)
    report["complete"] = all(report["sections"][n]["status"] == "ok" for n in names)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    log(f"done in {report['wall_s']} s; {'every section ran' if report['complete'] else 'not every section ran'}")
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
