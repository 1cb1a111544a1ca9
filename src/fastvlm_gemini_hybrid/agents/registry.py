"""Where agents come from: built-in modules, built-in recipes, user recipes, and command adapters.

Why a registry rather than imports scattered through the CLI: `agents list`, `agents run`, the HTTP
server and user code must all see the same set, in the same order, with the same errors. Sources:

1. built-in agent modules (`ux_review.py`, ...), each exposing `AGENT`;
2. built-in recipes in `agents/recipes/*.yaml`;
3. thin adapters for agents that own a whole CLI command (`medical`, `surveillance`);
4. the user's recipes: `*.yaml`/`*.yml` in `$FASTVLM_HYBRID_HOME/agents/` and in every folder of
   `FASTVLM_HYBRID_AGENTS_DIR` (path-separator separated).

A user recipe may not reuse a built-in name (a recipe silently replacing `document`, which keeps
receipts local, would be a privacy trap); any malformed recipe is one `RecipeError` line, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInputError, ConfigurationError
from .base import Agent
from .recipe import RecipeError, load_recipe

AGENTS_DIR_ENV = "FASTVLM_HYBRID_AGENTS_DIR"

#: agent name -> module under `fastvlm_gemini_hybrid.agents` that defines `AGENT`
BUILTIN_MODULES: dict[str, str] = {
    "ux-review": "ux_review",
    "product-demo": "product_demo",
    "caption": "caption",
    "document": "document",
    "video-summary": "video_summary",
}


@dataclass(frozen=True)
class CommandAgent:
    """An agent that owns a whole CLI command; `agents run NAME ARGS...` forwards ARGS to it."""

    name: str
    summary: str
    command: str
    cli_module: str
    accepts: frozenset[str]
    usage: str
    source: str = "command"

    @property
    def available(self) -> bool:
        try:
            return importlib.util.find_spec(f"fastvlm_gemini_hybrid.cli.{self.cli_module}") is not None
        except (ImportError, ValueError):
            return False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "accepts": sorted(self.accepts),
            "hints": {"local_only": True} if self.name == "medical" else {},
            "params": {},
            "source": f"command: fastvlm-hybrid {self.command}",
            "available": self.available,
            "usage": self.usage,
        }

    def run_cli(self, args: list[str], *, json_output: bool, config: str | None) -> int:
        """Parse `args` as the `fastvlm-hybrid <command>` line and run its handler."""
        from ..cli import build_parser

        if not self.available:
            raise BadInputError(f"the {self.name} agent is not part of this build (no '{self.command}' command)")
        argv = (["--config", config] if config else []) + [self.command, *args]
        if json_output and "--json" not in args:
            argv.append("--json")
        parsed: argparse.Namespace = build_parser().parse_args(argv)
        return int(parsed.handler(parsed) or 0)


COMMAND_AGENTS: tuple[CommandAgent, ...] = (
    CommandAgent(
        "medical", "de-identified draft reports for DICOM or image studies; never leaves the machine",
        "medical", "medical_cmd", frozenset({"dicom", "image"}),
        "agents run medical FILE_OR_DIR [-- --report DIR ...]",
    ),
    CommandAgent(
        "surveillance", "motion, zones, loitering and described alerts from a video file, stream or webcam",
        "surveil", "video_cmd", frozenset({"video"}),
        "agents run surveillance SOURCE -- --zones ZONES.yaml [--report DIR ...]",
    ),
)

AnyAgent = Agent | CommandAgent


def builtin_recipe_dir() -> Path:
    return Path(__file__).parent / "recipes"


def user_recipe_dirs(home: Path | None) -> list[Path]:
    """The folders searched for user recipes, in order; missing folders are simply skipped."""
    dirs: list[Path] = []
    if home is not None:
        dirs.append(Path(home) / "agents")
    for part in os.environ.get(AGENTS_DIR_ENV, "").split(os.pathsep):
        if part.strip():
            dirs.append(Path(part.strip()).expanduser())
    return dirs


def _recipe_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


class AgentRegistry:
    """Every agent known to this installation, by name, in listing order."""

    def __init__(self) -> None:
        self._agents: dict[str, AnyAgent] = {}
        self.builtin_names: set[str] = set()

    def add(self, agent: AnyAgent, *, builtin: bool = False) -> None:
        if agent.name in self._agents:
            previous = self._agents[agent.name].source
            if agent.name in self.builtin_names:
                raise RecipeError(
                    f"recipe {agent.source}: the name {agent.name!r} belongs to a built-in agent; choose another name"
                )
            raise RecipeError(f"recipe {agent.source}: the name {agent.name!r} is already used by {previous}")
        self._agents[agent.name] = agent
        if builtin:
            self.builtin_names.add(agent.name)

    def get(self, name: str) -> AnyAgent:
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(self._agents)
            raise BadInputError(f"unknown agent {name!r}; known agents: {known}") from None

    def names(self) -> list[str]:
        return list(self._agents)

    def __iter__(self) -> Iterable[AnyAgent]:  # type: ignore[override]
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)


def load_builtin(name: str) -> Agent:
    module = importlib.import_module(f"{__package__}.{BUILTIN_MODULES[name]}")
    agent = module.AGENT
    if agent.name != name:  # pragma: no cover - a packaging mistake, caught by the tests
        raise ConfigurationError(f"agent module {module.__name__} defines {agent.name!r}, expected {name!r}")
    return agent


def load_registry(home: Path | None = None, extra_dirs: Iterable[Path] = ()) -> AgentRegistry:
    """Built-ins, built-in recipes, command adapters, then user recipes from `home/agents` and
    `FASTVLM_HYBRID_AGENTS_DIR` (and `extra_dirs`)."""
    registry = AgentRegistry()
    for name in BUILTIN_MODULES:
        registry.add(load_builtin(name), builtin=True)
    for path in _recipe_files(builtin_recipe_dir()):
        agent = load_recipe(path)
        agent.source = f"built-in recipe {path.name}"
        registry.add(agent, builtin=True)
    for command_agent in COMMAND_AGENTS:
        registry.add(command_agent, builtin=True)
    for directory in [*user_recipe_dirs(home), *extra_dirs]:
        for path in _recipe_files(directory):
            registry.add(load_recipe(path))
    return registry


__all__ = [
    "AGENTS_DIR_ENV",
    "BUILTIN_MODULES",
    "COMMAND_AGENTS",
    "AgentRegistry",
    "CommandAgent",
    "load_builtin",
    "load_registry",
    "user_recipe_dirs",
]
