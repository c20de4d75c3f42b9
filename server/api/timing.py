"""Wall-clock phases of one generation, as Ollama and llama-server report them: the prompt is evaluated until
the first token arrives (time waiting for a free sequence included), the rest is generation."""

from __future__ import annotations

import time


class GenerationClock:
    """Started when the request arrives; `token()` at every generated piece, `end()` once it is over."""

    def __init__(self) -> None:
        self.started = time.perf_counter_ns()
        self._first_token: int | None = None
        self._ended: int | None = None

    def token(self) -> None:
        if self._first_token is None:
            self._first_token = time.perf_counter_ns()

    def end(self) -> None:
        self._ended = time.perf_counter_ns()

    @property
    def _end(self) -> int:
        return self._ended if self._ended is not None else time.perf_counter_ns()

    @property
    def prompt_ns(self) -> int:
        first = self._first_token if self._first_token is not None else self._end
        return first - self.started

    @property
    def generation_ns(self) -> int:
        return self.total_ns - self.prompt_ns

    @property
    def total_ns(self) -> int:
        return self._end - self.started
