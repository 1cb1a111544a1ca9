"""Task agents built on the processor, all under one contract (`base.Agent`) and run by the registry:
ux-review, product-demo, caption, document, video-summary, medical, surveillance and YAML recipes."""

from .base import Agent, AgentContext, AgentOptions, AgentOutputError, ItemResult, OutputProblem, RoutingHints
from .options import OptionSpec
from .registry import AgentRegistry, UnknownAgentError, load_registry

__all__ = [
    "Agent",
    "AgentContext",
    "AgentOptions",
    "AgentOutputError",
    "AgentRegistry",
    "ItemResult",
    "OptionSpec",
    "OutputProblem",
    "RoutingHints",
    "UnknownAgentError",
    "load_registry",
]
