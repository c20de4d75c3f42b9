"""GET /metrics in Prometheus' text exposition format (no client library: the format is a few lines)."""

from __future__ import annotations

from collections import Counter

from codebooga.server.engine.metrics import EngineMetrics, Histogram
from codebooga.server.engine.types import BackendStats


def _histogram(name: str, help_text: str, histogram: Histogram) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for bound, count in zip(histogram.buckets, histogram.cumulative_counts()):
        lines.append(f'{name}_bucket{{le="{bound:g}"}} {count}')
    lines += [f'{name}_bucket{{le="+Inf"}} {histogram.count}', f"{name}_sum {histogram.total:.6f}", f"{name}_count {histogram.count}"]
    return lines


def _metric(name: str, kind: str, help_text: str, value: float) -> list[str]:
    shown = str(value) if isinstance(value, int) else f"{value:g}"  # counts and byte sizes stay exact
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {shown}"]


def _router_gauges(stats: BackendStats) -> list[str]:
    """What routers and autoscalers read: running and waiting requests and KV-cache use, under our names and under
    the vLLM names that the Gateway API inference extension's endpoint picker scrapes by default (its model-server
    protocol: TotalQueuedRequests, TotalRunningRequests, KVCacheUtilization), so an InferencePool of codebooga pods
    needs no metric-name flags."""
    running = stats.extra.get("requests_running", stats.slots_busy)
    lines = _metric("codebooga_requests_running", "gauge", "Generation requests running now.", int(running))
    lines += _metric("vllm:num_requests_running", "gauge", "Requests running now (Gateway API inference extension: TotalRunningRequests).", int(running))
    lines += _metric("vllm:num_requests_waiting", "gauge", "Requests waiting for a free sequence (Gateway API inference extension: TotalQueuedRequests).", stats.queue_depth)
    total = stats.extra.get("kv_cells_total", 0)
    if total:
        usage = stats.extra["kv_cells_used"] / total
        lines += _metric("codebooga_kv_cache_usage_ratio", "gauge", "Fraction of KV cells held by running sequences (0-1).", usage)
        lines += _metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage, 1 = full (Gateway API inference extension: KVCacheUtilization).", usage)
        lines += _metric("vllm:gpu_cache_usage_perc", "gauge", "KV-cache usage, 1 = full (older vLLM name, read by older endpoint pickers).", usage)
    return lines


def render(metrics: EngineMetrics, stats: BackendStats, http_responses: Counter[tuple[str, int]]) -> str:
    lines: list[str] = ["# HELP codebooga_http_responses_total HTTP responses by route and status.",
                        "# TYPE codebooga_http_responses_total counter"]
    for (path, status), count in sorted(http_responses.items()):
        lines.append(f'codebooga_http_responses_total{{path="{path}",status="{status}"}} {count}')
    lines += _metric("codebooga_requests_started_total", "counter", "Generation requests that got a sequence.", metrics.requests_started)
    lines += _metric("codebooga_requests_finished_total", "counter", "Generation requests that ran to the end.", metrics.requests_finished)
    lines += _metric("codebooga_requests_cancelled_total", "counter", "Generation requests ended early (client hung up or generation failed).", metrics.requests_cancelled)
    lines += _metric("codebooga_prompt_tokens_total", "counter", "Prompt tokens of started requests.", metrics.prompt_tokens)
    lines += _metric("codebooga_generated_tokens_total", "counter", "Tokens generated for clients.", metrics.completion_tokens)
    lines += _metric("codebooga_queue_depth", "gauge", "Requests waiting for a free sequence.", stats.queue_depth)
    lines += _metric("codebooga_slots_busy", "gauge", "Sequences generating now.", stats.slots_busy)
    lines += _metric("codebooga_slots_total", "gauge", "Sequences the backend can run at once.", stats.slots_total)
    lines += _metric("codebooga_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.", stats.extra.get("tokens_per_second", 0.0))
    extra = stats.extra
    if "prompt_cache_budget_bytes" in extra:
        lines += _metric("codebooga_prompt_cache_hits_total", "counter", "Prompts that restored a saved state from the host-memory prompt cache.", extra["prompt_cache_hits"])
        lines += _metric("codebooga_prompt_cache_misses_total", "counter", "Prompts that found no saved state worth restoring.", extra["prompt_cache_misses"])
        lines += _metric("codebooga_prompt_cache_tokens_restored_total", "counter", "Prompt tokens restored from the prompt cache instead of decoded.", extra["prompt_cache_tokens_restored"])
        lines += _metric("codebooga_prompt_cache_evictions_total", "counter", "Saved states evicted to stay within --cache-ram.", extra["prompt_cache_evictions"])
        lines += _metric("codebooga_prompt_cache_bytes", "gauge", "Bytes of saved prompt states held in host memory.", extra["prompt_cache_bytes"])
        lines += _metric("codebooga_prompt_cache_entries", "gauge", "Saved prompt states held in host memory.", extra["prompt_cache_entries"])
    lines += _router_gauges(stats)
    if "kv_bytes_per_slot" in extra:
        lines += _metric("codebooga_kv_bytes_per_slot", "gauge", "KV cache bytes one full slot holds.", extra["kv_bytes_per_slot"])
    for name, help_text in (("prompt_tokens_decoded", "Prompt tokens decoded."), ("prompt_tokens_reused", "Prompt tokens reused from a slot or the prompt cache instead of decoded.")):
        if name in extra:
            lines += _metric(f"codebooga_{name}_total", "counter", help_text, extra[name])
    lines += _histogram("codebooga_time_to_first_token_seconds", "From queueing to the first generated token.", metrics.time_to_first_token)
    lines += _histogram("codebooga_time_per_output_token_seconds", "Between consecutive tokens of one choice.", metrics.time_per_output_token)
    return "\n".join(lines) + "\n"
