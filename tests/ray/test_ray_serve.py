"""codebooga on a real two-node Ray Serve cluster: the shipped app builder and serve.yaml, replicas answering
through Ray's HTTP proxy with the openai client, and autoscaling on ongoing requests."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'codebooga[ray]'")
from ray import serve  # noqa: E402
from ray.serve.schema import ServeDeploySchema  # noqa: E402

from codebooga.server.ray_serve import Codebooga, CodeboogaReplica, build_app  # noqa: E402
from codebooga.server.settings_sources import resolve_settings  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

SERVE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "ray" / "serve.yaml"
# the embedded SmolLM2, small enough that a one-thread replica loads in seconds
SETTINGS = resolve_settings({"ctx_size": 512, "parallel": 2, "threads": 1}, {}, None)
# SmolLM2's end tokens (<|endoftext|>, <|im_end|>) banned, so the autoscaling load lasts its max_tokens
NO_END = {"0": -100, "2": -100}
PROMPT = [{"role": "user", "content": "Write a Python function that adds two numbers."}]


def test_serve_yaml_is_a_valid_serve_config_and_its_args_build() -> None:
    config = ServeDeploySchema.model_validate(yaml.safe_load(SERVE_YAML.read_text()))
    (application,) = config.applications
    assert application.import_path == "codebooga.server.ray_serve:build_app"
    assert [deployment.name for deployment in application.deployments] == ["codebooga"]
    assert build_app(application.args) is not None
    with pytest.raises(Exception, match="unknown args ctx-size"):
        build_app({"ctx-size": 512})
    with pytest.raises(Exception, match="num_gpus must be a number"):
        build_app({"num_gpus": "one"})


def test_health_check_fails_once_the_engine_has_stopped() -> None:
    """What Ray calls every health_check_period_s, on a replica built outside Ray (its constructor loads the
    embedded model for real)."""
    interval = sys.getswitchinterval()  # the constructor sets the server's, for this whole process
    try:
        replica = CodeboogaReplica(SETTINGS)
        replica.check_health()
        replica._engine.backend.close()
        with pytest.raises(RuntimeError, match="the engine for .* has stopped"):
            replica.check_health()
    finally:
        sys.setswitchinterval(interval)


def _replica_count() -> int:
    deployment = serve.status().applications["codebooga"].deployments["codebooga"]
    return deployment.replica_states.get("RUNNING", 0)


def _replica_count_once_it_is(expected: int, seconds: float = 60.0) -> int:
    """The running replica count, polled until it is `expected` or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while (count := _replica_count()) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


