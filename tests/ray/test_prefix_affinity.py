"""Prefix-affinity routing against Ray's default router on the same two-conversation workload: prompt tokens the
replicas reused from their KV cache, summed from each replica's /health."""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'codebooga[ray]'")
from ray import serve  # noqa: E402

from codebooga.server.ray_affinity import AffinityIngress  # noqa: E402
from codebooga.server.ray_serve import Codebooga, CodeboogaEngine  # noqa: E402
from codebooga.server.settings_sources import resolve_settings  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

# One sequence and no RAM prompt cache per replica: a replica reuses a prefix only if the conversation's previous
# turn ran there last, which is what routing decides.
SETTINGS = resolve_settings({"ctx_size": 1024, "parallel": 1, "threads": 1, "cache_ram": 0}, {}, None)
FILES = [
    "def parse_config(path):\n" + "".join(f"    value_{i} = read_setting(path, 'key_{i}')\n" for i in range(40)),
    "class Inventory:\n" + "".join(f"    def item_{i}(self):\n        return self.lookup({i})\n" for i in range(30)),
]
QUESTIONS = ["What does this code do?", "Name one function.", "Is there a bug?", "Summarise it in one line."]


def _run_workload(serve_url: str) -> set[str]:
    """Two users, each with a file and four follow-ups, taking turns; every request sent after the previous one.
    Returns the replicas that answered."""
    replicas = set()
    conversations = [[{"role": "user", "content": f"{text}\n{QUESTIONS[0]}"}] for text in FILES]
    with httpx.Client(base_url=serve_url, timeout=120) as http:
        for turn in range(len(QUESTIONS)):
            for messages in conversations:
                if turn:
                    messages.append({"role": "user", "content": QUESTIONS[turn]})
                body = {"messages": messages, "max_tokens": 12, "temperature": 0}
                reply = http.post("/v1/chat/completions", json=body)
                assert reply.status_code == 200, reply.text
                replicas.add(reply.headers["x-codebooga-replica"])
                messages.append({"role": "assistant", "content": reply.json()["choices"][0]["message"]["content"]})
    return replicas


def _reuse(serve_url: str, replicas: set[str]) -> tuple[int, int]:
    """Prompt tokens reused and decoded over the replicas that answered: /health polled until each has answered it
    (an idle replica that served nothing has nothing to add)."""
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 30
    while not replicas <= seen.keys() and time.monotonic() < deadline:
        health = httpx.get(f"{serve_url}/health", timeout=10)
        seen[health.headers["x-codebooga-replica"]] = health.json()
    assert replicas <= seen.keys()
    return sum(h["prompt_tokens_reused"] for h in seen.values()), sum(h["prompt_tokens_decoded"] for h in seen.values())


def test_prefix_affinity_reuses_more_prompt_tokens_than_the_default_router(serve_url: str) -> None:
    options = {"num_replicas": 2, "max_ongoing_requests": 2, "ray_actor_options": {"num_cpus": 1}}
    serve.run(Codebooga.options(**options).bind(SETTINGS), name="codebooga", route_prefix="/")
    default_replicas = _run_workload(serve_url)
    default_reused, default_decoded = _reuse(serve_url, default_replicas)
    serve.delete("codebooga")

    engine = CodeboogaEngine.options(**options).bind(SETTINGS)
    serve.run(AffinityIngress.bind(engine), name="codebooga", route_prefix="/")
    affinity_replicas = _run_workload(serve_url)
    affinity_reused, affinity_decoded = _reuse(serve_url, affinity_replicas)
    # SSE through both tiers: the ingress relays the engine replica's messages as they come
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True}
    with httpx.stream("POST", f"{serve_url}/v1/chat/completions", json=body, timeout=60) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(events) > 3 and events[-1] == "data: [DONE]"
    serve.delete("codebooga")

    default_share = default_reused / (default_reused + default_decoded)
    affinity_share = affinity_reused / (affinity_reused + affinity_decoded)
    print(f"prompt tokens reused: default router {default_reused} ({default_share:.0%}, "
          f"{len(default_replicas)} replica(s) used), prefix affinity {affinity_reused} ({affinity_share:.0%}, "
          f"{len(affinity_replicas)} replica(s) used)")
    # every follow-up (6 of 8 requests) finds its conversation in the replica's sequence
    assert affinity_share > 0.6 and len(affinity_replicas) == 2
    assert affinity_reused >= default_reused
