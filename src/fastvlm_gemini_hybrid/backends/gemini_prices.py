"""Gemini prices: the versioned table in `gemini_prices.yaml` and the cost of one call.

Why data, not code: prices change more often than the logic; a reviewer can diff the YAML, and
its `version` says which table a reported cost came from.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """The versioned price table shipped as `gemini_prices.yaml`."""
    from importlib.resources import files

    import yaml

    return yaml.safe_load(files(__package__).joinpath("gemini_prices.yaml").read_text(encoding="utf-8"))


_warned: set[str] = set()


def price_of(model: str, input_tokens: int, output_tokens: int) -> float:
    """USD for one call. Longest matching model prefix wins ('gemini-2.5-flash-lite-preview' ->
    flash-lite); an unknown model costs 0 with one logged warning."""
    models: dict[str, dict[str, float]] = price_table()["models"]
    name = model.removeprefix("models/")
    match = max((m for m in models if name.startswith(m)), key=len, default=None)
    if match is None:
        if name not in _warned:
            _warned.add(name)
            log.warning("gemini: no price for model %r in table %s; cost reported as 0",
                        name, price_table()["version"])
        return 0.0
    row = models[match]
    long = "threshold_tokens" in row and input_tokens > row["threshold_tokens"]
    per_in = row["above_input"] if long else row["input"]
    per_out = row["above_output"] if long else row["output"]
    return round((input_tokens * per_in + output_tokens * per_out) / 1_000_000, 8)
