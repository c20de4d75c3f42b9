"""codebooga's batch-invariant flash-attention kernel (server/engine/llama_cpp/patches/, the default) against
llama.cpp's stock kernels (the same build with CODEBOOGA_FA_KERNEL=stock) and without flash attention.

For each context length, a process reads that many tokens of a standard-library file into its KV cache in chunks
of 512 (timed once: `read`), then decodes a follow-up's 22 new tokens after it (the close of an answer and a
question, as in bench/ide_bench.py) three times (`follow_up`), and 32 tokens one at a time after it (`decode`, ms
a token). Then, at the --streams-contexts lengths, 8 sequences each holding that context decode one token each
per step, 16 steps (`decode_8`, ms a step). The three settings alternate, a fresh process each per round, the
order reversed every round.

    .venv/bin/python bench/flash_attn_kernel_bench.py [--rounds 3] [--contexts 925,2615,6000]
        [--streams-contexts 150,1000]

Results print as a table and go to bench/results/flash_attn_kernel.json.
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
DECODED = 32
STREAMS = 8
STREAM_STEPS = 16


def measure(
    contexts: list[int], stream_contexts: list[int], threads: int, flash_attention: str
) -> dict[str, dict[str, float]]:
    """In this process's llama.cpp: per context length, the seconds of the read, the median of the follow-up and
    the mean of a decoded token; per streams context, the mean of a step of 8 streams."""
    import llama_cpp as llama

    sys.path.insert(0, str(REPO / "tests"))
    from llama_batches import put_tokens  # the tests' batch filler, shared rather than written again

    from codebooga.server.embedded_model import embedded_model_path
    from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel

    options = ContextOptions(
        n_ctx_per_seq=max(contexts + stream_contexts) + 64, n_parallel=STREAMS, n_threads=threads,
        flash_attention=flash_attention,
    )
    model = LlamaCppModel(embedded_model_path(), options)
    source = model.tokenize(SOURCE_FILE.read_text(), add_special=True)
    follow_up = model.tokenize(FOLLOW_UP, add_special=False)
    batch = llama.llama_batch_init(512, 0, 1)

    def decode(tokens: list[int], first_position: int, seq_id: int = 0) -> float:
        started = time.perf_counter()
        for start in range(0, len(tokens), 512):
            batch.n_tokens = put_tokens(batch, 0, tokens[start : start + 512], first_position + start, seq_id)
            if llama.llama_decode(model.context, batch) != 0:
                raise RuntimeError("llama_decode failed")
        return time.perf_counter() - started

    def decode_streams(n_ctx: int) -> float:
        """Seconds a step of STREAMS sequences decoding one token each, after n_ctx tokens each."""
        started = time.perf_counter()
        for step in range(STREAM_STEPS):
            at = 0
            for seq_id in range(STREAMS):
                token = source[n_ctx + step + seq_id]
                at = put_tokens(batch, at, [token], n_ctx + step, seq_id)
            batch.n_tokens = at
            if llama.llama_decode(model.context, batch) != 0:
                raise RuntimeError("llama_decode failed")
        return (time.perf_counter() - started) / STREAM_STEPS

    results = {}
    try:
        for n_ctx in contexts:
            if len(source) < n_ctx + DECODED:
                raise SystemExit(f"{SOURCE_FILE} has only {len(source)} tokens, fewer than {n_ctx + DECODED}")
            llama.llama_memory_clear(model.memory, True)
            timings: dict[str, list[float]] = {"read": [decode(source[:n_ctx], 0)], "follow_up": []}
            for _ in range(REPEATS):
                timings["follow_up"].append(decode(follow_up, n_ctx))
                llama.llama_memory_seq_rm(model.memory, 0, n_ctx, -1)
            started = time.perf_counter()
            for index in range(DECODED):
                decode(source[n_ctx + index : n_ctx + index + 1], n_ctx + index)
            timings["decode"] = [(time.perf_counter() - started) / DECODED]
            results[str(n_ctx)] = {name: statistics.median(values) for name, values in timings.items()}
        for n_ctx in stream_contexts:
            llama.llama_memory_clear(model.memory, True)
            for seq_id in range(STREAMS):
                decode(source[seq_id : seq_id + n_ctx], 0, seq_id)
            results[f"{n_ctx}x{STREAMS}"] = {"decode_8": decode_streams(n_ctx)}
    finally:
        llama.llama_batch_free(batch)
        model.close()
    return results


def run_variant(
    kernel: str, flash_attention: str, contexts: list[int], stream_contexts: list[int], threads: int
) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    env.pop("CODEBOOGA_FA_KERNEL", None)
    if kernel == "stock":
        env["CODEBOOGA_FA_KERNEL"] = "stock"
    command = [sys.executable, __file__, "--worker", "--contexts", ",".join(map(str, contexts)),
               "--streams-contexts", ",".join(map(str, stream_contexts)),
               "--threads", str(threads), "--flash-attn", flash_attention]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark worker failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contexts", default="925,2615,6000", help="cached prompt lengths, in tokens")
    parser.add_argument("--streams-contexts", default="150,1000", help="each of 8 streams' context, in tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flash-attn", default="on", help=argparse.SUPPRESS)
    args = parser.parse_args()
    contexts = [int(value) for value in args.contexts.split(",")]
    stream_contexts = [int(value) for value in args.streams_contexts.split(",") if value]
    if args.worker:
        print(json.dumps(measure(contexts, stream_contexts, args.threads, args.flash_attn)))
        return
    # name: (kernel, flash attention)
    variants = {
        "batch_invariant": ("batch_invariant", "on"), "stock": ("stock", "on"), "no_flash_attn": ("stock", "off")
    }
    rounds: list[dict[str, dict]] = []
    for index in range(args.rounds):
        order = list(variants) if index % 2 == 0 else list(reversed(variants))
        result = {}
        for name in order:
            time.sleep(1)
            result[name] = run_variant(*variants[name], contexts, stream_contexts, args.threads)
        rounds.append(result)
        print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)

    summary = {}
    print(f"{'context':>8} {'what':>10} {'kernel ms':>10} {'stock ms':>9} {'ratio':>6} {'paired':>7} {'no FA ms':>9}")
    measured = [(str(n), what) for n in contexts for what in ("read", "follow_up", "decode")]
    measured += [(f"{n}x{STREAMS}", "decode_8") for n in stream_contexts]
    for n_ctx, what in measured:
        medians = {name: statistics.median(r[name][n_ctx][what] for r in rounds) for name in variants}
        pairs = [r["batch_invariant"][n_ctx][what] / r["stock"][n_ctx][what] for r in rounds]
        entry = {f"{name}_s": value for name, value in medians.items()}
        entry["ratio"] = medians["batch_invariant"] / medians["stock"]
        entry["paired_ratio"] = statistics.median(pairs)
        summary[f"{n_ctx}/{what}"] = entry
        print(f"{n_ctx:>8} {what:>10} {medians['batch_invariant'] * 1e3:10.1f} {medians['stock'] * 1e3:9.1f} "
              f"{entry['ratio']:6.2f} {entry['paired_ratio']:7.2f} {medians['no_flash_attn'] * 1e3:9.1f}")
    out = REPO / "bench" / "results" / "flash_attn_kernel.json"
    out.write_text(json.dumps({"rounds": rounds, "summary": summary, "threads": args.threads}, indent=2) + "\n")


if __name__ == "__main__":
    main()
