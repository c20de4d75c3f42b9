"""Prompt KV that outlives the slots: sequence states saved into host memory, found again by token prefix.

With more users than slots, each switch would recompute a whole prompt (an IDE sends the same file again and
again). Before a slot is overwritten, the scheduler saves its sequence state (llama.cpp's
`llama_state_seq_get_data`: the KV cells of that sequence) here; a later prompt starting with the same tokens
restores it and decodes only the rest. Entries are evicted least recently used first once their bytes exceed
the budget; an entry whose tokens are a prefix of a newer one's is dropped as redundant.
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


def shared_prefix(cached: np.ndarray, prompt: np.ndarray) -> int:
    """How many leading tokens the two arrays share."""
    length = min(len(cached), len(prompt))
    if length == 0:
        return 0
    differs = np.flatnonzero(cached[:length] != prompt[:length])
    return int(differs[0]) if len(differs) else length


@dataclass(frozen=True)
class CachedPrompt:
    tokens: np.ndarray
    """The sequence's tokens, in KV order (int32)."""
    state: bytearray | mmap.mmap
    """`llama_state_seq_get_data` of the sequence holding exactly `tokens`."""


@dataclass(frozen=True)
class PromptCacheStats:
    entries: int
    bytes: int
    budget_bytes: int
    hits: int
    misses: int
    tokens_restored: int
    evictions: int


class PromptCache:
    """A byte-bounded LRU of sequence states keyed by their tokens. Used from the decode thread only."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[int, CachedPrompt] = OrderedDict()
        self._next_key = 0
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._tokens_restored = 0
        self._evictions = 0

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    def put(self, tokens: np.ndarray, state: bytearray | mmap.mmap) -> None:
        """Keep `state` (of a sequence holding `tokens`), evicting the least recently used beyond the budget."""
        if len(state) > self.budget_bytes:
            return
        for key, entry in list(self._entries.items()):
            if len(entry.tokens) <= len(tokens) and shared_prefix(entry.tokens, tokens) == len(entry.tokens):
                self._drop(key)
        self._entries[self._next_key] = CachedPrompt(tokens.copy(), state)
        self._next_key += 1
        self._bytes += len(state)
        while self._bytes > self.budget_bytes:
            self._drop(next(iter(self._entries)))
            self._evictions += 1

    def longest_prefix(self, prompt: np.ndarray) -> tuple[int, int]:
        """(key, shared length) of the entry sharing the longest prefix with `prompt`; (-1, 0) when none does."""
        best_key, best_length = -1, 0
        for key, entry in self._entries.items():
            length = shared_prefix(entry.tokens, prompt)
            if length > best_length:
                best_key, best_length = key, length
        return best_key, best_length

    def take(self, key: int, used_tokens: int) -> CachedPrompt:
        """Remove and return an entry being restored into a slot (the slot holds it from now on, and saves it
        back when it is overwritten)."""
        entry = self._entries[key]
        self._drop(key)
        self._hits += 1
        self._tokens_restored += used_tokens
        return entry

    def miss(self) -> None:
        self._misses += 1

    def stats(self) -> PromptCacheStats:
        return PromptCacheStats(
            entries=len(self._entries),
            bytes=self._bytes,
            budget_bytes=self.budget_bytes,
            hits=self._hits,
            misses=self._misses,
            tokens_restored=self._tokens_restored,
            evictions=self._evictions,
        )

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.state)
