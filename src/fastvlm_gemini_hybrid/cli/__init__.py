"""The `fastvlm-hybrid` command. Each command group lives in its own `*_cmd.py` module that
exposes `register(subparsers)`; handlers return an exit code or raise a `HybridError`.

Nothing heavy is imported here: `--help` and `route` must start in well under half a second. Shell
completion (argcomplete, optional) is loaded only when the shell asks for completions (`_ARGCOMPLETE`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import HybridError
from .common import ArgumentParser, UsageError

# Command modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "ask_cmd",
    "route_cmd",
    "batch_cmd",
    "logs_cmd",
    "video_cmd",
    "medical_cmd",
    "models_cmd",
    "agents_cmd",
    "admin_cmd",
    "serve_cmd",
    "completion_cmd",
)


def build_parser() -> ArgumentParser:
    from .. import __version__

    parser = ArgumentParser(
        prog="fastvlm-hybrid",
        description="Ask questions about images and video; routed between local FastVLM and Google Gemini.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML or YAML)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # command group not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer and exit
            from .completion_cmd import autocomplete

            autocomplete(parser)
            return 1  # only reached without argcomplete installed
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.handler(args) or 0)
    except HybridError as exc:
        _one_line(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _one_line("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        if os.environ.get("FASTVLM_HYBRID_DEBUG"):
            raise
        _one_line(f"error: unexpected {type(exc).__name__}: {exc} (set FASTVLM_HYBRID_DEBUG=1 for a traceback)")
        return 1


def _one_line(message: str) -> None:
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.stderr.flush()


__all__ = ["UsageError", "argparse", "build_parser", "main"]
