"""Shared CLI plumbing: one-line errors, `--json` output, stderr progress.

Conventions every command follows: answers on stdout, progress and warnings on stderr; `--json`
prints machine output only; exit 0 on success, 2 on bad input or usage, 1 on other failures.
Handlers raise `HybridError` subclasses; `cli.main` turns them into one line and an exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import BadInputError

if TYPE_CHECKING:
    from ..config import Settings


class UsageError(BadInputError):
    """Wrong command-line usage (exit 2)."""

    code = "usage"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line on stderr and exits 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    """Print `obj` as JSON with --json, else the human `text`."""
    if getattr(args, "json", False):
        print_json(obj)
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")
        sys.stdout.flush()


def info(message: str) -> None:
    """A progress or status line for humans (stderr, never stdout)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def settings_from_args(args: argparse.Namespace, **flags: Any) -> Settings:
    """Settings from `--config` and the given flag values (None means "not given")."""
    from ..config import load_settings

    return load_settings(getattr(args, "config", None), **flags)
