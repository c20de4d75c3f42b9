"""Busy slots stay next to each other where the slot policy has the choice: llama.cpp decodes each run of
consecutive sequence ids as a graph run of its own, so streams in slots 0 and 3 cost two runs a step where slots 0
and 1 cost one. With the prompt cache on, a new user's prompt overwrites the slot next to the busy one (its prompt
goes to the cache) rather than the least recently used one further away."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from scheduler_probe import greedy_job, loaded_model, record_batches, sampled_count

from codebooga.server.engine.llama_cpp.model import LlamaCppModel
from codebooga.server.engine.llama_cpp.scheduler import Scheduler

USERS = [" ".join(f"{name}{index} = {index}" for index in range(30)) for name in ("alpha", "beta", "gamma", "delta")]
NEWCOMER = " ".join(f"item {index}," for index in range(30))


@pytest.fixture()
def model() -> Iterator[LlamaCppModel]:
    with loaded_model(n_parallel=4) as loaded:
        yield loaded


def slots_beside_the_long_answer(model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch, cache_bytes: int) -> set[int]:
    """Four users fill the four slots; users 1 and 2 come back, so slot 3 is the least recently used; user 0's
    follow-up then answers at length in slot 0 while a newcomer arrives. Returns the sequence ids decoded beside
    slot 0 once the newcomer has started."""
    recorded = record_batches(monkeypatch)

    async def run() -> None:
        scheduler = Scheduler(model, prompt_cache_bytes=cache_bytes)
        try:
            turns = [USERS[0], USERS[1], USERS[2], USERS[3], USERS[1] + " And again.", USERS[2] + " And again."]
            for index, prompt in enumerate(turns):
                assert await sampled_count(scheduler.submit(greedy_job(model, f"turn {index}", prompt, 2))) == 2
            recorded.clear()
            long_answer = scheduler.submit(greedy_job(model, "u0 again", USERS[0] + " Why?", 40))
            await long_answer.started()
            newcomer = scheduler.submit(greedy_job(model, "newcomer", NEWCOMER, 20))
            assert await asyncio.gather(sampled_count(long_answer), sampled_count(newcomer)) == [40, 20]
            if cache_bytes:
                assert scheduler.stats().extra["prompt_cache_entries"] >= 1  # the overwritten prompt was kept
        finally:
            scheduler.close()

    asyncio.run(run())
    beside = {seq_id for batch in recorded for seq_id, _ in batch if any(s == 0 for s, _ in batch)}
    return beside - {0}


def test_with_the_prompt_cache_a_newcomer_takes_the_slot_next_to_the_busy_one(
    model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert slots_beside_the_long_answer(model, monkeypatch, cache_bytes=64 << 20) == {1}


def test_without_the_prompt_cache_the_least_recently_used_slot_is_overwritten(
    model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert slots_beside_the_long_answer(model, monkeypatch, cache_bytes=0) == {3}
