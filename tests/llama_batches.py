"""Filling a llama.cpp batch by hand, for the tests that drive llama.cpp below the scheduler."""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp as llama


def put_tokens(
    batch: llama.llama_batch,
    at: int,
    tokens: Sequence[int],
    first_position: int,
    seq_id: int = 0,
    *,
    every_logit: bool = False,
) -> int:
    """Write `tokens` into `batch` from index `at`, at positions from `first_position` in sequence `seq_id`, with
    logits for the last one only (for each with `every_logit`); returns the index after them (the batch's
    `n_tokens` if nothing follows)."""
    for offset, token in enumerate(tokens):
        index = at + offset
        batch.token[index] = token
        batch.pos[index] = first_position + offset
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = seq_id
        batch.logits[index] = every_logit or offset == len(tokens) - 1
    return at + len(tokens)
