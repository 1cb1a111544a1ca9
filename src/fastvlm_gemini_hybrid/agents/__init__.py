"""Task agents built on the processor: surveillance (video) and others."""

from .base import Agent, AgentContext, AgentOptions, AgentOutputError, ItemResult, OutputProblem, RoutingHints
from .registry import load_registry

__all__ = [
    "Agent",
    "AgentContext",
    "AgentOptions",
    "AgentOutputError",
    "ItemResult",
    "OutputProblem",
    "RoutingHints",
    "load_registry",
]
