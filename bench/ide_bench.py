"""IDE benchmark: more users than slots, each sending its own source file again and again with a growing history.

Every user has a real file of the Python standard library (1–3k tokens) as context and asks --turns questions
about it; each turn carries the whole conversation so far. Users are interleaved (each turn, every user sends
its request, 0.25 s apart, all in flight together), answers are greedy and short. codebooga and llama-server
(built from the llama.cpp sources vendored in llama-cpp-python, default cache settings) get the same GGUF,
threads and slots, and are measured in alternating rounds; each round salts the files so no round profits from
the previous one's caches.

Reported per server (medians over rounds), and as ratios of the two (also per pair of rounds run side by side,
with their median): follow-up time to first token p50/p95 (turns after the first), first turn p50, prompt tokens
recomputed vs reused (codebooga: /health counters; llama-server: `timings.prompt_n` and `timings.cache_n` of each
response), aggregate completion tokens/s (from `usage`), peak RSS (VmHWM). Results go to bench/results/ide.json.

codebooga runs its batch-invariant flash-attention kernel (docs/build.md#patches-to-llamacpp);
CODEBOOGA_FA_KERNEL=stock in the environment brings back llama.cpp's (llama-server, built stock, ignores it); the
JSON records which.

Both servers run flash attention at their default (`auto`: on, on CPU) unless --flash-attn (codebooga) or
--llama-server-flash-attn says otherwise; `off` gives llama-server the physical batch codebooga takes without it
(`-ub 256`), so the two can also be compared at equal settings.

    .venv/bin/python bench/ide_bench.py --llama-server PATH [--users 8 --slots 4 --turns 3 --rounds 2 --independent]
                                        [--flash-attn auto|on|off] [--llama-server-flash-attn auto|on|off]
    make ide-bench   # builds llama-server first
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench_client import StreamedAnswer, percentile, stream_answer
from bench_servers import REPO, SETTLE_SECONDS, Launched, free_port, launched
from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.llama_cpp.model import ContextOptions
from codebooga.server.settings import FLASH_ATTENTION

UBATCH_WITHOUT_FLASH_ATTENTION = ContextOptions(flash_attention="off").ubatch()
"""The physical batch codebooga takes without flash attention, given to llama-server too for equal settings."""
STDLIB = Path(os.__file__).parent
SOURCES = ["json/decoder.py", "shlex.py", "textwrap.py", "heapq.py", "bisect.py", "fnmatch.py", "queue.py",
           "glob.py", "string.py", "colorsys.py", "calendar.py", "statistics.py"]  # fmt: skip
QUESTIONS = ["What does this file do?", "Which function is the most complex, and why?",
             "Suggest one improvement.", "Write a docstring for its first function."]  # fmt: skip
ANSWER_TOKENS = 16
CHARS_PER_FILE = (4_000, 10_000)  # about 1–3k tokens of code


@dataclass
class RoundResult:
    first_turn_ttft: list[float] = field(default_factory=list)
    follow_up_ttft: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    recomputed: int = 0
    reused: int = 0
    seconds: float = 0.0


def user_files(users: int, salt: str) -> list[str]:
    files = []
    for user in range(users):
        text = (STDLIB / SOURCES[user % len(SOURCES)]).read_text()
        low, high = CHARS_PER_FILE
        size = low + (high - low) * user // max(users - 1, 1)
        files.append(f"# {salt} user {user}\n{text[:size]}")
    return files


def ask(client: httpx.AsyncClient, messages: list[dict]) -> Awaitable[StreamedAnswer]:
    """One greedy, short answer."""
    body = {"model": "bench", "messages": messages, "max_tokens": ANSWER_TOKENS, "temperature": 0, "top_k": 1,
            "top_p": 1, "repeat_penalty": 1.0, "repetition_penalty": 1.0}  # fmt: skip
    return stream_answer(client, "/v1/chat/completions", body)


async def one_round(
    server: Launched, name: str, users: int, turns: int, salt: str, independent: bool
) -> RoundResult:
    result = RoundResult()
    conversations = [[{"role": "user", "content": f"{code}\n\n{QUESTIONS[0]}"}] for code in user_files(users, salt)]
    # A connection per request: a pooled one that idled through the long first turn can be closed by the server
    # (llama-server's keep-alive timeout) just as the next turn sends on it, which fails that request.
    fresh_connections = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.base, timeout=600, limits=fresh_connections) as client:
        before = (await client.get("/health")).json() if name == "codebooga" else {}
        started = time.perf_counter()

        async def user_turn(user: int, turn: int) -> None:
            answer = await ask(client, conversations[user])
            (result.follow_up_ttft if turn else result.first_turn_ttft).append(answer.ttft)
            result.completion_tokens += answer.completion_tokens
            result.prompt_tokens += answer.prompt_tokens or 0
            result.recomputed += answer.timings.get("prompt_n", 0)
            result.reused += answer.timings.get("cache_n", 0)
            conversations[user] += [{"role": "assistant", "content": answer.text},
                                    {"role": "user", "content": QUESTIONS[(turn + 1) % len(QUESTIONS)]}]  # fmt: skip

        async def staggered(user: int, its_turns: range) -> None:
            await asyncio.sleep(0.25 * user)
            for turn in its_turns:
                await user_turn(user, turn)

        if independent:
            await asyncio.gather(*(staggered(user, range(turns)) for user in range(users)))
        else:
            for turn in range(turns):
                await asyncio.gather(*(staggered(user, range(turn, turn + 1)) for user in range(users)))
        result.seconds = time.perf_counter() - started
        if name == "codebooga":
            after = (await client.get("/health")).json()
            result.recomputed = after["prompt_tokens_decoded"] - before["prompt_tokens_decoded"]
            result.reused = after["prompt_tokens_reused"] - before["prompt_tokens_reused"]
    return result


def summary(rounds: list[RoundResult], peak_rss_mib: float) -> dict:
    def median(metric) -> float:
        return statistics.median(metric(result) for result in rounds)

    return {
        "follow_up_ttft_p50_s": median(lambda r: percentile(r.follow_up_ttft, 0.5)),
        "follow_up_ttft_p95_s": median(lambda r: percentile(r.follow_up_ttft, 0.95)),
        "first_turn_ttft_p50_s": median(lambda r: percentile(r.first_turn_ttft, 0.5)),
        "prompt_tokens_recomputed": median(lambda r: r.recomputed),
        "prompt_tokens_reused": median(lambda r: r.reused),
        "prompt_tokens": median(lambda r: r.prompt_tokens),
        "aggregate_tok_s": median(lambda r: r.completion_tokens / r.seconds),
        "round_seconds": median(lambda r: r.seconds),
        "peak_rss_mib": peak_rss_mib,
    }


def paired_ratios(ours: list[RoundResult], theirs: list[RoundResult]) -> dict:
    """Each round's ratio against the other server's round of the same index, run right next to it, and their
    median: the machine's speed drifts over a run by more than the gap being measured, and a pair shares most of
    that drift, where a ratio of two medians over the whole run does not."""
    follow_up = [percentile(a.follow_up_ttft, 0.5) / percentile(b.follow_up_ttft, 0.5) for a, b in zip(ours, theirs)]
    aggregate = [(a.completion_tokens / a.seconds) / (b.completion_tokens / b.seconds) for a, b in zip(ours, theirs)]
    return {
        "follow_up_ttft_p50_per_round": follow_up,
        "follow_up_ttft_p50_paired_median": statistics.median(follow_up),
        "aggregate_tok_s_per_round": aggregate,
        "aggregate_tok_s_paired_median": statistics.median(aggregate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=embedded_model_path())
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=4096, help="context per slot")
    parser.add_argument("--llama-server", type=Path, help="path to llama.cpp's llama-server binary")
    parser.add_argument(
        "--independent",
        action="store_true",
        help="each user sends its next turn as soon as its answer is in, so follow-ups meet other users' first "
        "turns (default: every user's turn is answered before any user's next turn is sent)",
    )
    parser.add_argument("--flash-attn", choices=FLASH_ATTENTION, default="auto", help="codebooga's")
    parser.add_argument(
        "--llama-server-flash-attn", choices=FLASH_ATTENTION, default="auto",
        help=f"llama-server's (off: -ub {UBATCH_WITHOUT_FLASH_ATTENTION}, as codebooga)",
    )  # fmt: skip
    args = parser.parse_args()
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    model, threads, slots = str(args.model), str(args.threads), str(args.slots)
    servers = {
        "codebooga": (
            [sys.executable, "-m", "codebooga.server", "serve", "--model", model, "--threads", threads,
             "--parallel", slots, "--ctx-size", str(args.ctx), "--log-level", "warning", "--flash-attn",
             args.flash_attn, "--queue-timeout", "3600"],  # llama-server lets requests wait as long as it takes
            "/health",
        ),
    }  # fmt: skip
    if args.llama_server:
        servers["llama-server"] = (
            [str(args.llama_server), "-m", model, "-t", threads, "-tb", threads, "-np", slots,
             "-c", str(args.slots * args.ctx), "--host", "127.0.0.1", "-fa", args.llama_server_flash_attn,
             *(["-ub", str(UBATCH_WITHOUT_FLASH_ATTENTION)] if args.llama_server_flash_attn == "off" else [])],
            "/health",
        )  # fmt: skip
    rounds: dict[str, list[RoundResult]] = {name: [] for name in servers}
    with ExitStack() as stack:
        running = {}
        for name, (command, ready) in servers.items():
            port = free_port()
            running[name] = stack.enter_context(launched(name, [*command, "--port", str(port)], port, ready))
        for index in range(args.rounds):
            order = list(running) if index % 2 == 0 else list(reversed(running))
            for name in order:
                time.sleep(SETTLE_SECONDS)
                salt = f"round {index}"
                result = asyncio.run(one_round(running[name], name, args.users, args.turns, salt, args.independent))
                rounds[name].append(result)
                print(f"round {index} {name}: follow-up TTFT p50 {percentile(result.follow_up_ttft, 0.5):.2f} s, "
                      f"{result.completion_tokens / result.seconds:.1f} tok/s, recomputed {result.recomputed}, "
                      f"reused {result.reused}", flush=True)  # fmt: skip
        results = {name: summary(rounds[name], running[name].peak_rss_mib()) for name in running}
    ratios = {}
    if "llama-server" in results:
        ours, theirs = results["codebooga"], results["llama-server"]
        ratios = {
            "follow_up_ttft_p50": ours["follow_up_ttft_p50_s"] / theirs["follow_up_ttft_p50_s"],
            "follow_up_ttft_p95": ours["follow_up_ttft_p95_s"] / theirs["follow_up_ttft_p95_s"],
            "aggregate_tok_s": ours["aggregate_tok_s"] / theirs["aggregate_tok_s"],
            **paired_ratios(rounds["codebooga"], rounds["llama-server"]),
        }
    record = {"users": args.users, "slots": args.slots, "turns": args.turns, "rounds": args.rounds,
              "independent": args.independent, "threads": args.threads, "model": Path(model).name,
              "flash_attn": {"codebooga": args.flash_attn, "llama-server": args.llama_server_flash_attn},
              "codebooga_flash_attn_kernel": os.environ.get("CODEBOOGA_FA_KERNEL") or "batch-invariant",
              "results": results, "ratios": ratios, "when": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    (REPO / "bench" / "results" / "ide.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
