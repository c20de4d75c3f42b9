"""Sampled answers from the tiny test model, taken only once they have finished.

The server's default preset samples at temperature 1.31, and SmolLM2-135M at that temperature sometimes writes a
JSON string that goes on until `max_tokens`. Such an answer is *incomplete* (it says `finish_reason: "length"`),
not *invalid*, and which seed rambles depends on the CPU's floating-point path: a test that validates one fixed
seed's answer passes on one machine and fails on another. These helpers try seeds in order until an answer
finishes, check that each cut-off one said so, and fail only when every seed was cut off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Answer = TypeVar("Answer")

SEEDS = range(1, 7)


def first_finished(
    ask: Callable[[int], Answer], finished: Callable[[Answer], bool], cut_off: Callable[[Answer], bool]
) -> Answer:
    """The first answer over `SEEDS` for which `finished` holds; every other one must be `cut_off` (by the token
    limit), so that an answer that stopped for any other reason fails the test instead of being retried."""
    for seed in SEEDS:
        answer = ask(seed)
        if finished(answer):
            return answer
        assert cut_off(answer), f"seed {seed}: an answer that neither finished nor hit the token limit: {answer!r}"
    raise AssertionError(f"every seed in {list(SEEDS)} was cut off by the token limit")
