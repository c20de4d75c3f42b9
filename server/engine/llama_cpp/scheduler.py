"""The decode loop: one thread batches every running sequence into each `llama_decode` call.

Each step carries one decode token for every sequence that is generating plus a chunk of prompt tokens for
sequences still prefilling (so a long prompt never freezes the streams around it), then picks each sequence's
next token (an argmax for plain greedy requests, else its own native sampler chain). Jobs join at the next step
and leave when done; a waiting job starts when a slot frees, least prompt work first (`admission`). Slots keep
their tokens after a job ends; a new job's slot is chosen by `slot_policy`, and its prompt's longest known
prefix is loaded rather than recomputed: from the slot itself, copied from another slot (a shared system
prompt), or restored from the host-memory `PromptCache`, where a slot's state is saved before it is overwritten
(`--cache-dir` keeps that cache across restarts: written at close, read at start). A job with n choices
prefills its prompt once and copies that KV to its other slots.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import llama_cpp as llama
import numpy as np

from codebooga.server.engine.job_loop import JobLoop
from codebooga.server.engine.job_queue import WaitingQueue
from codebooga.server.engine.job_stream import ThreadedJobStream
from codebooga.server.engine.llama_cpp.admission import count_overtaking, next_to_start
from codebooga.server.engine.llama_cpp.model import LlamaCppModel
from codebooga.server.engine.llama_cpp.prompt_cache import PromptCache
from codebooga.server.engine.llama_cpp.prompt_cache_files import read_states, write_states
from codebooga.server.engine.llama_cpp.sampling import NativeGrammar, TokenPicker, new_token_picker, token_logprobs
from codebooga.server.engine.llama_cpp.slot_policy import Slot, pick_slot, shared_prefixes, spare_slots
from codebooga.server.engine.metrics import ThroughputMeter
from codebooga.server.engine.types import (
    BackendEvent,
    BackendJob,
    BackendStats,
    SampledToken,
    SequenceFailed,
    SequenceFinished,
)

log = logging.getLogger("codebooga.scheduler")

MIN_CACHED_TOKENS = 32
"""A slot's state is saved to the prompt cache only when it would lose at least this many tokens, and restored
only when that saves decoding at least this many: below it the copy costs about what it saves."""


@dataclass
class _Sequence:
    choice: int
    slot: Slot
    sampler: TokenPicker
    prompt_todo: list[int] = field(default_factory=list)
    next_token: int | None = None
    generated: int = 0
    ended: bool = False


@dataclass
class _Job:
    stream: ThreadedJobStream
    sequences: list[_Sequence]
    outbox: list[object] = field(default_factory=list)
    overtaken: int = 0
    """While waiting: how many later jobs started before it (`admission`)."""
    prompt_work: int | None = None
    """While waiting: prompt tokens it would decode, found the first time a slot was idle for it."""

    @property
    def spec(self) -> BackendJob:
        return self.stream.spec

    @property
    def choices(self) -> int:
        return self.spec.n

    @property
    def ended(self) -> bool:
        return all(sequence.ended for sequence in self.sequences)


@dataclass
class _SamplePoint:
    """A batch token whose logits pick a sequence's next token: its index in the batch and its logits row."""

    job: _Job
    sequence: _Sequence
    batch_index: int
    output_row: int


