from __future__ import annotations

import sqlite3
from pathlib import Path

from fastvlm_gemini_hybrid.cache import ResultCache, cache_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_key_changes_with_every_component() -> None:
    base = cache_key(["a"], "p", "fastvlm", "m", {"max_tokens": 5})
    assert base == cache_key(["a"], "p", "fastvlm", "m", {"max_tokens": 5})
    variants = [
        cache_key(["b"], "p", "fastvlm", "m", {"max_tokens": 5}),
        cache_key(["a"], "q", "fastvlm", "m", {"max_tokens": 5}),
        cache_key(["a"], "p", "gemini", "m", {"max_tokens": 5}),
        cache_key(["a"], "p", "fastvlm", "n", {"max_tokens": 5}),
        cache_key(["a"], "p", "fastvlm", "m", {"max_tokens": 6}),
    ]
    assert len({base, *variants}) == 6


def test_ttl_expiry_with_injected_clock(tmp_path: Path) -> None:
    clock = Clock()
    cache = ResultCache(tmp_path / "c.sqlite3", ttl_s=60, clock=clock)
    cache.put("k", {"response": "r"}, backend="fastvlm")
    clock.now += 59
    assert cache.get("k") == {"response": "r"}
    clock.now += 2
    assert cache.get("k") is None
    stats = cache.stats()
    assert stats.entries == 0 and stats.expired == 1
    assert cache.purge_expired() == 1


def test_persistence_across_instances_and_sensitive_stays_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    first = ResultCache(path)
    first.put("public", {"response": "ok"}, backend="gemini")
    first.put("secret", {"response": "patient data"}, backend="fastvlm", persist=False)
    assert first.get("secret") == {"response": "patient data"}
    first.close()
    second = ResultCache(path)
    assert second.get("public") == {"response": "ok"}
    assert second.get("secret") is None
    second.close()
    raw = sqlite3.connect(path).execute("SELECT value FROM results").fetchall()
    assert all("patient" not in row[0] for row in raw)


def test_stats_and_clear(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite3")
    cache.put("a", {"response": "x"}, backend="b")
    assert cache.get("a") is not None
    assert cache.get("missing") is None
    stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses) == (1, 1, 1)
    assert cache.clear() == 1
    assert cache.get("a") is None
