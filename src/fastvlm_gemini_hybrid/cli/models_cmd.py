"""`models list|pull|make-tiny` and `bench`: the local models and how fast they run here."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_json_flag, emit, info, settings_from_args


def _size(row: dict[str, Any]) -> str:
    if row.get("size_bytes"):
        return f"{row['size_bytes'] / 1e9:.2f} GB"
    if row.get("approx_size_gb"):
        return f"~{row['approx_size_gb']:.1f} GB"
    return "-"


def _list(args: argparse.Namespace) -> int:
    from ..models.catalogue import LICENCE_NOTE, model_status

    settings = settings_from_args(args)
    rows = model_status(settings.models_dir, settings.local_model)
    lines = [f"{'':2}{'NAME':<28}{'PARAMS':<8}{'SIZE':<11}{'STATUS':<16}WHERE"]
    for row in rows:
        mark = "* " if row["configured"] else "  "
        status = "downloaded" if row["downloaded"] else "not downloaded"
        where = row["path"] or f"(fastvlm-hybrid models pull {row['name']})"
        lines.append(f"{mark}{row['name']:<28}{row['params'] or '-':<8}{_size(row):<11}{status:<16}{where}")
    lines += ["", "* = configured local model (FASTVLM_HYBRID_LOCAL_MODEL)",
              f"models directory: {settings.models_dir}", f"note: {LICENCE_NOTE}"]
    payload = {"models": rows, "models_dir": str(settings.models_dir), "configured": settings.local_model,
               "licence_note": LICENCE_NOTE}
    emit(args, payload, "\n".join(lines))
    return 0


def _pull(args: argparse.Namespace) -> int:
    from ..models.catalogue import LICENCE_NOTE
    from ..models.pull import pull, repo_for

    settings = settings_from_args(args)
    repo = repo_for(args.name)
    info(f"downloading {repo} into {settings.models_dir} (resumable; run again to continue)")
    info(f"note: {LICENCE_NOTE}")
    path = pull(args.name, settings.models_dir, revision=args.revision, check=not args.no_verify)
    emit(args, {"name": args.name, "repo_id": repo, "path": str(path)}, f"{args.name} is ready at {path}")
    return 0


def _make_tiny(args: argparse.Namespace) -> int:
    from ..models.tiny import build_tiny_model

    info(f"building a tiny random FastVLM in {args.dir} (for tests and demos; it answers with noise)")
    path = build_tiny_model(args.dir, seed=args.seed, overwrite=args.force)
    emit(args, {"path": str(path), "seed": args.seed},
         f"tiny model written to {path}\nuse it with: FASTVLM_HYBRID_LOCAL_MODEL={path}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ..backends.fastvlm import FastVLMBackend
    from ..models.bench import run_bench

    settings = settings_from_args(args, local_model=args.model, device=args.device, dtype=args.dtype,
                                  threads=args.threads, quantize=args.quantize)
    backend = FastVLMBackend(settings)
    info(f"loading {settings.local_model} ...")
    result = run_bench(backend, runs=args.runs, max_tokens=args.tokens)
    s = result["summary"]

    def med(key: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(s[key]["median"]) if key in s else "-"

    text = "\n".join([
        f"model      {result['model']} ({result['path']})",
        f"device     {result['device']} {result['dtype']}"
        + (" int8" if result["quantize"] else "") + f", {result['threads']} threads",
        f"load       {result['load_s']:.2f} s",
        f"TTFT       {med('ttft_s')} s median (min {s['ttft_s']['min']:.3f}, {args.runs} runs)",
        f"follow-up  {med('followup_ttft_s')} s median TTFT on the same image",
        f"decode     {med('decode_tok_s', '{:.1f}')} tokens/s median ({args.tokens} tokens)",
    ])
    emit(args, result, text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="local models: list, pull, make-tiny")
    actions = models.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("list", help="catalogue and downloaded models, with size and location")
    add_json_flag(p)
    p.set_defaults(handler=_list)

    p = actions.add_parser("pull", help="download a model (resumable, verified) into the models directory")
    p.add_argument("name", help="catalogue name (fastvlm-0.5b, fastvlm-1.5b, fastvlm-7b) or a Hugging Face repo id")
    p.add_argument("--revision", help="branch, tag or commit")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the weights")
    add_json_flag(p)
    p.set_defaults(handler=_pull)

    p = actions.add_parser("make-tiny", help="build a tiny random FastVLM (real architecture) for tests")
    p.add_argument("dir", help="directory to write (created if missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite a non-empty directory")
    add_json_flag(p)
    p.set_defaults(handler=_make_tiny)

    p = sub.add_parser("bench", help="load time, time to first token and tokens/s of the local model here")
    p.add_argument("--model", help="catalogue name, directory or repo id (default: the configured local model)")
    p.add_argument("--runs", type=int, default=3, help="measured runs after one warm-up (default 3)")
    p.add_argument("--tokens", type=int, default=32, help="tokens generated per run (default 32)")
    p.add_argument("--device", help="auto, cpu, cuda, mps")
    p.add_argument("--dtype", help="auto, float32, bfloat16, float16")
    p.add_argument("--threads", type=int)
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 on CPU")
    add_json_flag(p)
    p.set_defaults(handler=_bench)
