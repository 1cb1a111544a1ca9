"""Where agents come from, and the one way they run: built-in modules, built-in recipes, user recipes.

Why a registry rather than imports scattered through the CLI: `agents list`, `agents run`, the
`medical` and `surveil` commands, the HTTP API (`/v1/agents`) and user code must all see the same set,
in the same order, with the same errors, and run an agent the same way (`AgentRegistry.run`). Sources:

1. built-in agent modules (`ux_review.py`, ..., `medical.py`, `surveillance.py`), each exposing `AGENT`;
2. built-in recipes in `agents/recipes/*.yaml`;
3. the user's recipes: `*.yaml`/`*.yml` in `$FASTVLM_HYBRID_HOME/agents/` and in every folder of
   `FASTVLM_HYBRID_AGENTS_DIR` (path-separator separated).

A user recipe may not reuse a built-in name (a recipe silently replacing `document`, which keeps
receipts local, would be a privacy trap); any malformed recipe is one `RecipeError` line, exit 2.
This module imports nothing from `cli` or `server`: they call it, never the other way round.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import BadInputError, ConfigurationError
from .base import Agent, AgentOptions, ItemResult
from .options import check_specs
from .recipe import RecipeError, load_recipe

if TYPE_CHECKING:
    from ..processor import HybridVLMProcessor
    from .answering import Answerer

AGENTS_DIR_ENV = "FASTVLM_HYBRID_AGENTS_DIR"

#: agent name -> module under `fastvlm_gemini_hybrid.agents` that defines `AGENT`
BUILTIN_MODULES: dict[str, str] = {
    "ux-review": "ux_review",
    "product-demo": "product_demo",
    "caption": "caption",
    "document": "document",
    "video-summary": "video_summary",
    "medical": "medical",
    "surveillance": "surveillance",
}


class UnknownAgentError(BadInputError):
    """No agent has this name (exit 2 on the command line, 404 over HTTP)."""

    code = "unknown_agent"


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
        self._agents: dict[str, Agent] = {}
        self.builtin_names: set[str] = set()

    def add(self, agent: Agent, *, builtin: bool = False) -> None:
        if agent.name in self._agents:
            previous = self._agents[agent.name].source
            if agent.name in self.builtin_names:
                raise RecipeError(
                    f"recipe {agent.source}: the name {agent.name!r} belongs to a built-in agent; choose another name"
                )
            raise RecipeError(f"recipe {agent.source}: the name {agent.name!r} is already used by {previous}")
        check_specs(agent.option_specs, agent.name)
        self._agents[agent.name] = agent
        if builtin:
            self.builtin_names.add(agent.name)

    def get(self, name: str) -> Agent:
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(self._agents)
            raise UnknownAgentError(f"unknown agent {name!r}; known agents: {known}") from None

    def names(self) -> list[str]:
        return list(self._agents)

    def __iter__(self) -> Iterator[Agent]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)

    async def run(
        self, name: str, refs: Sequence[str], options: AgentOptions, *,
        processor: HybridVLMProcessor | None = None,
        make_processor: Callable[[Agent], HybridVLMProcessor] | None = None,
    ) -> list[ItemResult]:
        """Run the agent `name` over `refs`: the one path for the CLI, the HTTP API and library code.

        `check_options` runs first, so a refused mode or a bad option fails before any input is read or
        processor built. Then the agent gets `processor`, or one built by `make_processor(agent)` and
        closed afterwards (on this loop: async clients must not outlive it), or None when the agent says
        these options need no model (`needs_processor`).
        """
        agent = self.get(name)
        agent.check_options(options)
        if processor is not None or not agent.needs_processor(options):
            # None only where the agent said these options need no processor (surveillance without `describe`)
            return list(await agent.arun(cast("Answerer", processor), list(refs), options))
        if make_processor is None:
            raise ConfigurationError(f"the {name} agent needs a processor, and none was given")
        built = make_processor(agent)
        try:
            return list(await agent.arun(built, list(refs), options))
        finally:
            await built.aclose()


def load_builtin(name: str) -> Agent:
    module = importlib.import_module(f"{__package__}.{BUILTIN_MODULES[name]}")
    agent = module.AGENT
    if agent.name != name:  # pragma: no cover - a packaging mistake, caught by the tests
        raise ConfigurationError(f"agent module {module.__name__} defines {agent.name!r}, expected {name!r}")
    return agent


def load_registry(
    home: Path | None = None, extra_dirs: Iterable[Path] = (), *, user_recipes: bool = True,
) -> AgentRegistry:
    """Built-ins and built-in recipes, then (unless `user_recipes=False`) user recipes from
    `home/agents`, `FASTVLM_HYBRID_AGENTS_DIR` and `extra_dirs`. A command that runs one built-in
    agent (`medical`, `surveil`) skips user recipes, so a broken recipe cannot stop it."""
    registry = AgentRegistry()
    for name in BUILTIN_MODULES:
        registry.add(load_builtin(name), builtin=True)
    for path in _recipe_files(builtin_recipe_dir()):
        agent = load_recipe(path)
        agent.source = f"built-in recipe {path.name}"
        registry.add(agent, builtin=True)
    if not user_recipes:
        return registry
    for directory in [*user_recipe_dirs(home), *extra_dirs]:
        for path in _recipe_files(directory):
            registry.add(load_recipe(path))
    return registry


__all__ = [
    "AGENTS_DIR_ENV",
    "BUILTIN_MODULES",
    "AgentRegistry",
    "UnknownAgentError",
    "load_builtin",
    "load_registry",
    "user_recipe_dirs",
]
