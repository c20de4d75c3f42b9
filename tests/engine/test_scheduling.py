"""Continuous batching, prefix reuse, n > 1, cancellation and backpressure, observed through the real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from server_process import RunningServer, running_server

PROMPTS = [
    "Write a Python function that reverses a string.",
    "Explain what a linked list is.",
    "List three prime numbers.",
    "Write a haiku about compilers.",
    "What is the capital of France?",
    "Write a SQL query that counts rows.",
    "Describe recursion in one sentence.",
    "Give an example of a Python dictionary.",
]


@pytest.fixture(scope="module")
def wide_server() -> Iterator[RunningServer]:
    with running_server("--parallel", "8", "--ctx-size", "1024", "--preset", "greedy") as running:
        yield running


def health(server: RunningServer) -> dict:
    return httpx.get(f"{server.base_url}/health").json()


def wait_until_idle(server: RunningServer, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while health(server)["slots_busy"]:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"slots still busy after {timeout} s: {health(server)}")
        time.sleep(0.02)
    return time.monotonic() - started


async def _answers(server: RunningServer, prompts: list[str], max_tokens: int) -> list[str]:
    client = openai.AsyncOpenAI(base_url=server.api_url, api_key="x", max_retries=0)
    try:
        responses = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="x", messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens
                )
                for prompt in prompts
            )
        )
        return [response.choices[0].message.content for response in responses]
    finally:
        await client.close()


def test_greedy_output_is_identical_alone_and_beside_seven_others(wide_server: RunningServer) -> None:
    alone = asyncio.run(_answers(wide_server, PROMPTS[:1], 48))[0]
    together = asyncio.run(_answers(wide_server, PROMPTS, 48))
    assert together[0] == alone
    assert len(set(together)) > 1  # the others really were different sequences


def test_concurrent_requests_run_side_by_side(wide_server: RunningServer) -> None:
    async def main() -> int:
        answers = asyncio.create_task(_answers(wide_server, PROMPTS, 32))
        busiest = 0
        async with httpx.AsyncClient(base_url=wide_server.base_url) as client:
            while not answers.done():
                busiest = max(busiest, (await client.get("/health")).json()["slots_busy"])
                await asyncio.sleep(0.02)
        await answers
        return busiest

    assert asyncio.run(main()) >= 4


def test_follow_up_turn_reuses_the_conversation_prefix(wide_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=wide_server.api_url, api_key="x", max_retries=0)
    history = [{"role": "user", "content": "Write a Python class for a bank account with deposit and withdraw."}]
    first = client.chat.completions.create(model="x", messages=history, max_tokens=40)
    reused_before = health(wide_server)["prompt_tokens_reused"]
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "Add a balance property."},
    ]
    client.chat.completions.create(model="x", messages=history, max_tokens=4)
    reused = health(wide_server)["prompt_tokens_reused"] - reused_before
    assert reused >= first.usage.prompt_tokens


def test_n_choices_share_one_prefill(wide_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=wide_server.api_url, api_key="x", max_retries=0)
    decoded_before = health(wide_server)["prompt_tokens_decoded"]
    prompt = "A completely fresh prompt about sorting algorithms, never seen before by this server."
    response = client.completions.create(model="x", prompt=prompt, max_tokens=8, n=4, temperature=0.9, seed=3)
    decoded = health(wide_server)["prompt_tokens_decoded"] - decoded_before
    assert len(response.choices) == 4
    assert decoded <= response.usage.prompt_tokens  # the prompt was decoded once, not four times


def test_streaming_client_hang_up_frees_its_slot(wide_server: RunningServer) -> None:
    body = {"messages": [{"role": "user", "content": "Tell a very long story."}], "max_tokens": 900, "stream": True}
    with httpx.stream("POST", f"{wide_server.api_url}/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
        assert health(wide_server)["slots_busy"] == 1
    assert wait_until_idle(wide_server) < 2.0


def test_non_streaming_client_hang_up_frees_its_slot(wide_server: RunningServer) -> None:
    body = {"messages": [{"role": "user", "content": "Tell a very long story."}], "max_tokens": 900}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{wide_server.api_url}/chat/completions", json=body, timeout=1.0)
    assert wait_until_idle(wide_server) < 2.0


@pytest.fixture(scope="module")
def narrow_server() -> Iterator[RunningServer]:
    with running_server(
        "--parallel", "1", "--max-queue", "1", "--queue-timeout", "1.5", "--ctx-size", "2048", "--preset", "greedy"
    ) as running:
        yield running


def test_full_queue_answers_503_with_retry_after(narrow_server: RunningServer) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=narrow_server.api_url, timeout=60) as client:
            long = {"prompt": "Once upon a time", "max_tokens": 120}
            running = asyncio.create_task(client.post("/completions", json=long))
            await asyncio.sleep(0.3)
            waiting = asyncio.create_task(client.post("/completions", json={"prompt": "Hi", "max_tokens": 2}))
            await asyncio.sleep(0.1)
            rejected = await client.post("/completions", json={"prompt": "Hi", "max_tokens": 2})
            return [await running, await waiting, rejected]

    running, waiting, rejected = asyncio.run(main())
    assert running.status_code == 200
    assert rejected.status_code == 503
    assert rejected.headers["retry-after"].isdigit()
    assert rejected.json()["error"]["code"] == "server_overloaded"
    assert waiting.status_code in (200, 503)


def test_request_waiting_past_the_queue_timeout_gets_503(narrow_server: RunningServer) -> None:
    # the slot stays busy for all 400 tokens: SmolLM2's end-of-generation tokens are banned
    running_body = {"prompt": "Once", "max_tokens": 400, "logit_bias": {"0": -100, "2": -100, "4": -100}}

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(base_url=narrow_server.api_url, timeout=60) as client:
            running = asyncio.create_task(client.post("/completions", json=running_body))
            await asyncio.sleep(0.3)
            late = await client.post(
                "/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "stream": True}
            )
            running.cancel()
            return late

    late = asyncio.run(main())
    assert late.status_code == 503 and "busy" in late.json()["error"]["message"]
    wait_until_idle(narrow_server, timeout=10)


def test_a_system_prompt_held_by_another_slot_is_shared_not_recomputed(wide_server: RunningServer) -> None:
    system = {"role": "system", "content": "You review code. " + "Prefer small pure functions. " * 40}

    async def two_users() -> None:
        async_client = openai.AsyncOpenAI(base_url=wide_server.api_url, api_key="x", max_retries=0)
        try:
            first = async_client.chat.completions.create(
                model="x", messages=[system, {"role": "user", "content": "Review: x=1"}], max_tokens=60
            )
            first_task = asyncio.ensure_future(first)
            await asyncio.sleep(0.5)  # the first request now holds the system prompt in its (busy) slot
            before = httpx.get(f"{wide_server.base_url}/health").json()["prompt_tokens_reused"]
            second = await async_client.chat.completions.create(
                model="x", messages=[system, {"role": "user", "content": "Review: y=2"}], max_tokens=2
            )
            reused = httpx.get(f"{wide_server.base_url}/health").json()["prompt_tokens_reused"] - before
            assert reused >= second.usage.prompt_tokens - 12
            await first_task
        finally:
            await async_client.close()

    asyncio.run(two_users())
