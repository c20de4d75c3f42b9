"""The built Q4_K_M file is servable: `codebooga serve` answers from it through the openai client."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def built_model(make_recipe: Callable[[str], Path]) -> Path:
    from merge.build import build

    (model,) = build(make_recipe("ServedBooga-v0.1"), ["Q4_K_M"], threads=2, progress=False).outputs
    return model


@pytest.fixture(scope="module")
def server_url(built_model: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "server", "serve", "--model", str(built_model), "--port", str(port),
               "--threads", "2", "--ctx-size", "256", "--parallel", "1", "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}: {process.stdout.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after {STARTUP_SECONDS} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
