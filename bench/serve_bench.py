"""Serving benchmark: codebooga against llama-cpp-python's server (and llama.cpp's llama-server when given).

Every server gets the same GGUF (the embedded SmolLM2-135M-Instruct unless --model) and the same thread count;
all are started together and measured in alternating rounds (an idle server costs nothing). Scenarios (streaming chat, 96-token answers forced by banning end-of-generation
tokens, greedy):
  single     one stream: decode tokens/s and time to first token (median of --repeats)
  concurrent 8 streams at once: aggregate tokens/s, p50/p95 time to first token (median of --repeats rounds)
  follow-up  a multi-turn follow-up's time to first token, cold (prefix never seen) vs warm (the previous turn
             was just answered), on codebooga
Results print as a table with ratios and are written to bench/results/serve.json.

    .venv/bin/python bench/serve_bench.py [--threads 2] [--llama-server /path/to/llama-server]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench_client import StreamedAnswer, percentile, stream_answer
from bench_servers import REPO, SETTLE_SECONDS, free_port, launched
from codebooga.server.embedded_model import embedded_model_path

ANSWER_TOKENS = 96
EOG_BAN = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens
QUESTIONS = [
    "Write a Python function that checks whether a number is prime.",
    "Explain how a hash table works.",
    "Write a JavaScript function that debounces another function.",
    "What is the difference between a process and a thread?",
    "Write a SQL query that finds duplicate emails in a users table.",
    "Explain big-O notation with an example.",
    "Write a Rust function that reverses a vector in place.",
    "Describe how TCP's three-way handshake works.",
]


def ask(client: httpx.AsyncClient, messages: list[dict], max_tokens: int = ANSWER_TOKENS) -> Awaitable[StreamedAnswer]:
    """A greedy answer of exactly `max_tokens` tokens (end-of-generation banned)."""
    body = {"model": "bench", "messages": messages, "max_tokens": max_tokens, "temperature": 0, "top_p": 1,
            "top_k": 1, "repeat_penalty": 1.0, "repetition_penalty": 1.0, "logit_bias": EOG_BAN}  # fmt: skip
    return stream_answer(client, "/v1/chat/completions", body)


async def single_stream(client: httpx.AsyncClient, round_index: int) -> StreamedAnswer:
    return await ask(client, [{"role": "user", "content": QUESTIONS[round_index % len(QUESTIONS)]}])


async def concurrent_round(client: httpx.AsyncClient, round_index: int) -> tuple[float, float, float]:
    """Eight streams at once: (aggregate tokens/s, p50 and p95 time to first token)."""
    started = time.perf_counter()
    results = await asyncio.gather(
        *(ask(client, [{"role": "user", "content": f"{q} (round {round_index})"}]) for q in QUESTIONS)
    )
    wall = time.perf_counter() - started
    ttfts = [answer.ttft for answer in results]
    return sum(answer.completion_tokens for answer in results) / wall, percentile(ttfts, 0.5), percentile(ttfts, 0.95)


async def measure(bases: dict[str, str], repeats: int) -> dict[str, dict]:
    """Rounds alternate between the servers (rotating who goes first), so a noisy spell on this shared machine
    hits every server alike instead of skewing one server's numbers; each measurement starts after a pause in
    which the previous server's threads go quiet."""
    names = list(bases)
    clients = {name: httpx.AsyncClient(base_url=base, timeout=600) for name, base in bases.items()}
    try:
        for client in clients.values():
            await ask(client, [{"role": "user", "content": "warm up"}], 8)
        singles: dict[str, list[StreamedAnswer]] = {name: [] for name in names}
        rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
        for round_index in range(repeats):
            order = names[round_index % len(names):] + names[: round_index % len(names)]
            for name in order:
                await asyncio.sleep(SETTLE_SECONDS)
                singles[name].append(await single_stream(clients[name], round_index))
            for name in order:
                await asyncio.sleep(SETTLE_SECONDS)
                rounds[name].append(await concurrent_round(clients[name], round_index))
        report = {
            name: {
                "single_tok_s": statistics.median(t.decode_rate for t in singles[name]),
                "single_ttft_s": statistics.median(t.ttft for t in singles[name]),
                "single_tokens": singles[name][0].completion_tokens,
                "tokens_counted_from": singles[name][0].counted_from,
                "concurrent_tok_s": statistics.median(r[0] for r in rounds[name]),
                "concurrent_ttft_p50_s": statistics.median(r[1] for r in rounds[name]),
                "concurrent_ttft_p95_s": statistics.median(r[2] for r in rounds[name]),
            }
            for name in names
        }
        if "codebooga" in clients:
            report["codebooga"].update(await measure_follow_up(clients["codebooga"]))
        return report
    finally:
        for client in clients.values():
            await client.aclose()


