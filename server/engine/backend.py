"""The contract between the engine and a model backend (llama.cpp, ExLlamaV2).

A backend turns a `BackendJob` (prompt token ids, sampling, a token budget, n choices) into a stream of
`SampledToken`s per choice, ending each choice with `SequenceFinished` (end-of-generation token or budget) or
`SequenceFailed`. Text, stop strings, logprob formatting and usage are the engine's business, so every backend
gets them right the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from codebooga.server.engine.types import BackendEvent, BackendJob, BackendStats, Grammar, ModelInfo


class JobStream(Protocol):
    """The running job: iterate for events; the stream ends once every choice has ended."""

    def __aiter__(self) -> AsyncIterator[BackendEvent]: ...

    async def started(self) -> None:
        """Wait until the job holds its sequences. Raises `Overloaded` if it waited past the queue timeout."""

    def stop_choice(self, choice: int) -> None:
        """End one choice early (the engine found a stop string); frees its sequence."""

    def cancel(self) -> None:
        """End every choice (the client went away). Safe to call more than once or after the end."""


class Backend(Protocol):
    @property
    def info(self) -> ModelInfo: ...

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """Token ids for `text`; special-token markup in the text is parsed; BOS added if the model wants it."""

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes a token stands for (may be part of a UTF-8 character); b"" for control tokens."""

    def check_grammar(self, grammar: Grammar) -> None:
        """Raise `InvalidRequest` unless this backend can generate under `grammar` (it parses, it is supported)."""

    def submit(self, job: BackendJob) -> JobStream:
        """Queue a job. Raises `InvalidRequest` when it can never run, `Overloaded` when the queue is full."""

    def stats(self) -> BackendStats: ...

    @property
    def alive(self) -> bool:
        """Whether jobs can still run (the compute thread is up and the backend not closed)."""

    def close(self) -> None:
        """Stop generating and free the model."""
