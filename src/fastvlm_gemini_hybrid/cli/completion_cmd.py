"""`completion bash|zsh|fish`: the shell completion script (argcomplete), and the hook `cli.main` calls.

    eval "$(fastvlm-hybrid completion bash)"        # in ~/.bashrc (zsh: ~/.zshrc, same line with zsh)
    fastvlm-hybrid completion fish > ~/.config/fish/completions/fastvlm-hybrid.fish

argcomplete is optional (the `cli` extra). The shell runs the command with `_ARGCOMPLETE` set on TAB;
only then does `main` import argcomplete (`autocomplete`), so a normal start never loads it.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from .common import emit

if TYPE_CHECKING:
    from .common import ArgumentParser

PROG = "fastvlm-hybrid"
SHELLS = ("bash", "zsh", "fish")
#: the variable argcomplete's shell scripts set when they ask the command for completions
COMPLETION_ENV = "_ARGCOMPLETE"
INSTALL = {
    "bash": f'eval "$({PROG} completion bash)"   # add to ~/.bashrc',
    "zsh": f'eval "$({PROG} completion zsh)"    # add to ~/.zshrc (after compinit)',
    "fish": f"{PROG} completion fish > ~/.config/fish/completions/{PROG}.fish",
}


def completing() -> bool:
    """True when the shell asks for completions (argcomplete's environment variable is set)."""
    return COMPLETION_ENV in os.environ


def autocomplete(parser: ArgumentParser) -> None:
    """Answer the shell's completion request and exit (argcomplete does both); without argcomplete,
    or when not completing, do nothing."""
    if not completing():
        return
    try:
        import argcomplete
    except ImportError:  # the script came from an environment that had it: complete nothing
        return
    argcomplete.autocomplete(parser)


def _completion(args: argparse.Namespace) -> int:
    from .._optional import require

    argcomplete = require("argcomplete", "cli", "shell completion")
    script = argcomplete.shellcode([PROG], shell=args.shell)
    emit(args, {"shell": args.shell, "script": script, "install": INSTALL[args.shell]}, script)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "completion", help="print the shell completion script (bash, zsh, fish)",
        description="Print the script that makes TAB complete commands, flags and their values. Install: "
        + "; ".join(f"{shell}: {line}" for shell, line in INSTALL.items())
        + ". Needs the 'cli' extra: pip install 'fastvlm-gemini-hybrid[cli]'.",
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.add_argument("--json", action="store_true", help="the script and how to install it, as JSON")
    p.set_defaults(handler=_completion)
