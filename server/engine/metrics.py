"""Request-level serving metrics the engine records: counts, time to first token, time between tokens."""

from __future__ import annotations

import bisect
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
TOKEN_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


@dataclass
class Histogram:
    """A histogram in Prometheus' sense: `cumulative_counts()[i]` observations fell at or below `buckets[i]`.

    Observed once per streamed token, so an observation counts in its own bucket only; the running sums are
    made when the histogram is read."""

    buckets: tuple[float, ...]
    _in_bucket: list[int] = field(default_factory=list, init=False, repr=False)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self._in_bucket = [0] * (len(self.buckets) + 1)  # the last: above every bound

    def observe(self, value: float) -> None:
        self._in_bucket[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def cumulative_counts(self) -> list[int]:
        return list(itertools.accumulate(self._in_bucket[:-1]))


@dataclass
class EngineMetrics:
    requests_started: int = 0
    requests_finished: int = 0
    requests_cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    time_per_output_token: Histogram = field(default_factory=lambda: Histogram(TOKEN_LATENCY_BUCKETS))


class ThroughputMeter:
    """Tokens per second over a sliding window, for /health and /metrics."""

    def __init__(self, window_seconds: float = 10.0) -> None:
        self._window = window_seconds
        self._events: deque[tuple[float, int]] = deque()

    def add(self, count: int) -> None:
        now = time.monotonic()
        self._events.append((now, count))
        while self._events and self._events[0][0] < now - self._window:
            self._events.popleft()

    def rate(self) -> float:
        horizon = time.monotonic() - self._window
        return round(sum(count for stamp, count in list(self._events) if stamp >= horizon) / self._window, 2)
