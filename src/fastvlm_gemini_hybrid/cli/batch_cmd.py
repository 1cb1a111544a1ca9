"""`batch`: one prompt over many images, bounded concurrency, progress on stderr, resumable JSONL.

Takes `ask`'s flags (`-m`, `-s`, `-o KEY VALUE`, `--mode`, ...); every answer also goes to the private
answer log (`fastvlm-hybrid logs`), sensitive ones without their text."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import BadInputError, HybridError
from . import ask_cmd
from .ask_cmd import add_generation_flags, add_request_flags, request_from_args
from .common import add_json_flag, info

if TYPE_CHECKING:
    from ..types import Request, Result

MEDIA_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".dcm",
    ".mp4",
    ".mov",
    ".webm",
    ".mkv",
    ".avi",
}


def collect_inputs(source: str) -> list[str]:
    """Media files under a directory (recursive, sorted) or the lines of a list file."""
    path = Path(source)
    if not path.exists():
        raise BadInputError(f"no such file or directory: {source}")
    if path.is_dir():
        items = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
        if not items:
            raise BadInputError(f"{source} holds no image, video or DICOM files")
        return items
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read the list file {source}: {exc}") from None
    base = path.parent
    items = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not items:
        raise BadInputError(f"the list file {source} is empty")
    return [i if "://" in i or Path(i).is_absolute() else str(base / i) for i in items]


def done_inputs(out: Path, prompt: str) -> set[str]:
    """Inputs already answered in `out` for this prompt (failed ones are retried)."""
    done: set[str] = set()
    if not out.exists():
        return done
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: that item runs again
            if row.get("ok") and row.get("prompt") == prompt:
                done.add(row.get("input"))
    return done


async def run_batch(args: argparse.Namespace, items: list[str], sink: IO[str]) -> tuple[int, int]:
    """Answer `items` a window at a time through `processor.arun_many`, so a batching local backend
    gets `--batch-size` images per forward pass; rows are written as each answer arrives."""
    from tqdm import tqdm

    processor = ask_cmd.make_processor(args)
    log = ask_cmd.open_answer_log(processor)
    counts = {"ok": 0, "failed": 0}
    bar = tqdm(total=len(items), unit="item", file=sys.stderr, disable=args.quiet or None, dynamic_ncols=True)

    def write(item: str, outcome: Result | HybridError, request: Request | None = None) -> None:
        row: dict[str, Any] = {"input": item, "prompt": args.prompt}
        if isinstance(outcome, HybridError):
            row.update(ok=False, error={"type": outcome.code, "message": str(outcome)})
        else:
            row.update(ok=not outcome.blocked, **outcome.to_dict())
            if request is not None:
                ask_cmd.log_answer(log, outcome, request, "batch")
        sink.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        sink.flush()
        counts["ok" if row["ok"] else "failed"] += 1
        bar.update(1)
        bar.set_postfix(ok=counts["ok"], failed=counts["failed"], refresh=False)

    # A window bounds memory (files are read per window) while keeping every slot busy.
    window = max(args.concurrency * args.batch_size * 2, 8)
    try:
        for start in range(0, len(items), window):
            chunk = items[start : start + window]
            requests, names = [], []
            for item in chunk:
                try:
                    requests.append(request_from_args(args, args.prompt, [item]))
                    names.append(item)
                except HybridError as exc:
                    write(item, exc)

            def on_result(i: int, outcome: Result | HybridError, names: list[str] = names,
                          requests: list[Request] = requests) -> None:
                write(names[i], outcome, requests[i])

            await processor.arun_many(
                requests, concurrency=args.concurrency, batch_size=args.batch_size, on_result=on_result,
            )
    finally:
        bar.close()
        if log is not None:
            log.close()
        await processor.aclose()
    return counts["ok"], counts["failed"]


def _batch(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise BadInputError("--concurrency must be at least 1")
    if args.batch_size < 1:
        raise BadInputError("--batch-size must be at least 1")
    items = collect_inputs(args.source)
    out_path = Path(args.out) if args.out else None
    if out_path is not None:
        done = done_inputs(out_path, args.prompt)
        skipped = sum(1 for i in items if i in done)
        items = [i for i in items if i not in done]
        if skipped:
            info(f"resuming: {skipped} already answered in {out_path}, {len(items)} to go")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        sink: IO[str] = open(out_path, "a", encoding="utf-8")
    else:
        sink = sys.stdout
    try:
        ok, failed = asyncio.run(run_batch(args, items, sink)) if items else (0, 0)
    finally:
        if sink is not sys.stdout:
            sink.flush()
            os.fsync(sink.fileno())
            sink.close()
    summary = {"answered": ok, "failed": failed, "out": str(out_path) if out_path else None}
    if args.json and out_path is not None:
        sys.stdout.write(json.dumps(summary) + "\n")
    info(f"{ok} answered, {failed} failed" + (f"; results in {out_path}" if out_path else ""))
    return 0 if failed == 0 else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="run one prompt over a folder or list of images (resumable)")
    p.add_argument("source", metavar="DIR_OR_LIST", help="a folder of media, or a text file listing paths/URLs")
    p.add_argument("prompt")
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests in flight (default 4)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=4,
        metavar="N",
        help="images per forward pass on a local backend that batches (default 4; 1 = one at a time)",
    )
    p.add_argument("--out", metavar="FILE.jsonl", help="append results here; a rerun skips answered items")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_request_flags(p)
    add_generation_flags(p)
    add_json_flag(p)
    p.set_defaults(handler=_batch)