async def _ask(client: openai.AsyncOpenAI, max_tokens: int) -> tuple[str, str]:
    """One greedy chat; the answer and the replica that gave it (codebooga's Ray app names it in a header)."""
    raw = await client.chat.completions.with_raw_response.create(
        model="any", messages=PROMPT, max_tokens=max_tokens, temperature=0
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-codebooga-replica"]


def test_two_replicas_on_two_nodes_answer_identically_and_stream(serve_url: str) -> None:
    deployment = Codebooga.options(num_replicas=2, max_ongoing_requests=2, ray_actor_options={"num_cpus": 1})
    started = time.perf_counter()
    serve.run(deployment.bind(SETTINGS), name="codebooga", route_prefix="/")
    print(f"2 replicas up in {time.perf_counter() - started:.1f} s")
    # two one-CPU nodes, each replica reserving one CPU: every CPU taken means one replica on each node
    assert ray.cluster_resources()["CPU"] == 2 and ray.available_resources().get("CPU", 0) == 0

    async def ask_four() -> list[tuple[str, str]]:
        async with openai.AsyncOpenAI(base_url=f"{serve_url}/v1", api_key="none", max_retries=0) as client:
            # four at once against two slots per replica: both replicas must take some
            return await asyncio.gather(*(_ask(client, 24) for _ in range(4)))

    answers = asyncio.run(ask_four())
    assert len({replica for _, replica in answers}) == 2
    assert len({text for text, _ in answers}) == 1 and answers[0][0]

    client = openai.OpenAI(base_url=f"{serve_url}/v1", api_key="none", max_retries=0)
    stream = client.chat.completions.create(model="any", messages=PROMPT, max_tokens=24, temperature=0, stream=True)
    chunks = list(stream)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason == "length"
    assert streamed == answers[0][0]
    serve.delete("codebooga")


def test_autoscaling_on_ongoing_requests_goes_one_two_one(serve_url: str) -> None:
    deployment = Codebooga.options(
        max_ongoing_requests=2,
        ray_actor_options={"num_cpus": 1},
        autoscaling_config={
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 1,
            "metrics_interval_s": 0.5,
            "look_back_period_s": 1,
            "upscale_delay_s": 0.5,
            "downscale_delay_s": 2,
        },
    )
    serve.run(deployment.bind(SETTINGS), name="codebooga", route_prefix="/")
    assert _replica_count() == 1
    seen: list[int] = []

    async def load_then_watch() -> None:
        async with httpx.AsyncClient(base_url=serve_url, timeout=120) as http:
            body = {"model": "any", "messages": PROMPT, "max_tokens": 300, "temperature": 0, "logit_bias": NO_END}
            load = [asyncio.create_task(http.post("/v1/chat/completions", json=body)) for _ in range(6)]
            while not all(task.done() for task in load):
                seen.append(_replica_count())
                await asyncio.sleep(0.5)
            assert all(task.result().status_code == 200 for task in load)

    started = time.perf_counter()
    asyncio.run(load_then_watch())
    assert max(seen) == 2, seen
    assert _replica_count_once_it_is(1) == 1
    print(f"1→2→1 in {time.perf_counter() - started:.1f} s (replica counts every 0.5 s under load: {seen})")
    serve.delete("codebooga")


def test_killing_a_replica_loses_no_request_that_had_not_started_and_serve_replaces_it(serve_url: str) -> None:
    # two sequences per replica and no more in flight: further requests wait in Ray's router, not in a replica
    deployment = Codebooga.options(num_replicas=2, max_ongoing_requests=2, ray_actor_options={"num_cpus": 1})
    serve.run(deployment.bind(SETTINGS), name="codebooga", route_prefix="/")
    body = {"model": "any", "messages": PROMPT, "max_tokens": 150, "logit_bias": NO_END, "stream": True}
    streaming: dict[int, str] = {}  # request → the replica streaming it
    killed: set[str] = set()
    all_streaming = asyncio.Event()

    async def stream(http: httpx.AsyncClient, index: int) -> bool:
        """Whether the stream reached its end marker."""
        try:
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if index not in streaming and line.startswith("data: "):
                        streaming[index] = response.headers["x-codebooga-replica"]
                        if len(streaming) == 4:
                            all_streaming.set()
                    if line == "data: [DONE]":
                        return True
        except httpx.HTTPError:
            pass
        return False

    async def run() -> tuple[list[bool], set[int]]:
        async with httpx.AsyncClient(base_url=serve_url, timeout=120) as http:
            requests = [asyncio.create_task(stream(http, index)) for index in range(6)]
            await asyncio.wait_for(all_streaming.wait(), 60)
            started_before_kill = set(streaming)
            victim = next(iter(streaming.values()))
            named = ray.util.list_named_actors(all_namespaces=True)
            (name,) = [actor["name"] for actor in named if actor["name"].endswith(victim)]
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
            killed.add(victim)
            return await asyncio.gather(*requests), started_before_kill

    finished, started_before_kill = asyncio.run(run())
    assert len(started_before_kill) == 4
    lost = [index for index, done in enumerate(finished) if not done]
    # only streams the dead replica was sending may be cut; everything else, the two waiting requests included
    assert all(index in started_before_kill and streaming[index] in killed for index in lost), (lost, streaming)
    assert all(finished[index] for index in range(6) if index not in started_before_kill)
    assert _replica_count_once_it_is(2) == 2
    print(f"streams cut by the kill: {len(lost)} (all on the killed replica); the 2 waiting requests completed")
    serve.delete("codebooga")
