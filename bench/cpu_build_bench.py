"""What the AMX-safe llama.cpp build keeps: CPU weight repacking (llama.cpp's "extra buffer types").

Loads the same GGUF twice in one process, with `use_extra_bufts` on (what codebooga uses with the build `make`
produces) and off (the runtime workaround for a build that has AMX kernels, which also turns off every other
repack), and times prompt processing and greedy decoding with llama.cpp's own calls, rounds alternating.

    .venv/bin/python bench/cpu_build_bench.py [--model X.gguf] [--threads N] [--rounds 5]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time
from pathlib import Path

import llama_cpp as llama

from codebooga.server.embedded_model import embedded_model_path

PROMPT_TOKENS = 512
DECODE_TOKENS = 128


class Loaded:
    def __init__(self, path: Path, extra_bufts: bool, threads: int) -> None:
        params = llama.llama_model_default_params()
        params.use_extra_bufts = extra_bufts
        self.model = llama.llama_model_load_from_file(str(path).encode(), params)
        context = llama.llama_context_default_params()
        context.n_ctx = PROMPT_TOKENS + DECODE_TOKENS + 8
        context.n_batch = context.n_ubatch = PROMPT_TOKENS
        context.n_threads = context.n_threads_batch = threads
        context.no_perf = True
        self.context = llama.llama_init_from_model(self.model, context)
        self.vocab = llama.llama_model_get_vocab(self.model)
        self.sampler = llama.llama_sampler_init_greedy()

    def run(self) -> tuple[float, float]:
        """(prompt tokens/s, decode tokens/s) for one prompt of PROMPT_TOKENS and DECODE_TOKENS greedy tokens."""
        llama.llama_memory_clear(llama.llama_get_memory(self.context), True)
        n_vocab = llama.llama_vocab_n_tokens(self.vocab)
        prompt = (llama.llama_token * PROMPT_TOKENS)(*[(index * 7919) % n_vocab for index in range(PROMPT_TOKENS)])
        started = time.perf_counter()
        if llama.llama_decode(self.context, llama.llama_batch_get_one(prompt, PROMPT_TOKENS)):
            raise RuntimeError("prompt decode failed")
        prompt_rate = PROMPT_TOKENS / (time.perf_counter() - started)
        token = llama.llama_token(llama.llama_sampler_sample(self.sampler, self.context, -1))
        started = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            if llama.llama_decode(self.context, llama.llama_batch_get_one(ctypes.pointer(token), 1)):
                raise RuntimeError("decode failed")
            token = llama.llama_token(llama.llama_sampler_sample(self.sampler, self.context, -1))
        return prompt_rate, DECODE_TOKENS / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=embedded_model_path())
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(llama.llama_print_system_info().decode().strip())
    variants = {"repack on (make's build)": Loaded(args.model, True, args.threads),
                "use_extra_bufts=False": Loaded(args.model, False, args.threads)}  # fmt: skip
    for loaded in variants.values():
        loaded.run()  # warm-up
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for round_index in range(args.rounds):
        names = list(variants)[round_index % 2 :] + list(variants)[: round_index % 2]
        for name in names:
            results[name].append(variants[name].run())
    print(f"{args.model.name}, {args.threads} threads, median of {args.rounds} alternating rounds")
    print("| build | prompt tok/s | decode tok/s |\n| --- | --- | --- |")
    for name, rounds in results.items():
        print(f"| {name} | {statistics.median(r[0] for r in rounds):.1f} | {statistics.median(r[1] for r in rounds):.1f} |")


if __name__ == "__main__":
    main()
