"""Reliability under load: 32 concurrent clients, a third hanging up mid-stream at random points.

`make test` runs it for CODEBOOGA_SOAK_SECONDS (default 20 s); `make soak` runs the full two minutes.
Passes when no response is a 5xx, every completed response is well-formed, every slot is free at the end and
the server's memory, less what its prompt cache holds (bounded by `--cache-ram`, and filling by design), grew
less than 5% from the warmed-up state.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter

import httpx
import psutil

from server_process import running_server

CLIENTS = 32
CACHE_RAM_MIB = 64
SOAK_SECONDS = float(os.environ.get("CODEBOOGA_SOAK_SECONDS", "20"))
TOPICS = ["a stack", "a queue", "binary search", "a hash map", "merge sort", "a closure", "a generator", "HTTP"]


def _request(rng: random.Random) -> tuple[str, dict]:
    topic = rng.choice(TOPICS)
    max_tokens = rng.randint(4, 48)
    stream = rng.random() < 0.6
    if rng.random() < 0.5:
        return "/chat/completions", {
            "messages": [{"role": "user", "content": f"Explain {topic} briefly."}],
            "max_tokens": max_tokens,
            "stream": stream,
        }
    return "/completions", {"prompt": f"# Python: {topic}\n", "max_tokens": max_tokens, "stream": stream}


async def _client(base_url: str, seed: int, deadline: float, outcomes: Counter[str], problems: list[str]) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        while time.monotonic() < deadline:
            path, body = _request(rng)
            hang_up_after = rng.randint(1, 12) if body["stream"] and rng.random() < 1 / 3 else None
            if body["stream"]:
                async with client.stream("POST", path, json=body) as response:
                    if response.status_code >= 500:
                        problems.append(f"{path}: {response.status_code}")
                        continue
                    events = 0
                    lines = []
                    async for line in response.aiter_lines():
                        if line:
                            lines.append(line)
                            events += 1
                        if hang_up_after is not None and events >= hang_up_after:
                            break
                if hang_up_after is not None and events >= hang_up_after:
                    outcomes["hung up"] += 1
                    continue
                if lines[-1] != "data: [DONE]":
                    problems.append(f"{path}: stream did not end with [DONE]: {lines[-2:]}")
                    continue
                chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
                if any("error" in chunk for chunk in chunks):
                    problems.append(f"{path}: error event {chunks}")
                    continue
                outcomes["streamed"] += 1
            else:
                response = await client.post(path, json=body)
                if response.status_code != 200:
                    problems.append(f"{path}: {response.status_code} {response.text[:200]}")
                    continue
                payload = response.json()
                if payload["usage"]["completion_tokens"] > body["max_tokens"] or not payload["choices"]:
                    problems.append(f"{path}: malformed {payload}")
                    continue
                outcomes["whole"] += 1


def test_32_clients_with_hang_ups() -> None:
    with running_server("--parallel", "8", "--ctx-size", "1024", "--cache-ram", str(CACHE_RAM_MIB)) as server:
        process = psutil.Process(server.process.pid)

        def memory_beside_the_cache() -> tuple[int, int]:
            cache = httpx.get(f"{server.base_url}/health").json()["prompt_cache_bytes"]
            return process.memory_info().rss - cache, cache

        async def phase(seconds: float, seed: int) -> tuple[Counter[str], list[str]]:
            outcomes: Counter[str] = Counter()
            problems: list[str] = []
            deadline = time.monotonic() + seconds
            await asyncio.gather(
                *(_client(server.api_url, seed + index, deadline, outcomes, problems) for index in range(CLIENTS))
            )
            return outcomes, problems

        warm_outcomes, warm_problems = asyncio.run(phase(max(5.0, SOAK_SECONDS * 0.2), 1000))
        warm_rss, _ = memory_beside_the_cache()
        outcomes, problems = asyncio.run(phase(SOAK_SECONDS, 2000))
        final_rss, cache_bytes = memory_beside_the_cache()

        assert not warm_problems and not problems, (warm_problems + problems)[:5]
        assert outcomes["hung up"] > 0 and outcomes["streamed"] > 0 and outcomes["whole"] > 0
        deadline = time.monotonic() + 5
        while (health := httpx.get(f"{server.base_url}/health").json())["slots_busy"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health["slots_busy"] == 0 and health["queue_depth"] == 0
        assert cache_bytes <= CACHE_RAM_MIB * 2**20
        assert final_rss < warm_rss * 1.05, f"memory beside the prompt cache grew from {warm_rss} to {final_rss} bytes"
        print(
            f"soak {SOAK_SECONDS:.0f}s: {dict(outcomes)}; rss less the prompt cache {warm_rss / 2**20:.1f} → "
            f"{final_rss / 2**20:.1f} MiB; prompt cache {cache_bytes / 2**20:.1f} MiB"
        )
