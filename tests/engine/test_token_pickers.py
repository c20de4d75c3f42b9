"""The argmax fast path for greedy requests must pick exactly what llama.cpp's own greedy sampler chain picks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import llama_cpp as llama
import numpy as np
import pytest
from llama_batches import put_tokens

from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel
from codebooga.server.engine.llama_cpp.sampling import ArgmaxPicker, SamplerChain, new_token_picker
from codebooga.server.engine.types import SamplingParams
from codebooga.server.embedded_model import embedded_model_path

PROMPTS = ["def fibonacci(n):", "The capital of France is", "Once upon a time", "1, 2, 3, 4,"]


@dataclass
class Decoded:
    model: LlamaCppModel
    batch_indices: list[int]  # the batch positions whose logits were kept, one per prompt


@pytest.fixture(scope="module")
def decoded() -> Iterator[Decoded]:
    """One decode of four prompts in four sequences, logits kept for each prompt's last token."""
    model = LlamaCppModel(embedded_model_path(), ContextOptions(n_ctx_per_seq=256, n_parallel=4, n_threads=2))
    batch = llama.llama_batch_init(256, 0, 1)
    count = 0
    for seq_id, prompt in enumerate(PROMPTS):
        count = put_tokens(batch, count, model.tokenize(prompt, add_special=True), 0, seq_id)
    batch.n_tokens = count
    assert llama.llama_decode(model.context, batch) == 0
    try:
        yield Decoded(model, [index for index in range(count) if batch.logits[index]])
    finally:
        llama.llama_batch_free(batch)
        model.close()


def pick_both(decoded: Decoded, params: SamplingParams) -> list[tuple[int, int]]:
    """(fast path's pick, llama.cpp chain's pick) for each prompt."""
    model = decoded.model
    logits = model.output_logits(len(PROMPTS))
    picks = []
    for row, batch_index in enumerate(decoded.batch_indices):
        chain = SamplerChain(params, model.n_vocab)
        try:
            picks.append((ArgmaxPicker(params.logit_bias).pick(model.context, batch_index, logits[row]),
                          chain.pick(model.context, batch_index, logits[row])))
        finally:
            chain.free()
    return picks


def test_argmax_matches_llama_cpp_greedy(decoded: Decoded) -> None:
    for fast, native in pick_both(decoded, SamplingParams(temperature=0.0)):
        assert fast == native


def test_argmax_applies_logit_bias_like_llama_cpp(decoded: Decoded) -> None:
    unbiased = [fast for fast, _ in pick_both(decoded, SamplingParams(temperature=0.0))]
    banned = tuple((token, -100.0) for token in unbiased)
    favoured = ((7, 50.0),)
    for fast, native in pick_both(decoded, SamplingParams(temperature=0.0, logit_bias=banned + favoured)):
        assert fast == native == 7
    for (fast, native), was in zip(pick_both(decoded, SamplingParams(temperature=0.0, logit_bias=banned)), unbiased):
        assert fast == native != was


def test_bans_leave_the_logits_as_llama_cpp_wrote_them(decoded: Decoded) -> None:
    """Bans away from the best token keep it (the argmax alone decides); bans on it move the pick. Either way
    the row is as it was: biases go on in place and come off again."""
    logits = decoded.model.output_logits(len(PROMPTS))
    before = logits.copy()
    unbiased = [fast for fast, _ in pick_both(decoded, SamplingParams(temperature=0.0))]
    elsewhere = tuple((token, -100.0) for token in range(300) if token not in unbiased)
    for (fast, native), was in zip(pick_both(decoded, SamplingParams(temperature=0.0, logit_bias=elsewhere)), unbiased):
        assert fast == native == was
    on_best = tuple((token, -100.0) for token in unbiased)
    for (fast, native), was in zip(pick_both(decoded, SamplingParams(temperature=0.0, logit_bias=on_best)), unbiased):
        assert fast == native != was
    assert np.array_equal(logits, before)


def test_the_fast_path_is_only_taken_when_it_is_exact() -> None:
    assert isinstance(new_token_picker(SamplingParams(temperature=0.0), 100), ArgmaxPicker)
    for params in (SamplingParams(temperature=0.7), SamplingParams(temperature=0.0, repetition_penalty=1.1),
                   SamplingParams(temperature=0.0, presence_penalty=0.5)):
        picker = new_token_picker(params, 100)
        assert isinstance(picker, SamplerChain)
        picker.free()
