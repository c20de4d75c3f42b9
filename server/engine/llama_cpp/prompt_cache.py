"""Prompt KV that outlives the slots: sequence states saved into host memory, found again by token prefix.

With more users than slots, each switch would recompute a whole prompt (an IDE sends the same file again and
again). Before a slot is overwritten, the scheduler saves its sequence state (llama.cpp's
`llama_state_seq_get_data`: the KV cells of that sequence) here; a later prompt starting with the same tokens
restores it and decodes only the rest. Entries are evicted least recently used first once their bytes exceed
the budget; an entry whose tokens are a prefix of a newer one's is dropped as redundant.

States live in anonymous mappings of their own, not the heap, so that a freed state's memory goes back to the
system at once instead of leaving the allocator's arenas fragmented by megabyte-sized holes. Mapping and
populating one costs more than the copy itself (on this project's VM, 52 MiB: ~19 ms to map and fault in, ~7 ms
to copy, ~4 ms to unmap), and the decode thread waits for it: so the buffers of dropped entries (restored into a
slot, evicted, made redundant) are kept as spares, and the next save reuses one that fits.
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

Buffer = bytearray | mmap.mmap

SPARE_BUFFERS = 4
"""At most this many dropped entries' buffers are kept for reuse; they count against the byte budget too."""

GROWTH_ROOM = 8
"""A new buffer is 1/GROWTH_ROOM larger than the state it is made for: a conversation's state grows by its last
answer and question each turn (a few percent), and the grown state then still fits the buffer it was in."""


def new_buffer(size: int) -> mmap.mmap:
    """An anonymous mapping of `size` bytes, populated up front: faulting its pages in one at a time while the
    state is copied made the copy ~40% slower."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0))


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
    buffer: Buffer
    """Holds the state in its first `size` bytes (a reused buffer may be larger)."""
    size: int
    """Bytes of `llama_state_seq_get_data` of the sequence holding exactly `tokens`."""


@dataclass(frozen=True)
class PromptCacheStats:
    entries: int
    bytes: int
    spare_bytes: int
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
        self._spares: list[Buffer] = []
        self._hits = 0
        self._misses = 0
        self._tokens_restored = 0
        self._evictions = 0

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    def buffer(self, size: int) -> Buffer:
        """A buffer for a state of `size` bytes: the smallest spare that holds it without wasting more than half
        of itself, else a new one, an eighth larger."""
        fitting = [spare for spare in self._spares if size <= len(spare) <= 2 * size]
        if not fitting:  # with room for the same conversation's next turn, so that its save can reuse it
            return new_buffer(size + size // GROWTH_ROOM)
        chosen = min(fitting, key=len)
        self._spares.remove(chosen)
        return chosen

    def put(self, tokens: np.ndarray, buffer: Buffer, size: int) -> None:
        """Keep the state of a sequence holding `tokens` (the first `size` bytes of `buffer`), evicting the least
        recently used beyond the budget."""
        if len(buffer) > self.budget_bytes:
            return
        for key, entry in list(self._entries.items()):
            if len(entry.tokens) <= len(tokens) and shared_prefix(entry.tokens, tokens) == len(entry.tokens):
                self.recycle(self._remove(key).buffer)
        self._entries[self._next_key] = CachedPrompt(tokens.copy(), buffer, size)
        self._next_key += 1
        self._bytes += len(buffer)
        self._trim_spares()
        while self._bytes > self.budget_bytes:
            self._remove(next(iter(self._entries)))
            self._evictions += 1

    def recycle(self, buffer: Buffer) -> None:
        """Keep a buffer no entry uses any more for a later save, within `SPARE_BUFFERS` and the budget."""
        self._spares.append(buffer)
        self._trim_spares()

    def _trim_spares(self) -> None:
        """Oldest spares go first, until they are within `SPARE_BUFFERS` and, with the entries, the budget."""
        while self._spares and (
            len(self._spares) > SPARE_BUFFERS or self._bytes + self._spare_bytes > self.budget_bytes
        ):
            self._spares.pop(0)

    @property
    def _spare_bytes(self) -> int:
        return sum(len(spare) for spare in self._spares)

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
        back when it is overwritten); its buffer is the caller's until it is handed to `recycle`."""
        entry = self._remove(key)
        self._hits += 1
        self._tokens_restored += used_tokens
        return entry

    def entries(self) -> list[CachedPrompt]:
        """Every entry, least recently used first."""
        return list(self._entries.values())

    def miss(self) -> None:
        self._misses += 1

    def stats(self) -> PromptCacheStats:
        return PromptCacheStats(
            entries=len(self._entries),
            bytes=self._bytes,
            spare_bytes=self._spare_bytes,
            budget_bytes=self.budget_bytes,
            hits=self._hits,
            misses=self._misses,
            tokens_restored=self._tokens_restored,
            evictions=self._evictions,
        )

    def _remove(self, key: int) -> CachedPrompt:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.buffer)
        return entry
