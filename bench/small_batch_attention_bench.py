"""What a follow-up's new tokens cost after a long cached prompt with codebooga's flash-attention kernel for chunks
of 2–63 tokens (server/engine/llama_cpp/patches/, on with CODEBOOGA_FA_SMALL_BATCH=1) and with llama.cpp's stock
kernel (the same build with the switch off), and without flash attention.

For each context length, a process reads that many tokens of a standard-library file into its KV cache in chunks
of 512 (timed once: `read`), then decodes a follow-up's 22 new tokens after it (the close of an answer and a
question, as in bench/ide_bench.py) three times, and one token after it three times (decoding keeps the stock
kernel: the control). The three settings alternate, a fresh process each per round, the order reversed every
round.

    .venv/bin/python bench/small_batch_attention_bench.py [--rounds 3] [--contexts 925,2615,6000]

Results print as a table and go to bench/results/small_batch_attention.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from bench_servers import REPO

FOLLOW_UP = "\n\n### Instruction:\nWhich function is the most complex, and why?\n\n### Response:\n"
SOURCE_FILE = Path(sysconfig.get_paths()["stdlib"]) / "argparse.py"
REPEATS = 3


def measure(contexts: list[int], threads: int, flash_attention: str) -> dict[str, dict[str, float]]:
    """In this process's llama.cpp: per context length, the seconds of the read and the medians of the follow-up
    and of one token."""
    import llama_cpp as llama

    sys.path.insert(0, str(REPO / "tests"))
    from llama_batches import put_tokens  # the tests' batch filler, shared rather than written again

    from codebooga.server.embedded_model import embedded_model_path
    from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel

    options = ContextOptions(
        n_ctx_per_seq=max(contexts) + 64, n_parallel=1, n_threads=threads, flash_attention=flash_attention
    )
    model = LlamaCppModel(embedded_model_path(), options)
    source = model.tokenize(SOURCE_FILE.read_text(), add_special=True)
    follow_up = model.tokenize(FOLLOW_UP, add_special=False)
    batch = llama.llama_batch_init(512, 0, 1)

    def decode(tokens: list[int], first_position: int) -> float:
        started = time.perf_counter()
        for start in range(0, len(tokens), 512):
            batch.n_tokens = put_tokens(batch, 0, tokens[start : start + 512], first_position + start)
            if llama.llama_decode(model.context, batch) != 0:
                raise RuntimeError("llama_decode failed")
        return time.perf_counter() - started

    results = {}
    try:
        for n_ctx in contexts:
            if len(source) < n_ctx:
                raise SystemExit(f"{SOURCE_FILE} has only {len(source)} tokens, fewer than {n_ctx}")
            llama.llama_memory_clear(model.memory, True)
            timings: dict[str, list[float]] = {"read": [decode(source[:n_ctx], 0)], "follow_up": [], "one_token": []}
            for _ in range(REPEATS):
                for name, tokens in (("follow_up", follow_up), ("one_token", follow_up[:1])):
                    timings[name].append(decode(tokens, n_ctx))
                    llama.llama_memory_seq_rm(model.memory, 0, n_ctx, -1)
            results[str(n_ctx)] = {name: statistics.median(values) for name, values in timings.items()}
    finally:
        llama.llama_batch_free(batch)
        model.close()
    return results


def run_variant(
    small_batch_kernel: bool, flash_attention: str, contexts: list[int], threads: int
) -> dict[str, dict[str, float]]:
    env = dict(os.environ, CODEBOOGA_FA_SMALL_BATCH="1" if small_batch_kernel else "0")
    command = [sys.executable, __file__, "--worker", "--contexts", ",".join(map(str, contexts)),
               "--threads", str(threads), "--flash-attn", flash_attention]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark worker failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contexts", default="925,2615,6000", help="cached prompt lengths, in tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flash-attn", default="on", help=argparse.SUPPRESS)
    args = parser.parse_args()
    contexts = [int(value) for value in args.contexts.split(",")]
    if args.worker:
        print(json.dumps(measure(contexts, args.threads, args.flash_attn)))
        return
    # name: (small-batch kernel, flash attention)
    variants = {"small_batch": (True, "on"), "stock": (False, "on"), "no_flash_attn": (False, "off")}
    rounds: list[dict[str, dict]] = []
    for index in range(args.rounds):
        order = list(variants) if index % 2 == 0 else list(reversed(variants))
        result = {}
        for name in order:
            time.sleep(1)
            result[name] = run_variant(*variants[name], contexts, args.threads)
        rounds.append(result)
        print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)

    summary = {}
    print(f"{'context':>8} {'what':>10} {'small-batch ms':>14} {'stock ms':>9} {'ratio':>6} {'paired':>7} {'no FA ms':>9}")
    for n_ctx in map(str, contexts):
        for what in ("read", "follow_up", "one_token"):
            medians = {name: statistics.median(r[name][n_ctx][what] for r in rounds) for name in variants}
            pairs = [r["small_batch"][n_ctx][what] / r["stock"][n_ctx][what] for r in rounds]
            entry = {f"{name}_s": value for name, value in medians.items()}
            entry["ratio"] = medians["small_batch"] / medians["stock"]
            entry["paired_ratio"] = statistics.median(pairs)
            summary[f"{n_ctx}/{what}"] = entry
            print(f"{n_ctx:>8} {what:>10} {medians['small_batch'] * 1e3:14.1f} {medians['stock'] * 1e3:9.1f} "
                  f"{entry['ratio']:6.2f} {entry['paired_ratio']:7.2f} {medians['no_flash_attn'] * 1e3:9.1f}")
    out = REPO / "bench" / "results" / "small_batch_attention.json"
    out.write_text(json.dumps({"rounds": rounds, "summary": summary, "threads": args.threads}, indent=2) + "\n")


if __name__ == "__main__":
    main()
