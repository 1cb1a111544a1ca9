"""Shared CLI plumbing: one-line errors, `--json` output, stderr progress, choices, prompts from stdin.

Conventions every command follows: answers on stdout, progress and warnings on stderr; `--json`
prints machine output only; exit 0 on success, 2 on bad input or usage, 1 on other failures.
Handlers raise `HybridError` subclasses; `cli.main` turns them into one line and an exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import BadInputError

if TYPE_CHECKING:
    from ..config import Settings
    from ..types import _StrEnum


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


def enum_flag(enum: type[_StrEnum]) -> dict[str, Any]:
    """`add_argument` keywords for a flag whose values are `enum`'s (types.py: Mode, Domain, Latency).

    `--help` lists the values, a typo is argparse's one-line error that names the valid ones, and the
    spellings `Mode.parse` accepts (`LOCAL_ONLY`, `local_only`) still work; the flag's value is the string."""

    def parse(text: str) -> str:
        try:
            return str(enum.parse(text).value)
        except BadInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = enum.__name__.lower()  # argparse names the type in some messages
    return {"type": parse, "choices": [member.value for member in enum]}


def piped_stdin() -> bool:
    """True when stdin is a pipe or a file (`cat q.txt | ...`, `< q.txt`), never a terminal.

    Sockets, terminals, /dev/null and the pseudo-files test runners put there count as "nothing piped",
    so a command started by a service manager or a test never blocks on a stdin nobody writes to."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    try:
        if os.isatty(fd):
            return False
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def read_prompt(argument: str | None, *, stdin_is_media: bool) -> str | None:
    """The prompt as simonw/llm reads it: piped stdin text, then the argument after it (a blank line
    between); `-` as the argument reads stdin only. None when neither gave any text.

    `stdin_is_media` (an `-a -` attachment) leaves stdin to the media: `-` is then a usage error."""
    if argument == "-":
        if stdin_is_media:
            raise UsageError("stdin cannot hold both the prompt ('-') and an attachment ('-a -')")
        text = _read_text()
        if not text.strip():
            raise BadInputError("the prompt '-' reads stdin, but stdin is empty")
        return text.strip()
    piped = "" if stdin_is_media or not piped_stdin() else _read_text()
    parts = [p.strip() for p in (piped, argument or "") if p and p.strip()]
    return "\n\n".join(parts) or None


def _read_text() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise BadInputError("stdin is not text; to attach a picture from stdin use -a -") from None


#: Prompts used when attachments come without one (`ask -a photo.png`), by what was attached.
DEFAULT_PROMPTS = {
    "image": "Describe this image.",
    "images": "Describe these images.",
    "video": "Describe this video.",
    "videos": "Describe these videos.",
    "mixed": "Describe these attachments.",
}
DEFAULT_PROMPT_HELP = (
    "optional with an attachment: 'Describe this image.', 'Describe these images.' or 'Describe this "
    "video.' by default"
)


def default_prompt(kinds: Sequence[str]) -> str:
    """The prompt for attachments of these kinds (Attachment.kind: image, video, youtube, dicom, url)."""
    videos = sum(k in ("video", "youtube") for k in kinds)
    if videos == len(kinds):
        return DEFAULT_PROMPTS["video" if videos == 1 else "videos"]
    if videos:
        return DEFAULT_PROMPTS["mixed"]
    return DEFAULT_PROMPTS["image" if len(kinds) == 1 else "images"]


def confirm(question: str) -> bool:
    """Ask `question [y/N]` on stderr and read one answer line from stdin (a pipe works: `echo y | ...`).

    No answer (end of input, or a stdin that cannot be read) is a no."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
        echoed = answer.endswith("\n") and sys.stdin.isatty()
    except (AttributeError, OSError, EOFError, ValueError):
        answer, echoed = "", False
    if not echoed:
        sys.stderr.write("\n")  # a terminal echoed the user's Enter; a pipe did not
    return answer.strip().lower() in ("y", "yes")
