"""The compute-thread skeleton both backends share: wait for work, admit waiting jobs, run one step, hand events on.

A backend's scheduler subclasses `JobLoop` and supplies what differs: how waiting jobs get sequences (`_admit`),
what one step computes (`_step`, a llama.cpp decode or an exllamav2 `iterate()`), and how a job's sequences are
failed (`_fail_job`). Jobs collect their events in an outbox during a step; `_flush_outboxes` hands every job's
events to the event loop with one wake-up. A step flushes as the last thing before its compute call (the woken
event loop then works while the backend computes, not while the step's Python contends for the GIL); the loop
itself flushes only once nothing is running, so the last events of the last jobs never wait.
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, Protocol, TypeVar

from codebooga.server.engine.job_queue import WaitingQueue
from codebooga.server.engine.job_stream import END_OF_JOB, ThreadedJobStream, deliver_all

log = logging.getLogger("codebooga.engine")


class LoopJob(Protocol):
    stream: ThreadedJobStream
    outbox: list[object]

    @property
    def ended(self) -> bool:
        """Every choice of the job has ended."""
        ...


JobT = TypeVar("JobT", bound=LoopJob)


class JobLoop(Generic[JobT]):
    """Owns the compute thread. Subclasses set up their own state first and call `__init__` last: it starts the
    thread."""

    def __init__(self, queue: WaitingQueue[JobT], thread_name: str, loop_name: str) -> None:
        self._queue = queue
        self._loop_name = loop_name  # for messages: "internal error in the decode loop"
        self._running: list[JobT] = []
        self._finished: list[JobT] = []
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the compute thread still runs: without it no job ever starts (health checks read this)."""
        return self._thread.is_alive() and not self._closing

    def close(self) -> None:
        """Stop the thread after its current step; every job still running or waiting gets its end marker."""
        with self._queue.condition:
            self._closing = True
            self._queue.condition.notify()
        self._thread.join()
        for job in self._running + list(self._queue.jobs):
            job.stream.deliver([END_OF_JOB])

    # --- what a backend supplies ---------------------------------------------------------------------------

    def _admit(self) -> None:
        """Start waiting jobs while enough sequences are free (the caller holds the queue's lock)."""
        raise NotImplementedError

    def _step(self) -> None:
        """One round of compute for the running jobs; calls `_flush_outboxes` just before the compute call."""
        raise NotImplementedError

    def _fail_job(self, job: JobT, reason: str) -> None:
        """End every sequence of `job` still running with a failure event saying `reason`."""
        raise NotImplementedError

    # --- the thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._queue.condition:
                while not self._closing and not self._queue.jobs and not self._running:
                    self._queue.condition.wait()
                if self._closing:
                    return
                self._admit()
            try:
                self._step()
            except Exception:
                log.exception("a step of the %s failed; ending the running requests", self._loop_name)
                for job in self._running:
                    self._fail_job(job, f"internal error in the {self._loop_name}")
            self._drop_finished()
            if not self._running:
                self._flush_outboxes()

    def _drop_finished(self) -> None:
        """Move jobs whose every choice has ended out of the running set; their streams get the end marker."""
        running = []
        for job in self._running:
            if job.ended:
                job.outbox.append(END_OF_JOB)
                self._finished.append(job)
            else:
                running.append(job)
        self._running = running

    def _flush_outboxes(self) -> None:
        deliveries = []
        for job in [*self._running, *self._finished]:
            if job.outbox:
                deliveries.append((job.stream, job.outbox))
                job.outbox = []
        self._finished.clear()
        deliver_all(deliveries)
