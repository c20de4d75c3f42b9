"""llama.cpp's compute threads on repacked K-quant weights: two threads decode the same greedy tokens as one.

Each output of a matrix product is summed by one thread, so the thread count must not change a logit; this
differential test is what caught a thread pool built from a second copy of ggml's CPU library (wrong logits on
repacked weights only, docs/serving.md#llamacpp-threads)."""

from __future__ import annotations

from pathlib import Path

import llama_cpp as llama
from llama_batches import put_tokens

from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel

PROMPT = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n"


def _greedy(model: LlamaCppModel, count: int) -> list[int]:
    tokens = model.tokenize(PROMPT, add_special=True)
    batch = llama.llama_batch_init(len(tokens), 0, 1)
    try:
        chosen: list[int] = []
        position = 0
        for _ in range(count):
            batch.n_tokens = put_tokens(batch, 0, tokens, position)
            assert llama.llama_decode(model.context, batch) == 0
            position += len(tokens)
            tokens = [int(model.output_logits(1)[0].argmax())]
            chosen.append(tokens[0])
        return chosen
    finally:
        llama.llama_batch_free(batch)


def _decode_with(path: Path, n_threads: int) -> list[int]:
    model = LlamaCppModel(path, ContextOptions(n_ctx_per_seq=128, n_parallel=1, n_threads=n_threads))
    try:
        return _greedy(model, 24)
    finally:
        model.close()


def test_two_threads_decode_the_same_greedy_tokens_as_one(q4km_gguf: Path) -> None:
    one_thread = _decode_with(q4km_gguf, 1)
    assert len(set(one_thread)) > 1  # a real continuation, not one token repeated from empty logits
    assert _decode_with(q4km_gguf, 2) == one_thread
