"""codebooga's llama.cpp computes a token's attention the same way whatever else its graph run holds
(server/engine/llama_cpp/patches/flash-attn-batch-invariant.patch; docs/build.md#patches-to-llamacpp): one token
decoded alone, beside other sequences' tokens, a follow-up's few new tokens, or the same tokens inside a chunk of
64 or more all get bit-for-bit the same logits. CODEBOOGA_FA_KERNEL=stock brings back llama.cpp's kernels.

Stock llama.cpp runs fewer than 64 rows of a sequence through a one-row kernel in F16 (which differs from its own
64-row kernel by a mean of 0.13–0.15 in these logits), 64 or more through a tiled kernel in F32, and splits a lone
decoded token's context between threads; so a row's result depended on the graph run it landed in, and greedy
output on what else the server was doing. Rows are independent of the tokens after them (causal attention, per-row
matrix products), so any difference between the cases here is the attention kernel's. On a build without the
patch these tests fail. llama.cpp reads the switch at every attention op, so it can be set around a test.
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
LARGE = 64  # from here on stock llama.cpp's tiled kernel runs


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


def read(model: LlamaCppModel, seq_id: int, tokens: list[int], chunk: int = 512) -> np.ndarray:
    """A conversation's cached file, decoded in chunks of `chunk` (the server reads in 512s); the last logits."""
    for start in range(0, len(tokens), chunk):
        [rows] = decode(model, [(seq_id, tokens[start : start + chunk], start)])
    return rows[-1]


def read_file(model: LlamaCppModel, seq_id: int, text: str) -> int:
    tokens = model.tokenize(text, add_special=True)
    read(model, seq_id, tokens)
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


@pytest.mark.parametrize("n_new", [1, 2, 22, 63])
def test_a_follow_ups_new_tokens_get_the_logits_they_get_in_a_large_batch(model: LlamaCppModel, n_new: int) -> None:
    """1 is a decoded token: alone after 900 cached tokens, llama.cpp's lone-decode case (split by context
    chunks between the threads here, merged in position order)."""
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


def test_a_decoded_token_gets_the_same_logits_alone_and_beside_another_sequences_token(model: LlamaCppModel) -> None:
    """Decoding alone, a sequence is one row: its context is split between the threads. Beside another sequence
    the work is split by sequence and head instead. The merged result is the same."""
    llama.llama_memory_clear(model.memory, True)
    cached = [read_file(model, 0, SOURCE[:3000]), read_file(model, 1, SOURCE[10000:11000])]
    token = model.tokenize(QUESTION, add_special=False)[:1]

    [alone] = decode(model, [(0, token, cached[0])])
    forget_after(model, 0, cached[0])
    [beside, _] = decode(model, [(0, token, cached[0]), (1, token, cached[1])])

    np.testing.assert_array_equal(alone, beside)


def test_a_prompt_cut_into_other_chunks_ends_with_the_same_logits(model: LlamaCppModel) -> None:
    """The same 1,000 tokens read in chunks of 512 (the server's), of 97 and of 31: chunks past the first attend
    to the earlier ones' cached keys at every size."""
    tokens = model.tokenize(SOURCE[:4000], add_special=True)[:1000]
    last = []
    for chunk in (512, 97, 31):
        llama.llama_memory_clear(model.memory, True)
        last.append(read(model, 0, tokens, chunk))

    np.testing.assert_array_equal(last[1], last[0])
    np.testing.assert_array_equal(last[2], last[0])


def test_the_stock_switch_brings_back_llama_cpps_kernels(model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """CODEBOOGA_FA_KERNEL=stock: llama.cpp's one-row kernel (F16) gives these rows other logits than its tiled
    kernel, as it does without the patch."""
    monkeypatch.setenv("CODEBOOGA_FA_KERNEL", "stock")

    alone, in_large_batch = alone_and_in_a_large_batch(model, model.tokenize(QUESTION, add_special=False)[:22])

    assert np.abs(alone - in_large_batch).mean() > 0.01


def test_the_kernel_is_as_close_to_attention_without_flash_attention_as_llama_cpps_own(
    model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An independent reference: llama.cpp without flash attention (K·Q as one matrix product, softmax, then V).
    A 700-token prompt read as the server reads it (512, then 188 rows attending across two context chunks, whose
    partial results the kernel merges), and one decoded token after it."""
    tokens = model.tokenize(SOURCE[:4000], add_special=True)[:701]
    prompt, decoded = tokens[:700], tokens[700:]

    def logits(of: LlamaCppModel) -> np.ndarray:
        llama.llama_memory_clear(of.memory, True)
        decode(of, [(0, prompt[:512], 0)])
        [rows] = decode(of, [(0, prompt[512:], 512)])
        [last] = decode(of, [(0, decoded, 700)])
        return np.concatenate([rows, last])

    kernel = logits(model)
    monkeypatch.setenv("CODEBOOGA_FA_KERNEL", "stock")
    stock = logits(model)
    without = LlamaCppModel(
        embedded_model_path(), ContextOptions(n_ctx_per_seq=2048, n_parallel=1, n_threads=2, flash_attention="off")
    )
    try:
        reference = logits(without)
    finally:
        without.close()

    kernel_error, stock_error = np.abs(kernel - reference).mean(), np.abs(stock - reference).mean()
    assert kernel_error <= 1.1 * stock_error, (kernel_error, stock_error)
    assert (kernel.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.97
