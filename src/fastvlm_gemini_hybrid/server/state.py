"""What every endpoint shares: the processor, settings, the work gate, jobs and HTTP counters."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from .gate import WorkGate
from .media import CheckedMedia


@dataclass
class HttpStats:
    """Per-route request counts by status class. Route labels are route templates, so bounded."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, route: str, status: int) -> None:
        with self.lock:
            self.counts[(method, route, f"{status // 100}xx")] += 1

    def prometheus(self, prefix: str = "fastvlm_hybrid") -> list[str]:
        lines = [f"# TYPE {prefix}_http_requests_total counter"]
        with self.lock:
            for (method, route, status), count in sorted(self.counts.items()):
                labels = f'method="{method}",route="{route}",status="{status}"'
                lines.append(f"{prefix}_http_requests_total{{{labels}}} {count}")
        return lines


@dataclass
class ServerState:
    processor: Any
    settings: Settings
    gate: WorkGate
    jobs: Any
    http: HttpStats = field(default_factory=HttpStats)
    owns_processor: bool = False
    checked_media: CheckedMedia = field(default_factory=CheckedMedia)

    @property
    def browser_models_dir(self) -> Path:
        """ONNX bundles the web UI may load for in-browser inference (`<home>/models/onnx/<name>`)."""
        return self.settings.models_dir / "onnx"

    def backend_names(self) -> list[str]:
        return [info.name for info in self.processor.backend_infos]

    def backend_kind(self, name: str) -> str:
        info = next((i for i in self.processor.backend_infos if i.name == name), None)
        return "cloud" if info is not None and info.capabilities.is_cloud else "local"
