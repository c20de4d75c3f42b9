"""Which prompt goes first: the waiting request with the least prompt work gets the next free slot, a step decodes
the shortest remaining prompt first, and never two prompts' ends in one step.

An IDE's follow-up has a few dozen tokens left once its conversation is restored; it must not wait behind another
user's whole file, for a slot or within a step, nor share its last step with another prompt (each prompt's first
token would wait for both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import llama_cpp as llama
import pytest

from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.job_stream import ThreadedJobStream
from codebooga.server.engine.llama_cpp import scheduler as scheduler_module
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel
from codebooga.server.engine.llama_cpp.scheduler import Scheduler
from codebooga.server.engine.types import BackendJob, SampledToken, SamplingParams

N_BATCH = 64


@pytest.fixture()
def model() -> Iterator[LlamaCppModel]:
    options = ContextOptions(n_ctx_per_seq=512, n_parallel=3, n_threads=2, n_batch=N_BATCH)
    loaded = LlamaCppModel(embedded_model_path(), options)
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture()
def one_slot_model() -> Iterator[LlamaCppModel]:
    options = ContextOptions(n_ctx_per_seq=512, n_parallel=1, n_threads=2, n_batch=N_BATCH)
    loaded = LlamaCppModel(embedded_model_path(), options)
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture()
def decoded_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[int, bool]]]:
    """Every batch handed to llama.cpp, as (sequence id, logits wanted) per token."""
    batches: list[list[tuple[int, bool]]] = []
    real_decode = llama.llama_decode

    def recording_decode(context: llama.llama_context_p, batch: llama.llama_batch) -> int:
        batches.append([(batch.seq_id[index][0], bool(batch.logits[index])) for index in range(batch.n_tokens)])
        return real_decode(context, batch)

    monkeypatch.setattr(scheduler_module.llama, "llama_decode", recording_decode)
    return batches


def greedy_job(model: LlamaCppModel, name: str, prompt: str, tokens: int, n: int = 1) -> BackendJob:
    never_ending = tuple((token, -100.0) for token in range(model.n_vocab) if model.is_end_of_generation(token))
    ids = tuple(model.tokenize(prompt, add_special=True))
    sampling = SamplingParams(temperature=0.0, logit_bias=never_ending)
    return BackendJob(request_id=name, prompt_tokens=ids, sampling=sampling, max_new_tokens=tokens, n=n)


async def sampled_count(stream: ThreadedJobStream) -> int:
    return len([event async for event in stream if isinstance(event, SampledToken)])


def prompt_ends(batch: list[tuple[int, bool]]) -> set[int]:
    """The sequences whose prompt ends in `batch`: several tokens of theirs, the last one sampled from."""
    return {seq_id for seq_id, wants_logits in batch if wants_logits and sum(s == seq_id for s, _ in batch) > 1}


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

            async def answer(job: BackendJob) -> None:
                assert await sampled_count(scheduler.submit(job)) == job.max_new_tokens
                finished.append(job.request_id)

            await answer(greedy_job(model, "first turn", conversation, 2))  # its state stays in the slot
            holding = asyncio.create_task(answer(greedy_job(model, "holding the slot", "Count to ten.", 40)))
            while not scheduler.stats().slots_busy:
                await asyncio.sleep(0.005)
            waiting = [
                answer(greedy_job(model, "other", other, 2)),  # arrives first
                answer(greedy_job(model, "follow-up", follow_up, 2)),  # longer, but its conversation is cached
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

            async def answer(job: BackendJob) -> None:
                assert await sampled_count(scheduler.submit(job)) == 2
                finished.append(job.request_id)

            await asyncio.gather(
                answer(greedy_job(model, "long", long_prompt, 2)),
                answer(greedy_job(model, "short", "What is a list?", 2)),
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
