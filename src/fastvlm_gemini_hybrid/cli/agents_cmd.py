"""`agents list` / `agents show NAME` / `agents run NAME INPUT... [-- --option VALUE ...]`: the task agents.

Every agent is found and run through the registry (`AgentRegistry.run`), the same way the `medical`
and `surveil` commands and the HTTP API run them. An agent's own options (`option_specs`, data)
become flags after `--`: `agents run surveillance cam.mp4 -- --zones z.yaml --describe`.

Why results stream: a caption batch over a folder may run for hours, so each item is written the
moment it is done (JSONL on stdout with `--json`, or to `--out FILE`), and failures are reported
per item on stderr without stopping the rest. A single-answer run that fails raises its error, so
it reads like `ask`: one line, exit 2 for the user's mistakes, 1 otherwise. Progress events (the
surveillance agent's alerts) go to stderr as they happen, unless `--quiet`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import BadInputError
from .common import ArgumentParser, add_json_flag, emit, info, print_json, settings_from_args

if TYPE_CHECKING:
    from ..agents.base import Agent, AgentOptions, ItemResult
    from ..agents.options import OptionValue
    from ..agents.registry import AgentRegistry
    from ..config import Settings
    from ..processor import HybridVLMProcessor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agents", help="task agents: ux-review, product-demo, caption, document, video-summary, ...")
    agents_sub = p.add_subparsers(dest="agents_command", metavar="ACTION", parser_class=type(p))

    lp = agents_sub.add_parser("list", help="list the agents (built-in and your recipes)")
    add_json_flag(lp)
    lp.set_defaults(handler=_list)

    sp = agents_sub.add_parser("show", help="an agent's hints, parameters and output JSON schema")
    sp.add_argument("name")
    add_json_flag(sp)
    sp.set_defaults(handler=_show)

    rp = agents_sub.add_parser("run", help="run an agent on files, folders or URLs")
    rp.add_argument("name", metavar="NAME")
    rp.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="files, folders or URLs; then the agent's own options after --, e.g. -- --zones z.yaml")
    rp.add_argument("--out", metavar="FILE", help="write the results here as JSONL instead of stdout")
    rp.add_argument("--mode", help="local-only, cloud-only, auto (default), parallel, fallback")
    rp.add_argument("--model", help="model name for the backend that answers")
    rp.add_argument("--domain", help="override the agent's domain hint")
    rp.add_argument("--latency", help="realtime, low-latency, normal, batch")
    privacy = rp.add_mutually_exclusive_group()
    privacy.add_argument("--sensitive", dest="sensitive", action="store_true", default=None,
                         help="keep every request on this machine")
    privacy.add_argument("--not-sensitive", dest="sensitive", action="store_false",
                         help="lift the agent's sensitive default (the router may still keep it local)")
    rp.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="set a prompt parameter (see `agents show NAME`)")
    rp.add_argument("--concurrency", type=int, metavar="N", help="requests in flight for batches (default 4)")
    rp.add_argument("--max-frames", type=int, metavar="N", help="keyframes taken from a video when it cannot go whole")
    rp.add_argument("--max-tokens", type=int, metavar="N", help="longest answer in tokens")
    rp.add_argument("--sidecar", choices=("txt", "json"), help="caption: write NAME.txt or NAME.json beside each image")
    rp.add_argument("--overwrite", action="store_true", help="caption: redo images that already have a sidecar")
    rp.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    rp.add_argument("--quiet", action="store_true", help="no progress bar or notes on stderr")
    add_json_flag(rp)
    rp.set_defaults(handler=_run)
    p.set_defaults(handler=lambda _args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _registry(args: argparse.Namespace) -> tuple[Settings, AgentRegistry]:
    from ..agents.registry import load_registry

    settings = settings_from_args(args, cache_enabled=False if getattr(args, "no_cache", False) else None)
    return settings, load_registry(settings.home)


def _list(args: argparse.Namespace) -> int:
    _settings, registry = _registry(args)
    rows = [agent.describe() for agent in registry]
    width = max(len(r["name"]) for r in rows)
    lines = []
    for r in rows:
        flags = ["local_only"] if r["hints"].get("local_only") else []
        if r["hints"].get("sensitive"):
            flags.append("sensitive")
        note = f" [{', '.join(flags)}]" if flags else ""
        lines.append(f"{r['name']:<{width}}  {r['summary']}{note}  ({'/'.join(r['accepts'])}; {r['source']})")
    emit(args, {"agents": rows}, "\n".join(lines))
    return 0


def _show(args: argparse.Namespace) -> int:
    _settings, registry = _registry(args)
    agent = registry.get(args.name)
    data = {**agent.describe(), "output_schema": agent.output_schema()}
    emit(args, data, json.dumps(data, indent=2, ensure_ascii=False))
    return 0


def parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--param expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def agent_arguments(agent: Agent, tokens: list[str]) -> tuple[list[str], dict[str, OptionValue]]:
    """Split `agents run` INPUTs into input references and the agent's own options (the flags after
    `--`, derived from its `option_specs`; the agent checks their values)."""
    parser = ArgumentParser(prog=f"fastvlm-hybrid agents run {agent.name}", add_help=False)
    parser.add_argument("refs", nargs="*")
    for spec in agent.option_specs:
        if spec.type == "boolean":
            parser.add_argument(spec.flag, dest=spec.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(spec.flag, dest=spec.name, metavar=spec.metavar or spec.name.upper())
    parsed = parser.parse_args(tokens)
    raw = {spec.name: getattr(parsed, spec.name) for spec in agent.option_specs}
    return parsed.refs, {k: v for k, v in raw.items() if v is not None}


def options_from_args(args: argparse.Namespace) -> AgentOptions:
    from ..agents.base import AgentOptions
    from ..types import Domain, Latency, Mode

    concurrency = 4 if args.concurrency is None else args.concurrency
    if concurrency < 1:
        raise BadInputError("--concurrency must be at least 1")
    if args.max_tokens is not None and args.max_tokens <= 0:
        raise BadInputError("--max-tokens must be positive")
    if args.max_frames is not None and args.max_frames < 1:
        raise BadInputError("--max-frames must be at least 1")
    return AgentOptions(
        mode=Mode.parse(args.mode) if args.mode else None,
        sensitive=args.sensitive,
        domain=Domain.parse(args.domain) if args.domain else None,
        latency=Latency.parse(args.latency) if args.latency else None,
        model=args.model,
        max_tokens=args.max_tokens,
        concurrency=concurrency,
        max_frames=args.max_frames,
        params=parse_params(args.param),
        sidecar=args.sidecar,
        overwrite=args.overwrite,
        progress=not args.quiet,
        warn=(lambda _m: None) if args.quiet else info,
    )


def _run(args: argparse.Namespace) -> int:
    settings, registry = _registry(args)
    agent = registry.get(args.name)
    refs, raw = agent_arguments(agent, args.inputs)
    if args.sidecar and agent.name != "caption":
        raise BadInputError("--sidecar only applies to the caption agent")
    options = options_from_args(args)
    options.extra = agent.parse_options(raw)
    out_path = Path(args.out) if args.out else None
    sink: IO[str] | None = None
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        sink = open(out_path, "w", encoding="utf-8")  # closed in the finally below
    writer = _Writer(args, agent, sink)
    options.on_item = writer.write
    options.on_event = writer.event

    def build(for_agent: Agent) -> HybridVLMProcessor:
        return make_processor(for_agent.settings_for(settings))

    try:
        items = asyncio.run(registry.run(agent.name, refs, options, make_processor=build))
    finally:
        if sink is not None:
            sink.flush()
            os.fsync(sink.fileno())
            sink.close()
    if not agent.per_input and items and items[0].error is not None:
        raise items[0].error  # one answer: its failure reads like `ask`'s, one line and an exit code
    for item in items:
        writer.write(item)  # the ones no agent streamed
    failed = [i for i in items if not i.ok]
    if args.json and out_path is not None:
        print_json({"agent": agent.name, "done": len(items) - len(failed), "failed": len(failed), "out": str(out_path)})
    if agent.per_input or out_path is not None:
        info(f"{agent.name}: {len(items) - len(failed)} done, {len(failed)} failed"
             + (f"; results in {out_path}" if out_path else ""))
    if not failed:
        return 0
    codes = {i.error.exit_code if i.error else 1 for i in failed}
    return 2 if codes == {2} else 1


def make_processor(settings: Settings) -> HybridVLMProcessor:
    """The processor agents run on (tests replace this to plug in fake backends)."""
    from ..processor import HybridVLMProcessor

    return HybridVLMProcessor(settings)


class _Writer:
    """Writes each item once, as soon as it is known: JSONL (stdout or --out) or rendered text."""

    def __init__(self, args: argparse.Namespace, agent: Agent, sink: IO[str] | None) -> None:
        self.args, self.agent, self.sink = args, agent, sink
        self.seen: set[int] = set()

    def event(self, data: dict[str, Any]) -> None:
        if not self.args.quiet:
            info(self.agent.render_event(data))

    def write(self, item: ItemResult) -> None:
        if id(item) in self.seen or (not item.ok and not self.agent.per_input):
            return  # a single answer's failure is raised by the caller instead
        self.seen.add(id(item))
        if not item.ok and item.error is not None:
            info(f"error: {item.input}: {item.error}")
        if self.sink is not None:
            self.sink.write(json.dumps(item.to_dict(), ensure_ascii=False, default=str) + "\n")
            self.sink.flush()
        elif self.args.json:
            print_json(item.to_dict())
        elif item.ok:
            header = f"== {item.input} ==\n" if self.agent.per_input else ""
            sys.stdout.write(header + self.agent.render(item.output).rstrip("\n") + "\n")
            sys.stdout.flush()
            if not self.args.quiet and item.result is not None:
                info(_explain(item))


def _explain(item: ItemResult) -> str:
    res = item.result
    parts = [res.backend, res.model, f"{res.latency_ms:.0f} ms"]
    if res.cached:
        parts.append("cached")
    if item.attempts > 1:
        parts.append(f"retried once: {item.retried_because}")
    return f"[{' · '.join(parts)}]"


__all__ = ["agent_arguments", "options_from_args", "parse_params", "register"]
