"""The host-memory prompt cache's bookkeeping: longest-prefix lookup, byte budget with LRU eviction, redundant
prefixes dropped, restored entries handed over, dropped entries' buffers reused."""

from __future__ import annotations

import numpy as np

from codebooga.server.engine.llama_cpp.prompt_cache import PromptCache, shared_prefix


def tokens(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def test_shared_prefix() -> None:
    assert shared_prefix(tokens(1, 2, 3), tokens(1, 2, 4, 5)) == 2
    assert shared_prefix(tokens(1, 2), tokens(1, 2, 3)) == 2
    assert shared_prefix(tokens(), tokens(1)) == 0
    assert shared_prefix(tokens(9), tokens(1)) == 0


def test_the_longest_prefix_wins_and_is_handed_over_once() -> None:
    cache = PromptCache(1000)
    cache.put(tokens(1, 2, 3, 4), bytearray(10), 10)
    cache.put(tokens(1, 2, 9, 9, 9), bytearray(10), 10)
    key, length = cache.longest_prefix(tokens(1, 2, 3, 4, 5, 6))
    assert length == 4
    entry = cache.take(key, length)
    assert entry.tokens.tolist() == [1, 2, 3, 4]
    assert cache.longest_prefix(tokens(1, 2, 3, 4, 5, 6))[1] == 2  # only the other entry is left
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.hits, stats.tokens_restored) == (1, 10, 1, 4)


def test_the_byte_budget_evicts_the_least_recently_used() -> None:
    cache = PromptCache(25)
    for user in range(3):
        cache.put(tokens(user, 1, 2), bytearray(10), 10)
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (2, 20, 1)
    assert cache.longest_prefix(tokens(0, 1, 2)) == (-1, 0)  # the oldest went first
    assert cache.longest_prefix(tokens(2, 1, 2))[1] == 3


def test_a_state_larger_than_the_budget_is_not_kept() -> None:
    cache = PromptCache(5)
    cache.put(tokens(1, 2), bytearray(10), 10)
    assert cache.stats().entries == 0


def test_an_entry_covered_by_a_longer_one_is_dropped() -> None:
    cache = PromptCache(1000)
    cache.put(tokens(1, 2, 3), bytearray(10), 10)
    cache.put(tokens(1, 2, 3, 4, 5), bytearray(20), 20)
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (1, 20, 0)


def test_zero_budget_disables_it() -> None:
    assert not PromptCache(0).enabled


def test_dropped_buffers_are_reused_when_they_fit_and_count_against_the_budget() -> None:
    cache = PromptCache(100)
    cache.put(tokens(1, 2, 3), bytearray(30), 30)
    restored = cache.take(*cache.longest_prefix(tokens(1, 2, 3, 4)))
    cache.recycle(restored.buffer)
    assert cache.stats().spare_bytes == 30
    assert cache.buffer(40) is not restored.buffer  # too small for it
    assert cache.buffer(10) is not restored.buffer  # would waste more than half of it
    reused = cache.buffer(20)
    assert reused is restored.buffer and cache.stats().spare_bytes == 0
    cache.put(tokens(5, 6), reused, 20)
    assert (cache.stats().bytes, cache.longest_prefix(tokens(5, 6))[1]) == (30, 2)  # the whole buffer is counted
    cache.recycle(bytearray(60))
    cache.recycle(bytearray(50))  # 30 held + 60 + 50 spare > 100: the older spare goes
    assert (cache.stats().spare_bytes, cache.stats().entries) == (50, 1)
