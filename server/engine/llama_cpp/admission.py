"""Which waiting request starts when a slot frees: the one with the least prompt left to decode, and no request is
overtaken more than `MAX_OVERTAKEN` times.

With more users than slots, an IDE's follow-up (its conversation cached, a few dozen tokens left to decode) used
to wait in line behind other users' first turns, each a whole file to decode: in `bench/ide_bench.py
--independent` (users who do not wait for each other) follow-ups waited up to 29 s for a slot, in llama-server
as in codebooga. Least work first cuts the mean wait of everyone queued; the bound keeps a long prompt from
being passed over forever by a steady stream of short ones, and a request with n choices from waiting forever
for n slots to be idle at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

MAX_OVERTAKEN = 16
"""A waiting request started after this many later ones goes next, as soon as enough slots are idle for it."""


class Waiting(Protocol):
    overtaken: int
    """How many requests that arrived after this one have started before it."""

    @property
    def choices(self) -> int:
        """Slots it needs (its `n`)."""
        ...


W = TypeVar("W", bound=Waiting)


def next_to_start(waiting: Sequence[W], idle_slots: int, prompt_work: Callable[[W], int]) -> W | None:
    """The request to start now out of `waiting` (in arrival order), or None to wait for more idle slots.
    `prompt_work` is a request's count of prompt tokens to decode (its prompt less the prefix found cached)."""
    for request in waiting:
        if request.overtaken >= MAX_OVERTAKEN:
            return request if request.choices <= idle_slots else None
    fitting = [request for request in waiting if request.choices <= idle_slots]
    if len(fitting) < 2:  # no choice to make: spare the decode thread the prefix search (`_start` does its own)
        return fitting[0] if fitting else None
    return min(fitting, key=prompt_work)  # the earliest of equals


def count_overtaking(waiting: Sequence[W], started: W) -> None:
    """Note that `started` went ahead of every request that arrived before it."""
    for request in waiting:
        if request is started:
            return
        request.overtaken += 1
