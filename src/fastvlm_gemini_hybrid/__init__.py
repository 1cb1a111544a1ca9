"""fastvlm-gemini-hybrid: answer questions about images and video, locally with FastVLM or in the
cloud with Gemini, routed by explainable rules. Privacy is a hard constraint.

    from fastvlm_gemini_hybrid import HybridVLMProcessor
    HybridVLMProcessor().process("image.jpg", "Describe this")["response"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import HybridError
from .types import Attachment, Domain, GenerationOptions, Latency, Mode, Request, Result, RouteDecision, Task

__version__ = "0.1.0"

__all__ = [
    "Attachment",
    "Domain",
    "GenerationOptions",
    "HybridError",
    "HybridVLMProcessor",
    "Latency",
    "Mode",
    "Request",
    "Result",
    "RouteDecision",
    "Task",
    "__version__",
]

if TYPE_CHECKING:
    from .processor import HybridVLMProcessor


def __getattr__(name: str) -> Any:
    # The processor pulls in asyncio machinery and backends; import it only when asked for.
    if name == "HybridVLMProcessor":
        from .processor import HybridVLMProcessor

        return HybridVLMProcessor
    raise AttributeError(name)
