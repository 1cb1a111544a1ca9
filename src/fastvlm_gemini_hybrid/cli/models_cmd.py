"""`models pull|make-tiny` and `bench`, and the `models` command group (list, ps, show and rm live in
models_inspect.py): the local models and how fast they run here."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import add_json_flag, emit, info, settings_from_args
from .models_inspect import SERVER_ENV, _list, _ps, _rm, _show

if TYPE_CHECKING:
    pass

def _pull(args: argparse.Namespace) -> int:
    from ..models.catalogue import LICENCE_NOTE
    from ..models.mlx_catalogue import MLX_CATALOGUE
    from ..models.pull import pull, repo_for
    from ..routing import resolve_local_backend
    from ..server.onnx_bundle import ONNX_CATALOGUE

    settings = settings_from_args(args)
    if args.name in ONNX_CATALOGUE:
        from ..server.onnx_bundle import pull_onnx

        dest = settings.models_dir / "onnx" / args.name
        info(f"downloading {ONNX_CATALOGUE[args.name].repo_id} for in-browser inference into {dest}")
        info(f"note: {LICENCE_NOTE}")
        path = pull_onnx(args.name, dest, progress=not args.json)
        emit(args, {"name": args.name, "path": str(path)}, f"{args.name} is ready at {path} (served to the web UI)")
        return 0
    # The backend the server will load: local_backend=auto means MLX on Apple Silicon with the mlx extra,
    # resolved by the same function, so `models pull fastvlm-0.5b` (make run) fetches what `serve` loads.
    if args.name in MLX_CATALOGUE or resolve_local_backend(settings.local_backend) == "mlx":
        from ..models.mlx_catalogue import pull_mlx

        info(f"downloading (and converting if needed) {args.name} for MLX into {settings.models_dir}")
        info(f"note: {LICENCE_NOTE}")
        path = pull_mlx(args.name, settings.models_dir)
        emit(args, {"name": args.name, "path": str(path)}, f"{args.name} is ready at {path}")
        return 0
    repo = repo_for(args.name)
    info(f"downloading {repo} into {settings.models_dir} (resumable; run again to continue)")
    info(f"note: {LICENCE_NOTE}")
    path = pull(args.name, settings.models_dir, revision=args.revision, check=not args.no_verify)
    emit(args, {"name": args.name, "repo_id": repo, "path": str(path)}, f"{args.name} is ready at {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..models.catalogue import resolve_model
    from ..models.engine import ONNX_WEIGHTS
    from ..models.onnx_variants import ensure_variant

    settings = settings_from_args(args)
    resolved = resolve_model(args.name or settings.local_model, settings.models_dir)
    variant, vision = ONNX_WEIGHTS[args.quantize], args.vision_quantize or "fp32"
    info(f"exporting {resolved.name} to ONNX ({variant}, vision {vision}) for the ONNX Runtime engine; once, cached "
         "(minutes, several GB of memory while it runs)")
    files = ensure_variant(resolved.path, variant, vision=vision, progress=not args.json)
    hint = "" if vision == "fp32" else " with vision_quantize=int8"
    emit(args, {"name": resolved.name, "variant": variant, "vision": vision, "decoder": str(files.decoder),
                "vision_encoder": str(files.vision), "cache": str(files.root)},
         f"{resolved.name} ({variant}, vision {vision}) is exported at {files.root}; local_engine=auto{hint} now runs "
         "it with ONNX Runtime")
    return 0


def _make_tiny(args: argparse.Namespace) -> int:
    from ..models.tiny import build_tiny_model

    if args.onnx:
        from ..server.onnx_bundle import make_tiny_onnx

        info(f"building a tiny random FastVLM ONNX bundle (transformers.js layout) in {args.dir}")
        path = make_tiny_onnx(args.dir, seed=args.seed, overwrite=args.force)
        emit(args, {"path": str(path), "seed": args.seed, "format": "onnx"}, f"tiny ONNX bundle written to {path}")
        return 0
    if args.mlx:
        from ..models.mlx_tiny import make_tiny_mlx

        info(f"building a tiny random MLX FastVLM in {args.dir} (the vision tower keeps its real size)")
        path = make_tiny_mlx(args.dir)
        emit(
            args,
            {"path": str(path), "format": "mlx"},
            f"tiny MLX model written to {path}\nuse it with: FASTVLM_HYBRID_LOCAL_BACKEND=mlx "
            f"FASTVLM_HYBRID_LOCAL_MODEL={path}",
        )
        return 0
    info(f"building a tiny random FastVLM in {args.dir} (for tests and demos; it answers with noise)")
    path = build_tiny_model(args.dir, seed=args.seed, overwrite=args.force)
    emit(
        args,
        {"path": str(path), "seed": args.seed},
        f"tiny model written to {path}\nuse it with: FASTVLM_HYBRID_LOCAL_MODEL={path}",
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ..backends.fastvlm import FastVLMBackend
    from ..models.bench import run_bench

    settings = settings_from_args(
        args, local_model=args.model, device=args.device, dtype=args.dtype, threads=args.threads, quantize=args.quantize
    )
    backend = FastVLMBackend(settings)
    info(f"loading {settings.local_model} ...")
    result = run_bench(backend, runs=args.runs, max_tokens=args.tokens)
    s = result["summary"]

    def med(key: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(s[key]["median"]) if key in s else "-"

    text = "\n".join(
        [
            f"model      {result['model']} ({result['path']})",
            f"device     {result['device']} {result['dtype']}"
            + (f" {result['quantize']}" if result["quantize"] else "")
            + f", {result['threads']} threads",
            f"load       {result['load_s']:.2f} s",
            f"TTFT       {med('ttft_s')} s median (min {s['ttft_s']['min']:.3f}, {args.runs} runs)",
            f"follow-up  {med('followup_ttft_s')} s median TTFT on the same image",
            f"decode     {med('decode_tok_s', '{:.1f}')} tokens/s median ({args.tokens} tokens)",
        ]
    )
    emit(args, result, text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="local models: list, ps, show, rm, pull, export, make-tiny")
    actions = models.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("list", aliases=["ls"], help="catalogue and downloaded models, with size and location")
    add_json_flag(p)
    p.set_defaults(handler=_list)

    p = actions.add_parser("ps", help="models a running server holds (--server), else the downloaded ones")
    p.add_argument("--server", metavar="URL", help=f"the server to ask (default ${SERVER_ENV}), e.g. http://127.0.0.1:8080")
    add_json_flag(p)
    p.set_defaults(handler=_ps)

    p = actions.add_parser("show", help="architecture, size, licence, location and capabilities of a model")
    p.add_argument("name", help="catalogue name (models list), Hugging Face repo id or directory")
    add_json_flag(p)
    p.set_defaults(handler=_show)

    p = actions.add_parser("rm", help="delete a downloaded model from the models directory (asks first)")
    p.add_argument("name", help="a model `models list` shows as downloaded in the models directory")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_json_flag(p)
    p.set_defaults(handler=_rm)

    p = actions.add_parser("pull", help="download a model (resumable, verified) into the models directory")
    p.add_argument(
        "name",
        help="catalogue name (fastvlm-0.5b, fastvlm-1.5b, fastvlm-7b; *-mlx for MLX; fastvlm-0.5b-onnx for the "
        "browser) or a Hugging Face repo id",
    )
    p.add_argument("--revision", help="branch, tag or commit")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the weights")
    add_json_flag(p)
    p.set_defaults(handler=_pull)

    p = actions.add_parser("export", help="export a local FastVLM to ONNX once, for the ONNX Runtime CPU engine")
    p.add_argument("name", nargs="?", help="catalogue name or directory (default: the configured local model)")
    p.add_argument("--quantize", choices=["int8", "int4"], help="the decoder's weights: q8 or q4 (default fp32)")
    p.add_argument("--vision-quantize", choices=["int8"],
                   help="the vision encoder's dense convolutions in int8, calibrated on scikit-image photographs "
                        "(default fp32; run with vision_quantize=int8)")
    add_json_flag(p)
    p.set_defaults(handler=_export)

    p = actions.add_parser("make-tiny", help="build a tiny random FastVLM (real architecture) for tests")
    p.add_argument("dir", help="directory to write (created if missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite a non-empty directory")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--onnx", action="store_true", help="an ONNX bundle for in-browser inference (transformers.js)")
    kind.add_argument("--mlx", action="store_true", help="an MLX model for the mlx backend")
    add_json_flag(p)
    p.set_defaults(handler=_make_tiny)

    p = sub.add_parser("bench", help="load time, time to first token and tokens/s of the local model here")
    p.add_argument("--model", help="catalogue name, directory or repo id (default: the configured local model)")
    p.add_argument("--runs", type=int, default=3, help="measured runs after one warm-up (default 3)")
    p.add_argument("--tokens", type=int, default=32, help="tokens generated per run (default 32)")
    p.add_argument("--device", help="auto, cpu, cuda, mps")
    p.add_argument("--dtype", help="auto, float32, bfloat16, float16")
    p.add_argument("--threads", type=int)
    p.add_argument("--quantize", choices=["int8", "int4"],
                   help="weight-only int8/int4 language model (CPU; faster decode, less memory)")
    add_json_flag(p)
    p.set_defaults(handler=_bench)
