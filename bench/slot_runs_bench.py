"""What a decode step costs when the busy slots are not next to each other.

codebooga gives each slot a KV stream of its own, and llama.cpp decodes a batch as one graph run per run of
consecutive sequence ids (`split_equal` in its batch allocator). This measures a one-token-per-stream decode
step with the streams in slots that form one run (0 and 1; 0, 1 and 2) against the same number of streams in
slots that form two (0 and 2; 0, 1 and 3), rounds alternating, each stream holding the same 500-token prompt.
The slot policy (`server/engine/llama_cpp/slot_policy.py`) keeps busy slots together where it has the choice.

    .venv/bin/python bench/slot_runs_bench.py [--threads 2] [--rounds 5]

Results print as a table and go to bench/results/slot_runs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import llama_cpp as llama
from bench_servers import REPO

from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel

sys.path.insert(0, str(REPO / "tests"))
from llama_batches import put_tokens  # noqa: E402  (the tests' batch filler, shared rather than written again)

PATTERNS = {"one run of 2": (0, 1), "two runs of 2": (0, 2), "one run of 3": (0, 1, 2), "two runs of 3": (0, 1, 3)}
STEPS = 40


def step_ms(model: LlamaCppModel, batch: llama.llama_batch, prompt: list[int], seq_ids: tuple[int, ...]) -> float:
    """Median time of a decode step with one token for each of `seq_ids`, each holding `prompt`."""
    llama.llama_memory_seq_rm(model.memory, -1, -1, -1)
    for seq_id in seq_ids:
        for start in range(0, len(prompt), model.n_batch):
            batch.n_tokens = put_tokens(batch, 0, prompt[start : start + model.n_batch], start, seq_id)
            llama.llama_decode(model.context, batch)
    times = []
    for position in range(len(prompt), len(prompt) + STEPS):
        batch.n_tokens = 0
        for seq_id in seq_ids:
            batch.n_tokens = put_tokens(batch, batch.n_tokens, [prompt[-1]], position, seq_id)
        started = time.perf_counter()
        llama.llama_decode(model.context, batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    options = ContextOptions(n_ctx_per_seq=1024, n_parallel=4, n_threads=args.threads, n_batch=512)
    model = LlamaCppModel(embedded_model_path(), options)
    batch = llama.llama_batch_init(options.n_batch, 0, 1)
    try:
        prompt = model.tokenize(" ".join(f"value_{index} = {index}" for index in range(100)), add_special=True)[:500]
        measured: dict[str, list[float]] = {name: [] for name in PATTERNS}
        for _ in range(args.rounds):
            for name, seq_ids in PATTERNS.items():
                measured[name].append(step_ms(model, batch, prompt, seq_ids))
    finally:
        llama.llama_batch_free(batch)
        model.close()
    results = {name: statistics.median(times) for name, times in measured.items()}
    ratios = {"2 streams": results["two runs of 2"] / results["one run of 2"],
              "3 streams": results["two runs of 3"] / results["one run of 3"]}  # fmt: skip
    for name, seq_ids in PATTERNS.items():
        print(f"{name:14} slots {seq_ids}: {results[name]:6.2f} ms a step")
    for name, ratio in ratios.items():
        print(f"{name}: two runs cost {ratio:.2f}× one run")
    record = {"threads": args.threads, "rounds": args.rounds, "prompt_tokens": len(prompt), "step_ms": results,
              "two_runs_over_one": ratios, "when": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "slot_runs.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
