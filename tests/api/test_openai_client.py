"""The official openai SDK against the real server: chat, completions, streaming, n, seed, logprobs."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from server_process import RunningServer

QUESTION = [{"role": "user", "content": "Write a Python function that returns the square of a number."}]


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api_url, api_key="unused", max_retries=0)


def test_models_lists_the_loaded_model(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [model.id for model in models] == ["SmolLM2-135M-Instruct.Q4_1"]
    assert models[0].context_length == models[0].max_model_len == 2048  # what agents size their history by


def test_chat_completion_reports_the_real_model_and_usage(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="gpt-4o", messages=QUESTION, max_tokens=24)
    assert response.model == "SmolLM2-135M-Instruct.Q4_1"
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.usage.completion_tokens <= 24
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_max_tokens_limit_finishes_with_length(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="x", messages=QUESTION, max_completion_tokens=3, extra_body={"preset": "greedy"}
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3


def test_streaming_chat_with_usage_matches_the_whole_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="x", messages=QUESTION, max_tokens=32, temperature=0)
    stream = client.chat.completions.create(
        model="x", messages=QUESTION, max_tokens=32, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_n_2_returns_two_choices_sharing_one_prompt(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="x", messages=QUESTION, max_tokens=16, n=2, seed=7)
    assert sorted(choice.index for choice in response.choices) == [0, 1]
    assert all(choice.message.content for choice in response.choices)
    single = client.chat.completions.create(model="x", messages=QUESTION, max_tokens=16, seed=7)
    assert response.usage.prompt_tokens == single.usage.prompt_tokens


def test_greedy_n_2_choices_equal_the_single_answer(client: openai.OpenAI) -> None:
    single = client.chat.completions.create(model="x", messages=QUESTION, max_tokens=24, temperature=0)
    double = client.chat.completions.create(model="x", messages=QUESTION, max_tokens=24, temperature=0, n=2)
    assert [choice.message.content for choice in double.choices] == [single.choices[0].message.content] * 2


def test_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    def ask(seed: int) -> str:
        response = client.chat.completions.create(
            model="x", messages=QUESTION, max_tokens=24, seed=seed, temperature=1.0, top_p=0.95
        )
        return response.choices[0].message.content

    assert ask(1234) == ask(1234)
    assert len({ask(seed) for seed in (1, 2, 3)}) > 1


def test_chat_logprobs_use_the_chat_shape(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="x", messages=QUESTION, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    content = response.choices[0].logprobs.content
    assert len(content) == response.usage.completion_tokens
    assert "".join(entry.token for entry in content) == response.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert bytes(entry.bytes).decode() == entry.token
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)  # greedy picks the most likely


def test_completions_logprobs_use_the_legacy_shape(client: openai.OpenAI) -> None:
    response = client.completions.create(model="x", prompt="def square(x):", max_tokens=6, temperature=0, logprobs=2)
    logprobs = response.choices[0].logprobs
    assert "".join(logprobs.tokens) == response.choices[0].text
    assert len(logprobs.token_logprobs) == len(logprobs.tokens) == len(logprobs.text_offset)
    assert logprobs.text_offset[0] == 0
    assert all(len(top) >= 2 for top in logprobs.top_logprobs)


def test_completions_accept_every_prompt_shape(client: openai.OpenAI) -> None:
    text = client.completions.create(model="x", prompt="print(", max_tokens=4, temperature=0)
    ids = client.completions.create(model="x", prompt=[1, 2, 3], max_tokens=2, temperature=0)
    many = client.completions.create(model="x", prompt=["a = ", "b = "], max_tokens=3, temperature=0, n=2)
    lists = client.completions.create(model="x", prompt=[[1, 2], [3, 4]], max_tokens=2, temperature=0)
    assert text.choices[0].text and ids.usage.prompt_tokens == 3
    assert sorted(choice.index for choice in many.choices) == [0, 1, 2, 3]
    assert len(lists.choices) == 2 and lists.usage.prompt_tokens == 4


def test_echo_prepends_the_prompt(client: openai.OpenAI) -> None:
    response = client.completions.create(model="x", prompt="def add(a, b):", max_tokens=5, temperature=0, echo=True)
    assert response.choices[0].text.startswith("def add(a, b):")


def test_stop_strings_are_removed_from_the_answer(client: openai.OpenAI) -> None:
    prompt = "def fibonacci(n):"
    free = client.completions.create(model="x", prompt=prompt, max_tokens=24, temperature=0).choices[0].text
    assert len(free) >= 8
    stop = free[5:8]
    stopped = client.completions.create(model="x", prompt=prompt, max_tokens=24, temperature=0, stop=["@@@", stop])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == free[: free.index(stop)]


def test_logit_bias_can_ban_the_greedy_token(client: openai.OpenAI, server: RunningServer) -> None:
    greedy = client.completions.create(model="x", prompt="1, 2, 3,", max_tokens=1, temperature=0).choices[0].text
    tokens = httpx.post(f"{server.base_url}/tokenize", json={"content": greedy}).json()["tokens"]
    assert len(tokens) == 1
    banned = client.completions.create(
        model="x", prompt="1, 2, 3,", max_tokens=1, temperature=0, logit_bias={str(tokens[0]): -100}
    )
    assert banned.choices[0].text != greedy


def test_async_client_runs_concurrent_streams(server: RunningServer) -> None:
    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.api_url, api_key="unused", max_retries=0)

        async def one(index: int) -> str:
            stream = await client.chat.completions.create(
                model="x", messages=QUESTION, max_tokens=16, temperature=0, stream=True
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

        try:
            return await asyncio.gather(*(one(index) for index in range(4)))
        finally:
            await client.close()

    answers = asyncio.run(main())
    assert len(set(answers)) == 1 and answers[0]
