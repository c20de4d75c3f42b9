"""Which slot a new job takes, so that one user's prompt does not overwrite another user's cached prompt while
a slot sits empty.

A slot keeps its tokens (and their KV) after its job ends. The rule: take the idle slot sharing the longest
prefix with the prompt only when that reuse is worth it — the shared prefix covers at least half of the prompt
(a follow-up turn) or at least half of what the slot holds (little of its cache is lost). Otherwise take an
empty slot, else the least recently used one. A short shared prefix such as a common system prompt is still
not recomputed: the scheduler copies it from whichever slot holds it.

Between those candidates, the busy slots are kept in as few runs of consecutive sequence ids as the rule
allows. Each sequence has a KV stream of its own, and llama.cpp decodes a batch as one graph run per run of
consecutive ids: a step of two streams in slots 0 and 2 took 1.29× as long as in slots 0 and 1, three in 0, 1,
3 1.21× as long as in 0, 1, 2 (`bench/slot_runs_bench.py`, the test model on 2 CPU cores); on a GPU, where a
step's time is mostly reading the weights, each run reads them again. So among empty slots the one that joins
or extends the busy run goes first; among slots that hold a prompt too, when the prompt cache keeps what is
overwritten (that prompt then costs a restore, not a recompute), otherwise the least recently used one first.
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


def shared_prefixes(slots: Sequence[Slot], prompt: Sequence[int]) -> dict[int, int]:
    """How many leading tokens of `prompt` each slot holds, by `seq_id`: computed once per job start (a Python
    pass over every slot's tokens, on the decode thread), then read by `pick_slot` and the prefix loading."""
    return {slot.seq_id: common_prefix_length(slot.tokens, prompt) for slot in slots}


def pick_slot(
    slots: Sequence[Slot], prompt_length: int, shared: Mapping[int, int], *, overwritten_is_cached: bool
) -> Slot:
    """The idle slot a job with a prompt of `prompt_length` tokens starts in, given `shared_prefixes` (see the
    module docstring for the rule). `overwritten_is_cached`: the prompt cache saves a slot's prompt before it is
    overwritten."""
    idle = [slot for slot in slots if not slot.busy]
    best = max(idle, key=lambda slot: shared[slot.seq_id])
    length = shared[best.seq_id]
    if length and (length >= REUSE_FRACTION * prompt_length or length >= REUSE_FRACTION * len(best.tokens)):
        return best
    busy = {slot.seq_id for slot in slots if slot.busy}
    return min(idle, key=lambda slot: _overwrite_order(slot, busy, overwritten_is_cached))


def spare_slots(slots: Sequence[Slot], taken: Slot, count: int, *, overwritten_is_cached: bool) -> list[Slot]:
    """`count` more idle slots for a job's extra choices besides `taken`, in the same order as `pick_slot`'s
    fallback, each chosen as if the ones before it were busy already."""
    busy = {slot.seq_id for slot in slots if slot.busy} | {taken.seq_id}
    candidates = [slot for slot in slots if not slot.busy and slot is not taken]
    chosen: list[Slot] = []
    for _ in range(min(count, len(candidates))):
        spare = min(candidates, key=lambda slot: _overwrite_order(slot, busy, overwritten_is_cached))
        candidates.remove(spare)
        busy.add(spare.seq_id)
        chosen.append(spare)
    return chosen


def added_runs(seq_id: int, busy: set[int]) -> int:
    """How many more runs of consecutive busy sequence ids there are once `seq_id` is busy too: 1 when neither
    neighbour is busy, 0 when it extends a run, -1 when it joins two."""
    return 1 - (seq_id - 1 in busy) - (seq_id + 1 in busy)


def _overwrite_order(slot: Slot, busy: set[int], overwritten_is_cached: bool) -> tuple[int, ...]:
    """The fallback's sort key, smallest first: empty slots before slots holding a prompt, then fewer added runs,
    then the least recently used; a slot holding a prompt the cache would not keep goes by recency first."""
    holds = int(bool(slot.tokens))
    runs = added_runs(slot.seq_id, busy)
    if overwritten_is_cached or not holds:
        return holds, runs, slot.last_used
    return holds, slot.last_used, runs
