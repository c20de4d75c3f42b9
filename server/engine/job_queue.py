"""The queue of jobs waiting for sequences, shared by a backend's request side and its compute thread.

Bounded (`max_waiting`; beyond it `submit` raises `Overloaded`), kept in arrival order (which job starts next is
the backend's choice: exllamav2 takes the oldest, llama.cpp the least prompt work, `llama_cpp/admission`), pruned
before each admission of jobs whose client went away and of jobs that waited longer than `timeout` (those get
`Overloaded` through their stream, so the client still sees a 503 rather than silence).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from codebooga.server.engine.errors import InvalidRequest, Overloaded
from codebooga.server.engine.job_stream import END_OF_JOB, ThreadedJobStream
from codebooga.server.engine.types import BackendJob


class _HasStream(Protocol):
    stream: ThreadedJobStream


JobT = TypeVar("JobT", bound=_HasStream)


class WaitingQueue(Generic[JobT]):
    def __init__(self, slots: int, max_waiting: int, timeout: float, parallel_hint: str = "") -> None:
        self.condition = threading.Condition()
        self.jobs: deque[JobT] = deque()
        self._slots = slots
        self._max_waiting = max_waiting
        self._timeout = timeout
        self._parallel_hint = parallel_hint

    def __len__(self) -> int:
        return len(self.jobs)

    def submit(self, spec: BackendJob, make_job: Callable[[ThreadedJobStream], JobT]) -> ThreadedJobStream:
        """Called from the event loop. Raises `InvalidRequest` when the job can never run, `Overloaded` when full."""
        if spec.n > self._slots:
            raise InvalidRequest(
                f"n={spec.n} needs {spec.n} parallel sequences but the server runs {self._slots} "
                f"(start it with a larger --parallel{self._parallel_hint})",
                param="n",
            )
        stream = ThreadedJobStream(spec, self.wake)
        with self.condition:
            if len(self.jobs) >= self._max_waiting:
                raise Overloaded(f"the server is busy: {len(self.jobs)} requests are already waiting (--max-queue)")
            self.jobs.append(make_job(stream))
            self.condition.notify()
        return stream

    def wake(self) -> None:
        with self.condition:
            self.condition.notify()

    def prune(self) -> None:
        """Drop cancelled jobs and fail expired ones (the caller holds `condition`)."""
        if not self.jobs:  # the decode loop asks at every step
            return
        now = time.monotonic()
        kept: deque[JobT] = deque()
        for job in self.jobs:
            if job.stream.cancelled:
                job.stream.deliver([END_OF_JOB])
            elif now - job.stream.enqueued_at > self._timeout:
                job.stream.mark_started(Overloaded(f"the server is busy: no free sequence within {self._timeout:g} s"))
                job.stream.deliver([END_OF_JOB])
            else:
                kept.append(job)
        self.jobs = kept
