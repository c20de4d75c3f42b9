"""The built Q4_K_M file is servable: `codebooga serve` answers from it through the openai client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from server_process import running_server


@pytest.fixture(scope="module")
def built_model(make_recipe: Callable[[str], Path]) -> Path:
    from codebooga.merge.build import build

    (model,) = build(make_recipe("ServedBooga-v0.1"), ["Q4_K_M"], threads=2, progress=False).outputs
    return model


@pytest.fixture(scope="module")
def server_url(built_model: Path) -> Iterator[str]:
    with running_server("--model", str(built_model), "--ctx-size", "256", "--parallel", "1") as server:
        yield server.base_url


def test_server_uses_the_embedded_alpaca_template(server_url: str, built_model: Path) -> None:
    health = httpx.get(f"{server_url}/health").json()
    assert health["chat_template"] == "model"
    assert health["model"] == built_model.stem


def test_openai_client_gets_an_answer(server_url: str) -> None:
    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused")
    (model,) = [card.id for card in client.models.list().data]
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write a function that adds two numbers."}],
        max_tokens=12,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("length", "stop")
    assert reply.usage.prompt_tokens > 20
