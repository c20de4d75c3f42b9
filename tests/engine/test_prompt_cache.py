"""More users than slots: prompt states saved to host memory when a slot is overwritten come back for the
user's next turn, and the answers are exactly those of a server with a slot per user that kept every prefix.

The reference is prefix reuse, not a cold server: llama.cpp's CPU results depend on how a prompt is split into
batches (other matrix kernels for other batch sizes), so any prefix reuse — llama-server's `cache_prompt`
included — may change a greedy answer in its last bits against a server that decodes the whole prompt at once.
A restore must add nothing to that: same batches, same bits.
"""

from __future__ import annotations

import inspect
import json
import shlex
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from server_process import RunningServer, running_server

# Four users, each with their own real source file as context (standard-library code).
FILES = [inspect.getsource(module)[:1400] for module in (json.decoder, shlex, inspect, subprocess)]
SERVER_ARGS = ("--ctx-size", "1024", "--preset", "greedy")


@pytest.fixture(scope="module")
def two_slots() -> Iterator[RunningServer]:
    with running_server("--parallel", "2", "--cache-ram", "256", *SERVER_ARGS) as running:
        yield running


def chat(server: RunningServer, messages: list[dict]) -> tuple[str, int]:
    response = httpx.post(
        f"{server.api_url}/chat/completions", json={"messages": messages, "max_tokens": 12}, timeout=120
    ).json()
    return response["choices"][0]["message"]["content"], response["usage"]["prompt_tokens"]


def health(server: RunningServer) -> dict:
    return httpx.get(f"{server.base_url}/health").json()


def test_follow_ups_restore_saved_prompts_and_answer_as_kept_prefixes_do(two_slots: RunningServer) -> None:
    conversations = [[{"role": "user", "content": f"{code}\n\nWhat does this code do?"}] for code in FILES]
    for messages in conversations:  # users 2 and 3 overwrite the slots of users 0 and 1
        chat(two_slots, messages)
        messages += [{"role": "assistant", "content": "It parses text."}, {"role": "user", "content": "Name one function in it."}]
    before = health(two_slots)
    follow_ups = [chat(two_slots, messages) for messages in conversations]
    after = health(two_slots)
    assert after["prompt_cache_hits"] - before["prompt_cache_hits"] >= 3
    first_turn_tokens = sum(tokens for _, tokens in follow_ups) - 4 * 40  # each follow-up adds under 40 tokens
    assert after["prompt_tokens_reused"] - before["prompt_tokens_reused"] >= first_turn_tokens
    assert after["prompt_cache_bytes"] <= 256 * 2**20

    with running_server("--parallel", "4", "--cache-ram", "0", *SERVER_ARGS) as slot_per_user:
        for messages in conversations:
            chat(slot_per_user, messages[:1])
        kept = [chat(slot_per_user, messages)[0] for messages in conversations]
        assert health(slot_per_user)["prompt_tokens_reused"] >= first_turn_tokens
    assert [answer for answer, _ in follow_ups] == kept


def test_metrics_report_the_prompt_cache(two_slots: RunningServer) -> None:
    metrics = httpx.get(f"{two_slots.base_url}/metrics").text
    values = dict(line.split(" ") for line in metrics.splitlines() if line and not line.startswith("#") and "{" not in line)
    assert float(values["codebooga_prompt_cache_hits_total"]) >= 3
    assert float(values["codebooga_prompt_cache_bytes"]) > 0
    assert float(values["codebooga_kv_bytes_per_slot"]) == health(two_slots)["kv_bytes_per_slot"]


def test_a_quantized_kv_cache_takes_less_memory_per_slot(two_slots: RunningServer) -> None:
    with running_server(
        "--parallel", "1", "--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "--flash-attn", "on", *SERVER_ARGS
    ) as quantized:
        answer, _ = chat(quantized, [{"role": "user", "content": "Write a Python function that adds two numbers."}])
        assert answer
        assert health(quantized)["kv_bytes_per_slot"] == health(two_slots)["kv_bytes_per_slot"] * 34 // 64


def test_a_quantized_v_cache_without_flash_attention_is_refused_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codebooga.server", "serve", "--port", "1", "--cache-type-v", "q4_0", "--flash-attn", "off"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "flash attention" in result.stderr
