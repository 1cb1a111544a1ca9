"""`logs`: the answers `ask` and `batch` gave, from the private answer log (answer_log.py), like `llm logs`.

    fastvlm-hybrid logs [-n 10] [--backend NAME] [-q SEARCH] [--json]   # newest last
    fastvlm-hybrid logs path | status | on | off
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .common import UsageError, emit, settings_from_args

if TYPE_CHECKING:
    from ..config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from_args(args)


def _list(args: argparse.Namespace) -> int:
    from ..answer_log import AnswerLog, log_path

    if args.count < 0:
        raise UsageError("-n must be 0 (all) or more")
    settings = _settings(args)
    path = log_path(settings.home)
    rows: list[dict[str, Any]] = []
    if path.exists():
        with AnswerLog(path) as log:
            rows = log.recent(args.count, backend=args.backend, search=args.query)
    text = "\n\n".join(_render(row) for row in rows) if rows else _empty(settings, args)
    emit(args, rows, text)
    return 0


def _empty(settings: Settings, args: argparse.Namespace) -> str:
    from ..answer_log import logging_state

    state = logging_state(settings)
    if args.backend or args.query:
        return "no logged answers match"
    return "no answers logged yet" + ("" if state.enabled else f" (logging is off: {state.reason})")


def _render(row: dict[str, Any]) -> str:
    tokens = f"{row['input_tokens']}+{row['output_tokens']} tokens"
    head = (f"## {row['time']}  {row['backend']} · {row['model']} · {row['latency_ms']:.0f} ms · {tokens} · "
            f"${row['cost_usd']:.4f}" + (" · cached" if row["cached"] else "") + f"  [{row['source']}]")
    lines = [head, f"route {row['route']}", f"request {row['request_id']}", ""]
    if row["system"]:
        lines += ["System:", row["system"], ""]
    lines += ["Prompt:", row["prompt"], "", "Response:", row["response"]]
    return "\n".join(lines)


def _path(args: argparse.Namespace) -> int:
    from ..answer_log import log_path

    path = log_path(_settings(args).home)
    emit(args, {"path": str(path), "exists": path.exists()}, str(path))
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..answer_log import AnswerLog, logging_state

    settings = _settings(args)
    state = logging_state(settings)
    count = 0
    if state.path.exists():
        with AnswerLog(state.path) as log:
            count = log.count()
    payload = {"enabled": state.enabled, "reason": state.reason, "log_answers": state.setting,
               "turned_off": state.marker, "path": str(state.path), "answers": count}
    text = f"logging: {'on' if state.enabled else 'off'}"
    if not state.enabled:
        text += f" ({state.reason})"
    text += f"\n{count} answers in {state.path}"
    emit(args, payload, text)
    return 0


def _switch(on: bool) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from ..answer_log import logging_state, set_logging

        settings = _settings(args)
        set_logging(settings.home, on)
        state = logging_state(settings)
        text = f"answer logging turned {'on' if on else 'off'}"
        if on and not state.enabled:
            text += f", but it stays off: {state.reason}"
        emit(args, {"enabled": state.enabled, "reason": state.reason, "path": str(state.path)}, text)
        return 0

    return handler


def _filters(p: argparse.ArgumentParser, default: Any) -> None:
    """`-n`, `--backend`, `-q`; on the subcommand they default to SUPPRESS so `logs -n 3 list` keeps its 3."""
    p.add_argument("-n", "--count", type=int, default=10 if default is None else default, metavar="N",
                   help="how many answers, newest last (default 10; 0 = all)")
    p.add_argument("--backend", metavar="NAME", default=default, help="only answers from this backend")
    p.add_argument("-q", "--query", metavar="SEARCH", default=default,
                   help="only answers whose prompt or response contains SEARCH (any case)")


def _json(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--json", action="store_true", default=default, help="machine-readable output on stdout")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "logs", help="the answers ask and batch gave (private answer log)",
        description="List the answers `ask` and `batch` gave, newest last. The log is a 0600 SQLite file in the "
        "home directory; a sensitive request keeps neither its prompt nor its response "
        "('[sensitive: not kept]'). Turn it off with `logs off` or FASTVLM_HYBRID_LOG_ANSWERS=false.",
    )
    _filters(p, None)
    _json(p, False)
    p.set_defaults(handler=_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    lp = actions.add_parser("list", help="recent answers (the default)")
    _filters(lp, argparse.SUPPRESS)
    _json(lp, argparse.SUPPRESS)
    lp.set_defaults(handler=_list)
    for name, fn, text in (
        ("path", _path, "where the log file is"),
        ("status", _status, "whether answers are logged, and how many are kept"),
        ("on", _switch(True), "log answers again"),
        ("off", _switch(False), "stop logging answers (what is kept stays; delete the file to remove it)"),
    ):
        ap = actions.add_parser(name, help=text)
        _json(ap, argparse.SUPPRESS)
        ap.set_defaults(handler=fn)
