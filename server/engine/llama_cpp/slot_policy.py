"""Which slot a new job takes, so that one user's prompt does not overwrite another user's cached prompt while
a slot sits empty.

A slot keeps its tokens (and their KV) after its job ends. The rule: take the idle slot sharing the longest
prefix with the prompt only when that reuse is worth it — the shared prefix covers at least half of the prompt
(a follow-up turn) or at least half of what the slot holds (little of its cache is lost). Otherwise take an
empty slot, else the least recently used one. A short shared prefix such as a common system prompt is still
not recomputed: the scheduler copies it from whichever slot holds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

REUSE_FRACTION = 0.5


@dataclass
class Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)
    """The tokens whose KV the slot's sequence holds, in order."""
    busy: bool = False
    last_used: int = 0
    """When a job last started in this slot (a counter, not a clock): the least recently used is overwritten first."""


def common_prefix_length(cached: Sequence[int], prompt: Sequence[int]) -> int:
    length = 0
    for cached_token, prompt_token in zip(cached, prompt):
        if cached_token != prompt_token:
            break
        length += 1
    return length


def _least_valuable(slot: Slot) -> tuple[bool, int]:
    return bool(slot.tokens), slot.last_used


def shared_prefixes(slots: Sequence[Slot], prompt: Sequence[int]) -> dict[int, int]:
    """How many leading tokens of `prompt` each slot holds, by `seq_id`: computed once per job start (a Python
    pass over every slot's tokens, on the decode thread), then read by `pick_slot` and the prefix loading."""
    return {slot.seq_id: common_prefix_length(slot.tokens, prompt) for slot in slots}


def pick_slot(idle: Sequence[Slot], prompt_length: int, shared: Mapping[int, int]) -> Slot:
    """The idle slot a job with a prompt of `prompt_length` tokens starts in, given `shared_prefixes` (see the
    module docstring for the rule)."""
    best = max(idle, key=lambda slot: shared[slot.seq_id])
    length = shared[best.seq_id]
    if length and (length >= REUSE_FRACTION * prompt_length or length >= REUSE_FRACTION * len(best.tokens)):
        return best
    return min(idle, key=_least_valuable)


def spare_slots(idle: Sequence[Slot], taken: Slot, count: int) -> list[Slot]:
    """`count` more idle slots for a job's extra choices: empty ones first, then the least recently used."""
    return sorted((slot for slot in idle if slot is not taken), key=_least_valuable)[:count]
