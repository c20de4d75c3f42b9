"""The generator loop on CPU, against a generator that follows exllamav2's documented `iterate()` protocol:
token ids per choice, end of generation vs budget, held-back tokens at a stop token, logprobs from logits,
n > 1, stop_choice and cancel ending jobs with `generator.cancel`, FIFO admission and the queue timeout."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from codebooga.server.engine.errors import InvalidRequest, Overloaded
from codebooga.server.engine.exllamav2.scheduler import Scheduler
from codebooga.server.engine.types import BackendJob, SampledToken, SamplingParams, SequenceFinished

torch = pytest.importorskip("torch")

VOCAB = 16
EOS = 2


@dataclass
class FakeJob:
    """What `Exl2Model.make_job` would build: the generator only sees these fields."""

    prompt: tuple[int, ...]
    max_new_tokens: int
    script: list[int]
    identifier: object
    return_logits: bool
    new_tokens: int = 0


@dataclass
class FakeGenerator:
    """One token per active job per `iterate()`; a job ends on EOS (stop token) or at max_new_tokens."""

    batch: int = 4
    hold_first: bool = False  # emulate exllamav2 holding a token back (incomplete UTF-8) until the next one
    delay: float = 0.0  # seconds per iterate(), like a forward pass
    pending: list[FakeJob] = field(default_factory=list)
    active: list[FakeJob] = field(default_factory=list)
    cancelled: list[FakeJob] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    held: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gate.set()

    def enqueue(self, job: FakeJob) -> None:
        self.pending.append(job)

    def cancel(self, job: FakeJob) -> None:
        self.cancelled.append(job)
        for queue in (self.pending, self.active):
            if job in queue:
                queue.remove(job)

    def iterate(self) -> list[dict[str, Any]]:
        self.gate.wait()
        time.sleep(self.delay)
        while self.pending and len(self.active) < self.batch:
            self.active.append(self.pending.pop(0))
        results = []
        for job in list(self.active):
            token = job.script[job.new_tokens]
            job.new_tokens += 1
            held = self.held.setdefault(id(job), [])
            held.append(token)
            result: dict[str, Any] = {"job": job, "stage": "streaming", "eos": False, "identifier": job.identifier}
            if token == EOS:
                result.update(eos=True, eos_reason="stop_token", held={"token_ids": torch.tensor([held])})
                if job.return_logits:
                    result["held"]["logits"] = logits_for(held)
            elif job.new_tokens >= job.max_new_tokens:
                result.update(eos=True, eos_reason="max_new_tokens", token_ids=torch.tensor([held]))
                if job.return_logits:
                    result["logits"] = logits_for(held)
            elif self.hold_first and len(held) == 1 and job.new_tokens == 1:
                pass  # held back: nothing streamed yet
            else:
                result["token_ids"] = torch.tensor([held])
                if job.return_logits:
                    result["logits"] = logits_for(held)
            if "token_ids" in result or result["eos"]:
                self.held[id(job)] = []
            results.append(result)
            if result["eos"]:
                self.active.remove(job)
        return results


def logits_for(tokens: list[int]) -> Any:
    """Logits favouring each token by 3 nats over a flat rest."""
    rows = torch.zeros((1, len(tokens), VOCAB + 16))  # padded like exllamav2's logits
    rows[:, :, VOCAB:] = -math.inf
    for position, token in enumerate(tokens):
        rows[0, position, token] = 3.0
    return rows


SCRIPTS = {0: [5, 6, 7, 8, 9, 10], 1: [11, 12, EOS], 2: [3, 4, 5, 6, 7, 8]}
LONG_SCRIPT = [3, 4, 5, 6, 7, 8, 9, 10] * 500


def make_job(spec: BackendJob, choice: int, identifier: object) -> FakeJob:
    script = LONG_SCRIPT if spec.request_id == "long" else SCRIPTS[choice]
    return FakeJob(spec.prompt_tokens, spec.max_new_tokens, script, identifier, spec.top_logprobs is not None)


@pytest.fixture()
def generator() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture()
def scheduler(generator: FakeGenerator) -> Iterator[Scheduler]:
    running = Scheduler(generator, make_job, slots=4, vocab_size=VOCAB, max_queue=2, queue_timeout=0.3)
    yield running
    generator.gate.set()
    running.close()


def spec(n: int = 1, max_new_tokens: int = 4, top_logprobs: int | None = None, request_id: str = "r") -> BackendJob:
    return BackendJob(request_id, (1, 5, 9), SamplingParams(temperature=0.0), max_new_tokens, n, top_logprobs)


async def collect(stream) -> list[object]:
    await stream.started()
    return [event async for event in stream]


async def test_tokens_then_length(scheduler: Scheduler) -> None:
    events = await collect(scheduler.submit(spec(max_new_tokens=4)))
    assert events == [*(SampledToken(0, token) for token in (5, 6, 7, 8)), SequenceFinished(0, "length")]


async def test_n_choices_end_independently_and_eos_is_not_output(scheduler: Scheduler) -> None:
    events = await collect(scheduler.submit(spec(n=3, max_new_tokens=5)))
    by_choice = {choice: [e for e in events if e.choice == choice] for choice in range(3)}
    assert by_choice[1] == [SampledToken(1, 11), SampledToken(1, 12), SequenceFinished(1, "eog")]
    assert by_choice[2][-1] == SequenceFinished(2, "length") and len(by_choice[2]) == 6
    assert scheduler.stats().extra["tokens_generated"] == 5 + 2 + 5


async def test_tokens_held_back_at_a_stop_token_are_still_output(generator: FakeGenerator) -> None:
    generator.hold_first = True
    running = Scheduler(generator, make_job, slots=4, vocab_size=VOCAB)
    try:
        events = await collect(running.submit(spec(n=2, max_new_tokens=5)))
    finally:
        running.close()
    assert [e for e in events if e.choice == 1] == [SampledToken(1, 11), SampledToken(1, 12), SequenceFinished(1, "eog")]


async def test_logprobs_come_from_the_logits(scheduler: Scheduler) -> None:
    events = await collect(scheduler.submit(spec(max_new_tokens=2, top_logprobs=2)))
    first = events[0]
    expected = 3.0 - math.log(math.exp(3.0) + VOCAB - 1)
    assert first.token_id == 5 and first.logprob == pytest.approx(expected)
    assert first.top_logprobs[0] == (5, pytest.approx(expected)) and len(first.top_logprobs) == 2


async def test_stop_choice_and_cancel_use_generator_cancel(scheduler: Scheduler, generator: FakeGenerator) -> None:
    generator.gate.clear()
    stream = scheduler.submit(spec(n=2, max_new_tokens=6))
    await stream.started()
    stream.stop_choice(0)
    generator.gate.set()
    events = [event async for event in stream]
    assert [job.script for job in generator.cancelled] == [SCRIPTS[0]]
    assert all(e.choice == 1 for e in events[1:])

    generator.gate.clear()
    other = scheduler.submit(spec(max_new_tokens=6))
    await other.started()
    other.cancel()
    generator.gate.set()
    await asyncio.wait_for(collect(other), 5)
    assert len(generator.cancelled) == 2
    assert scheduler.stats().slots_busy == 0


async def test_too_many_choices_and_a_full_queue_are_refused(scheduler: Scheduler, generator: FakeGenerator) -> None:
    with pytest.raises(InvalidRequest, match="n=5 needs 5 parallel sequences"):
        scheduler.submit(spec(n=5))
    generator.delay = 0.002
    busy = scheduler.submit(spec(n=4, max_new_tokens=3000, request_id="long"))
    await busy.started()
    waiting = [scheduler.submit(spec()), scheduler.submit(spec())]
    with pytest.raises(Overloaded, match="already waiting"):
        scheduler.submit(spec())
    for stream in waiting:
        with pytest.raises(Overloaded, match="no free sequence within 0.3 s"):
            await asyncio.wait_for(stream.started(), 5)
    busy.cancel()
    await asyncio.wait_for(collect(busy), 5)
    assert scheduler.stats().slots_busy == 0
