"""The generator loop: one thread owns exllamav2's dynamic generator and bridges it to asyncio.

Each `BackendJob` choice becomes one `ExLlamaV2DynamicJob` (identifier `(job, choice)`); the generator batches them
(continuous batching, prefix-page reuse). A job is admitted, strictly first come first served, once enough of the
`slots` (the generator's batch size) are free, so `started()` means the sequences are reserved and the queue
timeout works as with llama.cpp. Stop strings, cancellation and hang-ups end a choice with `generator.cancel`, from
this thread only (the generator is not thread-safe). Stop strings are the engine's business: the generator only
gets the end-of-generation token ids as stop conditions.

The job factory is injected, so this module imports neither exllamav2 nor torch at import time and the loop is
tested on CPU against a generator that follows exllamav2's documented `iterate()` result protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from codebooga.server.engine.job_loop import JobLoop
from codebooga.server.engine.job_queue import WaitingQueue
from codebooga.server.engine.job_stream import ThreadedJobStream
from codebooga.server.engine.metrics import ThroughputMeter
from codebooga.server.engine.types import BackendEvent, BackendJob, BackendStats, SampledToken, SequenceFailed, SequenceFinished

log = logging.getLogger("codebooga.exllamav2")


class Generator(Protocol):
    """The part of `ExLlamaV2DynamicGenerator` the loop uses."""

    def enqueue(self, job: Any) -> Any: ...

    def iterate(self) -> list[dict[str, Any]]: ...

    def cancel(self, job: Any) -> None: ...


JobFactory = Callable[[BackendJob, int, object], Any]
"""(spec, choice, identifier) → an `ExLlamaV2DynamicJob` for that choice."""


@dataclass
class _Choice:
    index: int
    handle: Any
    ended: bool = False


@dataclass
class _Job:
    stream: ThreadedJobStream
    choices: list[_Choice] = field(default_factory=list)
    outbox: list[object] = field(default_factory=list)

    @property
    def spec(self) -> BackendJob:
        return self.stream.spec

    @property
    def ended(self) -> bool:
        return all(choice.ended for choice in self.choices)


def token_logprobs(logits: Any, token_id: int, top_n: int, vocab_size: int) -> tuple[float, tuple[tuple[int, float], ...]]:
    """The chosen token's log-probability and the `top_n` most likely tokens, best first, from one logits row.

    exllamav2 returns the logits the sampler saw: after repetition penalties and logit bias (applied in place),
    before temperature and truncation.
    """
    import torch

    row = logits.reshape(-1)[:vocab_size].to(torch.float64)
    logprobs = torch.log_softmax(row, dim=-1)
    chosen = float(logprobs[token_id])
    if top_n <= 0:
        return chosen, ()
    values, indices = torch.topk(logprobs, min(top_n, vocab_size))
    return chosen, tuple((int(index), float(value)) for index, value in zip(indices.tolist(), values.tolist()))


def result_events(result: dict[str, Any], choice: int, top_logprobs: int | None, vocab_size: int) -> list[BackendEvent]:
    """Backend events for one `iterate()` result of a streaming job.

    Tokens come from `token_ids`; when the job ends on a stop token (end of generation) the tokens it still held
    back (an incomplete UTF-8 character) are under `held`, with the stop token itself last, which is not output.
    """
    if result.get("stage") != "streaming":
        return []
    ids = _ids(result.get("token_ids"))
    logits = result.get("logits")
    reason = result.get("eos_reason") if result.get("eos") else None
    if reason == "stop_token":
        held = result.get("held", {})
        ids = _ids(held.get("token_ids"))[:-1]
        logits = held.get("logits")
    events: list[BackendEvent] = []
    for position, token in enumerate(ids):
        if top_logprobs is None or logits is None:
            events.append(SampledToken(choice, token))
        else:
            logprob, top = token_logprobs(logits[0, position], token, top_logprobs, vocab_size)
            events.append(SampledToken(choice, token, logprob, top))
    if reason is not None:
        events.append(SequenceFinished(choice, "length" if reason == "max_new_tokens" else "eog"))
    return events


def _ids(tensor: Any) -> list[int]:
    return [] if tensor is None else [int(token) for token in tensor.reshape(-1).tolist()]


class Scheduler(JobLoop[_Job]):
    """Owns the generator from its own thread; everything else talks to it through `submit`."""

    def __init__(
        self,
        generator: Generator,
        make_job: JobFactory,
        *,
        slots: int,
        vocab_size: int,
        max_queue: int = 64,
        queue_timeout: float = 60.0,
    ) -> None:
        self._generator = generator
        self._make_job = make_job
        self._slots = slots
        self._vocab_size = vocab_size
        self.tokens_generated = 0
        self.prompt_tokens = 0
        self.prompt_tokens_reused = 0
        self._throughput = ThroughputMeter()
        queue: WaitingQueue[_Job] = WaitingQueue(
            slots, max_queue, queue_timeout, parallel_hint="; more than 1 needs flash-attn"
        )
        super().__init__(queue, thread_name="codebooga-exl2", loop_name="generator loop")

    # --- called from the event loop ------------------------------------------------------------------------

    def submit(self, spec: BackendJob) -> ThreadedJobStream:
        return self._queue.submit(spec, _Job)

    def stats(self) -> BackendStats:
        return BackendStats(
            slots_total=self._slots,
            slots_busy=self._busy(),
            queue_depth=len(self._queue),
            extra={
                "tokens_per_second": self._throughput.rate(),
                "tokens_generated": self.tokens_generated,
                "prompt_tokens": self.prompt_tokens,
                "prompt_tokens_reused": self.prompt_tokens_reused,
            },
        )

    # --- the generator thread ------------------------------------------------------------------------------

    def _busy(self) -> int:
        return sum(not choice.ended for job in list(self._running) for choice in job.choices)

    def _step(self) -> None:
        self._retire_cancelled()
        self._flush_outboxes()
        if self._running:
            self._handle(self._generator.iterate())

    def _admit(self) -> None:
        """Start waiting jobs, oldest first, while enough slots are free (caller holds the queue's lock).
        Strict FIFO: a big-n job at the head is never overtaken and starved."""
        self._queue.prune()
        waiting = self._queue.jobs
        while waiting and self._slots - self._busy() >= waiting[0].spec.n:
            job = waiting.popleft()
            try:
                for index in range(job.spec.n):
                    handle = self._make_job(job.spec, index, (job, index))
                    self._generator.enqueue(handle)
                    job.choices.append(_Choice(index, handle))
            except Exception as error:
                log.exception("could not start a generator job")
                for choice in job.choices:
                    self._generator.cancel(choice.handle)
                job.choices = [_Choice(index, None, ended=True) for index in range(job.spec.n)]
                job.outbox.extend(SequenceFailed(index, f"could not start generation: {error}") for index in range(job.spec.n))
            self._running.append(job)
            job.stream.mark_started()

    def _handle(self, results: list[dict[str, Any]]) -> None:
        for result in results:
            identifier = result.get("identifier")
            if not isinstance(identifier, tuple):
                continue
            job, index = identifier
            choice = job.choices[index]
            if choice.ended:
                continue
            events = result_events(result, index, job.spec.top_logprobs, self._vocab_size)
            sampled = sum(isinstance(event, SampledToken) for event in events)
            self.tokens_generated += sampled
            if sampled:
                self._throughput.add(sampled)
            job.outbox.extend(events)
            if result.get("eos"):
                choice.ended = True
                self.prompt_tokens += int(result.get("prompt_tokens", 0))
                self.prompt_tokens_reused += int(result.get("cached_tokens", 0))

    def _retire_cancelled(self) -> None:
        for job in self._running:
            for choice in job.choices:
                if not choice.ended and (job.stream.cancelled or choice.index in job.stream.stopped_choices):
                    self._generator.cancel(choice.handle)
                    choice.ended = True

    def _fail_job(self, job: _Job, reason: str) -> None:
        for choice in job.choices:
            if not choice.ended:
                try:
                    self._generator.cancel(choice.handle)
                except Exception:
                    log.exception("could not cancel a failed generator job")
                choice.ended = True
                job.outbox.append(SequenceFailed(choice.index, reason))
