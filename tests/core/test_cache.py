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


def test_the_cache_file_is_private_and_capped(tmp_path: Path) -> None:
    import os

    home = tmp_path / "home"
    cache = ResultCache(home / "cache.sqlite3", 100.0, max_bytes=20_000)
    for i in range(100):
        cache.put(f"k{i}", {"response": "x" * 1000}, backend="fastvlm")
    stats = cache.stats()
    assert stats.bytes <= 20_000 and stats.entries < 100
    assert cache.get("k99") is not None  # the newest survive
    cache.close()
    assert home.stat().st_mode & 0o777 == 0o700
    for path in home.iterdir():
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    assert os.path.getsize(home / "cache.sqlite3") > 0


def test_expired_rows_are_purged_when_the_file_opens(tmp_path: Path) -> None:
    now = [1000.0]
    cache = ResultCache(tmp_path / "c.sqlite3", 10.0, clock=lambda: now[0])
    cache.put("old", {"response": "a"}, backend="fastvlm")
    cache.close()
    now[0] += 60
    reopened = ResultCache(tmp_path / "c.sqlite3", 10.0, clock=lambda: now[0])
    assert reopened.stats().expired == 0 and reopened.stats().entries == 0
    reopened.close()
