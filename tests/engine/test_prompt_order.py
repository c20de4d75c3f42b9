"""Which prompt goes first: the waiting request with the least prompt work gets the next free slot, a step decodes
the shortest remaining prompt first, and never two prompts' ends in one step.

An IDE's follow-up has a few dozen tokens left once its conversation is restored; it must not wait behind another
user's whole file, for a slot or within a step, nor share its last step with another prompt (each prompt's first
token would wait for both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from scheduler_probe import N_BATCH, greedy_job, loaded_model, record_batches, sampled_count

from codebooga.server.engine.llama_cpp.model import LlamaCppModel
from codebooga.server.engine.llama_cpp.scheduler import Scheduler
from codebooga.server.engine.types import BackendJob


@pytest.fixture()
def model() -> Iterator[LlamaCppModel]:
    with loaded_model(n_parallel=3) as loaded:
        yield loaded


@pytest.fixture()
def one_slot_model() -> Iterator[LlamaCppModel]:
    with loaded_model(n_parallel=1) as loaded:
        yield loaded


@pytest.fixture()
def decoded_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[int, bool]]]:
    return record_batches(monkeypatch)


def prompt_ends(batch: list[tuple[int, bool]]) -> set[int]:
    """The sequences whose prompt ends in `batch`: several tokens of theirs, the last one sampled from."""
    return {seq_id for seq_id, wants_logits in batch if wants_logits and sum(s == seq_id for s, _ in batch) > 1}


async def answer(scheduler: Scheduler, job: BackendJob, finished: list[str]) -> None:
    """Run `job` to its last token, then note its name in `finished`."""
    assert await sampled_count(scheduler.submit(job)) == job.max_new_tokens
    finished.append(job.request_id)


def test_a_waiting_follow_up_takes_the_free_slot_before_an_earlier_request_with_more_to_decode(
    one_slot_model: LlamaCppModel,
) -> None:
    model = one_slot_model
    conversation = "Explain this file. " + " ".join(f"x{index} = {index}" for index in range(40))
    follow_up = f"{conversation} Now, what is x7?"
    other = " ".join(f"item {index}," for index in range(25))  # shorter than the follow-up, none of it cached
    assert len(model.tokenize(other, add_special=True)) < len(model.tokenize(follow_up, add_special=True)) / 2
    finished: list[str] = []

    async def run() -> None:
        scheduler = Scheduler(model, prompt_cache_bytes=64 * 2**20)
        try:
            await answer(scheduler, greedy_job(model, "first turn", conversation, 2), finished)  # stays in the slot
            holding_job = greedy_job(model, "holding the slot", "Count to ten.", 40)
            holding = asyncio.create_task(answer(scheduler, holding_job, finished))
            while not scheduler.stats().slots_busy:
                await asyncio.sleep(0.005)
            waiting = [
                answer(scheduler, greedy_job(model, "other", other, 2), finished),  # arrives first
                # longer, but its conversation is cached
                answer(scheduler, greedy_job(model, "follow-up", follow_up, 2), finished),
            ]
            await asyncio.gather(holding, *waiting)
        finally:
            scheduler.close()

    asyncio.run(run())
    assert finished == ["first turn", "holding the slot", "follow-up", "other"]


def test_a_short_prompt_admitted_after_a_long_one_is_answered_first(
    model: LlamaCppModel, decoded_batches: list[list[tuple[int, bool]]]
) -> None:
    long_prompt = " ".join(f"item {index}," for index in range(60))  # several steps' worth of prompt
    assert len(model.tokenize(long_prompt, add_special=True)) > 4 * N_BATCH
    finished: list[str] = []

    async def run() -> None:
        scheduler = Scheduler(model)
        try:
            await asyncio.gather(
                answer(scheduler, greedy_job(model, "long", long_prompt, 2), finished),
                answer(scheduler, greedy_job(model, "short", "What is a list?", 2), finished),
            )
        finally:
            scheduler.close()

    asyncio.run(run())
    assert finished == ["short", "long"]
    ends = [index for index, batch in enumerate(decoded_batches) if prompt_ends(batch)]
    assert len(ends) == 2 and ends[0] <= 2, decoded_batches  # the short prompt went next, not after the long one


def test_prompts_admitted_together_end_in_steps_of_their_own(
    model: LlamaCppModel, decoded_batches: list[list[tuple[int, bool]]]
) -> None:
    async def run() -> None:
        scheduler = Scheduler(model)
        try:
            every_slot = scheduler.submit(greedy_job(model, "all", "Name three colours.", 3, n=3))
            await every_slot.started()
            waiting = [
                scheduler.submit(greedy_job(model, name, f"Question {name}: what does a {name} do?", 2))
                for name in ("compiler", "linker")
            ]  # both wait for the slots and are admitted in the same step
            counts = await asyncio.gather(sampled_count(every_slot), *(sampled_count(job) for job in waiting))
            assert counts == [9, 2, 2]
        finally:
            scheduler.close()

    asyncio.run(run())
    ending = [batch for batch in decoded_batches if prompt_ends(batch)]
    assert len(ending) == 3, decoded_batches  # the first job's prompt, then each waiting one's
    assert all(len({seq_id for seq_id, _ in batch}) == 1 for batch in ending), ending