async def measure_follow_up(client: httpx.AsyncClient) -> dict:
    """A long system prompt + first turn, then the follow-up: cold (unique prefix) vs warm (just answered)."""
    system = "You are a senior reviewer. " + " ".join(f"Rule {i}: prefer clear names and small functions." for i in range(60))
    colds, warms = [], []
    for _ in range(3):
        nonce = secrets.token_hex(4)
        first_turn = [{"role": "system", "content": f"[{nonce}] {system}"}, {"role": "user", "content": QUESTIONS[0]}]
        answer = (await ask(client, first_turn, 48)).text
        follow = [*first_turn, {"role": "assistant", "content": answer}, {"role": "user", "content": "Now add type hints."}]
        warm = await ask(client, follow, 8)
        cold_turn = [{"role": "system", "content": f"[{secrets.token_hex(4)}] {system}"}, *follow[1:]]
        cold = await ask(client, cold_turn, 8)
        warms.append(warm.ttft)
        colds.append(cold.ttft)
    return {"follow_up_cold_ttft_s": statistics.median(colds), "follow_up_warm_ttft_s": statistics.median(warms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=embedded_model_path())
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--llama-server", type=Path, help="path to llama.cpp's llama-server binary")
    parser.add_argument("--only", choices=["codebooga", "llama-cpp-python", "llama-server"], action="append")
    args = parser.parse_args()
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    model, threads, ctx = str(args.model), str(args.threads), 4096
    servers = {
        "codebooga": (
            [sys.executable, "-m", "codebooga.server", "serve", "--model", model, "--threads", threads, "--parallel", "8",
             "--ctx-size", str(ctx), "--log-level", "warning"],
            "/health",
        ),
        "llama-cpp-python": (
            [sys.executable, "-m", "llama_cpp.server", "--model", model, "--n_threads", threads,
             "--n_threads_batch", threads, "--n_ctx", str(ctx), "--interrupt_requests", "False", "--verbose", "False"],
            "/v1/models",
        ),
    }
    if args.llama_server:
        servers["llama-server"] = (
            [str(args.llama_server), "-m", model, "-t", threads, "-tb", threads, "-np", "8", "-c", str(8 * ctx),
             "--log-disable"],
            "/health",
        )
    with ExitStack() as stack:
        bases = {}
        for name, (command, ready) in servers.items():
            if args.only and name not in args.only:
                continue
            port = free_port()
            command = [*command, "--port", str(port), *(["--host", "127.0.0.1"] if name != "codebooga" else [])]
            bases[name] = stack.enter_context(launched(name, command, port, ready)).base
        results = asyncio.run(measure(bases, args.repeats))
    for name, result in results.items():
        print(name, json.dumps(result, indent=1), flush=True)
    ratios = {}
    ours = results.get("codebooga")
    for peer in ("llama-cpp-python", "llama-server"):
        if ours and peer in results:
            theirs = results[peer]
            ratios[peer] = {
                "single_tok_s": ours["single_tok_s"] / theirs["single_tok_s"],
                "concurrent_tok_s": ours["concurrent_tok_s"] / theirs["concurrent_tok_s"],
                "concurrent_ttft_p95": ours["concurrent_ttft_p95_s"] / theirs["concurrent_ttft_p95_s"],
            }
    if ours and "follow_up_cold_ttft_s" in ours:
        ratios["follow_up_warm_over_cold"] = ours["follow_up_warm_ttft_s"] / ours["follow_up_cold_ttft_s"]
    record = {"threads": args.threads, "model": Path(model).name, "results": results, "ratios": ratios,
              "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    (REPO / "bench" / "results" / "serve.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
