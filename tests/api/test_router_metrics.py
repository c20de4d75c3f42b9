"""/metrics gauges that routers and autoscalers read (Gateway API inference extension names and ours), on a
one-sequence server with one request streaming and one waiting."""

from __future__ import annotations

import re
import threading
import time

import httpx

from tests.server_process import running_server


def gauges(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {match[1]: float(match[2]) for match in re.finditer(r"^([a-z_:]+) (\S+)$", text, re.MULTILINE)}


def test_running_waiting_and_kv_usage_gauges():
    body = {"messages": [{"role": "user", "content": "Count from one to a hundred in words."}],
            "max_tokens": 60, "temperature": 0, "stream": True}  # fmt: skip
    with running_server("--parallel", "1", "--ctx-size", "512") as server:
        idle = gauges(server.base_url)
        url = f"{server.api_url}/chat/completions"
        waiter = threading.Thread(target=lambda: httpx.post(url, json={**body, "stream": False, "max_tokens": 1}, timeout=120))
        with httpx.stream("POST", url, json=body, timeout=120) as stream:
            lines = stream.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            waiter.start()
            deadline = time.monotonic() + 30
            while (busy := gauges(server.base_url))["vllm:num_requests_waiting"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            for _ in lines:
                pass
        waiter.join(timeout=120)
        done = gauges(server.base_url)
    for name in ("vllm:num_requests_running", "codebooga_requests_running", "vllm:num_requests_waiting",
                 "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "codebooga_kv_cache_usage_ratio"):
        assert idle[name] == 0 and done[name] == 0, name
    assert busy["vllm:num_requests_waiting"] == 1 == busy["codebooga_queue_depth"]
    assert busy["vllm:num_requests_running"] == 1 == busy["codebooga_requests_running"]
    assert 0 < busy["vllm:kv_cache_usage_perc"] == busy["codebooga_kv_cache_usage_ratio"] < 1