class Scheduler(JobLoop[_Job]):
    """Owns the llama.cpp context from its own thread; everything else talks to it through `submit`."""

    def __init__(
        self,
        model: LlamaCppModel,
        max_queue: int = 64,
        queue_timeout: float = 60.0,
        prompt_cache_bytes: int = 0,
        prompt_cache_folder: Path | None = None,
    ) -> None:
        self._model = model
        self._slots = [Slot(seq_id) for seq_id in range(model.n_parallel)]
        self._jobs_started = 0
        self._prompt_cache = PromptCache(prompt_cache_bytes)
        self._prompt_cache_folder = prompt_cache_folder if self._prompt_cache.enabled else None
        if self._prompt_cache_folder is not None:
            for tokens, buffer, size in read_states(self._prompt_cache_folder, prompt_cache_bytes):
                self._prompt_cache.put(tokens, buffer, size)
            stats = self._prompt_cache.stats()
            mib = stats.bytes / 2**20
            log.info("prompt cache: %d states (%.0f MiB) read from %s", stats.entries, mib, prompt_cache_folder)
        self._batch = llama.llama_batch_init(model.n_batch, 0, 1)
        self.tokens_generated = 0
        self.prompt_tokens_decoded = 0
        self.prompt_tokens_reused = 0
        self._throughput = ThroughputMeter()
        queue: WaitingQueue[_Job] = WaitingQueue(model.n_parallel, max_queue, queue_timeout)
        super().__init__(queue, thread_name="codebooga-decode", loop_name="decode loop")

    # --- called from the event loop ------------------------------------------------------------------------

    def submit(self, spec: BackendJob) -> ThreadedJobStream:
        return self._queue.submit(spec, lambda stream: _Job(stream, []))

    def stats(self) -> BackendStats:
        busy = sum(slot.busy for slot in self._slots)
        return BackendStats(
            slots_total=len(self._slots),
            slots_busy=busy,
            queue_depth=len(self._queue),
            extra={
                "tokens_per_second": self._throughput.rate(),
                "tokens_generated": self.tokens_generated,
                "prompt_tokens_decoded": self.prompt_tokens_decoded,
                "prompt_tokens_reused": self.prompt_tokens_reused,
                "kv_bytes_per_slot": self._model.kv_bytes_per_sequence,
                "requests_running": len(self._running),
                # cells held by running sequences: an idle slot's kept prefix is evicted whenever a job needs it
                "kv_cells_used": sum(len(slot.tokens) for slot in self._slots if slot.busy),
                "kv_cells_total": self._model.n_ctx_per_seq * len(self._slots),
                **{f"prompt_cache_{name}": value for name, value in asdict(self._prompt_cache.stats()).items()},
            },
        )

    def close(self) -> None:
        super().close()
        for job in self._running:
            for sequence in job.sequences:
                sequence.sampler.free()
        if self._prompt_cache_folder is not None:
            self._write_prompt_cache(self._prompt_cache_folder)
        llama.llama_batch_free(self._batch)

    def _write_prompt_cache(self, folder: Path) -> None:
        """With the decode thread stopped: every slot's prompt joins the cache, and the cache goes to disk."""
        for slot in self._slots:
            self._save(slot, keep=0)
        try:
            written = write_states(folder, self._prompt_cache.entries())
        except OSError as error:
            log.warning("prompt cache: could not write to %s (%s)", folder, error.strerror or error)
            return
        log.info("prompt cache: %d states written to %s", written, folder)

    # --- the decode thread ---------------------------------------------------------------------------------

    def _admit(self) -> None:
        """Start waiting jobs while slots are idle, least prompt work first within `admission`'s bound on
        overtaking (caller holds the queue's lock)."""
        self._queue.prune()
        waiting = self._queue.jobs
        while waiting:
            idle = [slot for slot in self._slots if not slot.busy]
            if not idle:
                return
            job = next_to_start(waiting, len(idle), self._prompt_work)
            if job is None:
                return
            count_overtaking(waiting, job)
            waiting.remove(job)
            self._start(job)
            self._running.append(job)
            job.stream.mark_started()

    def _prompt_work(self, job: _Job) -> int:
        """Prompt tokens `job` would decode if it started now: its prompt less the longest prefix a slot or the
        prompt cache holds. Found once per job (the cache may change while it waits; the order only needs an
        estimate, and `_start` finds the prefix afresh)."""
        if job.prompt_work is None:
            prompt = job.spec.prompt_tokens
            known = max(shared_prefixes(self._slots, prompt).values(), default=0)
            if self._prompt_cache.enabled:
                _, cached = self._prompt_cache.longest_prefix(np.asarray(prompt, dtype=np.int32))
                known = max(known, cached)
            job.prompt_work = len(prompt) - known
        return job.prompt_work

    def _start(self, job: _Job) -> None:
        spec = job.spec
        prompt = spec.prompt_tokens
        self._jobs_started += 1
        shared = shared_prefixes(self._slots, prompt)
        cached = self._prompt_cache.enabled
        primary = pick_slot(self._slots, len(prompt), shared, overwritten_is_cached=cached)
        slots = [primary, *spare_slots(self._slots, primary, spec.n - 1, overwritten_is_cached=cached)]
        for slot in slots:
            slot.last_used = self._jobs_started
        for spare in slots[1:]:  # overwritten by the primary's prompt once it is decoded
            self._save(spare, keep=0)
        reused = min(self._load_prefix(primary, prompt, shared), len(prompt) - 1)
        llama.llama_memory_seq_rm(self._model.memory, primary.seq_id, reused, -1)
        del primary.tokens[reused:]
        self.prompt_tokens_reused += reused
        sampling = spec.sampling
        history = prompt[-sampling.penalty_last_n :] if sampling.has_penalties and sampling.penalty_last_n > 0 else ()
        grammar = NativeGrammar(self._model.vocab, spec.grammar) if spec.grammar is not None else None
        for choice, slot in enumerate(slots):
            slot.busy = True
            sampler = new_token_picker(sampling, self._model.n_vocab, seed_offset=choice, grammar=grammar)
            for token in history:
                sampler.accept(token)
            job.sequences.append(_Sequence(choice, slot, sampler))
        job.sequences[0].prompt_todo = list(prompt[reused:])

    def _load_prefix(self, slot: Slot, prompt: tuple[int, ...], shared: dict[int, int]) -> int:
        """Give `slot` the longest prefix of `prompt` known anywhere: its own tokens, another slot's (copied),
        or a saved state; returns that prefix's length. Whatever the slot held beyond it is saved first.
        `shared` is each slot's prefix length (`shared_prefixes`)."""
        own = shared[slot.seq_id]
        donor = max(self._slots, key=lambda other: shared[other.seq_id])
        from_donor = shared[donor.seq_id]
        cache_key, from_cache = (
            self._prompt_cache.longest_prefix(np.asarray(prompt, dtype=np.int32))
            if self._prompt_cache.enabled
            else (-1, 0)
        )
        if from_cache >= max(own, from_donor) + MIN_CACHED_TOKENS:
            self._save(slot, keep=0)
            if self._restore(slot, cache_key, from_cache):
                return from_cache
            own = 0
        elif self._prompt_cache.enabled and len(prompt) - max(own, from_donor) >= MIN_CACHED_TOKENS:
            self._prompt_cache.miss()
        if from_donor > own:
            # A memory copy beats recomputing. llama.cpp copies whole streams; the caller trims the tail.
            self._save(slot, keep=0)
            llama.llama_memory_seq_rm(self._model.memory, slot.seq_id, -1, -1)
            llama.llama_memory_seq_cp(self._model.memory, donor.seq_id, slot.seq_id, -1, -1)
            slot.tokens = list(donor.tokens)
            return from_donor
        self._save(slot, keep=own)
        return own

    def _save(self, slot: Slot, keep: int) -> None:
        """Save the slot's sequence state to the prompt cache if it is about to lose all but `keep` tokens and
        that loss is worth keeping."""
        if not self._prompt_cache.enabled or len(slot.tokens) - keep < MIN_CACHED_TOKENS:
            return
        context = self._model.context
        size = llama.llama_state_seq_get_size(context, slot.seq_id)
        if size > self._prompt_cache.budget_bytes:
            return
        buffer = self._prompt_cache.buffer(size)
        written = llama.llama_state_seq_get_data(context, (ctypes.c_uint8 * size).from_buffer(buffer), size, slot.seq_id)
        if written != size:
            log.warning("could not save slot %d's prompt state (%d of %d bytes)", slot.seq_id, written, size)
            self._prompt_cache.recycle(buffer)
            return
        self._prompt_cache.put(np.asarray(slot.tokens, dtype=np.int32), buffer, size)

    def _restore(self, slot: Slot, key: int, used_tokens: int) -> bool:
        entry = self._prompt_cache.take(key, used_tokens)
        memory = self._model.memory
        llama.llama_memory_seq_rm(memory, slot.seq_id, -1, -1)
        restored = llama.llama_state_seq_set_data(
            self._model.context, (ctypes.c_uint8 * entry.size).from_buffer(entry.buffer), entry.size, slot.seq_id
        )
        self._prompt_cache.recycle(entry.buffer)
        if restored != entry.size:
            log.warning("could not restore a cached prompt state into slot %d; decoding the prompt", slot.seq_id)
            llama.llama_memory_seq_rm(memory, slot.seq_id, -1, -1)
            slot.tokens = []
            return False
        slot.tokens = entry.tokens.tolist()
        return True

    def _step(self) -> None:
        self._retire_cancelled()
        if not self._running:
            return
        batch = self._batch
        count = 0
        outputs = 0
        sample_points: list[_SamplePoint] = []

        def add(token: int, job: _Job, sequence: _Sequence, wants_logits: bool) -> None:
            nonlocal count, outputs
            if wants_logits:
                sample_points.append(_SamplePoint(job, sequence, count, outputs))
                outputs += 1
            batch.token[count] = token
            batch.pos[count] = len(sequence.slot.tokens)
            batch.n_seq_id[count] = 1
            batch.seq_id[count][0] = sequence.slot.seq_id
            batch.logits[count] = wants_logits
            sequence.slot.tokens.append(token)
            count += 1

        generating = [
            (job, sequence)
            for job in self._running
            for sequence in job.sequences
            if not sequence.ended and sequence.next_token is not None
        ]
        # Shortest remaining prompt first: a follow-up whose conversation was restored from the cache has a few
        # dozen tokens left and gets its first token next, instead of waiting behind another user's whole file.
        # A long prompt loses one step to each shorter one admitted beside it, and a slot frees for a new one
        # only when an answer ends, so it is never starved.
        prefilling = sorted(
            (job for job in self._running if not job.sequences[0].ended and job.sequences[0].prompt_todo),
            key=lambda job: len(job.sequences[0].prompt_todo),
        )
        # A step that ends a prompt (the shortest, if any) carries that prompt's tokens only: its first token then
        # waits for its own prompt, not also for every other stream's next token (one more graph run, ~40 ms at 4
        # streams on 2 cores), nor for a second prompt ending beside it (two 22-token follow-ups at a 2k context
        # took 506 ms together, ~250 ms each alone). The other streams lose only that step. A long prompt's
        # earlier chunks share their steps with the decode tokens, so no stream freezes behind it; each job's
        # prompt holds the streams back once, at its end.
        prompt_ends = bool(prefilling) and len(prefilling[0].sequences[0].prompt_todo) <= self._model.n_batch
        if prompt_ends:
            del prefilling[1:]
        # Each sequence's tokens for this step: (job, sequence, tokens, whether its last token is sampled from).
        segments: list[tuple[_Job, _Sequence, list[int], bool]] = []
        if not prompt_ends:
            for job, sequence in generating:
                segments.append((job, sequence, [sequence.next_token], True))
                sequence.next_token = None
        budget = self._model.n_batch - len(segments)
        for job in prefilling:
            if budget <= 0:
                break
            primary = job.sequences[0]
            chunk, primary.prompt_todo = primary.prompt_todo[:budget], primary.prompt_todo[budget:]
            segments.append((job, primary, chunk, not primary.prompt_todo))
            budget -= len(chunk)
            self.prompt_tokens_decoded += len(chunk)
        # Segments go in KV-stream (sequence id) order. With a KV stream per sequence, llama.cpp splits a batch
        # into ubatches of sequences with consecutive ids, one graph run each: decode tokens out of order made 8
        # streams up to 35% slower, and a prompt chunk placed after the decode tokens split them once more
        # wherever its sequence sat between two generating ones.
        segments.sort(key=lambda segment: segment[1].slot.seq_id)
        for job, sequence, tokens, sampled in segments:
            last = len(tokens) - 1
            for position, token in enumerate(tokens):
                add(token, job, sequence, sampled and position == last)
        if count == 0:
            self._flush_outboxes()
            return
        batch.n_tokens = count
        # The previous step's tokens go out now, the last thing before the GIL is released for the decode: the
        # event loop wakes and writes them to the clients while llama.cpp computes, instead of contending for
        # the GIL with the batch building above.
        self._flush_outboxes()
        status = llama.llama_decode(self._model.context, batch)
        if status != 0:
            self._fail_batch(status)
            return
        logits = self._model.output_logits(outputs)
        generated_before = self.tokens_generated
        for point in sample_points:
            job, sequence = point.job, point.sequence
            if sequence.generated == 0 and sequence.choice == 0 and len(job.sequences) > 1:
                self._fork_prompt(job)
                for sibling in job.sequences:
                    self._sample(job, sibling, point.batch_index, logits[point.output_row])
            else:
                self._sample(job, sequence, point.batch_index, logits[point.output_row])
        self._throughput.add(self.tokens_generated - generated_before)

    def _fork_prompt(self, job: _Job) -> None:
        """Share the primary's freshly decoded prompt KV with the job's other choices."""
        primary = job.sequences[0]
        for sibling in job.sequences[1:]:
            if sibling.ended:
                continue
            llama.llama_memory_seq_rm(self._model.memory, sibling.slot.seq_id, -1, -1)
            llama.llama_memory_seq_cp(self._model.memory, primary.slot.seq_id, sibling.slot.seq_id, -1, -1)
            sibling.slot.tokens = list(primary.slot.tokens)

    def _sample(self, job: _Job, sequence: _Sequence, batch_index: int, logits: np.ndarray) -> None:
        if sequence.ended:
            return
        model = self._model
        token = sequence.sampler.pick(model.context, batch_index, logits)
        if model.is_end_of_generation(token):
            self._end(job, sequence, SequenceFinished(sequence.choice, "eog"))
            return
        sequence.generated += 1
        self.tokens_generated += 1
        top_logprobs = job.spec.top_logprobs
        if top_logprobs is None:
            job.outbox.append(SampledToken(sequence.choice, token))
        else:
            logprob, top = token_logprobs(logits, token, top_logprobs)
            job.outbox.append(SampledToken(sequence.choice, token, logprob, top))
        if sequence.generated >= job.spec.max_new_tokens:
            self._end(job, sequence, SequenceFinished(sequence.choice, "length"))
        else:
            sequence.next_token = token

    def _retire_cancelled(self) -> None:
        for job in self._running:
            for sequence in job.sequences:
                if not sequence.ended and (
                    job.stream.cancelled or sequence.choice in job.stream.stopped_choices
                ):
                    self._end(job, sequence, None)

    def _end(self, job: _Job, sequence: _Sequence, event: BackendEvent | None) -> None:
        sequence.ended = True
        sequence.slot.busy = False
        sequence.sampler.free()
        if event is not None:
            job.outbox.append(event)

    def _fail_batch(self, status: int) -> None:
        reason = "no free KV cache slot" if status == 1 else f"llama_decode failed with status {status}"
        log.error("decode failed (%s); failing %d running requests", reason, len(self._running))
        for job in self._running:
            self._fail_job(job, reason)

    def _fail_job(self, job: _Job, reason: str) -> None:
        for sequence in job.sequences:
            if not sequence.ended:
                llama.llama_memory_seq_rm(self._model.memory, sequence.slot.seq_id, -1, -1)
                sequence.slot.tokens.clear()
                self._end(job, sequence, SequenceFailed(sequence.choice, reason))
