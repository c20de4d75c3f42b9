"""`--cache-dir`: the prompt cache is written when the server stops and read when it starts, so a restart keeps
warm caches — for the same model file and KV layout only; a damaged file is skipped; a folder that cannot be
written is refused in one line."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import httpx

from server_process import RunningServer, running_server

ARGS = ("--parallel", "1", "--ctx-size", "1024", "--preset", "greedy")
PROMPT = [{"role": "user", "content": f"{inspect.getsource(json.decoder)[:1400]}\n\nWhat does this code do?"}]


def answer(server: RunningServer) -> str:
    body = {"messages": PROMPT, "max_tokens": 12}
    response = httpx.post(f"{server.api_url}/chat/completions", json=body, timeout=120)
    return response.json()["choices"][0]["message"]["content"]


def health(server: RunningServer) -> dict:
    return httpx.get(f"{server.base_url}/health").json()


def test_a_restart_keeps_warm_caches_for_the_same_kv_layout_only(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with running_server(*ARGS, "--cache-dir", str(cache)) as first:
        answer(first)
        kept = answer(first)  # from the prefix its slot kept
    assert len(list(cache.glob("*/*.state"))) == 1  # the slot's prompt, written at stop

    with running_server(*ARGS, "--cache-dir", str(cache)) as second:
        assert health(second)["prompt_cache_entries"] == 1
        restored = answer(second)
        after = health(second)
    assert after["prompt_cache_hits"] == 1 and after["prompt_cache_tokens_restored"] > 300
    assert restored == kept  # the same bytes as the kept prefix, so the same greedy answer

    with running_server(*ARGS, "--cache-dir", str(cache), "--cache-type-k", "q8_0", "--flash-attn", "on") as other:
        assert health(other)["prompt_cache_entries"] == 0  # another KV layout: its own subfolder, cold
    assert len(list(cache.iterdir())) == 2


def test_a_damaged_state_file_is_skipped_and_removed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with running_server(*ARGS, "--cache-dir", str(cache)) as first:
        answer(first)
    [state] = cache.glob("*/*.state")
    state.write_bytes(state.read_bytes()[:-100])  # cut short
    (state.parent / "000007.state").write_bytes(b"not a state")
    with running_server(*ARGS, "--cache-dir", str(cache)) as second:
        assert health(second)["prompt_cache_entries"] == 0
        assert answer(second)
        assert second.log().count("prompt cache: skipping") == 2
    assert len(list(cache.glob("*/*.state"))) == 1  # written anew at this stop


def refusal(*args: str) -> str:
    command = [sys.executable, "-m", "codebooga.server", "serve", "--port", "1", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    return result.stderr


def test_a_cache_dir_that_cannot_be_written_or_has_no_cache_is_refused_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert f"--cache-dir {blocker / 'cache'}: cannot write there" in refusal("--cache-dir", str(blocker / "cache"))
    assert "--cache-ram 0 turns off" in refusal("--cache-dir", str(tmp_path), "--cache-ram", "0")
