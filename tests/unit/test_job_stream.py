"""A backend thread's events reach the asyncio reader in order, whether they arrive before or while it waits."""

from __future__ import annotations

import asyncio
import threading

from codebooga.server.engine.job_stream import END_OF_JOB, ThreadedJobStream, deliver_all
from codebooga.server.engine.types import BackendJob, SamplingParams, SampledToken


def _spec() -> BackendJob:
    return BackendJob(request_id="t", prompt_tokens=(1,), sampling=SamplingParams(), max_new_tokens=8)


def test_events_from_another_thread_arrive_in_order_and_end_the_iteration() -> None:
    async def run() -> list[int]:
        stream = ThreadedJobStream(_spec(), wake=lambda: None)
        stream.deliver([SampledToken(0, 1)])  # before the reader waits: buffered

        def backend() -> None:
            for token in range(2, 40, 3):
                deliver_all([(stream, [SampledToken(0, token), SampledToken(0, token + 1)])])
            stream.deliver([SampledToken(0, 99), END_OF_JOB])

        thread = threading.Thread(target=backend)
        thread.start()
        received = [event.token_id async for event in stream]
        thread.join()
        assert [event async for event in stream] == []  # the end stays the end
        return received

    received = asyncio.run(run())
    assert received == [1, *[t for token in range(2, 40, 3) for t in (token, token + 1)], 99]
