"""Histograms as Prometheus reads them: each bucket counts the observations at or below its bound."""

from __future__ import annotations

from collections import Counter

from codebooga.server.api.prometheus import render
from codebooga.server.engine.metrics import EngineMetrics, Histogram
from codebooga.server.engine.types import BackendStats


def test_bucket_counts_are_cumulative_and_the_total_counts_everything() -> None:
    histogram = Histogram((0.1, 1.0, 10.0))
    for value in (0.05, 0.1, 0.5, 2.0, 20.0, 30.0):
        histogram.observe(value)
    assert histogram.cumulative_counts() == [2, 3, 4]  # a value on a bound counts in that bucket ("le")
    assert histogram.count == 6
    assert abs(histogram.total - 52.65) < 1e-9


def test_metrics_page_shows_the_cumulative_buckets() -> None:
    metrics = EngineMetrics()
    for value in (0.03, 0.3, 0.3, 40.0):
        metrics.time_to_first_token.observe(value)
    text = render(metrics, BackendStats(slots_total=1, slots_busy=0, queue_depth=0), Counter())
    name = "codebooga_time_to_first_token_seconds"
    assert f'{name}_bucket{{le="0.05"}} 1' in text
    assert f'{name}_bucket{{le="0.25"}} 1' in text
    assert f'{name}_bucket{{le="0.5"}} 3' in text
    assert f'{name}_bucket{{le="32"}} 3' in text
    assert f'{name}_bucket{{le="+Inf"}} 4' in text
