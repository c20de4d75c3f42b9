"""With CODEBOOGA_FA_SMALL_BATCH=1, codebooga's llama.cpp computes attention for a chunk of 2–63 tokens exactly as
for the same tokens inside a chunk of 64 or more (server/engine/llama_cpp/patches/flash-attn-small-batch.patch;
docs/build.md). Without it, the stock kernel runs, as every other test here relies on.

Such chunks are what IDE users wait on: a follow-up's few new tokens after a long cached conversation, a prompt's
last chunk. Stock llama.cpp runs them through a kernel that takes one query row at a time in F16 (and differs
from its own 64-row kernel by a mean of 0.13–0.15 in these logits); the patch runs them through the 64-row
kernel's steps, grouped by KV head. So the reference here is llama.cpp itself: the same rows computed in a larger
batch, where its tiled kernel runs. Rows are independent of the tokens after them (causal attention, per-row
matrix products), so any difference is the small-batch kernel's. On a build without the patch these tests fail.
llama.cpp reads the switch at every attention op, so it can be set around a test.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path

import llama_cpp as llama
import numpy as np
import pytest
from llama_batches import put_tokens

from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel

SOURCE = (Path(sysconfig.get_paths()["stdlib"]) / "statistics.py").read_text()
QUESTION = "\n\n### Instruction:\nWhich function is the most complex, and why?\n\n### Response:\n"
LARGE = 64  # from here on llama.cpp's own tiled kernel runs


@pytest.fixture(autouse=True)
def small_batch_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBOOGA_FA_SMALL_BATCH", "1")


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaCppModel]:
    options = ContextOptions(n_ctx_per_seq=2048, n_parallel=2, n_threads=2, flash_attention="on")
    loaded = LlamaCppModel(embedded_model_path(), options)
    try:
        yield loaded
    finally:
        loaded.close()


def decode(model: LlamaCppModel, chunks: list[tuple[int, list[int], int]]) -> list[np.ndarray]:
    """Decode (sequence, tokens, first position) chunks as one batch; each chunk's logits, a row per token."""
    batch = llama.llama_batch_init(sum(len(tokens) for _, tokens, _ in chunks), 0, 1)
    try:
        at = 0
        for seq_id, tokens, first_position in chunks:
            at = put_tokens(batch, at, tokens, first_position, seq_id, every_logit=True)
        batch.n_tokens = at
        assert llama.llama_decode(model.context, batch) == 0
        logits = model.output_logits(at).copy()
    finally:
        llama.llama_batch_free(batch)
    rows, start = [], 0
    for _, tokens, _ in chunks:
        rows.append(logits[start : start + len(tokens)])
        start += len(tokens)
    return rows


def read_file(model: LlamaCppModel, seq_id: int, text: str) -> int:
    """A conversation's cached file: decoded in chunks of 512, as the server reads it. Returns its length."""
    tokens = model.tokenize(text, add_special=True)
    for start in range(0, len(tokens), 512):
        decode(model, [(seq_id, tokens[start : start + 512], start)])
    return len(tokens)


def forget_after(model: LlamaCppModel, seq_id: int, position: int) -> None:
    assert llama.llama_memory_seq_rm(model.memory, seq_id, position, -1)


def alone_and_in_a_large_batch(model: LlamaCppModel, new: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """After a cached file in sequence 0: the logits of `new` decoded alone, and of the same tokens at the head
    of a 64-token chunk (padded with more of the file)."""
    llama.llama_memory_clear(model.memory, True)
    cached = read_file(model, 0, SOURCE[:3000])
    padding = model.tokenize(SOURCE[8000:9000], add_special=False)
    assert len(padding) >= LARGE

    [in_large_batch] = decode(model, [(0, new + padding[: LARGE - len(new)], cached)])
    forget_after(model, 0, cached)
    [alone] = decode(model, [(0, new, cached)])
    return alone, in_large_batch[: len(new)]


@pytest.mark.parametrize("n_new", [2, 22, 63])
def test_a_follow_ups_new_tokens_get_the_logits_they_get_in_a_large_batch(model: LlamaCppModel, n_new: int) -> None:
    new = (model.tokenize(QUESTION, add_special=False) + model.tokenize(SOURCE[5000:6000], add_special=False))
    assert len(new) >= n_new

    alone, in_large_batch = alone_and_in_a_large_batch(model, new[:n_new])

    np.testing.assert_array_equal(alone, in_large_batch)


def test_two_conversations_follow_ups_in_one_batch_get_their_large_batch_logits(model: LlamaCppModel) -> None:
    """One batch, two sequences of 22 new tokens each: llama.cpp runs them as one graph with a query block per
    KV stream, so the kernel's work is split across sequences as well as heads."""
    llama.llama_memory_clear(model.memory, True)
    cached = [read_file(model, 0, SOURCE[:2500]), read_file(model, 1, SOURCE[10000:13000])]
    new = [model.tokenize(QUESTION, add_special=False)[:22], model.tokenize(SOURCE[6000:7000], add_special=False)[:22]]
    padding = model.tokenize(SOURCE[8000:9000], add_special=False)[: LARGE - 22]

    references = []
    for seq_id in (0, 1):
        [rows] = decode(model, [(seq_id, new[seq_id] + padding, cached[seq_id])])
        references.append(rows[:22])
        forget_after(model, seq_id, cached[seq_id])
    together = decode(model, [(0, new[0], cached[0]), (1, new[1], cached[1])])

    for seq_id in (0, 1):
        np.testing.assert_array_equal(together[seq_id], references[seq_id])


def test_without_the_switch_a_small_chunk_gets_the_stock_kernel(
    model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off by default: the stock one-row kernel (F16) gives these rows other logits than the tiled kernel."""
    monkeypatch.delenv("CODEBOOGA_FA_SMALL_BATCH")

    alone, in_large_batch = alone_and_in_a_large_batch(model, model.tokenize(QUESTION, add_special=False)[:22])

    assert np.abs(alone - in_large_batch).mean() > 0.01
